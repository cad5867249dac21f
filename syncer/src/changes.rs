//! What starts reconciles on the virtual side: a change in the storage of
//! any served cluster ([`Syncer::virtual_change`], dispatched through the
//! row of its kind, [`crate::kinds`]) and a change of the clusters'
//! placements ([`Syncer::placements_changed`]: cleanup of a placement gone,
//! resync of a new one, one watch task per parent in use).
//!
//! This module only enqueues work and starts or stops the parents' watch
//! tasks; it never writes to a cluster.

use std::collections::HashMap;
use std::sync::Arc;

use nestkube_apiserver::controllers::watch::{Change, ObjectKey};
use nestkube_apiserver::tenancy::Placement;

use crate::kinds::{Kind, Syncs};
use crate::{Item, ParentKey, Syncer, dns, parents};

impl Syncer {
    /// A change in the storage of any served cluster: the reconciles it
    /// starts, as the row of its kind says ([`kinds`]).
    pub(crate) fn virtual_change(&self, change: &Change<'_>) {
        let Some(k) = change.key().and_then(ObjectKey::parse) else {
            return;
        };
        // Namespace labels decide what namespace selectors match.
        if k.segment == "core/namespaces" {
            if let Some(placement) = self.placement(k.cluster)
                && !matches!(change, Change::Initial(_))
            {
                for &kind in Kind::ALL {
                    if kind.row().on_namespaces && placement.syncs(kind) {
                        self.enqueue(Item::EveryObject {
                            kind,
                            cluster: k.cluster.to_string(),
                        });
                    }
                }
            }
            return;
        }
        let Some(kind) = Kind::from_segment(k.segment) else {
            return;
        };
        let row = kind.row();
        row.translate.stored(self, kind, change);
        let Some(placement) = self.placement(k.cluster) else {
            return;
        };
        // A kind switched off has no copies (its switch's resync deleted them).
        if !placement.syncs(kind) {
            return;
        }
        if !row.translate.virtual_changed(self, kind, &k, change) {
            return;
        }
        for &companion in row.companions {
            self.enqueue_object(companion, k.cluster, k.namespace, k.name);
        }
        self.enqueue_object(kind, k.cluster, k.namespace, k.name);
    }

    /// Clusters or placements changed: clean up after the ones gone,
    /// resync the new ones, and keep one watch per parent in use.
    pub(crate) fn placements_changed(self: &Arc<Self>) {
        let mut current = HashMap::new();
        for path in self.api.clusters.paths() {
            if let Some(p) = self.placement(&path) {
                current.insert(path, p);
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for (path, old) in known.iter() {
            // A placement never synced (host namespace not allowed) left nothing.
            if current.get(path).is_none_or(|new| !same_target(old, new)) && self.allowed(old) {
                tracing::info!(cluster = %path, uid = %old.uid, "placement gone: cleaning up its parent objects");
                self.enqueue(Item::Cleanup {
                    parent: ParentKey::of(old),
                    host_namespace: old.host_namespace.clone(),
                    uid: old.uid.clone(),
                });
            }
        }
        for (path, new) in current.iter() {
            // A kind switched on is copied, one switched off deleted; what
            // spec.network allows now is copied, what it no longer allows
            // deleted.
            if known.get(path).is_none_or(|old| {
                !same_target(old, new)
                    || old.spec.sync != new.spec.sync
                    || old.spec.network != new.spec.network
            }) {
                if !self.allowed(new) {
                    tracing::error!(
                        cluster = %path,
                        host_namespace = %new.host_namespace,
                        allowed = ?self.host_namespaces,
                        "cluster placed in a host namespace outside --host-namespaces: not syncing it (add the namespace to --host-namespaces, and grant nestkube's service account the namespaced rights there)"
                    );
                    continue;
                }
                self.enqueue(Item::Resync {
                    cluster: path.clone(),
                });
            }
        }
        let wanted: std::collections::HashSet<ParentKey> = current
            .values()
            .filter(|p| self.allowed(p))
            .map(|p| ParentKey::of(p))
            .collect();
        *known = current;
        drop(known);
        if let Some(dns) = &self.dns {
            let gone = dns.index.retain_clusters(|c| self.placement(c).is_some());
            if !gone.is_empty() {
                let storage = self.api.store.storage().clone();
                tokio::spawn(async move {
                    for cluster in gone {
                        if let Err(e) =
                            dns::shared::unpublish_cluster(storage.as_ref(), &cluster).await
                        {
                            tracing::warn!(cluster = %cluster, error = %e, "DNS: could not remove the shared addresses of a cluster gone");
                        }
                    }
                });
            }
        }
        {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            clients.retain(|path, _| self.api.clusters.contains(path));
            let mut parents = self
                .parent_clients
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            parents.retain(|key, _| match key {
                ParentKey::Cluster(path) => self.api.clusters.contains(path),
                ParentKey::Host => true,
            });
        }
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| wanted.contains(key));
        self.copy_indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| wanted.contains(key));
        let mut parents = self.parents.lock().unwrap_or_else(|e| e.into_inner());
        parents.retain(|key, task| {
            let keep = wanted.contains(key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for key in wanted {
            if parents.contains_key(&key) {
                continue;
            }
            let Some(client) = self.parent_client(&key) else {
                tracing::warn!(parent = ?key, "placements name the host cluster, but no host client was given");
                continue;
            };
            let task = tokio::spawn(parents::watch(self.clone(), key.clone(), client));
            parents.insert(key, task);
        }
    }
}

/// Whether two placements put objects in the same place for the same owner.
fn same_target(a: &Placement, b: &Placement) -> bool {
    a.uid == b.uid && a.parent == b.parent && a.host_namespace == b.host_namespace
}
