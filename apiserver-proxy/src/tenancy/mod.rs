//! The set of virtual clusters this process serves.
//!
//! A cluster is a name (its path, `root` or `team-a:dev`) and a key prefix in
//! storage; it owns no task and no per-cluster copy of shared state. For now
//! only the root cluster exists; provisioning virtual clusters comes with the
//! VirtualCluster API.

use std::collections::BTreeSet;
use std::sync::RwLock;

use serde_json::json;

use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::store::{Store, Target, WriteOptions};
use crate::server::request::ROOT_CLUSTER;

/// Namespaces every cluster starts with.
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The clusters served.
#[derive(Debug)]
pub struct Clusters {
    names: RwLock<BTreeSet<String>>,
}

impl Default for Clusters {
    fn default() -> Self {
        Self::new()
    }
}

impl Clusters {
    /// Just the root cluster.
    pub fn new() -> Self {
        Self {
            names: RwLock::new(BTreeSet::from([ROOT_CLUSTER.to_string()])),
        }
    }

    /// Whether `name` is served.
    pub fn contains(&self, name: &str) -> bool {
        self.names.read().map(|n| n.contains(name)).unwrap_or(false)
    }

    /// Creates what a new (or restarted) cluster needs and is missing: the
    /// default namespaces.
    pub async fn bootstrap(
        store: &Store,
        catalog: &Catalog,
        cluster: &str,
    ) -> Result<(), ApiError> {
        let Some(namespaces) = catalog.get("", "v1", "namespaces") else {
            return Err(ApiError::Internal("namespaces are not served".into()));
        };
        let target = Target {
            cluster,
            resource: namespaces,
            namespace: None,
        };
        for ns in DEFAULT_NAMESPACES {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match store.create(&target, body, WriteOptions::default()).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
