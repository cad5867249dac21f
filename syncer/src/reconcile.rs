//! The reconcile loop: the work queue's items ([`Item`]), what one
//! reconcile of a cluster needs ([`Ctx`]), and how an item runs: through
//! the row of its kind ([`crate::kinds::Translate::sync`]) for a virtual
//! object, waiting without trying while its parent is known unreachable or
//! busy, and never longer than [`RECONCILE_TIMEOUT`] (see
//! [`crate::parents`]).
//!
//! This module decides when and where a reconcile runs; what it writes is
//! the translation modules' ([`crate::down`]), the mirrors', the cleanup's
//! and the Events'.

use std::sync::Arc;
use std::time::Duration;

use nestkube_apiserver::tenancy::Placement;

use crate::kinds::Kind;
use crate::{ParentKey, SyncError, Syncer, cleanup, events, mirror};

/// Longest reconcile against a parent: a request to a parent that stopped
/// answering (a partition: nothing resets the connection) would otherwise
/// wait for TCP to give up, many minutes.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(20);
/// When a reconcile runs again that found `PER_PARENT`
/// reconciles of its parent running.
const PARENT_BUSY_RETRY: Duration = Duration::from_millis(500);
/// When a reconcile runs again that found its parent known unreachable: a
/// fixed short wait (not the failure backoff, up to 10 s), so it runs soon
/// after the parent answers again, whenever that is.
const PARENT_DOWN_RETRY: Duration = Duration::from_secs(1);

/// One unit of work of the queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Item {
    /// Reconcile virtual object `namespace/name` of `cluster` (both ways).
    Object {
        kind: Kind,
        cluster: String,
        namespace: String,
        name: String,
    },
    /// Enqueue every object of `cluster` and of its copies in the parent.
    Resync { cluster: String },
    /// Reconcile every virtual object of `kind` in `cluster` (its
    /// namespaces changed, which namespace selectors match).
    EveryObject { kind: Kind, cluster: String },
    /// Mirror the parent's RuntimeClasses and StorageClasses into `cluster`.
    Classes { cluster: String },
    /// Mirror the parent's Nodes `cluster`'s pods are bound to.
    Nodes { cluster: String },
    /// Bring virtual Event `namespace/name` of `cluster` in line with the
    /// parent Event it stands for (what to write waits in
    /// [`Syncer::outbox`]).
    Event {
        cluster: String,
        namespace: String,
        name: String,
    },
    /// Delete every parent object of VirtualCluster `uid`.
    Cleanup {
        parent: ParentKey,
        host_namespace: String,
        uid: String,
    },
    /// Delete parent objects whose virtual cluster is gone, in `namespace`
    /// of `parent` (`None`: all namespaces).
    Sweep {
        parent: ParentKey,
        namespace: Option<String>,
    },
}

/// What a reconcile of one cluster needs.
pub(crate) struct Ctx {
    /// The virtual cluster's path.
    pub cluster: String,
    /// Its placement.
    pub placement: Arc<Placement>,
    /// Client of the virtual cluster (in-process admin).
    pub virt: kube::Client,
    /// Client of the parent.
    pub parent: kube::Client,
}

impl Syncer {
    /// The parent `item` acts in (`None`: only in a virtual cluster).
    fn parent_of(&self, item: &Item) -> Option<ParentKey> {
        match item {
            Item::Object { cluster, .. }
            | Item::Resync { cluster }
            | Item::Classes { cluster }
            | Item::EveryObject { cluster, .. }
            | Item::Nodes { cluster } => self.placement(cluster).map(|p| ParentKey::of(&p)),
            Item::Cleanup { parent, .. } | Item::Sweep { parent, .. } => Some(parent.clone()),
            Item::Event { .. } => None,
        }
    }

    /// Runs one item; one that acts in a parent waits without trying while
    /// that parent is known unreachable or `PER_PARENT` ([`crate::parents`]) others
    /// act there, and gives up after [`RECONCILE_TIMEOUT`] (see
    /// [`parents`]).
    pub(crate) async fn reconcile(
        self: Arc<Self>,
        item: Item,
    ) -> Result<Option<Duration>, SyncError> {
        let Some(parent) = self.parent_of(&item) else {
            return self.reconcile_item(item).await;
        };
        let health = self.health(&parent);
        if health.is_down() {
            return Ok(Some(PARENT_DOWN_RETRY));
        }
        // Waiting for a permit here would hold one of the queue's.
        let Ok(_permit) = health.permits.clone().try_acquire_owned() else {
            return Ok(Some(PARENT_BUSY_RETRY));
        };
        let result = tokio::time::timeout(RECONCILE_TIMEOUT, self.clone().reconcile_item(item))
            .await
            .unwrap_or(Err(SyncError::Timeout(RECONCILE_TIMEOUT)));
        if result.as_ref().is_err_and(SyncError::reaching) {
            health.suspect();
        }
        result
    }

    async fn reconcile_item(self: Arc<Self>, item: Item) -> Result<Option<Duration>, SyncError> {
        match item {
            Item::Object {
                kind,
                cluster,
                namespace,
                name,
            } => {
                let Some(ctx) = self.ctx(&cluster)? else {
                    return Ok(None);
                };
                let result = kind
                    .row()
                    .translate
                    .sync(&self, &ctx, kind, &namespace, &name)
                    .await;
                match result {
                    // The cluster went away during the reconcile: its
                    // copies are the cleanup's.
                    Err(SyncError::Kube(kube::Error::Api(s)))
                        if s.code == 401 && self.placement(&cluster).is_none() =>
                    {
                        Ok(None)
                    }
                    r => r,
                }
            }
            Item::Resync { cluster } => {
                self.enqueue(Item::Classes {
                    cluster: cluster.clone(),
                });
                self.enqueue(Item::Nodes {
                    cluster: cluster.clone(),
                });
                cleanup::resync(&self, &cluster).await.map(|()| None)
            }
            Item::EveryObject { kind, cluster } => match self.ctx(&cluster)? {
                Some(ctx) => cleanup::resync_kind(&self, &ctx, kind).await.map(|()| None),
                None => Ok(None),
            },
            Item::Classes { cluster } => match self.ctx(&cluster)? {
                Some(ctx) => {
                    mirror::runtime_classes::sync(&ctx).await?;
                    mirror::storage::sync_classes(&ctx).await.map(|()| None)
                }
                None => Ok(None),
            },
            Item::Nodes { cluster } => match self.ctx(&cluster)? {
                Some(ctx) => mirror::nodes::sync(&ctx).await,
                None => Ok(None),
            },
            Item::Event {
                cluster,
                namespace,
                name,
            } => {
                let key = (cluster, namespace, name);
                let Some(wish) = self.outbox.take(&key) else {
                    return Ok(None);
                };
                if self.placement(&key.0).is_none() {
                    return Ok(None);
                }
                let virt = self.local_client(&key.0);
                match events::apply(&virt, &key.1, &key.2, &wish).await {
                    Ok(()) => Ok(None),
                    Err(e) => {
                        self.outbox.retry(key, wish);
                        Err(e)
                    }
                }
            }
            Item::Cleanup {
                parent,
                host_namespace,
                uid,
            } => cleanup::cleanup(&self, &parent, &host_namespace, &uid)
                .await
                .map(|()| None),
            Item::Sweep { parent, namespace } => {
                cleanup::sweep(&self, &parent, namespace.as_deref())
                    .await
                    .map(|()| None)
            }
        }
    }
}
