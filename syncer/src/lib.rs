//! The syncer: what must really run is copied from each virtual cluster down
//! to its parent (the parent virtual cluster, `root` in standalone mode, or
//! the real host cluster), and status flows back up.
//!
//! One syncer serves every virtual cluster of the process (cluster-aware,
//! as the controllers): one storage watch over all clusters tells it what
//! changed in the virtual clusters, one watch per *parent* (shared by every
//! virtual cluster syncing into that parent, label
//! `tenancy.nestkube.io/managed-by=nestkube`) tells it what changed below,
//! and one work queue of keys reconciles both directions of one object at a
//! time (`down::*`). Parents are always reached as a Kubernetes API through
//! a `kube::Client`: the host's from its kubeconfig, a served cluster's
//! in-process ([`ApiServer::client_for`]).
//!
//! What is synced: pods (with the ConfigMaps and Secrets they reference and
//! a service-account token issued by the virtual cluster), pod status up,
//! Services (down, with the parent's cluster IP taken back up), the
//! Endpoints of selector-less Services,
//! PersistentVolumeClaims (down, status up), Ingresses (down, with the TLS
//! Secrets they name; load balancer status up) and NetworkPolicies (down,
//! selectors kept inside the tenant) when the VirtualCluster's `spec.sync`
//! enables them, the parent's RuntimeClasses, StorageClasses, the Nodes
//! pods are bound to and the PersistentVolumes claims are bound to mirrored
//! up ([`mirror`]), the parent's Events about copies of pods, claims and
//! Services told about the virtual objects ([`events`]). Every
//! VirtualCluster also gets a default NetworkPolicy in its parent that
//! isolates its pods from other tenants' ([`down::isolation`]). Cleanup:
//! a placement that disappears deletes everything labelled with its
//! VirtualCluster's uid ([`cleanup`]); every (re)start reconciles all, and
//! so does a parent that answers again after being unreachable (the
//! virtual clusters keep serving meanwhile; see [`parents`]).
//!
//! Layout: [`kinds`] is the table of synced kinds, each with its
//! translation module in [`down`]; the [`Syncer`] type and its start-up
//! live in `syncer`, what starts reconciles (virtual changes, placements)
//! in `changes`, the reconcile loop in `reconcile`, the parents' watches,
//! copy index and health in `parents`.
//!
//! It owns the parent objects it creates (all labelled
//! [`names::MANAGED_BY_LABEL`]) and the status of virtual pods; it must
//! never touch a parent object owned by another virtual cluster, nor act in
//! a virtual cluster on behalf of another.

mod changes;
pub mod cleanup;
pub mod containers;
pub mod dns;
pub mod down;
pub mod events;
pub mod kinds;
pub mod mirror;
pub mod names;
mod parents;
mod reconcile;
pub mod requests;
mod syncer;
pub mod webhooks;

use std::time::Duration;

pub use kinds::Kind;
pub use parents::ParentKey;
pub(crate) use reconcile::{Ctx, Item};
pub use requests::ParentRequests;
pub use syncer::{SYNCER_LEASE, Settings, Syncer, spawn, spawn_when_leader, spawn_with};

/// Errors of one reconcile (retried with backoff by the queue).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A call to a virtual cluster or a parent failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be converted.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The storage of the served clusters.
    #[error("storage: {0}")]
    Storage(#[from] nestkube_storage::StorageError),
    /// A write to a served cluster through its store (binding).
    #[error("api: {0}")]
    Api(#[from] nestkube_apiserver::ApiError),
    /// A placement names the host cluster but none was configured.
    #[error("cluster {0} is placed on the host cluster, but no --host-kubeconfig was given")]
    NoHost(String),
    /// The parent did not finish the reconcile in time.
    #[error("no answer from the parent within {0:?}")]
    Timeout(Duration),
}

impl SyncError {
    /// Whether the parent may be unreachable (no answer, no connection).
    pub(crate) fn reaching(&self) -> bool {
        matches!(
            self,
            SyncError::Timeout(_)
                | SyncError::Kube(kube::Error::HyperError(_) | kube::Error::Service(_))
        )
    }
}
