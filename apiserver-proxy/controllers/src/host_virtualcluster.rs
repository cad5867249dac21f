//! The host provisioner (`nestkube serve --host-kubeconfig FILE`): every
//! `tenancy.nestkube.io/v1alpha1` VirtualCluster on a real host cluster
//! becomes a virtual cluster served by this process at `/clusters/<name>`,
//! with a cluster-admin kubeconfig in the Secret `<name>-kubeconfig` beside
//! it; deleting the VirtualCluster tears the virtual cluster down together
//! with everything synced for it into the host.
//!
//! One kube-rs watcher over every VirtualCluster of the host feeds the
//! queue of a [`runtime::Controller`] (the storage watch of the runtime
//! follows this process's own store, not the host); work happens only when
//! a VirtualCluster changes. The
//! reconcile steps (claiming the path, validating, creating the cluster with
//! its limits and placement, the Secret's content, the status) are the
//! standalone controller's, from [`super::provision`], and the path table is
//! shared with it: the cluster path is the VirtualCluster's name, so a second
//! VirtualCluster of that name (another host namespace, or the root cluster)
//! gets `Ready=False` reason `NameTaken`.
//!
//! A VirtualCluster's `spec.hostNamespace` must be its own namespace, or a
//! host namespace whose [`crate::tenancy::placement::ALLOWED_FOR_ANNOTATION`]
//! lists it (the platform's decision, not the tenant's): otherwise it gets
//! `Ready=False` reason [`provision::HOST_NAMESPACE_NOT_ALLOWED`] and nothing
//! is provisioned, so nothing is ever synced into that namespace.
//!
//! On the host this module writes only: the [`FINALIZER`] on the
//! VirtualCluster, its status (through the status subresource), its kubeconfig
//! Secret (owned by it, labelled [`SECRET_LABEL`]), the ResourceQuota of its
//! `spec.limits.syncedQuota` in its host namespace, and at teardown deletes
//! the objects labelled [`VC_UID_LABEL`]` = <uid>` in its own namespace and
//! where it was placed. It reads a namespace only to check a
//! `hostNamespace`. It must never touch any other host object, nor a virtual
//! cluster it does not own.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use nestkube_tenant_crds::{SecretKeyRef, VirtualCluster, VirtualClusterSpec};
use serde_json::{Value, json};

use super::provision::{self, Owner, Provisioner};
pub use super::provision::{FINALIZER, SECRET_LABEL};
use super::runtime::{self, WorkQueue};
use crate::error::ApiError;
use crate::registry::meta;
pub use crate::tenancy::placement::VC_UID_LABEL;
use crate::tenancy::placement::{HostNamespaceRefused, check_host_namespace};
use crate::tenancy::{Cluster, Parent};

/// Kinds the syncer copies into a host namespace, deleted (by
/// [`VC_UID_LABEL`]) when their VirtualCluster goes: `(kind, plural)` of `v1`.
const SYNCED_KINDS: &[(&str, &str)] = &[
    ("Pod", "pods"),
    ("Service", "services"),
    ("ConfigMap", "configmaps"),
    ("Secret", "secrets"),
    ("PersistentVolumeClaim", "persistentvolumeclaims"),
    ("Endpoints", "endpoints"),
    // Not a copy: the ResourceQuota of `spec.limits.syncedQuota`.
    ("ResourceQuota", "resourcequotas"),
];

/// Errors of the host provisioner.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The host kubeconfig could not be read or used.
    #[error("host kubeconfig {path}: {message}")]
    Config {
        /// The kubeconfig file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A host API call failed.
    #[error("host API: {0}")]
    Kube(#[from] kube::Error),
    /// A local store or cluster operation failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Issuing the admin certificate failed.
    #[error("issuing the admin certificate: {0}")]
    Pki(#[from] crate::auth::pki::PkiError),
    /// An object did not (de)serialize.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
}

/// A client for the host cluster named by the kubeconfig at `path`.
pub async fn connect(path: &Path) -> Result<kube::Client, HostError> {
    let err = |message: String| HostError::Config {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// A client for the host cluster this process runs in (its pod's service
/// account), for `--host-in-cluster`.
pub async fn connect_in_cluster() -> Result<kube::Client, HostError> {
    let err = |message: String| HostError::Config {
        path: "in-cluster".into(),
        message,
    };
    let config = kube::Config::incluster().map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// A VirtualCluster on the host: `(namespace, name)`.
type Key = (String, String);

/// The provisioner; one per process in host mode.
struct HostProvisioner {
    client: kube::Client,
    /// The steps and path table shared with the other provisioner.
    p: Provisioner,
    queue: OnceLock<Arc<WorkQueue<Key, HostError>>>,
    /// Label selector restricting which VirtualClusters are provisioned
    /// (several installs sharing one host); `None`: all of them.
    selector: Option<String>,
}

/// Starts provisioning the VirtualClusters of the host cluster `client`
/// talks to (only those matching the label selector `selector`, if given).
pub fn spawn(
    provisioner: Provisioner,
    client: kube::Client,
    selector: Option<String>,
) -> tokio::task::JoinHandle<()> {
    let this = Arc::new(HostProvisioner {
        client,
        p: provisioner,
        queue: OnceLock::new(),
        selector,
    });
    let controller = runtime::Controller::new("host-virtualclusters", this.clone());
    let _ = this.queue.set(controller.queue());
    tokio::spawn(this.run())
}

#[async_trait::async_trait]
impl runtime::Reconciler<Key, HostError> for HostProvisioner {
    async fn reconcile(&self, (namespace, name): Key) -> runtime::Outcome<HostError> {
        self.sync(&namespace, &name).await
    }
}

/// The VirtualCluster resource, untyped (status and unknown fields kept as
/// the host stores them).
fn vc_resource() -> ApiResource {
    ApiResource::erase::<VirtualCluster>(&())
}

/// The identity of a VirtualCluster object as a claimant.
fn owner(namespace: &str, name: &str) -> Owner {
    Owner {
        parent: Parent::Host,
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn has_finalizer(obj: &Value) -> bool {
    meta::finalizers(obj).iter().any(|f| f == FINALIZER)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl HostProvisioner {
    fn enqueue(&self, key: Key) {
        if let Some(q) = self.queue.get() {
            q.enqueue(key);
        }
    }

    /// Follows every VirtualCluster of the host: after each (re)list,
    /// restores the claims of those holding the finalizer, then reconciles
    /// them all; afterwards reconciles each one that changes.
    async fn run(self: Arc<Self>) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &vc_resource());
        let mut config = watcher::Config::default();
        if let Some(selector) = &self.selector {
            config = config.labels(selector);
        }
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        let mut listed = Vec::new();
        while let Some(event) = events.next().await {
            let obj = match event {
                Ok(Event::Init) => {
                    listed.clear();
                    continue;
                }
                Ok(Event::InitApply(o)) => {
                    listed.push(serde_json::to_value(o).unwrap_or_default());
                    continue;
                }
                Ok(Event::InitDone) => {
                    for o in &listed {
                        if has_finalizer(o) {
                            let (ns, name) = (meta::namespace(o), meta::name(o));
                            self.p.claims.restore(name, &owner(ns, name));
                        }
                    }
                    for o in listed.drain(..) {
                        self.enqueue((meta::namespace(&o).into(), meta::name(&o).into()));
                    }
                    continue;
                }
                Ok(Event::Apply(o) | Event::Delete(o)) => o,
                Err(e) => {
                    let missing = matches!(
                        &e,
                        watcher::Error::InitialListFailed(k) | watcher::Error::WatchStartFailed(k)
                            if is_not_found(k)
                    );
                    if missing {
                        tracing::error!(
                            crd = nestkube_tenant_crds::CRD_YAML_PATH,
                            "the VirtualCluster CRD (virtualclusters.tenancy.nestkube.io) is not installed on the host cluster; apply it (kubectl apply -f {}); retrying",
                            nestkube_tenant_crds::CRD_YAML_PATH
                        );
                    } else {
                        tracing::warn!(error = %e, "watching VirtualClusters on the host; retrying");
                    }
                    continue;
                }
            };
            let namespace = obj.metadata.namespace.clone().unwrap_or_default();
            let name = obj.metadata.name.clone().unwrap_or_default();
            self.enqueue((namespace, name));
        }
        tracing::error!("the host VirtualCluster watch ended");
    }

    /// Brings one host VirtualCluster's virtual cluster, Secret and status
    /// in line with it.
    async fn sync(&self, namespace: &str, name: &str) -> Result<Option<Duration>, HostError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &vc_resource());
        let owner = owner(namespace, name);
        let Some(vc) = api.get_opt(name).await? else {
            return self.gone(&owner).await;
        };
        let obj = serde_json::to_value(&vc)?;
        if meta::is_deleting(&obj) {
            return self.teardown(&api, &owner, &obj).await;
        }
        let spec: VirtualClusterSpec =
            serde_json::from_value(obj["spec"].clone()).unwrap_or_default();
        let path = name;
        if let Err(status) = self.p.admit(path, &owner, &spec, &obj) {
            set_status(&api, &obj, status).await?;
            return Ok(None);
        }
        // Nothing is provisioned for a host namespace it may not use; looked
        // at again later, as the namespace may be annotated meanwhile.
        if let Err(refused) = self.host_namespace(&owner, &spec).await? {
            tracing::warn!(namespace = %namespace, name = %name, error = %refused, "VirtualCluster refused its host namespace");
            set_status(
                &api,
                &obj,
                provision::host_namespace_refused(&refused, &obj),
            )
            .await?;
            return Ok(Some(provision::RECOUNT_INTERVAL));
        }
        if !has_finalizer(&obj) {
            let mut finalizers = meta::finalizers(&obj);
            finalizers.push(FINALIZER.into());
            set_finalizers(&api, &obj, finalizers).await?;
        }
        let cluster = self
            .p
            .provision(path, &owner, meta::uid(&obj), &spec)
            .await?;
        self.ensure_secret(&owner, &obj, &cluster).await?;
        let compliance = self.p.compliance(path, &owner, &spec).await?;
        let status = provision::ready(&self.p.endpoint(path), &obj, &compliance);
        set_status(&api, &obj, status).await?;
        self.ensure_synced_quota(&owner, meta::uid(&obj), &spec)
            .await?;
        // Non-compliant pods are counted again until none are left.
        Ok((compliance.non_compliant_pods > 0).then_some(provision::RECOUNT_INTERVAL))
    }

    /// Whether `owner` may place its pods in the host namespace `spec`
    /// names (see [`check_host_namespace`]); reads that namespace only when
    /// it is not the VirtualCluster's own.
    async fn host_namespace(
        &self,
        owner: &Owner,
        spec: &VirtualClusterSpec,
    ) -> Result<Result<(), HostNamespaceRefused>, HostError> {
        let host = spec.host_namespace.as_deref().unwrap_or(&owner.namespace);
        if host == owner.namespace {
            return Ok(Ok(()));
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let target = match namespaces.get_opt(host).await {
            Ok(ns) => ns.map(serde_json::to_value).transpose()?,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Ok(Err(HostNamespaceRefused::Unreadable {
                    own: owner.namespace.clone(),
                    host: host.to_string(),
                    reason: s.message,
                }));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(check_host_namespace(
            &owner.namespace,
            host,
            target.as_ref(),
        ))
    }

    /// Creates (or repairs) the kubeconfig Secret of `vc` on the host.
    async fn ensure_secret(
        &self,
        owner: &Owner,
        vc: &Value,
        cluster: &Cluster,
    ) -> Result<(), HostError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &owner.namespace);
        let name = SecretKeyRef::kubeconfig_for(&owner.name).name;
        let existing = secrets.get_opt(&name).await?;
        let server = self.p.endpoint(&cluster.path);
        let uid = meta::uid(vc);
        let existing_json = existing.as_ref().map(serde_json::to_value).transpose()?;
        if existing_json
            .as_ref()
            .is_some_and(|s| provision::secret_is_current(s, uid, &server))
        {
            return Ok(());
        }
        let config = self.p.admin_kubeconfig(cluster, &owner.name)?;
        let mut secret: Secret =
            serde_json::from_value(provision::kubeconfig_secret(owner, uid, &config))?;
        match existing {
            None => {
                secrets.create(&PostParams::default(), &secret).await?;
            }
            Some(old) => {
                secret.metadata.resource_version = old.metadata.resource_version;
                secrets
                    .replace(&name, &PostParams::default(), &secret)
                    .await?;
            }
        }
        Ok(())
    }

    /// Makes the ResourceQuota of `spec.limits.syncedQuota` in the host
    /// namespace say what the spec says: created, replaced, or deleted when
    /// unset (teardown deletes it with the copies, by [`VC_UID_LABEL`]).
    /// One this provisioner did not write for `uid` is left alone.
    async fn ensure_synced_quota(
        &self,
        owner: &Owner,
        uid: &str,
        spec: &VirtualClusterSpec,
    ) -> Result<(), HostError> {
        let host_namespace = spec.host_namespace.as_deref().unwrap_or(&owner.namespace);
        let resource = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ResourceQuota".into(),
            plural: "resourcequotas".into(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), host_namespace, &resource);
        let name = provision::synced_quota_name(&owner.name);
        let current = api
            .get_opt(&name)
            .await?
            .map(|q| serde_json::to_value(&q))
            .transpose()?;
        match (current, provision::synced_quota(owner, uid, spec)) {
            (None, None) => {}
            (Some(q), None) => {
                if provision::synced_quota_owned_by(&q, uid) {
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            (None, Some(d)) => {
                api.create(&PostParams::default(), &serde_json::from_value(d)?)
                    .await?;
            }
            (Some(q), Some(mut d)) => {
                if provision::synced_quota_owned_by(&q, uid)
                    && !provision::synced_quota_is_current(&q, &d)
                {
                    d["metadata"]["resourceVersion"] = q["metadata"]["resourceVersion"].clone();
                    api.replace(&name, &PostParams::default(), &serde_json::from_value(d)?)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A VirtualCluster being deleted: Terminating, remove its virtual
    /// cluster, what was synced for it and its Secret, then drop the
    /// finalizer (the host then deletes it).
    async fn teardown(
        &self,
        api: &Api<DynamicObject>,
        owner: &Owner,
        obj: &Value,
    ) -> Result<Option<Duration>, HostError> {
        if !has_finalizer(obj) {
            return Ok(None);
        }
        let obj = &set_status(api, obj, provision::terminating(obj)).await?;
        let path = owner.name.as_str();
        // With the finalizer, the path is ours unless another VirtualCluster
        // holds the claim in memory (never, short of a bug): then leave it be.
        if !self.p.claims.held_by_other(path, owner) {
            // Where it was placed (checked then), and its own namespace;
            // never a host namespace it named but was refused.
            self.delete_synced(&owner.namespace, meta::uid(obj)).await?;
            if let Some(placement) = self.p.clusters.get(path).and_then(|c| c.placement())
                && placement.host_namespace != owner.namespace
                && placement.uid == meta::uid(obj)
            {
                self.delete_synced(&placement.host_namespace, &placement.uid)
                    .await?;
            }
            self.p.clusters.remove(path).await?;
            self.delete_secret(owner, meta::uid(obj)).await?;
        }
        let finalizers = meta::finalizers(obj)
            .into_iter()
            .filter(|f| f != FINALIZER)
            .collect();
        set_finalizers(api, obj, finalizers).await?;
        self.p.claims.release(path, owner);
        self.wake_waiters(owner).await?;
        Ok(None)
    }

    /// A VirtualCluster that vanished without teardown (deleted before the
    /// finalizer was added, or the finalizer removed by hand).
    async fn gone(&self, owner: &Owner) -> Result<Option<Duration>, HostError> {
        let path = owner.name.as_str();
        if !self.p.claims.owns(path, owner) {
            return Ok(None);
        }
        if let Some(placement) = self.p.clusters.get(path).and_then(|c| c.placement())
            && placement.parent == Parent::Host
        {
            self.delete_synced(&placement.host_namespace, &placement.uid)
                .await?;
        }
        self.p.clusters.remove(path).await?;
        self.delete_secret(owner, "").await?;
        self.p.claims.release(path, owner);
        self.wake_waiters(owner).await?;
        Ok(None)
    }

    /// Deletes every object the syncer created for VirtualCluster `uid` in
    /// `host_namespace` (labelled [`VC_UID_LABEL`]).
    async fn delete_synced(&self, host_namespace: &str, uid: &str) -> Result<(), HostError> {
        if uid.is_empty() {
            return Ok(());
        }
        let selector = ListParams::default().labels(&format!("{VC_UID_LABEL}={uid}"));
        for (kind, plural) in SYNCED_KINDS {
            let resource = ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: (*kind).into(),
                plural: (*plural).into(),
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), host_namespace, &resource);
            match api
                .delete_collection(&DeleteParams::background(), &selector)
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes `owner`'s kubeconfig Secret if a provisioner wrote it (for
    /// `uid`, or any VirtualCluster of that name when `uid` is empty).
    async fn delete_secret(&self, owner: &Owner, uid: &str) -> Result<(), HostError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &owner.namespace);
        let name = SecretKeyRef::kubeconfig_for(&owner.name).name;
        let Some(secret) = secrets.get_opt(&name).await? else {
            return Ok(());
        };
        if !provision::secret_owned_by(&serde_json::to_value(&secret)?, &owner.name, uid) {
            return Ok(());
        }
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reconciles the other host VirtualClusters named like `owner` (waiting
    /// for the path it released).
    async fn wake_waiters(&self, owner: &Owner) -> Result<(), HostError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &vc_resource());
        let mut same_name = ListParams::default().fields(&format!("metadata.name={}", owner.name));
        if let Some(selector) = &self.selector {
            same_name = same_name.labels(selector);
        }
        for o in api.list(&same_name).await?.items {
            let ns = o.metadata.namespace.unwrap_or_default();
            if ns != owner.namespace {
                self.enqueue((ns, owner.name.clone()));
            }
        }
        Ok(())
    }
}

/// Writes `status` through the status subresource unless it equals the
/// current one (condition transition times kept while unchanged); returns
/// the object as written (`obj` itself when unchanged or gone).
async fn set_status(
    api: &Api<DynamicObject>,
    obj: &Value,
    mut status: Value,
) -> Result<Value, HostError> {
    provision::keep_transition_times(&mut status, &obj["status"]);
    if obj.get("status") == Some(&status) {
        return Ok(obj.clone());
    }
    // A merge patch: fields of the old status absent from the new one are removed.
    let mut patch = status.clone();
    if let (Some(old), Some(new)) = (obj["status"].as_object(), patch.as_object_mut()) {
        for k in old.keys() {
            new.entry(k.clone()).or_insert(Value::Null);
        }
    }
    let result = api
        .patch_status(
            meta::name(obj),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": patch})),
        )
        .await;
    match result {
        Ok(written) => Ok(serde_json::to_value(written)?),
        Err(e) if is_not_found(&e) => Ok(obj.clone()),
        Err(e) => Err(e.into()),
    }
}

/// Sets `obj`'s finalizers, failing with a conflict if it changed since read.
async fn set_finalizers(
    api: &Api<DynamicObject>,
    obj: &Value,
    finalizers: Vec<String>,
) -> Result<(), HostError> {
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": meta::resource_version(obj),
    }});
    match api
        .patch(
            meta::name(obj),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
