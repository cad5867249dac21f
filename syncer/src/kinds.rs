//! The table of synced kinds: one row per kind of virtual object the syncer
//! copies into the parent ([`SyncedKind`]: its resource, how the parent's
//! watch follows its copies, the `spec.sync` switch that turns it on,
//! whether the parent's Events about its copies are relayed up, and the
//! translation module behind [`Translate`]). Everything that goes through
//! every kind (the virtual watch, the parent's watches, the reconcile, the
//! resync, the cleanup and the sweep) reads this table and dispatches
//! through [`Translate`], so a new kind is one row here and one module in
//! [`crate::down`] (declared there) whose unit struct implements
//! [`Translate`]; the compiler checks that every kind has a row, and a row
//! names its watch, resource and translation by type, so none can be left
//! out. Where a kind departs from the rule (a pod's deletion frees the
//! ConfigMaps it referenced, a token Secret is its pod's, a claim copy an
//! older syncer named keeps the tenant's data) is a method of its
//! translation, not a `match` elsewhere.
//!
//! This module holds no state and makes no request: it only says what each
//! kind is and where its behaviour lives.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ApiResource;
use nestkube_apiserver::controllers::watch::{Change, ObjectKey};
use nestkube_apiserver::tenancy::Placement;
use nestkube_tenant_crds::SyncSpec;
use serde_json::Value;

use crate::parents::{Owner, ParentKey, StartWatch, watch_metadata, watch_whole};
use crate::{Ctx, SyncError, Syncer, down, names};

/// Declares [`Kind`] and its table from one row per kind, so a kind cannot
/// exist without its row (nor be left out of [`Kind::ALL`]).
macro_rules! synced_kinds {
    ($($(#[$doc:meta])* $kind:ident => $row:expr,)*) => {
        /// Kinds of virtual objects the syncer copies.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($(#[$doc])* $kind,)*
        }

        impl Kind {
            /// Every synced kind, in the order of the table (the order the
            /// resync, the cleanup and the sweep go through them).
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)*];

            /// The row of this kind.
            pub(crate) fn row(self) -> &'static SyncedKind {
                match self {
                    $(Kind::$kind => {
                        static ROW: SyncedKind = $row;
                        &ROW
                    })*
                }
            }
        }
    };
}

synced_kinds! {
    /// `v1/Pod`.
    Pod => SyncedKind {
        name: "Pod",
        segment: "core/pods",
        resource: || ApiResource::erase::<core::Pod>(&()),
        watch: CopyWatch::Whole(watch_whole::<core::Pod>),
        switch: None,
        listed: true,
        events: true,
        on_namespaces: false,
        companions: &[],
        translate: &down::pod::Pods,
    },
    /// `v1/Service`.
    Service => SyncedKind {
        name: "Service",
        segment: "core/services",
        resource: || ApiResource::erase::<core::Service>(&()),
        watch: CopyWatch::Metadata(watch_metadata::<core::Service>),
        switch: None,
        listed: true,
        events: true,
        on_namespaces: false,
        // A Service that gains or loses its selector changes whose its
        // Endpoints are (see `down::endpoints`).
        companions: &[Kind::Endpoints],
        translate: &down::service::Services,
    },
    /// `v1/ConfigMap` (only those referenced by pods).
    ConfigMap => SyncedKind {
        name: "ConfigMap",
        segment: "core/configmaps",
        resource: || ApiResource::erase::<core::ConfigMap>(&()),
        watch: CopyWatch::LiveOnly(watch_metadata::<core::ConfigMap>),
        switch: None,
        listed: false,
        events: false,
        on_namespaces: false,
        companions: &[],
        translate: &down::config::Configs,
    },
    /// `v1/Secret` (only those referenced by pods, and the TLS Secrets of
    /// copied Ingresses).
    Secret => SyncedKind {
        name: "Secret",
        segment: "core/secrets",
        resource: || ApiResource::erase::<core::Secret>(&()),
        watch: CopyWatch::LiveOnly(watch_metadata::<core::Secret>),
        switch: None,
        listed: false,
        events: false,
        on_namespaces: false,
        companions: &[],
        translate: &down::config::Configs,
    },
    /// `v1/PersistentVolumeClaim`.
    PersistentVolumeClaim => SyncedKind {
        name: "PersistentVolumeClaim",
        segment: "core/persistentvolumeclaims",
        resource: || ApiResource::erase::<core::PersistentVolumeClaim>(&()),
        watch: CopyWatch::Metadata(watch_metadata::<core::PersistentVolumeClaim>),
        switch: None,
        listed: true,
        events: true,
        on_namespaces: false,
        companions: &[],
        translate: &down::pvc::Claims,
    },
    /// `v1/Endpoints` (only those of selector-less Services).
    Endpoints => SyncedKind {
        name: "Endpoints",
        segment: "core/endpoints",
        resource: || ApiResource::erase::<core::Endpoints>(&()),
        watch: CopyWatch::None,
        switch: None,
        listed: false,
        events: false,
        on_namespaces: false,
        companions: &[],
        translate: &down::endpoints::EndpointsOfServices,
    },
    /// `networking.k8s.io/v1/Ingress` (when the VirtualCluster enables it).
    Ingress => SyncedKind {
        name: "Ingress",
        segment: "networking.k8s.io/ingresses",
        resource: || ApiResource::erase::<networking::Ingress>(&()),
        watch: CopyWatch::Metadata(watch_metadata::<networking::Ingress>),
        switch: Some(|s| s.ingresses),
        listed: true,
        events: false,
        on_namespaces: false,
        companions: &[],
        translate: &down::ingress::Ingresses,
    },
    /// `networking.k8s.io/v1/NetworkPolicy` (when the VirtualCluster
    /// enables it; the cluster's isolation policy always).
    NetworkPolicy => SyncedKind {
        name: "NetworkPolicy",
        segment: "networking.k8s.io/networkpolicies",
        resource: || ApiResource::erase::<networking::NetworkPolicy>(&()),
        watch: CopyWatch::Metadata(watch_metadata::<networking::NetworkPolicy>),
        switch: Some(|s| s.network_policies),
        listed: true,
        events: false,
        // Namespace labels decide what namespace selectors match.
        on_namespaces: true,
        companions: &[],
        translate: &down::network_policy::NetworkPolicies,
    },
}

/// One row of the table: what the syncer needs to know of a kind it copies.
pub(crate) struct SyncedKind {
    /// The object kind (`Pod`, `Service`, ...), as Events name it.
    pub name: &'static str,
    /// The storage segment of the virtual resource (`core/pods`), by which
    /// the virtual watch recognises its objects.
    pub segment: &'static str,
    /// The API resource, the same in the virtual cluster and in the parent.
    pub resource: fn() -> ApiResource,
    /// How the parent's watches follow the copies.
    pub watch: CopyWatch,
    /// The `spec.sync` switch that turns the kind on (`None`: always on).
    /// An optional kind a parent refuses to list (403: the host's service
    /// account was not granted it) is skipped rather than failing the rest.
    pub switch: Option<fn(&SyncSpec) -> bool>,
    /// Whether the resync lists its virtual objects (not: they are synced
    /// through other objects, e.g. the ConfigMaps pods reference).
    pub listed: bool,
    /// Whether the parent's Events about its copies are told about the
    /// virtual objects ([`crate::events`]).
    pub events: bool,
    /// Whether a namespace created, deleted or relabelled reconciles every
    /// object of the kind in its cluster.
    pub on_namespaces: bool,
    /// Kinds whose object of the same namespace and name is reconciled
    /// whenever one of this kind is.
    pub companions: &'static [Kind],
    /// The translation module.
    pub translate: &'static dyn Translate,
}

/// How a parent's watches follow the copies of a kind, so their changes come
/// up (status, or a copy deleted or edited below put back).
pub(crate) enum CopyWatch {
    /// Not watched.
    None,
    /// Watched whole: the copies are kept in the parent's copy index, from
    /// which the kind's reconciles read them instead of asking the parent.
    Whole(StartWatch),
    /// Metadata only; every change and every (re)listed copy reconciles.
    Metadata(StartWatch),
    /// Metadata only, live changes only: there can be many, and their
    /// reconciles read the objects that reference them; a start or a relist
    /// resyncs every cluster anyway.
    LiveOnly(StartWatch),
}

impl CopyWatch {
    /// What starts the watch (`None`: not watched).
    pub(crate) fn start(&self) -> Option<StartWatch> {
        match self {
            CopyWatch::None => None,
            CopyWatch::Whole(f) | CopyWatch::Metadata(f) | CopyWatch::LiveOnly(f) => Some(*f),
        }
    }
}

impl Kind {
    /// The object kind (`Pod`, `Service`, ...).
    pub fn kind(self) -> &'static str {
        self.row().name
    }

    /// The kind whose copies Events of the parent can be about, by an
    /// Event's `involvedObject.kind`.
    pub(crate) fn of_copy(kind: &str) -> Option<Self> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.row().events && k.row().name == kind)
    }

    /// The kind whose virtual objects are stored under `segment`.
    pub(crate) fn from_segment(segment: &str) -> Option<Self> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.row().segment == segment)
    }

    /// The kinds whose Events the parent's watches relay.
    pub(crate) fn with_events() -> impl Iterator<Item = Kind> {
        Kind::ALL.iter().copied().filter(|k| k.row().events)
    }

    /// Whether the kind is on only when `spec.sync` enables it.
    pub(crate) fn is_optional(self) -> bool {
        self.row().switch.is_some()
    }
}

/// A parent copy as the resync judges it: the virtual object whose
/// reconcile owns it, and its name now and as an older syncer named it.
pub(crate) struct CopyOf {
    /// The kind of the virtual object whose reconcile writes it.
    pub kind: Kind,
    /// Its name under the current naming.
    pub current: String,
    /// Its name under an older syncer's naming
    /// ([`names::legacy_host_name`]).
    pub legacy: String,
}

impl CopyOf {
    /// The copy of `owner`, of `kind`, reconciled by its owner and named
    /// after it ([`names::host_name`]).
    pub(crate) fn of(kind: Kind, owner: &Owner) -> Self {
        CopyOf {
            kind,
            current: names::host_name(&owner.cluster, &owner.namespace, &owner.name),
            legacy: names::legacy_host_name(&owner.cluster, &owner.namespace, &owner.name),
        }
    }
}

/// What a kind's translation module does; the syncer dispatches every
/// kind's reconcile through it. Only [`Translate::sync`] is required: the
/// other methods say where a kind departs from the rule.
#[async_trait]
pub(crate) trait Translate: Send + Sync {
    /// Reconciles virtual object `ns/name` of `kind` in `ctx`'s cluster
    /// both ways: its copy created, updated or deleted in the parent (an
    /// allow-list translation), what comes back up written to it. `Ok(Some)`:
    /// run again after that long.
    async fn sync(
        &self,
        s: &Syncer,
        ctx: &Ctx,
        kind: Kind,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, SyncError>;

    /// Virtual object `key` of a cluster that syncs `kind` changed
    /// (`change`): enqueues whatever else that concerns and returns whether
    /// the object's own reconcile (and its companions') runs.
    fn virtual_changed(
        &self,
        _s: &Syncer,
        _kind: Kind,
        _key: &ObjectKey<'_>,
        _change: &Change<'_>,
    ) -> bool {
        true
    }

    /// An object of `kind` changed in the storage of any served cluster,
    /// whether or not that cluster syncs: it may be a copy in a parent
    /// served by this process.
    fn stored(&self, _s: &Syncer, _kind: Kind, _change: &Change<'_>) {}

    /// Copy `meta` of `kind` in `parent`, owned by `owner` (a cluster that
    /// syncs there), changed or was deleted: enqueues the reconcile that
    /// takes it up or puts it back.
    fn copy_changed(
        &self,
        s: &Syncer,
        _parent: &ParentKey,
        kind: Kind,
        _meta: &ObjectMeta,
        _deleted: bool,
        owner: &Owner,
    ) {
        s.enqueue_object(kind, &owner.cluster, &owner.namespace, &owner.name);
    }

    /// Which reconcile owns parent copy `copy` of `kind` standing for
    /// `owner`, and the names it may bear.
    fn copy_of(&self, kind: Kind, _copy: &Value, owner: &Owner) -> CopyOf {
        CopyOf::of(kind, owner)
    }

    /// Whether a copy an older syncer named is kept rather than replaced
    /// (its data is the tenant's).
    fn keeps_legacy_copies(&self) -> bool {
        false
    }

    /// Whether the parent itself labels objects of this kind as copies,
    /// without owner annotations (such an object is never stale).
    fn labelled_by_parent(&self) -> bool {
        false
    }
}

/// What a placement's VirtualCluster asks to sync.
pub(crate) trait Syncs {
    /// Whether objects of `kind` are copied (the optional kinds only when
    /// `spec.sync` enables them).
    fn syncs(&self, kind: Kind) -> bool;
}

impl Syncs for Placement {
    fn syncs(&self, kind: Kind) -> bool {
        kind.row().switch.is_none_or(|on| on(&self.spec.sync))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_told_apart() {
        for (i, a) in Kind::ALL.iter().enumerate() {
            assert_eq!(Kind::from_segment(a.row().segment), Some(*a));
            assert_eq!((a.row().resource)().kind, a.kind());
            for b in &Kind::ALL[i + 1..] {
                assert_ne!(a.kind(), b.kind());
            }
        }
        assert_eq!(Kind::of_copy("Pod"), Some(Kind::Pod));
        assert_eq!(Kind::of_copy("Ingress"), None);
    }
}
