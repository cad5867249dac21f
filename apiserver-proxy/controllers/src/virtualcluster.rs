//! The VirtualCluster controller: a `tenancy.nestkube.io/v1alpha1`
//! VirtualCluster in any cluster becomes a served child cluster
//! (`/clusters/<path>`), with an admin kubeconfig in a Secret beside it, and
//! deleting it tears the child cluster down.
//!
//! Cluster-aware: runs on the shared [`runtime`], whose ONE storage watch
//! over every cluster is filtered to VirtualCluster keys; work happens only
//! when a VirtualCluster changes (a short-lived task per VirtualCluster
//! being reconciled), so an idle virtual cluster costs no task, no timer
//! and no watch.
//!
//! The child path is the VirtualCluster's name in the root cluster and
//! `<parent>:<name>` elsewhere. A path belongs to the VirtualCluster that
//! claimed it first ([`provision::Claims`], shared with the host provisioner); the
//! claim is persisted as the [`FINALIZER`] on the owner, so a restart
//! recovers it. A later VirtualCluster wanting the same
//! path (same name, another namespace of the same parent) gets `Ready=False`
//! reason `NameTaken` and never touches the owner's cluster.
//!
//! Each reconcile also applies the VirtualCluster's `spec.limits` to its
//! child ([`crate::tenancy::limits`]): a changed spec takes effect at once,
//! and the reconcile of every VirtualCluster at start restores them. The
//! steps shared with the host provisioner live in [`super::provision`].
//! `spec.limits.syncedQuota` becomes a ResourceQuota in the host namespace
//! (in the parent cluster, where the copies go), kept as the spec says and
//! deleted at teardown.
//!
//! Policy compliance ([`provision::Compliance`]) is written into the status
//! on every reconcile. A cluster whose policy changed (announced by
//! [`Provisioner::provision`], whichever provisioner ran it) has the
//! VirtualClusters stored inside it reconciled, so children learn when
//! their parent's policy tightens; a VirtualCluster with non-compliant pods
//! is reconciled again every [`provision::RECOUNT_INTERVAL`] until none are
//! left.
//!
//! A VirtualCluster's `spec.hostNamespace` (a namespace of its parent
//! cluster) must be its own namespace or one whose
//! [`crate::tenancy::placement::ALLOWED_FOR_ANNOTATION`] lists it: a tenant
//! with rights in one namespace may not send its pods into another
//! (`Ready=False` reason [`provision::HOST_NAMESPACE_NOT_ALLOWED`]; nothing
//! is provisioned).
//!
//! This controller must never write outside the parent cluster of a
//! VirtualCluster except through [`crate::tenancy::Clusters`] (which creates and removes the
//! child), and never touches a cluster it does not own.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nestkube_tenant_crds::{SecretKeyRef, VirtualClusterSpec};
use serde_json::{Value, json};

use super::provision::{self, Owner, Provisioner};
pub use super::provision::{FINALIZER, SECRET_LABEL};
use super::runtime::{self, Change, Outcome, WorkQueue};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::store::{DeleteOptions, ListOptions, Target, WriteOptions};
use crate::tenancy::placement::{HostNamespaceRefused, check_host_namespace};
use crate::tenancy::{Cluster, Parent};
use nestkube_api::request::ROOT_CLUSTER;
/// Storage segment of VirtualCluster keys (`<group>/<resource>`).
const SEGMENT: &str = "tenancy.nestkube.io/virtualclusters/";
/// First wait before retrying a failing reconcile.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
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

    /// The VirtualCluster as a claimant of its path.
    fn owner(&self) -> Owner {
        Owner {
            parent: Parent::Cluster(self.cluster.clone()),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
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

/// What to do after a reconcile.
#[derive(Default)]
struct Next {
    /// VirtualClusters to reconcile now (waiting for a path this one released).
    waiters: Vec<VcKey>,
    /// Whether to count the pods again later (some do not comply).
    recount: bool,
}

impl Next {
    fn waiters(waiters: Vec<VcKey>) -> Self {
        Self {
            waiters,
            recount: false,
        }
    }
}

/// The controller; one per process.
pub struct Controller {
    /// The steps and path table shared with the other provisioner.
    p: Provisioner,
    /// Its queue (set once at start): reconciles enqueue waiters and recounts.
    queue: OnceLock<Arc<WorkQueue<VcKey, ReconcileError>>>,
    /// VirtualClusters with a recount of their pods scheduled.
    recounts: Arc<Mutex<HashSet<VcKey>>>,
}

/// Starts the controller for every cluster the provisioner's server serves.
/// The keys of a (re)list are reconciled once the claims of all of them are
/// restored.
pub fn spawn(provisioner: Provisioner) -> tokio::task::JoinHandle<()> {
    let mut policy_changes = provisioner.policy_changes();
    let store = provisioner.store.clone();
    let controller = Arc::new(Controller {
        p: provisioner,
        queue: OnceLock::new(),
        recounts: Arc::default(),
    });
    let runtime = runtime::Controller::with_retry(
        "virtualclusters",
        controller.clone(),
        MIN_BACKOFF,
        MAX_BACKOFF,
    )
    .hold_initial_until_synced();
    let _ = controller.queue.set(runtime.queue());
    let children = controller.clone();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match policy_changes.recv().await {
                Ok(path) => children.clone().enqueue_children(path),
                Err(RecvError::Lagged(_)) => {
                    for path in children.p.clusters.paths() {
                        children.clone().enqueue_children(path);
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    runtime.watch(&store, move |change| controller.observe(change))
}

#[async_trait::async_trait]
impl runtime::Reconciler<VcKey, ReconcileError> for Controller {
    async fn reconcile(&self, key: VcKey) -> Outcome<ReconcileError> {
        let Next { waiters, recount } = self.sync(&key).await?;
        waiters.into_iter().for_each(|k| self.enqueue(k));
        if recount {
            self.recount_later(key);
        }
        Ok(None)
    }
}

impl Controller {
    /// The VirtualCluster a change concerns. A VirtualCluster found by a
    /// (re)list holding the [`FINALIZER`] has its claim restored here,
    /// before any reconcile of that list runs.
    fn observe(&self, change: &Change<'_>) -> Option<VcKey> {
        let key = VcKey::parse(change.key()?)?;
        if let Change::Initial(_) = change
            && let Some(obj) = change.object()
            && meta::finalizers(&obj).iter().any(|f| f == FINALIZER)
        {
            self.p.claims.restore(&key.child_path(), &key.owner());
        }
        Some(key)
    }

    fn enqueue(&self, key: VcKey) {
        if let Some(q) = self.queue.get() {
            q.enqueue(key);
        }
    }

    fn resource(&self) -> Result<&ResourceInfo, ReconcileError> {
        self.p
            .catalog
            .get(
                nestkube_tenant_crds::GROUP,
                nestkube_tenant_crds::VERSION,
                "virtualclusters",
            )
            .map(|r| r.as_ref())
            .ok_or(ReconcileError::NotServed("virtualclusters"))
    }

    /// Reconciles every VirtualCluster stored in cluster `path` (its
    /// placement, so its policy, may have changed).
    fn enqueue_children(self: Arc<Self>, path: String) {
        tokio::spawn(async move {
            let Ok(resource) = self.resource() else {
                return;
            };
            let t = Target {
                cluster: &path,
                resource,
                namespace: None,
            };
            let Ok(page) = self.p.store.list(&t, &ListOptions::default()).await else {
                return;
            };
            for obj in page.items {
                self.enqueue(VcKey {
                    cluster: path.clone(),
                    namespace: meta::namespace(&obj).into(),
                    name: meta::name(&obj).into(),
                });
            }
        });
    }

    /// Reconciles `key` again after [`provision::RECOUNT_INTERVAL`], unless
    /// that is scheduled already.
    fn recount_later(&self, key: VcKey) {
        let scheduled = self
            .recounts
            .lock()
            .map(|mut recounts| recounts.insert(key.clone()))
            .unwrap_or(false);
        if !scheduled {
            return;
        }
        let (recounts, queue) = (self.recounts.clone(), self.queue.get().cloned());
        tokio::spawn(async move {
            tokio::time::sleep(provision::RECOUNT_INTERVAL).await;
            if let Ok(mut recounts) = recounts.lock() {
                recounts.remove(&key);
            }
            if let Some(q) = queue {
                q.enqueue(key);
            }
        });
    }

    /// Brings one VirtualCluster's child cluster, Secret and status in line
    /// with it.
    async fn sync(&self, key: &VcKey) -> Result<Next, ReconcileError> {
        let t = Target {
            cluster: &key.cluster,
            resource: self.resource()?,
            namespace: Some(&key.namespace),
        };
        let obj = match self.p.store.get(&t, &key.name).await {
            Ok(obj) => obj,
            Err(ApiError::NotFound(_)) => return Ok(Next::waiters(self.gone(key).await?)),
            Err(e) => return Err(e.into()),
        };
        if meta::is_deleting(&obj) {
            return Ok(Next::waiters(self.teardown(key, &t, &obj).await?));
        }
        let spec: VirtualClusterSpec =
            serde_json::from_value(obj["spec"].clone()).unwrap_or_default();
        let path = key.child_path();
        let owner = key.owner();
        if let Err(status) = self.p.admit(&path, &owner, &spec, &obj) {
            self.set_status(&t, &obj, status).await?;
            return Ok(Next::default());
        }
        // Nothing is provisioned for a host namespace it may not use; looked
        // at again later, as the namespace may be annotated meanwhile.
        if let Err(refused) = self.host_namespace(key, &spec).await? {
            let status = provision::host_namespace_refused(&refused, &obj);
            self.set_status(&t, &obj, status).await?;
            return Ok(Next {
                waiters: Vec::new(),
                recount: true,
            });
        }
        if !meta::finalizers(&obj).iter().any(|f| f == FINALIZER) {
            self.add_finalizer(&t, &key.name).await?;
        }
        // Every reconcile (a spec change, a restart) applies the current
        // limits and records the policy admission and the syncer act on.
        let cluster = self
            .p
            .provision(&path, &owner, meta::uid(&obj), &spec)
            .await?;
        self.ensure_secret(key, &obj, &cluster).await?;
        let compliance = self.p.compliance(&path, &owner, &spec).await?;
        let status = provision::ready(&self.endpoint(&path), &obj, &compliance);
        self.set_status(&t, &obj, status).await?;
        self.ensure_synced_quota(key, meta::uid(&obj), &spec)
            .await?;
        Ok(Next {
            waiters: Vec::new(),
            recount: compliance.non_compliant_pods > 0,
        })
    }

    /// Whether `key` may place its pods in the namespace of its parent
    /// cluster that `spec` names (see [`check_host_namespace`]).
    async fn host_namespace(
        &self,
        key: &VcKey,
        spec: &VirtualClusterSpec,
    ) -> Result<Result<(), HostNamespaceRefused>, ReconcileError> {
        let host = spec.host_namespace.as_deref().unwrap_or(&key.namespace);
        if host == key.namespace {
            return Ok(Ok(()));
        }
        let namespaces = self
            .p
            .catalog
            .get("", "v1", "namespaces")
            .ok_or(ReconcileError::NotServed("namespaces"))?;
        let t = Target {
            cluster: &key.cluster,
            resource: namespaces,
            namespace: None,
        };
        let target = match self.p.store.get(&t, host).await {
            Ok(ns) => Some(ns),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(check_host_namespace(&key.namespace, host, target.as_ref()))
    }

    /// Releases `key`'s claim on its path (if it holds it); returns whether it did.
    fn release(&self, key: &VcKey) -> bool {
        self.p.claims.release(&key.child_path(), &key.owner())
    }

    fn owns(&self, key: &VcKey) -> bool {
        self.p.claims.owns(&key.child_path(), &key.owner())
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
        self.set_status(t, obj, provision::terminating(obj)).await?;
        let path = key.child_path();
        // With the finalizer, the path is ours unless another VirtualCluster
        // holds the claim in memory (never, short of a bug): then leave it be.
        if !self.p.claims.held_by_other(&path, &key.owner()) {
            self.p.clusters.remove(&path).await?;
            self.delete_secret(key, meta::uid(obj)).await?;
            // Its synced quota goes too (the spec names the namespace).
            let mut spec: VirtualClusterSpec =
                serde_json::from_value(obj["spec"].clone()).unwrap_or_default();
            spec.limits.synced_quota = None;
            self.ensure_synced_quota(key, meta::uid(obj), &spec).await?;
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
        self.p.clusters.remove(&key.child_path()).await?;
        if self.p.clusters.contains(&key.cluster) {
            self.delete_secret(key, "").await?;
        }
        self.release(key);
        self.waiters(key).await
    }

    /// Other VirtualClusters of the same parent wanting `key`'s path.
    async fn waiters(&self, key: &VcKey) -> Result<Vec<VcKey>, ReconcileError> {
        if !self.p.clusters.contains(&key.cluster) {
            return Ok(Vec::new());
        }
        let t = Target {
            cluster: &key.cluster,
            resource: self.resource()?,
            namespace: None,
        };
        let items = self.p.store.list(&t, &ListOptions::default()).await?.items;
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
        self.p.endpoint(path)
    }

    async fn add_finalizer(&self, t: &Target<'_>, name: &str) -> Result<(), ReconcileError> {
        self.p
            .store
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
            .p
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
        provision::keep_transition_times(&mut status, &obj["status"]);
        if obj.get("status") == Some(&status) {
            return Ok(());
        }
        let result = self
            .p
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
        self.p
            .catalog
            .get("", "v1", "secrets")
            .map(|r| r.as_ref())
            .ok_or(ReconcileError::NotServed("secrets"))
    }

    /// Creates (or repairs) the admin kubeconfig Secret of `vc`.
    async fn ensure_secret(
        &self,
        key: &VcKey,
        vc: &Value,
        cluster: &Cluster,
    ) -> Result<(), ReconcileError> {
        let reference = SecretKeyRef::kubeconfig_for(&key.name);
        let t = Target {
            cluster: &key.cluster,
            resource: self.secrets()?,
            namespace: Some(&key.namespace),
        };
        let server = self.endpoint(&cluster.path);
        let existing = match self.p.store.get(&t, &reference.name).await {
            Ok(s) => Some(s),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if existing
            .as_ref()
            .is_some_and(|s| provision::secret_is_current(s, meta::uid(vc), &server))
        {
            return Ok(());
        }
        let config = self.p.admin_kubeconfig(cluster, &key.name)?;
        let secret = provision::kubeconfig_secret(&key.owner(), meta::uid(vc), &config);
        match existing {
            None => {
                self.p
                    .store
                    .create(&t, secret, WriteOptions::default())
                    .await?;
            }
            Some(_) => {
                self.p
                    .store
                    .update_with(&t, &reference.name, None, WriteOptions::default(), |_| {
                        Ok((secret.clone(), Vec::new()))
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Makes the ResourceQuota of `spec.limits.syncedQuota` in the host
    /// namespace (in the cluster holding the VirtualCluster, where its
    /// copies go) say what the spec says: created, updated, or deleted when
    /// unset. One this controller did not write for `uid` is left alone.
    async fn ensure_synced_quota(
        &self,
        key: &VcKey,
        uid: &str,
        spec: &VirtualClusterSpec,
    ) -> Result<(), ReconcileError> {
        let owner = key.owner();
        let desired = provision::synced_quota(&owner, uid, spec);
        let host_namespace = spec.host_namespace.as_deref().unwrap_or(&key.namespace);
        let Some(quotas) = self.p.catalog.get("", "v1", "resourcequotas") else {
            return Err(ReconcileError::NotServed("resourcequotas"));
        };
        let t = Target {
            cluster: &key.cluster,
            resource: quotas,
            namespace: Some(host_namespace),
        };
        let name = provision::synced_quota_name(&key.name);
        let current = match self.p.store.get(&t, &name).await {
            Ok(q) => Some(q),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        match (current, desired) {
            (None, None) => {}
            (Some(q), None) => {
                if provision::synced_quota_owned_by(&q, uid) {
                    match self
                        .p
                        .store
                        .delete(&t, &name, &DeleteOptions::default())
                        .await
                    {
                        Ok(_) | Err(ApiError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            (None, Some(d)) => {
                self.p.store.create(&t, d, WriteOptions::default()).await?;
            }
            (Some(q), Some(d)) => {
                if provision::synced_quota_owned_by(&q, uid)
                    && !provision::synced_quota_is_current(&q, &d)
                {
                    self.p
                        .store
                        .update_with(&t, &name, None, WriteOptions::default(), |old| {
                            let mut new = old.clone();
                            new["metadata"]["labels"] = d["metadata"]["labels"].clone();
                            new["spec"] = d["spec"].clone();
                            Ok((new, Vec::new()))
                        })
                        .await?;
                }
            }
        }
        Ok(())
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
        let secret = match self.p.store.get(&t, &name).await {
            Ok(s) => s,
            Err(ApiError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !provision::secret_owned_by(&secret, &key.name, uid) {
            return Ok(());
        }
        match self
            .p
            .store
            .delete(&t, &name, &DeleteOptions::default())
            .await
        {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
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
}
