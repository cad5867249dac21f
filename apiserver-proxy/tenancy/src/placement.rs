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

/// Annotation on a namespace of a parent cluster listing the namespaces
/// (comma-separated) whose VirtualClusters may name it in
/// `spec.hostNamespace`, e.g. `tenancy.nestkube.io/allowed-for: team-a`.
/// Only whoever may edit that namespace (the parent's platform admins, not
/// its tenants) can set it.
pub const ALLOWED_FOR_ANNOTATION: &str = "tenancy.nestkube.io/allowed-for";

/// Why a VirtualCluster may not place its pods in the host namespace it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostNamespaceRefused {
    /// The named namespace does not exist in the parent.
    #[error(
        "spec.hostNamespace: Forbidden: {host:?} is not the VirtualCluster's own namespace {own:?} and does not exist in the parent cluster (a namespace annotated {annotation}={own} may be used)",
        annotation = ALLOWED_FOR_ANNOTATION
    )]
    Missing {
        /// The VirtualCluster's namespace.
        own: String,
        /// The namespace named.
        host: String,
    },
    /// The named namespace does not list the VirtualCluster's namespace.
    #[error(
        "spec.hostNamespace: Forbidden: {host:?} is not the VirtualCluster's own namespace {own:?}, and its annotation {annotation} does not list {own:?}",
        annotation = ALLOWED_FOR_ANNOTATION
    )]
    NotAllowed {
        /// The VirtualCluster's namespace.
        own: String,
        /// The namespace named.
        host: String,
    },
    /// The named namespace could not be read (e.g. no right to get namespaces).
    #[error(
        "spec.hostNamespace: Forbidden: {host:?} is not the VirtualCluster's own namespace {own:?}, and reading it to check its annotation {annotation} failed: {reason}",
        annotation = ALLOWED_FOR_ANNOTATION
    )]
    Unreadable {
        /// The VirtualCluster's namespace.
        own: String,
        /// The namespace named.
        host: String,
        /// What failed.
        reason: String,
    },
}

/// Whether a VirtualCluster in namespace `own` may place its pods in the
/// parent's namespace `host`: its own namespace always; another one only if
/// that namespace (`target`, as the parent serves it; `None` when absent)
/// lists `own` in its [`ALLOWED_FOR_ANNOTATION`].
pub fn check_host_namespace(
    own: &str,
    host: &str,
    target: Option<&serde_json::Value>,
) -> Result<(), HostNamespaceRefused> {
    if own == host {
        return Ok(());
    }
    let (own, host) = (own.to_string(), host.to_string());
    let Some(target) = target else {
        return Err(HostNamespaceRefused::Missing { own, host });
    };
    let listed = target["metadata"]["annotations"][ALLOWED_FOR_ANNOTATION]
        .as_str()
        .is_some_and(|v| v.split(',').any(|n| n.trim() == own));
    if listed {
        Ok(())
    } else {
        Err(HostNamespaceRefused::NotAllowed { own, host })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(annotation: Option<&str>) -> serde_json::Value {
        match annotation {
            Some(a) => {
                json!({"metadata": {"name": "pool", "annotations": {ALLOWED_FOR_ANNOTATION: a}}})
            }
            None => json!({"metadata": {"name": "pool"}}),
        }
    }

    #[test]
    fn only_the_own_namespace_or_one_that_allows_it() {
        assert_eq!(check_host_namespace("team-a", "team-a", None), Ok(()));
        assert_eq!(
            check_host_namespace("team-a", "pool", Some(&ns(Some("team-b, team-a")))),
            Ok(())
        );
        for target in [
            ns(None),
            ns(Some("team-b")),
            ns(Some("team-a-x,*")),
            ns(Some("")),
        ] {
            let e = check_host_namespace("team-a", "pool", Some(&target)).unwrap_err();
            assert!(
                matches!(e, HostNamespaceRefused::NotAllowed { .. }),
                "{target}"
            );
        }
        let e = check_host_namespace("team-a", "kube-system", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.hostNamespace: Forbidden: \"kube-system\" is not the VirtualCluster's own namespace \"team-a\" and does not exist in the parent cluster (a namespace annotated tenancy.nestkube.io/allowed-for=team-a may be used)"
        );
    }
}
