//! The VirtualCluster controller: a `tenancy.nestkube.io/v1alpha1`
//! VirtualCluster in any cluster becomes a served child cluster
//! (`/clusters/<path>`), with an admin kubeconfig in a Secret beside it, and
//! deleting it tears the child cluster down.
//!
//! Cluster-aware: ONE storage watch over every cluster, filtered to
//! VirtualCluster keys; work happens only when a VirtualCluster changes (a
//! short-lived task per VirtualCluster being reconciled), so an idle virtual
//! cluster costs no task, no timer and no watch.
//!
//! The child path is the VirtualCluster's name in the root cluster and
//! `<parent>:<name>` elsewhere. A path belongs to the VirtualCluster that
//! claimed it first; the claim is persisted as the [`FINALIZER`] on the
//! owner, so a restart recovers it. A later VirtualCluster wanting the same
//! path (same name, another namespace of the same parent) gets `Ready=False`
//! reason `NameTaken` and never touches the owner's cluster.
//!
//! Each reconcile also applies the VirtualCluster's `spec.limits` to its
//! child ([`crate::tenancy::limits`]): a changed spec takes effect at once,
//! and the reconcile of every VirtualCluster at start restores them.
//!
//! This controller must never write outside the parent cluster of a
//! VirtualCluster except through [`Clusters`] (which creates and removes the
//! child), and never touches a cluster it does not own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use nestkube_storage::WatchEvent;
use nestkube_tenant_crds::{
    CONDITION_READY, KUBECONFIG_SECRET_KEY, SecretKeyRef, VirtualClusterSpec,
};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::kubeconfig;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::meta;
use crate::registry::store::{DeleteOptions, ListOptions, Store, Target, WriteOptions};
use crate::server::ApiServer;
use crate::server::request::ROOT_CLUSTER;
use crate::tenancy::limits::Limits;
use crate::tenancy::{Cluster, Clusters, Parent, Placement};

/// The finalizer that holds a VirtualCluster until its child cluster is torn
/// down; its presence also records that the VirtualCluster owns its path.
pub const FINALIZER: &str = "tenancy.nestkube.io/teardown";
/// Label on the kubeconfig Secret naming its VirtualCluster.
pub const SECRET_LABEL: &str = "tenancy.nestkube.io/virtual-cluster";
/// Storage segment of VirtualCluster keys (`<group>/<resource>`).
const SEGMENT: &str = "tenancy.nestkube.io/virtualclusters/";
/// Longest wait between retries of a failing reconcile.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The child cluster path of VirtualCluster `name` living in cluster `parent`.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == ROOT_CLUSTER {
        name.to_string()
    } else {
        format!("{parent}:{name}")
    }
}

/// Identifies one VirtualCluster: its cluster, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct VcKey {
    cluster: String,
    namespace: String,
    name: String,
}

impl VcKey {
    /// Parses a storage key `/<cluster>/tenancy.nestkube.io/virtualclusters/<ns>/<name>`.
    fn parse(key: &str) -> Option<Self> {
        let (cluster, rest) = key.strip_prefix('/')?.split_once('/')?;
        let (namespace, name) = rest.strip_prefix(SEGMENT)?.split_once('/')?;
        (!name.contains('/')).then(|| Self {
            cluster: cluster.into(),
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    fn child_path(&self) -> String {
        child_path(&self.cluster, &self.name)
    }
}

/// Errors of one reconcile (retried with backoff).
#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    /// A store or cluster operation failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Issuing the admin certificate failed.
    #[error("issuing the admin certificate: {0}")]
    Pki(#[from] crate::auth::pki::PkiError),
    /// The catalog lacks a resource this controller needs.
    #[error("{0} are not served")]
    NotServed(&'static str),
}

/// Who may use a path.
enum Claim {
    /// This VirtualCluster owns it.
    Ours,
    /// Someone else does (a description of whom).
    Taken(String),
}

#[derive(Default)]
struct State {
    /// Child path -> the VirtualCluster that owns it.
    claims: HashMap<String, VcKey>,
    /// VirtualClusters being reconciled -> whether they changed meanwhile.
    in_flight: HashMap<VcKey, bool>,
}

/// The controller; one per process.
pub struct Controller {
    store: Store,
    catalog: Arc<Catalog>,
    clusters: Arc<Clusters>,
    /// `host:port` of the server, for endpoints and kubeconfigs.
    server_address: String,
    /// PEM of the CA that signed the server's serving certificate.
    server_ca_pem: String,
    state: Mutex<State>,
}

/// Starts the controller for every cluster `api` serves; `server_ca_pem` is
/// the CA tenants' kubeconfigs trust for the server.
pub fn spawn(api: &ApiServer, server_ca_pem: String) -> tokio::task::JoinHandle<()> {
    let controller = Arc::new(Controller {
        store: api.store.clone(),
        catalog: api.catalog.clone(),
        clusters: api.clusters.clone(),
        server_address: api.server_address.clone(),
        server_ca_pem,
        state: Mutex::new(State::default()),
    });
    tokio::spawn(controller.run())
}

impl Controller {
    async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.watch_once().await {
                tracing::warn!(error = %e, "virtualcluster watch ended; restarting");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn resource(&self) -> Result<&ResourceInfo, ReconcileError> {
        self.catalog
            .get(
                nestkube_tenant_crds::GROUP,
                nestkube_tenant_crds::VERSION,
                "virtualclusters",
            )
            .map(|r| r.as_ref())
            .ok_or(ReconcileError::NotServed("virtualclusters"))
    }

    /// Lists every existing VirtualCluster (claims first, then reconciles all
    /// of them), then follows the watch.
    async fn watch_once(self: &Arc<Self>) -> Result<(), ReconcileError> {
        let storage = self.store.storage();
        let from = storage.current_revision().await.map_err(ApiError::from)?;
        let mut stream = storage.watch("/", from).await.map_err(ApiError::from)?;
        let existing = self.list_all().await?;
        if let Ok(mut state) = self.state.lock() {
            for (key, obj) in &existing {
                if meta::finalizers(obj).iter().any(|f| f == FINALIZER) {
                    state
                        .claims
                        .entry(key.child_path())
                        .or_insert_with(|| key.clone());
                }
            }
        }
        for (key, _) in existing {
            self.enqueue(key);
        }
        while let Some(event) = stream.next().await {
            let event = event.map_err(ApiError::from)?;
            let key = match &event {
                WatchEvent::Put { kv, .. } => VcKey::parse(&kv.key),
                WatchEvent::Delete { prev, .. } => VcKey::parse(&prev.key),
                #[allow(unreachable_patterns)]
                _ => None,
            };
            if let Some(key) = key {
                self.enqueue(key);
            }
        }
        Ok(())
    }

    /// Every VirtualCluster in every served cluster.
    async fn list_all(&self) -> Result<Vec<(VcKey, Value)>, ReconcileError> {
        let resource = self.resource()?;
        let mut out = Vec::new();
        for cluster in self.clusters.paths() {
            let t = Target {
                cluster: &cluster,
                resource,
                namespace: None,
            };
            for obj in self.store.list(&t, &ListOptions::default()).await?.items {
                out.push((
                    VcKey {
                        cluster: cluster.clone(),
                        namespace: meta::namespace(&obj).into(),
                        name: meta::name(&obj).into(),
                    },
                    obj,
                ));
            }
        }
        Ok(out)
    }

    /// Schedules a reconcile of `key`; coalesces with one already running.
    fn enqueue(self: &Arc<Self>, key: VcKey) {
        {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            if let Some(dirty) = state.in_flight.get_mut(&key) {
                *dirty = true;
                return;
            }
            state.in_flight.insert(key.clone(), false);
        }
        let this = self.clone();
        tokio::spawn(async move { this.work(key).await });
    }

    /// Reconciles `key` until it succeeds and nothing changed meanwhile.
    async fn work(self: Arc<Self>, key: VcKey) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.reconcile(&key).await {
                Ok(waiters) => {
                    backoff = Duration::from_millis(100);
                    waiters.into_iter().for_each(|k| self.enqueue(k));
                }
                Err(e) => {
                    tracing::warn!(cluster = %key.cluster, namespace = %key.namespace, name = %key.name, error = %e, "reconciling VirtualCluster");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            match state.in_flight.get_mut(&key) {
                Some(dirty) if *dirty => *dirty = false,
                _ => {
                    state.in_flight.remove(&key);
                    return;
                }
            }
        }
    }

    /// Brings one VirtualCluster's child cluster, Secret and status in line
    /// with it. Returns VirtualClusters to reconcile next (those waiting for a
    /// path this one released).
    async fn reconcile(&self, key: &VcKey) -> Result<Vec<VcKey>, ReconcileError> {
        let t = Target {
            cluster: &key.cluster,
            resource: self.resource()?,
            namespace: Some(&key.namespace),
        };
        let obj = match self.store.get(&t, &key.name).await {
            Ok(obj) => obj,
            Err(ApiError::NotFound(_)) => return self.gone(key).await,
            Err(e) => return Err(e.into()),
        };
        if meta::is_deleting(&obj) {
            return self.teardown(key, &t, &obj).await;
        }
        let spec: VirtualClusterSpec =
            serde_json::from_value(obj["spec"].clone()).unwrap_or_default();
        let errors = nestkube_tenant_crds::validate(&spec);
        if !errors.is_empty() {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            self.set_status(&t, &obj, not_ready("Failed", "InvalidSpec", &message, &obj))
                .await?;
            return Ok(Vec::new());
        }
        let path = key.child_path();
        let has_finalizer = meta::finalizers(&obj).iter().any(|f| f == FINALIZER);
        if let Claim::Taken(by) = self.claim(key, &path, has_finalizer) {
            let message = format!("the cluster path {path:?} is taken by {by}");
            self.set_status(&t, &obj, not_ready("Pending", "NameTaken", &message, &obj))
                .await?;
            return Ok(Vec::new());
        }
        if !has_finalizer {
            self.add_finalizer(&t, &key.name).await?;
        }
        let cluster = self
            .clusters
            .create(&self.store, &self.catalog, &path)
            .await?;
        // Every reconcile (a spec change, a restart) applies the current
        // limits and records the policy admission and the syncer act on.
        cluster.limits.set(Limits::from(&spec.limits));
        let placement = Placement::new(
            Parent::Cluster(key.cluster.clone()),
            &key.namespace,
            &key.name,
            meta::uid(&obj),
            spec.clone(),
        );
        self.clusters.set_placement(&path, placement).await?;
        let secret = self.ensure_secret(key, &obj, &cluster).await?;
        let endpoint = self.endpoint(&path);
        let status = json!({
            "phase": "Ready",
            "conditions": [condition("True", "Provisioned", &format!("serving at {endpoint}"), &obj)],
            "observedGeneration": obj["metadata"]["generation"],
            "endpoint": endpoint,
            "kubeconfigSecretRef": secret,
        });
        self.set_status(&t, &obj, status).await?;
        Ok(Vec::new())
    }

    /// Claims `path` for `key` unless someone else owns it.
    fn claim(&self, key: &VcKey, path: &str, has_finalizer: bool) -> Claim {
        if path == ROOT_CLUSTER {
            return Claim::Taken("the root cluster".into());
        }
        let Ok(mut state) = self.state.lock() else {
            return Claim::Taken("nobody (controller state poisoned)".into());
        };
        match state.claims.get(path) {
            Some(owner) if owner == key => Claim::Ours,
            Some(owner) => {
                Claim::Taken(format!("VirtualCluster {}/{}", owner.namespace, owner.name))
            }
            // Served but unclaimed: a cluster no VirtualCluster created.
            None if !has_finalizer && self.clusters.contains(path) => {
                Claim::Taken("an existing cluster".into())
            }
            None => {
                state.claims.insert(path.to_string(), key.clone());
                Claim::Ours
            }
        }
    }

    /// Releases `key`'s claim on its path (if it holds it); returns whether it did.
    fn release(&self, key: &VcKey) -> bool {
        let path = key.child_path();
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.claims.get(&path) == Some(key) {
            state.claims.remove(&path);
            true
        } else {
            false
        }
    }

    fn owns(&self, key: &VcKey) -> bool {
        self.state
            .lock()
            .map(|s| s.claims.get(&key.child_path()) == Some(key))
            .unwrap_or(false)
    }

    /// A VirtualCluster being deleted: Terminating, remove its cluster and
    /// Secret, then drop the finalizer (the store then deletes it).
    async fn teardown(
        &self,
        key: &VcKey,
        t: &Target<'_>,
        obj: &Value,
    ) -> Result<Vec<VcKey>, ReconcileError> {
        if !meta::finalizers(obj).iter().any(|f| f == FINALIZER) {
            return Ok(Vec::new());
        }
        let mut status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
        status["phase"] = "Terminating".into();
        status["conditions"] = json!([condition(
            "False",
            "Terminating",
            "the virtual cluster is being deleted",
            obj
        )]);
        self.set_status(t, obj, status).await?;
        let path = key.child_path();
        // With the finalizer, the path is ours unless another VirtualCluster
        // holds the claim in memory (never, short of a bug): then leave it be.
        let foreign = self
            .state
            .lock()
            .map(|s| s.claims.get(&path).is_some_and(|o| o != key))
            .unwrap_or(true);
        if !foreign {
            self.clusters.remove(&path).await?;
            self.delete_secret(key, meta::uid(obj)).await?;
        }
        self.remove_finalizer(t, &key.name).await?;
        self.release(key);
        self.waiters(key).await
    }

    /// A VirtualCluster that vanished without teardown (its parent cluster
    /// was removed, or it was deleted before the finalizer was added).
    async fn gone(&self, key: &VcKey) -> Result<Vec<VcKey>, ReconcileError> {
        if !self.owns(key) {
            return Ok(Vec::new());
        }
        self.clusters.remove(&key.child_path()).await?;
        if self.clusters.contains(&key.cluster) {
            self.delete_secret(key, "").await?;
        }
        self.release(key);
        self.waiters(key).await
    }

    /// Other VirtualClusters of the same parent wanting `key`'s path.
    async fn waiters(&self, key: &VcKey) -> Result<Vec<VcKey>, ReconcileError> {
        if !self.clusters.contains(&key.cluster) {
            return Ok(Vec::new());
        }
        let t = Target {
            cluster: &key.cluster,
            resource: self.resource()?,
            namespace: None,
        };
        let items = self.store.list(&t, &ListOptions::default()).await?.items;
        Ok(items
            .iter()
            .filter(|o| meta::name(o) == key.name && meta::namespace(o) != key.namespace)
            .map(|o| VcKey {
                cluster: key.cluster.clone(),
                namespace: meta::namespace(o).into(),
                name: key.name.clone(),
            })
            .collect())
    }

    fn endpoint(&self, path: &str) -> String {
        format!("https://{}/clusters/{path}", self.server_address)
    }

    async fn add_finalizer(&self, t: &Target<'_>, name: &str) -> Result<(), ReconcileError> {
        self.store
            .update_with(t, name, None, WriteOptions::default(), |old| {
                let mut obj = old.clone();
                let mut finalizers = meta::finalizers(old);
                if !finalizers.iter().any(|f| f == FINALIZER) {
                    finalizers.push(FINALIZER.into());
                }
                obj["metadata"]["finalizers"] = json!(finalizers);
                Ok((obj, Vec::new()))
            })
            .await?;
        Ok(())
    }

    async fn remove_finalizer(&self, t: &Target<'_>, name: &str) -> Result<(), ReconcileError> {
        let result = self
            .store
            .update_with(t, name, None, WriteOptions::default(), |old| {
                let mut obj = old.clone();
                let finalizers: Vec<String> = meta::finalizers(old)
                    .into_iter()
                    .filter(|f| f != FINALIZER)
                    .collect();
                obj["metadata"]["finalizers"] = json!(finalizers);
                Ok((obj, Vec::new()))
            })
            .await;
        match result {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `status` unless it equals the current one (ignoring condition
    /// transition times, kept while a condition's status is unchanged).
    async fn set_status(
        &self,
        t: &Target<'_>,
        obj: &Value,
        mut status: Value,
    ) -> Result<(), ReconcileError> {
        keep_transition_times(&mut status, &obj["status"]);
        if obj.get("status") == Some(&status) {
            return Ok(());
        }
        let result = self
            .store
            .update_with(
                t,
                meta::name(obj),
                Some("status"),
                WriteOptions::default(),
                |old| {
                    let mut new = old.clone();
                    new["status"] = status.clone();
                    Ok((new, Vec::new()))
                },
            )
            .await;
        match result {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn secrets(&self) -> Result<&ResourceInfo, ReconcileError> {
        self.catalog
            .get("", "v1", "secrets")
            .map(|r| r.as_ref())
            .ok_or(ReconcileError::NotServed("secrets"))
    }

    /// Creates (or repairs) the admin kubeconfig Secret of `vc`; returns its
    /// `kubeconfigSecretRef`.
    async fn ensure_secret(
        &self,
        key: &VcKey,
        vc: &Value,
        cluster: &Cluster,
    ) -> Result<Value, ReconcileError> {
        let reference = SecretKeyRef::kubeconfig_for(&key.name);
        let reference_json = json!({"name": reference.name, "key": reference.key});
        let t = Target {
            cluster: &key.cluster,
            resource: self.secrets()?,
            namespace: Some(&key.namespace),
        };
        let server = self.endpoint(&cluster.path);
        let existing = match self.store.get(&t, &reference.name).await {
            Ok(s) => Some(s),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if existing
            .as_ref()
            .is_some_and(|s| secret_is_current(s, meta::uid(vc), &server))
        {
            return Ok(reference_json);
        }
        let admin = cluster
            .client_ca
            .issue_client(&format!("{}-admin", key.name), &["system:masters"])?;
        let config = kubeconfig::render(
            &format!("nestkube-{}", cluster.path),
            &server,
            &self.server_ca_pem,
            &admin,
        );
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": reference.name,
                "namespace": key.namespace,
                "labels": {SECRET_LABEL: key.name},
                "ownerReferences": [{
                    "apiVersion": format!("{}/{}", nestkube_tenant_crds::GROUP, nestkube_tenant_crds::VERSION),
                    "kind": "VirtualCluster",
                    "name": key.name,
                    "uid": meta::uid(vc),
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "type": "Opaque",
            "data": {KUBECONFIG_SECRET_KEY: base64::engine::general_purpose::STANDARD.encode(config)},
        });
        match existing {
            None => {
                self.store
                    .create(&t, secret, WriteOptions::default())
                    .await?;
            }
            Some(_) => {
                self.store
                    .update_with(&t, &reference.name, None, WriteOptions::default(), |_| {
                        Ok((secret.clone(), Vec::new()))
                    })
                    .await?;
            }
        }
        Ok(reference_json)
    }

    /// Deletes `key`'s kubeconfig Secret if this controller wrote it (for
    /// `uid`, or any VirtualCluster of that name when `uid` is empty).
    async fn delete_secret(&self, key: &VcKey, uid: &str) -> Result<(), ReconcileError> {
        let name = SecretKeyRef::kubeconfig_for(&key.name).name;
        let t = Target {
            cluster: &key.cluster,
            resource: self.secrets()?,
            namespace: Some(&key.namespace),
        };
        let secret = match self.store.get(&t, &name).await {
            Ok(s) => s,
            Err(ApiError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !secret_owned_by(&secret, &key.name, uid) {
            return Ok(());
        }
        match self
            .store
            .delete(&t, &name, &DeleteOptions::default())
            .await
        {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether `secret` was written by this controller for VirtualCluster
/// `name` (with `uid`, unless empty).
fn secret_owned_by(secret: &Value, name: &str, uid: &str) -> bool {
    secret["metadata"]["labels"][SECRET_LABEL] == name
        && secret["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["kind"] == "VirtualCluster" && (uid.is_empty() || o["uid"] == uid))
}

/// Whether `secret` already holds a kubeconfig for `server`, owned by `uid`.
fn secret_is_current(secret: &Value, uid: &str, server: &str) -> bool {
    let owned = secret["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["uid"] == uid);
    let config = secret["data"][KUBECONFIG_SECRET_KEY]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    owned && config.contains(&format!("server: {server}\n"))
}

/// A Ready condition (`metav1.Condition`) for `vc`.
fn condition(status: &str, reason: &str, message: &str, vc: &Value) -> Value {
    json!({
        "type": CONDITION_READY,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": vc["metadata"]["generation"],
        "lastTransitionTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

/// A status saying `vc` does not serve (phase, reason, message).
fn not_ready(phase: &str, reason: &str, message: &str, vc: &Value) -> Value {
    json!({
        "phase": phase,
        "conditions": [condition("False", reason, message, vc)],
        "observedGeneration": vc["metadata"]["generation"],
    })
}

/// Copies `lastTransitionTime` from `old`'s conditions into `new`'s where a
/// condition of the same type kept its status (as `meta.SetStatusCondition`).
fn keep_transition_times(new: &mut Value, old: &Value) {
    let Some(conditions) = new.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conditions {
        let previous = old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["type"] == c["type"] && o["status"] == c["status"]);
        if let Some(p) = previous {
            c["lastTransitionTime"] = p["lastTransitionTime"].clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths() {
        let k = VcKey::parse("/root/tenancy.nestkube.io/virtualclusters/default/team-a").unwrap();
        assert_eq!(k.child_path(), "team-a");
        let k = VcKey::parse("/team-a/tenancy.nestkube.io/virtualclusters/ns/dev").unwrap();
        assert_eq!(k.child_path(), "team-a:dev");
        assert!(VcKey::parse("/root/core/secrets/default/x").is_none());
        assert!(VcKey::parse("/_clusters/team-a").is_none());
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let old = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]});
        let mut new = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t1"}]});
        keep_transition_times(&mut new, &old);
        assert_eq!(new["conditions"][0]["lastTransitionTime"], "t0");
        let mut flipped = json!({"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "t1"}]});
        keep_transition_times(&mut flipped, &old);
        assert_eq!(flipped["conditions"][0]["lastTransitionTime"], "t1");
    }
}
