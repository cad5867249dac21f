//! The parents the syncer writes into, and the one watch per parent that
//! brings changes of the copies back up.
//!
//! A parent's watches cover every copy of a kind whose row of the table
//! ([`crate::kinds`]) asks for it: pods, claims, Services, Ingresses,
//! NetworkPolicies, ConfigMaps and Secrets the syncer owns there (label
//! `tenancy.nestkube.io/managed-by=nestkube`, all namespaces; on the host
//! with `--host-namespaces`, one watch per listed namespace instead, so a
//! service account with namespaced rights only there suffices), whichever
//! virtual cluster it belongs to: pods whole, the other kinds metadata
//! only. Each event only enqueues the reconcile of the virtual object
//! named by the copy's annotations (status up, or a copy deleted by
//! someone else put back), and only if that virtual cluster really syncs
//! into this parent with this owner uid and host namespace (a copy claiming
//! another owner is left to the sweep). What the watches saw is kept in
//! the parent's [`CopyIndex`], from which pod reconciles read their copies
//! instead of asking the parent (once the pod watch has listed).
//!
//! The same task watches the parent's RuntimeClasses and StorageClasses,
//! mirrored into every cluster syncing there ([`crate::mirror`]), and the parent's Events about
//! copies of the kinds whose row relays them (pods, claims and Services; one field selector `involvedObject.kind=…`
//! each; Events carry no labels): an Event is kept only if it is about a
//! copy in the watches' cache of copies ([`CopyIndex`], same kind and uid)
//! whose cluster syncs here, and is handed to [`crate::events`] to be told
//! in the virtual cluster. The Event watches start once the copy watches
//! have listed, so no Event is judged against an empty cache; an Event read
//! before the copy watch shows its copy waits for it a little ([`Parked`]).
//!
//! Copies of Services, ConfigMaps and Secrets are watched too (metadata
//! only, live changes only: a start or a relist is covered by the resync),
//! so a copy someone else deletes or edits is reconciled again at once.
//!
//! An unreachable parent: the watches retry with a short capped backoff
//! ([`WatchBackoff`]), and after a watch fails, or a reconcile could not
//! reach the parent ([`Health::suspect`]: a silent partition breaks no
//! watch), the parent is probed ([`PROBE_EVERY`]). While a probe finds it
//! unreachable its reconciles wait without trying ([`Health::is_down`])
//! rather than on it; the first probe that gets an answer resyncs every
//! cluster syncing there, sweeps, and retries every failed reconcile, so
//! what changed while it was away (both sides) is reconciled at once
//! rather than when each retry's backoff ends. At most [`PER_PARENT`] reconciles wait on one parent at a
//! time, so a parent that hangs cannot hold up the clusters syncing into
//! others.
//!
//! Split by concern: [`watch`] (the task and its streams), [`index`] (the
//! copies it saw, [`CopyIndex`]), [`relay`] (the parent's Events judged and
//! handed up) and [`health`] (reachability, probes, the per-parent limit).
//! This module holds what they share: the parent's key and the owner a copy
//! names.
//!
//! This module never writes: reconciles do.

mod health;
mod index;
mod relay;
mod watch;

use nestkube_apiserver::tenancy::{Parent, Placement};
use serde_json::Value;

use crate::{Syncer, names};

pub(crate) use health::Health;
pub(crate) use index::CopyIndex;
pub(crate) use watch::{StartWatch, watch, watch_metadata, watch_whole};

/// A cluster that virtual clusters sync into.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ParentKey {
    /// A cluster served by this process (`root`, or a parent virtual cluster).
    Cluster(String),
    /// The real host cluster.
    Host,
}

impl ParentKey {
    /// The parent a placement syncs into.
    pub fn of(p: &Placement) -> Self {
        match &p.parent {
            Parent::Cluster(path) => ParentKey::Cluster(path.clone()),
            Parent::Host => ParentKey::Host,
        }
    }
}

/// The virtual object a parent copy stands for, read from its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    /// Virtual cluster path.
    pub cluster: String,
    /// Virtual namespace.
    pub namespace: String,
    /// Virtual name.
    pub name: String,
    /// The VirtualCluster's uid (label).
    pub vc_uid: String,
}

/// Reads the owner annotations and labels of a parent copy (JSON).
pub(crate) fn owner_of(obj: &Value) -> Option<Owner> {
    let meta = &obj["metadata"];
    if meta["labels"][names::MANAGED_BY_LABEL] != names::MANAGED_BY_VALUE {
        return None;
    }
    let a = &meta["annotations"];
    let get = |k: &str| a[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    Some(Owner {
        cluster: get(names::CLUSTER_ANNOTATION)?,
        namespace: get(names::NAMESPACE_ANNOTATION)?,
        name: get(names::NAME_ANNOTATION)?,
        vc_uid: meta["labels"][names::VC_UID_LABEL]
            .as_str()
            .unwrap_or("")
            .to_string(),
    })
}

impl Syncer {
    /// Whether a copy in `parent`'s namespace `namespace` claiming `owner`
    /// belongs to a virtual cluster that syncs there now.
    pub(crate) fn owns(&self, parent: &ParentKey, namespace: &str, owner: &Owner) -> bool {
        self.placement(&owner.cluster).is_some_and(|p| {
            ParentKey::of(&p) == *parent
                && p.host_namespace == namespace
                && names::label_value(&p.uid) == owner.vc_uid
        })
    }
}
