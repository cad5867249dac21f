//! ServiceAccounts and root CA publishing (upstream's serviceaccounts-controller
//! and root-ca-cert-publisher): every namespace of every cluster has a
//! `default` ServiceAccount and a [`ROOT_CA_CONFIGMAP`] ConfigMap whose
//! [`ROOT_CA_KEY`] is the CA that cluster's clients verify the server with.
//!
//! Cluster-aware: one watch over all clusters ([`super::watch`]), reacting to
//! namespaces, the `default` ServiceAccount and the root CA ConfigMap only;
//! work is a short task per namespace being reconciled ([`super::queue`]).
//! Existing namespaces are reconciled at start, so a restart repairs
//! whatever was deleted meanwhile.
//!
//! This controller must never touch other ServiceAccounts or ConfigMaps,
//! and never write into a namespace that is terminating.

use std::sync::Arc;

use serde_json::{Value, json};

use super::runtime::{self, ControllerContext};
use super::runtime::{Change, ObjectKey};
use crate::error::ApiError;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::meta;
use crate::registry::store::{Store, Target, WriteOptions};

/// The ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap publishing the server CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Its key holding the PEM bundle.
pub const ROOT_CA_KEY: &str = "ca.crt";
/// Upstream's description annotation on the root CA ConfigMap.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// A namespace of a cluster.
type NsKey = (String, String);

struct Controller {
    store: Store,
    namespaces: Arc<ResourceInfo>,
    serviceaccounts: Arc<ResourceInfo>,
    configmaps: Arc<ResourceInfo>,
    ca_pem: String,
}

/// Starts the controller for every cluster of `ctx`; `ca_pem` is the CA
/// published in every namespace. `None` when the catalog lacks the resources.
pub fn spawn(ctx: &ControllerContext, ca_pem: String) -> Option<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller::new(ctx.store.clone(), &ctx.catalog, ca_pem)?);
    Some(runtime::spawn_controller(
        &ctx.store,
        "serviceaccounts",
        controller,
        interesting,
    ))
}

#[async_trait::async_trait]
impl runtime::Reconciler<NsKey> for Controller {
    async fn reconcile(&self, (cluster, ns): NsKey) -> runtime::Outcome<ApiError> {
        self.sync(&cluster, &ns).await.map(|()| None)
    }
}

/// The namespace a change calls for reconciling, if any.
fn interesting(change: &Change<'_>) -> Option<NsKey> {
    let key = ObjectKey::parse(change.key()?)?;
    let deleted = matches!(change, Change::Delete { .. });
    match key.segment {
        "core/namespaces" if !deleted => Some((key.cluster.into(), key.name.into())),
        "core/serviceaccounts" if deleted && key.name == DEFAULT_SERVICE_ACCOUNT => {
            Some((key.cluster.into(), key.namespace.into()))
        }
        "core/configmaps" if key.name == ROOT_CA_CONFIGMAP => {
            Some((key.cluster.into(), key.namespace.into()))
        }
        _ => None,
    }
}

impl Controller {
    fn new(store: Store, catalog: &Catalog, ca_pem: String) -> Option<Self> {
        Some(Self {
            store,
            namespaces: catalog.get("", "v1", "namespaces")?.clone(),
            serviceaccounts: catalog.get("", "v1", "serviceaccounts")?.clone(),
            configmaps: catalog.get("", "v1", "configmaps")?.clone(),
            ca_pem,
        })
    }

    async fn sync(&self, cluster: &str, ns: &str) -> Result<(), ApiError> {
        let t = Target {
            cluster,
            resource: &self.namespaces,
            namespace: None,
        };
        let namespace = match self.store.get(&t, ns).await {
            Ok(n) => n,
            Err(ApiError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta::is_deleting(&namespace) || namespace["status"]["phase"] == "Terminating" {
            return Ok(());
        }
        let sa = Target {
            cluster,
            resource: &self.serviceaccounts,
            namespace: Some(ns),
        };
        if let Err(ApiError::NotFound(_)) = self.store.get(&sa, DEFAULT_SERVICE_ACCOUNT).await {
            let body = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}});
            tolerate(self.store.create(&sa, body, WriteOptions::default()).await)?;
        }
        let cm = Target {
            cluster,
            resource: &self.configmaps,
            namespace: Some(ns),
        };
        match self.store.get(&cm, ROOT_CA_CONFIGMAP).await {
            Err(ApiError::NotFound(_)) => {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP,
                        "annotations": {"kubernetes.io/description": DESCRIPTION}},
                    "data": {ROOT_CA_KEY: self.ca_pem}});
                tolerate(self.store.create(&cm, body, WriteOptions::default()).await)?;
            }
            Ok(existing) if !is_current(&existing, &self.ca_pem) => {
                let result = self
                    .store
                    .update_with(
                        &cm,
                        ROOT_CA_CONFIGMAP,
                        None,
                        WriteOptions::default(),
                        |old| {
                            let mut obj = old.clone();
                            obj["data"] = json!({ROOT_CA_KEY: self.ca_pem});
                            if let Some(m) = obj.as_object_mut() {
                                m.remove("binaryData");
                            }
                            Ok((obj, Vec::new()))
                        },
                    )
                    .await;
                tolerate(result)?;
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// Whether the ConfigMap holds exactly the CA bundle.
fn is_current(cm: &Value, pem: &str) -> bool {
    cm["data"].as_object().is_some_and(|d| d.len() == 1)
        && cm["data"][ROOT_CA_KEY] == pem
        && cm.get("binaryData").is_none_or(Value::is_null)
}

/// Races with clients and with namespace deletion are not failures.
fn tolerate<T>(r: Result<T, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_)
        | Err(ApiError::AlreadyExists(_))
        | Err(ApiError::NotFound(_))
        | Err(ApiError::Forbidden(_))
        | Err(ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nestkube_storage::KeyValue;

    fn kv(key: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: bytes::Bytes::from_static(b"{}"),
            create_revision: 1,
            mod_revision: 1,
        }
    }

    #[test]
    fn reacts_to_namespaces_and_its_own_objects() {
        let ns = kv("/t1/core/namespaces/dev");
        assert_eq!(
            interesting(&Change::Initial(&ns)),
            Some(("t1".into(), "dev".into()))
        );
        assert_eq!(interesting(&Change::Delete { prev: &ns }), None);
        let sa = kv("/root/core/serviceaccounts/dev/default");
        assert_eq!(
            interesting(&Change::Delete { prev: &sa }),
            Some(("root".into(), "dev".into()))
        );
        assert_eq!(
            interesting(&Change::Put {
                kv: &sa,
                prev: None
            }),
            None
        );
        let other = kv("/root/core/configmaps/dev/other");
        assert_eq!(
            interesting(&Change::Put {
                kv: &other,
                prev: None
            }),
            None
        );
        let ca = kv("/root/core/configmaps/dev/kube-root-ca.crt");
        assert!(interesting(&Change::Delete { prev: &ca }).is_some());
    }

    #[test]
    fn current_bundle() {
        assert!(is_current(&json!({"data": {"ca.crt": "X"}}), "X"));
        assert!(!is_current(&json!({"data": {"ca.crt": "Y"}}), "X"));
        assert!(!is_current(
            &json!({"data": {"ca.crt": "X", "extra": "1"}}),
            "X"
        ));
    }
}
