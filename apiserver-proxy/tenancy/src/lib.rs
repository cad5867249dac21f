//! The set of clusters this process serves, and each one's identity.
//!
//! A cluster is a path (`root`, `team-a`, `team-a:dev`), a key prefix in
//! storage (`/<path>/`) and a client CA that issues and verifies its users'
//! certificates, and a service-account signing key that signs and verifies
//! its service-account tokens. It owns no task and no per-cluster copy of
//! shared state. Cluster records live in storage under [`RECORD_PREFIX`],
//! outside every cluster's key space, so no API request can read a CA or
//! signing key.
//!
//! With a store shared by several replicas, [`Clusters::follow`] keeps the
//! set in step with the records, so a cluster created, changed or removed
//! through one replica is served (or no longer served) by every other.
//!
//! This module must never decide *whether* a cluster should exist (that is
//! the VirtualCluster controller's job); it only creates, loads and removes
//! them, and tells which cluster issued a client certificate.

pub mod auth;
pub mod counting;
pub mod kubeconfig;
pub mod limits;
pub mod placement;

// The layers below, under the names the modules use.
use nestkube_api::error;
use nestkube_registry as registry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use nestkube_storage::{
    KeyValue, ListOptions as StorageList, Revision, Storage, StorageError, WatchEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::UserInfo;
use crate::auth::pki::{Ca, CertPair};
use crate::auth::tokens::SigningKey;
use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::store::{Store, Target, WriteOptions};
use nestkube_api::request::ROOT_CLUSTER;
pub use placement::{Parent, Placement};

/// Namespaces every cluster starts with.
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Storage prefix of cluster records (not reachable through the API: cluster
/// paths are DNS labels joined by `:`, never starting with `_`).
pub const RECORD_PREFIX: &str = "/_clusters/";

/// A served cluster.
pub struct Cluster {
    /// Its path (`root`, `team-a`, `team-a:dev`).
    pub path: String,
    /// Issues and verifies the cluster's client certificates.
    pub client_ca: Ca,
    /// Signs and verifies the cluster's service-account tokens.
    pub sa_key: SigningKey,
    /// Its API limits (set by the VirtualCluster controller; none at load).
    pub limits: limits::ClusterLimits,
    /// The VirtualCluster behind it (`None` for the root cluster); see
    /// [`Clusters::set_placement`].
    placement: RwLock<Option<Arc<Placement>>>,
    /// The `mod_revision` of the record `placement` was last taken from, so
    /// a late watch event never undoes a newer placement.
    record_revision: AtomicU64,
    /// The revision at which this incarnation's record was created: every
    /// write of an earlier cluster at the same path (and its teardown) is
    /// older, so history before it is never served to this one.
    created_revision: Revision,
    /// Set once this instance stops being served (removed, or replaced by a
    /// re-created cluster at the same path); see [`Cluster::retired`].
    retired: tokio::sync::watch::Sender<bool>,
}

impl Cluster {
    fn new(
        path: String,
        client_ca: Ca,
        sa_key: SigningKey,
        placement: Option<Placement>,
        record: Option<&KeyValue>,
    ) -> Self {
        Self {
            path,
            client_ca,
            sa_key,
            limits: Default::default(),
            placement: RwLock::new(placement.map(Arc::new)),
            record_revision: AtomicU64::new(record.map_or(0, |kv| kv.mod_revision)),
            created_revision: record.map_or(0, |kv| kv.create_revision),
            retired: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The VirtualCluster behind this cluster and its policy; `None` for the
    /// root cluster (and for a cluster whose provisioner has not said yet).
    pub fn placement(&self) -> Option<Arc<Placement>> {
        self.placement.read().ok()?.clone()
    }

    /// The oldest revision this incarnation may serve history from: a watch
    /// (or any read of history) from before it would show a removed
    /// cluster's objects at the same path, so it is answered `410 Gone`.
    /// 0 for the root cluster.
    pub fn created_revision(&self) -> Revision {
        self.created_revision
    }

    /// Resolves once this instance is no longer served: it was removed, or
    /// the path now names a re-created cluster. Every watch, stream and
    /// connection opened for it waits on this and ends, so nothing opened
    /// for one tenant goes on to carry the data of the next tenant at the
    /// same path. Owns what it waits on (no borrow of the cluster).
    pub fn retired(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.retired.subscribe();
        async move {
            // An error means the sender (the cluster) is gone: retired too.
            let _ = rx.wait_for(|retired| *retired).await;
        }
    }

    /// Whether [`Cluster::retired`] has resolved.
    pub fn is_retired(&self) -> bool {
        *self.retired.borrow()
    }

    /// Ends everything waiting on [`Cluster::retired`].
    fn retire(&self) {
        self.retired.send_replace(true);
    }
}

impl Cluster {
    /// Takes `placement` from the record stored at `revision` unless a
    /// newer record's was taken; whether the placement changed.
    fn take_placement(&self, placement: Option<Placement>, revision: Revision) -> bool {
        let Ok(mut current) = self.placement.write() else {
            return false;
        };
        if self.record_revision.load(Ordering::Acquire) > revision {
            return false;
        }
        self.record_revision.store(revision, Ordering::Release);
        if current.as_deref() == placement.as_ref() {
            return false;
        }
        // Every replica enforces the limits the record carries, not only
        // the one running the VirtualCluster controller.
        if let Some(p) = &placement {
            self.limits.set(limits::Limits::from(&p.spec.limits));
        }
        *current = placement.map(Arc::new);
        true
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What is persisted per cluster.
#[derive(Serialize, Deserialize)]
struct Record {
    path: String,
    client_ca_cert: String,
    client_ca_key: String,
    /// Absent in records written before service-account tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sa_signing_key: Option<String>,
    /// Absent until the provisioner sets it (and in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    placement: Option<Placement>,
}

impl Record {
    /// The cluster this record (stored as `kv`) describes.
    fn into_cluster(self, kv: &KeyValue) -> Result<Cluster, ApiError> {
        let client_ca = Ca::from_pem(CertPair {
            cert_pem: self.client_ca_cert,
            key_pem: self.client_ca_key,
        })
        .map_err(internal)?;
        let sa_key = match &self.sa_signing_key {
            Some(pem) => SigningKey::from_pem(pem).map_err(internal)?,
            None => return Err(internal("cluster record has no signing key")),
        };
        let cluster = Cluster::new(self.path, client_ca, sa_key, self.placement, Some(kv));
        // The limits hold from the first request after a restart, before
        // the VirtualCluster controller reconciles.
        if let Some(p) = cluster.placement() {
            cluster.limits.set(limits::Limits::from(&p.spec.limits));
        }
        Ok(cluster)
    }
}

/// The clusters served, shared by every request.
pub struct Clusters {
    by_path: RwLock<HashMap<String, Arc<Cluster>>>,
    storage: Arc<dyn Storage>,
    /// Bumped whenever a cluster is added or removed or its placement
    /// changes, so the syncer learns of it without polling.
    changed: tokio::sync::watch::Sender<u64>,
    /// The store revision the records were listed at by [`Clusters::load`].
    loaded_at: Revision,
}

impl std::fmt::Debug for Clusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clusters")
            .field("paths", &self.paths())
            .finish()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

impl Clusters {
    /// Loads every cluster record; the root cluster's client CA is `root_ca`
    /// (the server's own CA, which issued the root admin certificate) and its
    /// service-account signing key `root_sa_key` (kept beside it). A record
    /// written before signing keys existed gets one now.
    pub async fn load(
        storage: Arc<dyn Storage>,
        root_ca: Ca,
        root_sa_key: SigningKey,
    ) -> Result<Self, ApiError> {
        let mut by_path = HashMap::new();
        by_path.insert(
            ROOT_CLUSTER.to_string(),
            Arc::new(Cluster::new(
                ROOT_CLUSTER.into(),
                root_ca,
                root_sa_key,
                None,
                None,
            )),
        );
        let records = storage.list(RECORD_PREFIX, StorageList::default()).await?;
        for kv in records.items {
            let record = Self::complete(&storage, &kv.key, kv.mod_revision, &kv.value).await?;
            by_path.insert(record.path.clone(), Arc::new(record.into_cluster(&kv)?));
        }
        let clusters = Self {
            by_path: RwLock::new(by_path),
            storage,
            changed: tokio::sync::watch::Sender::new(0),
            loaded_at: records.revision,
        };
        // What each cluster stores, counted once (then kept by the store).
        for path in clusters.paths() {
            if let Some(c) = clusters.get(&path) {
                clusters.attach(&c).await?;
            }
        }
        Ok(clusters)
    }

    /// The cluster at `path`.
    pub fn get(&self, path: &str) -> Option<Arc<Cluster>> {
        self.by_path.read().ok()?.get(path).cloned()
    }

    /// Whether `path` is served.
    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// Every served path.
    pub fn paths(&self) -> Vec<String> {
        self.by_path
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Creates the cluster at `path` (its client CA, record and default
    /// namespaces), or returns the existing one. Idempotent, so a controller
    /// may call it again after a crash.
    pub async fn create(
        &self,
        store: &Store,
        catalog: &Catalog,
        path: &str,
    ) -> Result<Arc<Cluster>, ApiError> {
        let cluster = match self.get(path) {
            Some(c) => c,
            None => {
                let ca = Ca::generate(&format!("nestkube-client-ca:{path}")).map_err(internal)?;
                let sa_key = SigningKey::generate().map_err(internal)?;
                let record = Record {
                    path: path.to_string(),
                    client_ca_cert: ca.pair.cert_pem.clone(),
                    client_ca_key: ca.pair.key_pem.clone(),
                    sa_signing_key: Some(sa_key.pem().to_string()),
                    placement: None,
                };
                let bytes = Bytes::from(serde_json::to_vec(&record).map_err(internal)?);
                let key = format!("{RECORD_PREFIX}{path}");
                let cluster = match self.storage.create(&key, bytes).await {
                    Ok(kv) => record.into_cluster(&kv)?,
                    // Created concurrently (or before a crash): use the stored keys.
                    Err(StorageError::AlreadyExists { .. }) => {
                        let kv = self
                            .storage
                            .get(&key)
                            .await?
                            .ok_or_else(|| internal("cluster record vanished"))?;
                        Self::complete(&self.storage, &kv.key, kv.mod_revision, &kv.value)
                            .await?
                            .into_cluster(&kv)?
                    }
                    Err(e) => return Err(e.into()),
                };
                let new = Arc::new(cluster);
                let cluster = {
                    let mut map = self.by_path.write().map_err(internal)?;
                    map.entry(path.to_string()).or_insert(new.clone()).clone()
                };
                if Arc::ptr_eq(&cluster, &new) {
                    self.attach(&cluster).await?;
                }
                self.changed.send_modify(|n| *n += 1);
                cluster
            }
        };
        Self::bootstrap(store, catalog, path).await?;
        Ok(cluster)
    }

    /// Parses a stored record, adding (and storing) a service-account signing
    /// key if it has none. A concurrent writer's key wins.
    async fn complete(
        storage: &Arc<dyn Storage>,
        key: &str,
        revision: nestkube_storage::Revision,
        value: &[u8],
    ) -> Result<Record, ApiError> {
        let mut record: Record = serde_json::from_slice(value).map_err(internal)?;
        if record.sa_signing_key.is_some() {
            return Ok(record);
        }
        record.sa_signing_key = Some(SigningKey::generate().map_err(internal)?.pem().to_string());
        let bytes = Bytes::from(serde_json::to_vec(&record).map_err(internal)?);
        match storage.update(key, bytes, revision).await {
            Ok(_) => Ok(record),
            Err(StorageError::Conflict { .. }) => {
                let kv = storage
                    .get(key)
                    .await?
                    .ok_or_else(|| internal("cluster record vanished"))?;
                let stored: Record = serde_json::from_slice(&kv.value).map_err(internal)?;
                stored
                    .sa_signing_key
                    .is_some()
                    .then_some(stored)
                    .ok_or_else(|| internal("cluster record changed concurrently"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the cluster at `path`: every object under its key prefix, then
    /// its record. The root cluster cannot be removed.
    pub async fn remove(&self, path: &str) -> Result<(), ApiError> {
        if path == ROOT_CLUSTER {
            return Err(ApiError::Forbidden(
                "the root cluster cannot be removed".into(),
            ));
        }
        let removed = self.by_path.write().map_err(internal)?.remove(path);
        if let Some(c) = removed {
            c.retire();
            self.detach(&c);
        }
        self.changed.send_modify(|n| *n += 1);
        self.storage
            .delete_prefix(&crate::registry::keys::cluster_prefix(path))
            .await?;
        let key = format!("{RECORD_PREFIX}{path}");
        match self.storage.get(&key).await? {
            Some(kv) => match self.storage.delete(&key, kv.mod_revision).await {
                Ok(_) | Err(StorageError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            },
            None => Ok(()),
        }
    }

    /// Records the VirtualCluster behind the cluster at `path` and its policy
    /// (persisted in the cluster's record). A no-op when unchanged, so a
    /// provisioner may call it on every reconcile.
    pub async fn set_placement(&self, path: &str, placement: Placement) -> Result<(), ApiError> {
        let cluster = self
            .get(path)
            .ok_or_else(|| internal(format!("cluster {path:?} is not served")))?;
        if cluster.placement().as_deref() == Some(&placement) {
            return Ok(());
        }
        let key = format!("{RECORD_PREFIX}{path}");
        let written = loop {
            let kv = self
                .storage
                .get(&key)
                .await?
                .ok_or_else(|| internal("cluster record vanished"))?;
            let mut record: Record = serde_json::from_slice(&kv.value).map_err(internal)?;
            record.placement = Some(placement.clone());
            let bytes = Bytes::from(serde_json::to_vec(&record).map_err(internal)?);
            match self.storage.update(&key, bytes, kv.mod_revision).await {
                Ok(kv) => break kv.mod_revision,
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        cluster.take_placement(Some(placement), written);
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Follows the cluster records from the revision [`Clusters::load`]
    /// listed them at, for as long as the process runs: a record created,
    /// changed (its placement) or deleted through another replica adds,
    /// updates or removes the cluster here, and [`Clusters::subscribe`]rs
    /// are told. One watch per process; after a broken watch (compaction,
    /// a lost connection) the records are listed again and the watch
    /// resumes from that list.
    pub fn follow(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut from = self.loaded_at;
            loop {
                if let Err(e) = self.follow_from(&mut from).await {
                    tracing::warn!(error = %e, "following cluster records; listing them again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match self.resync().await {
                        Ok(revision) => from = revision,
                        Err(e) => tracing::warn!(error = %e, "listing cluster records"),
                    }
                }
            }
        })
    }

    /// Applies record events after `*from` until the watch breaks; `*from`
    /// advances past every applied event.
    async fn follow_from(&self, from: &mut Revision) -> Result<(), ApiError> {
        let mut stream = self.storage.watch(RECORD_PREFIX, *from).await?;
        while let Some(event) = stream.next().await {
            let event = event?;
            match &event {
                WatchEvent::Put { kv, .. } => self.apply_record(kv).await?,
                WatchEvent::Delete { prev, .. } => {
                    if let Some(path) = prev.key.strip_prefix(RECORD_PREFIX) {
                        self.forget(path);
                    }
                }
                WatchEvent::Progress { .. } => {}
            }
            *from = (*from).max(event.revision());
        }
        Err(internal("cluster record watch ended"))
    }

    /// Lists the records and makes the served set match them; returns the
    /// list's revision.
    async fn resync(&self) -> Result<Revision, ApiError> {
        let records = self
            .storage
            .list(RECORD_PREFIX, StorageList::default())
            .await?;
        let mut listed = Vec::with_capacity(records.items.len());
        for kv in &records.items {
            self.apply_record(kv).await?;
            if let Some(path) = kv.key.strip_prefix(RECORD_PREFIX) {
                listed.push(path.to_string());
            }
        }
        for path in self.paths() {
            if path != ROOT_CLUSTER && !listed.contains(&path) {
                self.forget(&path);
            }
        }
        Ok(records.revision)
    }

    /// Serves the cluster a stored record describes: adds it, or takes its
    /// placement (or, for a record recreated with other keys, replaces it).
    async fn apply_record(&self, kv: &KeyValue) -> Result<(), ApiError> {
        let record = Self::complete(&self.storage, &kv.key, kv.mod_revision, &kv.value).await?;
        if record.path == ROOT_CLUSTER || record.path.starts_with('_') {
            return Ok(());
        }
        let changed = match self.get(&record.path) {
            Some(c) if c.client_ca.pair.cert_pem == record.client_ca_cert => {
                c.take_placement(record.placement, kv.mod_revision)
            }
            _ => {
                let path = record.path.clone();
                let cluster = Arc::new(record.into_cluster(kv)?);
                let replaced = self
                    .by_path
                    .write()
                    .map_err(internal)?
                    .insert(path, cluster.clone());
                if let Some(old) = replaced {
                    old.retire();
                    self.detach(&old);
                }
                self.attach(&cluster).await?;
                true
            }
        };
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Stops serving `path` (its record is gone).
    fn forget(&self, path: &str) {
        if path == ROOT_CLUSTER {
            return;
        }
        let removed = self.by_path.write().ok().and_then(|mut m| m.remove(path));
        if let Some(c) = removed {
            c.retire();
            self.detach(&c);
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// A receiver that changes whenever a cluster is added or removed or its
    /// placement changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The cluster whose client CA signed this certificate (DER), and the
    /// user it names. `None` for a certificate no served cluster issued.
    pub fn identify(&self, cert_der: &[u8]) -> Option<(Arc<Cluster>, UserInfo)> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
        let user = UserInfo::from_client_cert(cert_der)?;
        let map = self.by_path.read().ok()?;
        map.values()
            .find(|c| c.client_ca.verifies(&cert))
            .map(|c| (c.clone(), user))
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
            // Looked up first: a create bound to fail would still hold a
            // slot of the cluster's limits while it runs.
            if store.get(&target, ns).await.is_ok() {
                continue;
            }
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            // Counted against the cluster's limits, never refused by them.
            let opts = WriteOptions {
                exempt_from_limits: true,
                ..WriteOptions::default()
            };
            match store.create(&target, body, opts).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signing_keys_are_kept_and_added_to_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let storage = nestkube_storage::Backend::default()
            .open(dir.path())
            .unwrap();
        let catalog = Catalog::builtin().unwrap();
        let store = Store::new(storage.clone());
        let root = || Ca::generate("root").unwrap();
        let clusters = Clusters::load(storage.clone(), root(), SigningKey::generate().unwrap())
            .await
            .unwrap();
        let a = clusters.create(&store, &catalog, "team-a").await.unwrap();
        // A record written before signing keys existed.
        let old = Ca::generate("old").unwrap();
        let record = json!({"path": "old", "client_ca_cert": old.pair.cert_pem,
                            "client_ca_key": old.pair.key_pem});
        storage
            .create(
                &format!("{RECORD_PREFIX}old"),
                Bytes::from(record.to_string()),
            )
            .await
            .unwrap();

        let reloaded = Clusters::load(storage.clone(), root(), SigningKey::generate().unwrap())
            .await
            .unwrap();
        assert_eq!(
            reloaded.get("team-a").unwrap().sa_key.pem(),
            a.sa_key.pem(),
            "a cluster's key survives a restart"
        );
        let added = reloaded.get("old").unwrap().sa_key.pem().to_string();
        let again = Clusters::load(storage, root(), SigningKey::generate().unwrap())
            .await
            .unwrap();
        assert_eq!(
            again.get("old").unwrap().sa_key.pem(),
            added,
            "the key added to an old record is stored"
        );
        assert_ne!(added, a.sa_key.pem());
    }
}
