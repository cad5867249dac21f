//! Cleanup and restart robustness: nothing left behind in a parent, nothing
//! missing from it.
//!
//! - [`cleanup`]: a placement went away (its VirtualCluster was deleted, or
//!   it moved): every copy labelled with its VirtualCluster's uid in its
//!   host namespace is deleted.
//! - [`resync`]: a placement appeared (or the syncer started, or its
//!   parent answers again after being unreachable): every virtual object
//!   of the kinds the table lists ([`crate::kinds`]: pods, Services and
//!   claims, and Ingresses and NetworkPolicies when its VirtualCluster
//!   enables them) and every copy of it in the parent is
//!   reconciled, so missing copies are created and copies without a
//!   virtual object (or of a kind switched off) are deleted; so is the
//!   cluster's isolation policy ([`down::isolation`], which carries the
//!   owner annotations of a copy, so the sweep and the cleanup treat it as
//!   one).
//! - [`sweep`]: after each (re)list of a parent's watch (of all namespaces,
//!   or of one of `--host-namespaces`), and when the parent answers again
//!   after being unreachable, copies whose virtual cluster no
//!   longer syncs there are deleted in what that watch covers. In a parent served
//!   by this process every copy is this process's; on the real host, only
//!   copies of clusters this process serves are judged (another nestkube
//!   may share the host), the rest is left to the VirtualCluster's own
//!   teardown, which deletes by the same uid label.
//!
//! This module deletes only objects labelled
//! `tenancy.nestkube.io/managed-by=nestkube`.

use kube::api::ListParams;
use serde_json::Value;

use crate::down::{self, api, api_all, meta};
use crate::kinds::{Kind, Syncs};
use crate::parents::owner_of;
use crate::{Ctx, ParentKey, SyncError, Syncer, names};

/// Lists `kind` with label selector `selector` as JSON.
async fn list(
    api: &kube::Api<kube::api::DynamicObject>,
    kind: Kind,
    selector: &str,
) -> Result<Vec<Value>, SyncError> {
    let mut out = Vec::new();
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(l) => {
            for o in l.items {
                out.push(serde_json::to_value(o)?);
            }
        }
        Err(e) if down::is_not_found(&e) => {}
        Err(kube::Error::Api(s)) if s.code == 403 && kind.is_optional() => {
            tracing::warn!(kind = ?kind, message = %s.message,
                "syncer: may not list copies of this kind in the parent (grant it to sync them); skipping");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(out)
}

/// Deletes every copy of VirtualCluster `uid` in `host_namespace` of `parent`.
pub(crate) async fn cleanup(
    s: &Syncer,
    parent: &ParentKey,
    host_namespace: &str,
    uid: &str,
) -> Result<(), SyncError> {
    if let ParentKey::Cluster(p) = parent
        && !s.api.clusters.contains(p)
    {
        return Ok(()); // The parent went with everything in it.
    }
    if s.scope(parent)
        .is_some_and(|ns| !ns.iter().any(|n| n == host_namespace))
    {
        return Ok(()); // Outside --host-namespaces: never synced there.
    }
    let Some(client) = s.parent_client(parent) else {
        return Ok(());
    };
    let mut deleted = 0;
    for &kind in Kind::ALL {
        let a = api(&client, kind, host_namespace);
        for obj in list(&a, kind, &names::owner_selector(uid)).await? {
            down::delete(&a, meta(&obj, "name"), meta(&obj, "uid"), None).await?;
            deleted += 1;
        }
    }
    tracing::info!(parent = ?parent, uid, deleted, "syncer: cleaned up a VirtualCluster's copies");
    Ok(())
}

/// Reconciles every virtual object of `cluster` of a kind the table lists,
/// and every copy of it in its parent.
pub(crate) async fn resync(s: &Syncer, cluster: &str) -> Result<(), SyncError> {
    let Some(ctx) = s.ctx(cluster)? else {
        return Ok(());
    };
    for &kind in Kind::ALL {
        // Kinds not listed are synced through other objects.
        if !kind.row().listed || !ctx.placement.syncs(kind) {
            continue; // Its copies, if any, are listed below and deleted.
        }
        for obj in list(&api_all(&ctx.virt, kind), kind, "").await? {
            let (ns, name) = (meta(&obj, "namespace"), meta(&obj, "name"));
            s.enqueue_object(kind, cluster, ns, name);
            for &companion in kind.row().companions {
                s.enqueue_object(companion, cluster, ns, name);
            }
        }
    }
    // The isolation policy: created, updated, or deleted when switched off.
    s.enqueue_object(
        Kind::NetworkPolicy,
        cluster,
        down::isolation::NAMESPACE,
        down::isolation::NAME,
    );
    for &kind in Kind::ALL {
        let a = api(&ctx.parent, kind, &ctx.placement.host_namespace);
        for obj in list(&a, kind, &names::owner_selector(&ctx.placement.uid)).await? {
            let Some(owner) = owner_of(&obj) else {
                continue;
            };
            if owner.cluster != cluster {
                continue;
            }
            let translate = kind.row().translate;
            let copy = translate.copy_of(kind, &obj, &owner);
            let name = meta(&obj, "name");
            // Named by an older syncer: nothing the current scheme names, so
            // the reconcile of its owner never finds it.
            if name != copy.current && name == copy.legacy {
                if translate.keeps_legacy_copies() {
                    tracing::warn!(%cluster, kind = ?kind, object = %name,
                        "syncer: a copy has an older syncer's name; its data stays there, the object gets a new copy");
                } else {
                    tracing::info!(%cluster, object = %name,
                        "syncer: replacing a copy named by an older syncer");
                    down::delete(&a, name, meta(&obj, "uid"), None).await?;
                }
            }
            s.enqueue_object(copy.kind, cluster, &owner.namespace, &owner.name);
        }
    }
    Ok(())
}

/// Reconciles every virtual object of `kind` in `ctx`'s cluster.
pub(crate) async fn resync_kind(s: &Syncer, ctx: &Ctx, kind: Kind) -> Result<(), SyncError> {
    for obj in list(&api_all(&ctx.virt, kind), kind, "").await? {
        s.enqueue_object(
            kind,
            &ctx.cluster,
            meta(&obj, "namespace"),
            meta(&obj, "name"),
        );
    }
    Ok(())
}

/// Deletes the copies in `namespace` of `parent` (`None`: all namespaces)
/// whose virtual cluster no longer syncs there (see the module docs).
pub(crate) async fn sweep(
    s: &Syncer,
    parent: &ParentKey,
    namespace: Option<&str>,
) -> Result<(), SyncError> {
    let Some(client) = s.parent_client(parent) else {
        return Ok(());
    };
    let local = matches!(parent, ParentKey::Cluster(_));
    for &kind in Kind::ALL {
        let a = match namespace {
            Some(ns) => api(&client, kind, ns),
            None => api_all(&client, kind),
        };
        for obj in list(&a, kind, &names::managed_selector()).await? {
            let ns = meta(&obj, "namespace");
            let stale = match owner_of(&obj) {
                Some(owner) if s.owns(parent, ns, &owner) => false,
                Some(owner) => local || s.api.clusters.contains(&owner.cluster),
                // Labelled by the parent itself (e.g. the Endpoints of
                // copied Services): the parent's, never stale.
                None => local && !kind.row().translate.labelled_by_parent(),
            };
            if stale {
                tracing::info!(parent = ?parent, object = %format!("{ns}/{}", meta(&obj, "name")),
                    "syncer: deleting a copy whose virtual cluster is gone");
                down::delete(
                    &api(&client, kind, ns),
                    meta(&obj, "name"),
                    meta(&obj, "uid"),
                    None,
                )
                .await?;
            }
        }
    }
    Ok(())
}
