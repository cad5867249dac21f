//! Where a virtual cluster's workloads run and under which policy.
//!
//! A [`Placement`] is the contract between whoever provisions a virtual
//! cluster (the VirtualCluster controller for a VirtualCluster stored in a
//! served cluster, or the host provisioner for one stored on a real host
//! cluster) and whoever acts on it: admission reads the isolation policy,
//! the syncer reads the parent and host namespace. It is kept on the
//! [`super::Cluster`] and persisted in its record, so it is known from the
//! first request after a restart, before any controller has run.

use nestkube_tenant_crds::VirtualClusterSpec;
use serde::{Deserialize, Serialize};

/// Label on every object synced into a parent for a virtual cluster, valued
/// with its VirtualCluster's uid ([`Placement::uid`]); the provisioner
/// deletes what carries it when the VirtualCluster goes.
pub const VC_UID_LABEL: &str = "tenancy.nestkube.io/vc-uid";

/// The cluster a virtual cluster's pods are synced into.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Parent {
    /// A cluster served by this process: `root` in standalone mode, or the
    /// parent virtual cluster when nesting (`team-a` for `team-a:dev`).
    Cluster(String),
    /// The real host cluster given with `--host-kubeconfig`.
    Host,
}

/// The VirtualCluster behind a virtual cluster, and what it asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Where the VirtualCluster object lives and where pods are synced.
    pub parent: Parent,
    /// Namespace of the VirtualCluster object in the parent.
    pub namespace: String,
    /// Name of the VirtualCluster object.
    pub name: String,
    /// uid of the VirtualCluster object (owner of everything synced for it).
    pub uid: String,
    /// Namespace of the parent where synced objects land
    /// (`spec.hostNamespace`, defaulting to [`Placement::namespace`]).
    pub host_namespace: String,
    /// The VirtualCluster's spec as last reconciled (isolation, limits).
    pub spec: VirtualClusterSpec,
}

impl Placement {
    /// The placement of VirtualCluster `namespace/name` (uid `uid`) in `parent`.
    pub fn new(
        parent: Parent,
        namespace: &str,
        name: &str,
        uid: &str,
        spec: VirtualClusterSpec,
    ) -> Self {
        let host_namespace = spec
            .host_namespace
            .clone()
            .unwrap_or_else(|| namespace.to_string());
        Self {
            parent,
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            host_namespace,
            spec,
        }
    }
}
