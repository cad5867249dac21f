//! ConfigMaps and Secrets: copied to the parent while a virtual pod of
//! their namespace references them (see [`super::pod::references`]), or,
//! for Secrets, a copied Ingress names them in `tls` (see
//! [`super::ingress::tls_secrets`]), kept up to date, and deleted from the
//! parent once nothing references them.
//!
//! A copy carries the data, `type` (a service-account-token Secret becomes
//! `Opaque`, so the parent's token controller never fills it with a parent
//! token) and `immutable` (an immutable copy that must change is replaced).
//! Virtual annotations are not carried (they may mean something to the
//! parent's controllers).
//!
//! This module never touches a parent object that is not a copy owned by
//! the reconciled cluster.

use std::time::Duration;

use serde_json::{Value, json};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nestkube_apiserver::controllers::watch::{Change, ObjectKey};

use super::{api, create, delete, get, host_meta, ingress, is_ours, meta, pod, replace, token};
use crate::kinds::{CopyOf, Translate};
use crate::parents::{Owner, ParentKey};
use crate::{Ctx, Kind, SyncError, Syncer, names};

/// Reconciles virtual ConfigMap or Secret `ns/name` with its copy.
pub(crate) async fn sync(
    ctx: &Ctx,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<Option<Duration>, SyncError> {
    let vobj = get(&api(&ctx.virt, kind, ns), name).await?;
    let referenced = match &vobj {
        Some(o) if !pod::is_deleting(o) => is_referenced(ctx, kind, ns, name).await?,
        _ => false,
    };
    match vobj {
        Some(o) if referenced => ensure(ctx, kind, &o).await?,
        _ => {
            let hapi = api(&ctx.parent, kind, &ctx.placement.host_namespace);
            let hname = names::host_name(&ctx.cluster, ns, name);
            if let Some(h) = get(&hapi, &hname).await?
                && is_ours(ctx, &h)
            {
                delete(&hapi, &hname, meta(&h, "uid"), None).await?;
            }
        }
    }
    Ok(None)
}

/// Whether a virtual pod of `ns` references `kind` `name`, or a copied
/// Ingress of `ns` Secret `name`.
async fn is_referenced(ctx: &Ctx, kind: Kind, ns: &str, name: &str) -> Result<bool, SyncError> {
    if kind == Kind::Secret && ctx.placement.spec.sync.ingresses {
        let ingresses = api(&ctx.virt, Kind::Ingress, ns)
            .list(&Default::default())
            .await?;
        for i in ingresses.items {
            let i = serde_json::to_value(i)?;
            if !pod::is_deleting(&i)
                && ingress::refused(ctx, &i).is_none()
                && ingress::tls_secrets(&i).iter().any(|n| n == name)
            {
                return Ok(true);
            }
        }
    }
    let pods = api(&ctx.virt, Kind::Pod, ns)
        .list(&Default::default())
        .await?;
    for p in pods.items {
        let p = serde_json::to_value(p)?;
        if pod::references(&p)
            .iter()
            .any(|(k, n)| *k == kind && n == name)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The parent copy of virtual ConfigMap or Secret `vobj`.
pub(crate) fn translate(ctx: &Ctx, kind: Kind, vobj: &Value) -> Value {
    let hname = names::host_name(&ctx.cluster, meta(vobj, "namespace"), meta(vobj, "name"));
    let mut out = json!({
        "apiVersion": "v1",
        "kind": if kind == Kind::Secret { "Secret" } else { "ConfigMap" },
        "metadata": host_meta(ctx, vobj, &hname),
    });
    for f in ["data", "binaryData", "immutable"] {
        if let Some(v) = vobj.get(f).filter(|v| !v.is_null()) {
            out[f] = v.clone();
        }
    }
    if kind == Kind::Secret {
        let t = vobj["type"].as_str().unwrap_or("Opaque");
        out["type"] = json!(if t == "kubernetes.io/service-account-token" {
            "Opaque"
        } else {
            t
        });
    }
    out
}

/// What must be equal for a copy to be current.
fn content(obj: &Value) -> [&Value; 6] {
    [
        &obj["data"],
        &obj["binaryData"],
        &obj["immutable"],
        &obj["type"],
        &obj["metadata"]["labels"],
        &obj["metadata"]["annotations"],
    ]
}

/// Creates or updates the copy of virtual ConfigMap or Secret `vobj`.
pub(crate) async fn ensure(ctx: &Ctx, kind: Kind, vobj: &Value) -> Result<(), SyncError> {
    let hapi = api(&ctx.parent, kind, &ctx.placement.host_namespace);
    let mut desired = translate(ctx, kind, vobj);
    let hname = desired["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let Some(existing) = get(&hapi, &hname).await? else {
        create(&hapi, &desired).await?;
        return Ok(());
    };
    if !is_ours(ctx, &existing) {
        tracing::warn!(cluster = %ctx.cluster, object = %hname, "a parent object of that name belongs to someone else; not syncing");
        return Ok(());
    }
    let mut want = desired.clone();
    if kind == Kind::Secret && want["type"].is_null() {
        want["type"] = json!("Opaque");
    }
    if content(&existing) == content(&want) {
        return Ok(());
    }
    if existing["immutable"] == json!(true) {
        delete(&hapi, &hname, meta(&existing, "uid"), None).await?;
        create(&hapi, &desired).await?;
        return Ok(());
    }
    desired["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
    replace(&hapi, &desired).await?;
    Ok(())
}

/// The translation of ConfigMaps and Secrets ([`crate::kinds`]); a pod's
/// token Secret ([`super::token`]) is its pod's.
pub(crate) struct Configs;

#[async_trait::async_trait]
impl Translate for Configs {
    async fn sync(
        &self,
        _s: &Syncer,
        ctx: &Ctx,
        kind: Kind,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, SyncError> {
        sync(ctx, kind, ns, name).await
    }

    fn virtual_changed(
        &self,
        _s: &Syncer,
        _kind: Kind,
        _key: &ObjectKey<'_>,
        change: &Change<'_>,
    ) -> bool {
        // Referenced ConfigMaps and Secrets are synced by their pods'
        // reconciles; only their later changes need one of their own.
        !matches!(change, Change::Initial(_))
    }

    fn copy_changed(
        &self,
        s: &Syncer,
        parent: &ParentKey,
        kind: Kind,
        meta: &ObjectMeta,
        deleted: bool,
        owner: &Owner,
    ) {
        let token = kind == Kind::Secret
            && meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(token::REFRESH_ANNOTATION));
        if !token {
            s.enqueue_object(kind, &owner.cluster, &owner.namespace, &owner.name);
        } else if s.tokens.changed_below(
            parent,
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or(""),
            match deleted {
                true => None,
                false => meta.resource_version.as_deref(),
            },
        ) {
            // A token Secret is its pod's: its reconcile writes it again.
            s.enqueue_object(Kind::Pod, &owner.cluster, &owner.namespace, &owner.name);
        }
    }

    fn copy_of(&self, kind: Kind, copy: &Value, owner: &Owner) -> CopyOf {
        let default = CopyOf::of(kind, owner);
        if kind == Kind::Secret && token::is_token_secret(copy) {
            CopyOf {
                kind: Kind::Pod,
                current: token::secret_name(&default.current),
                legacy: token::secret_name(&default.legacy),
            }
        } else {
            default
        }
    }
}
