//! Admission: the ordered chain of plugins every write passes through after
//! defaulting, as upstream's `k8s.io/apiserver/pkg/admission` chain.
//!
//! The generic store ([`crate::registry::store::Store`]) is given [`Admission`]
//! as its [`AdmissionHook`] and runs it inside its create, update and delete paths, so writes by in-process
//! controllers (a ReplicaSet's pods) are admitted exactly like a user's.
//! Order, as upstream: every plugin's [`Plugin::mutate`] (in chain order) runs
//! after defaulting and before the strategy's validation; every plugin's
//! [`Plugin::validate`] runs after the strategy's validation, just before the
//! storage write. A plugin judges one object of one cluster with that
//! cluster's policy ([`Attributes::placement`]); the root cluster has no
//! placement and so no tenant policy.
//!
//! This module must never write to storage itself (plugins only read through
//! the [`ReadOnlyStore`] they are given), and must never let one cluster's policy or
//! objects decide another cluster's request (except a child's policy being
//! bounded by its parent's, which is what nesting means).
//!
//! Registering a plugin is one line in [`Admission::with_config`].

pub mod baseline;
pub mod cel;
pub mod expressions;
pub mod hostescape;
pub mod limitranger;
pub mod matching;
pub mod mirrored;
pub mod podsecurity;
pub mod policy;
pub mod quota;
pub mod rbac_escalation;
pub mod resourcequota;
pub mod runtimeclass;
pub mod serviceaccount;
pub mod virtualcluster;
pub mod webhook;

// The layers below, under the names the plugins use.
use nestkube_api::error;
use nestkube_registry as registry;
use nestkube_tenancy as tenancy;
use nestkube_tenancy::auth;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use nestkube_tenant_crds::VirtualClusterSpec;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::registry::admission_hook::{
    AdmissionHook, AdmissionRequest, AdmittedWrite, ReadOnlyStore,
};
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::store::Target;
use crate::tenancy::{Cluster, Clusters, Placement};

pub use crate::registry::admission_hook::Operation;

/// What is being admitted (upstream's `admission.Attributes`).
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    /// Path of the cluster written to (`root`, `team-a`, `team-a:dev`).
    pub path: &'a str,
    /// The served cluster, when known (`None` e.g. in store-only tests).
    pub cluster: Option<Arc<Cluster>>,
    /// The placements of the clusters above it that have one, nearest first
    /// (`a:b` and `a` for `a:b:c`): their policies may have tightened since
    /// this cluster's VirtualCluster was admitted, and a pod here must fit
    /// them too (its copies are admitted there).
    pub ancestors: Vec<Arc<Placement>>,
    /// The resource written.
    pub resource: &'a ResourceInfo,
    /// The subresource (`status`, `scale`, ...), if any.
    pub subresource: Option<&'a str>,
    /// Namespace of a namespaced resource.
    pub namespace: Option<&'a str>,
    /// Name used in error messages: the object's name, or on a create with
    /// `generateName` the prefix (as upstream, where admission runs before
    /// the name is generated).
    pub name: &'a str,
    /// The operation.
    pub operation: Operation,
    /// The requesting user for requests that came through the API; `None`
    /// for writes by in-process controllers (see [`with_user`]).
    pub user: Option<Arc<UserInfo>>,
    /// Whether the request came from an in-process client of this server
    /// (the syncer; see [`in_process`]): unlike [`Attributes::user`], no
    /// certificate or impersonation header can make a request so.
    pub in_process: bool,
    /// `dryRun=All`: plugins must not cause side effects.
    pub dry_run: bool,
    /// `Warning` header texts plugins add with [`Attributes::warn`].
    warnings: Arc<Mutex<Vec<String>>>,
    /// The request's namespace as first read by a plugin (shared by the
    /// plugins of one write, see [`get_namespace`]).
    namespace_object: Arc<tokio::sync::OnceCell<Option<Value>>>,
}

impl Attributes<'_> {
    /// The VirtualCluster behind the cluster, carrying its policy; `None`
    /// for the root cluster (no policy: everything allowed).
    pub fn placement(&self) -> Option<Arc<Placement>> {
        self.cluster.as_ref().and_then(|c| c.placement())
    }

    /// The cluster's VirtualCluster spec, if it has a policy.
    pub fn policy(&self) -> Option<VirtualClusterSpec> {
        self.placement().map(|p| p.spec.clone())
    }

    /// Whether the cluster is the root cluster (served without a policy).
    pub fn is_root(&self) -> bool {
        self.path == nestkube_api::request::ROOT_CLUSTER
    }

    /// Whether the request is for `group`/`resource` itself (no subresource).
    pub fn is(&self, group: &str, resource: &str) -> bool {
        self.subresource.is_none()
            && self.resource.group == group
            && self.resource.resource == resource
    }

    /// Whether the request writes a pod (not one of its subresources).
    pub fn is_pod(&self) -> bool {
        self.is("", "pods")
    }

    /// A store target in the same cluster for another resource.
    pub fn target<'b>(
        &'b self,
        resource: &'b ResourceInfo,
        namespace: Option<&'b str>,
    ) -> Target<'b> {
        Target {
            cluster: self.path,
            resource,
            namespace,
        }
    }

    /// Adds a `Warning` header text to the response (upstream's
    /// `warning.AddWarning`), e.g. a workload template Pod Security would refuse.
    pub fn warn(&self, text: impl Into<String>) {
        let text = text.into();
        if let Ok(mut w) = self.warnings.lock()
            && !w.contains(&text)
        {
            w.push(text);
        }
    }

    /// The warnings added so far (the store puts them in its response).
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// Upstream's `admission.NewForbidden`: 403 with the message
    /// `<resource>[.<group>] "<name>" is forbidden: <why>`.
    pub fn forbidden(&self, why: impl std::fmt::Display) -> ApiError {
        ApiError::Forbidden(format!(
            "{} \"{}\" is forbidden: {why}",
            self.resource.qualified_resource(),
            self.name
        ))
    }
}

/// One admission plugin. Both phases default to "nothing to do", so a plugin
/// implements only what it needs.
#[async_trait]
pub trait Plugin: Send + Sync {
    /// The plugin's name, as upstream's (`PodSecurity`, `ServiceAccount`, ...).
    fn name(&self) -> &'static str;

    /// Mutating phase: may change `obj` (never `old`). Runs after defaulting.
    async fn mutate(
        &self,
        _attrs: &Attributes<'_>,
        _obj: &mut Value,
        _old: Option<&Value>,
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Validating phase: accepts or refuses the final object. Runs after the
    /// strategy's validation, before the write.
    async fn validate(
        &self,
        _attrs: &Attributes<'_>,
        _obj: &Value,
        _old: Option<&Value>,
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Tunables of the admission chain.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// Most levels of a cluster path (`team-a:dev` has 2; `root` counts as
    /// level 0): a VirtualCluster whose cluster would be deeper is refused.
    pub max_nesting_depth: usize,
}

impl AdmissionConfig {
    /// Default nesting depth.
    pub const DEFAULT_MAX_NESTING_DEPTH: usize = 4;
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_nesting_depth: Self::DEFAULT_MAX_NESTING_DEPTH,
        }
    }
}

/// The placements of the clusters above `path` (nearest first), skipping
/// those without one (`root`, a cluster no VirtualCluster created).
pub(crate) fn ancestor_placements(clusters: &Clusters, path: &str) -> Vec<Arc<Placement>> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some((parent, _)) = rest.rsplit_once(':') {
        if let Some(p) = clusters.get(parent).and_then(|c| c.placement()) {
            out.push(p);
        }
        rest = parent;
    }
    out
}

/// The ordered chain of admission plugins, shared by all clusters.
pub struct Admission {
    clusters: Arc<Clusters>,
    plugins: Vec<Box<dyn Plugin>>,
    webhooks: Arc<webhook::Webhooks>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Admission {
    /// The default chain with the default configuration.
    pub fn new(clusters: Arc<Clusters>, catalog: &Arc<Catalog>) -> Self {
        Self::with_config(clusters, catalog, AdmissionConfig::default())
    }

    /// The default chain, in upstream's order where a plugin has an
    /// upstream counterpart (ServiceAccount before PodSecurity, quota last).
    pub fn with_config(
        clusters: Arc<Clusters>,
        catalog: &Arc<Catalog>,
        config: AdmissionConfig,
    ) -> Self {
        let webhooks = webhook::Webhooks::new(catalog);
        // Upstream's order where it applies: LimitRanger belongs before
        // ServiceAccount, ResourceQuota last.
        let plugins: Vec<Box<dyn Plugin>> = vec![
            Box::new(limitranger::LimitRanger::new(catalog)),
            Box::new(serviceaccount::ServiceAccount::new(catalog)),
            Box::new(runtimeclass::RuntimeClassPolicy::new(catalog)),
            Box::new(virtualcluster::VirtualClusterPolicy::new(&config)),
            // Pod Security first: at baseline and above it refuses in
            // upstream's words what the host-escape guard would too.
            Box::new(podsecurity::PodSecurity::new(catalog)),
            Box::new(hostescape::HostEscape),
            Box::new(mirrored::Mirrored),
            Box::new(expressions::AdmissionExpressions),
            // Upstream's order: MutatingAdmissionPolicy, the mutating
            // webhooks (mutating phase); ValidatingAdmissionPolicy, the
            // validating webhooks (validating phase); ResourceQuota last.
            Box::new(policy::mutating::MutatingAdmissionPolicy::new(catalog)),
            webhooks.mutating(),
            Box::new(policy::ValidatingAdmissionPolicy::new(catalog)),
            webhooks.validating(),
            Box::new(resourcequota::ResourceQuota::new(catalog)),
        ];
        Self {
            clusters,
            plugins,
            webhooks,
        }
    }

    /// A chain of exactly `plugins` (for tests and custom wiring).
    pub fn from_plugins(
        clusters: Arc<Clusters>,
        catalog: &Arc<Catalog>,
        plugins: Vec<Box<dyn Plugin>>,
    ) -> Self {
        Self {
            clusters,
            plugins,
            webhooks: webhook::Webhooks::new(catalog),
        }
    }

    /// The admission webhooks' shared state (to register who reaches
    /// Services: [`webhook::Webhooks::set_service_reach`]).
    pub fn webhooks(&self) -> &Arc<webhook::Webhooks> {
        &self.webhooks
    }

    /// The converter calling the conversion webhooks of custom resources
    /// (for [`crate::registry::store::Store::with_converter`]); it shares
    /// the admission webhooks' transport and per-cluster bound on calls.
    pub fn converter(&self) -> Arc<dyn crate::registry::conversion_hook::Converter> {
        Arc::new(webhook::conversion::WebhookConverter::new(
            self.webhooks.clone(),
            self.clusters.clone(),
        ))
    }

    /// This chain with `plugin` appended (its mutating phase runs after
    /// every other plugin's, e.g. [`rbac_escalation::RbacEscalation`]).
    pub fn with_plugin(mut self, plugin: Box<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// The plugins' names, in order.
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// The cluster at `path`, if served.
    pub fn cluster(&self, path: &str) -> Option<Arc<Cluster>> {
        self.clusters.get(path)
    }

    /// Builds the attributes of a write (the current request's user is
    /// taken from [`with_user`]).
    pub fn attributes<'a>(&self, request: AdmissionRequest<'a>) -> Attributes<'a> {
        let AdmissionRequest {
            target: t,
            name,
            subresource,
            operation,
            dry_run,
        } = request;
        Attributes {
            path: t.cluster,
            cluster: self.clusters.get(t.cluster),
            ancestors: ancestor_placements(&self.clusters, t.cluster),
            resource: t.resource,
            subresource,
            namespace: t.namespace.filter(|_| t.resource.namespaced),
            name,
            operation,
            user: current_user(),
            in_process: is_in_process(),
            dry_run,
            warnings: Arc::default(),
            namespace_object: Arc::default(),
        }
    }

    /// Runs every plugin's mutating phase, in order.
    pub async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        for p in &self.plugins {
            p.mutate(attrs, obj, old, store).await?;
        }
        Ok(())
    }

    /// Runs every plugin's validating phase, in order; the first refusal wins.
    pub async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        for p in &self.plugins {
            p.validate(attrs, obj, old, store).await?;
        }
        Ok(())
    }
}

impl AdmissionHook for Admission {
    fn begin<'a>(&'a self, request: AdmissionRequest<'a>) -> Box<dyn AdmittedWrite + 'a> {
        Box::new(Admitted {
            chain: self,
            attrs: self.attributes(request),
        })
    }
}

/// One write going through the chain: its attributes, built once, shared by
/// both phases (and the warnings they collect).
struct Admitted<'a> {
    chain: &'a Admission,
    attrs: Attributes<'a>,
}

#[async_trait]
impl AdmittedWrite for Admitted<'_> {
    async fn mutate(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        self.chain.mutate(&self.attrs, obj, old, store).await
    }

    async fn validate(
        &self,
        obj: &Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        self.chain.validate(&self.attrs, obj, old, store).await
    }

    fn take_warnings(&self) -> Vec<String> {
        self.attrs.take_warnings()
    }
}

tokio::task_local! {
    static REQUEST_USER: Arc<UserInfo>;
}

/// Runs `fut` with `user` as the requesting user seen by admission
/// ([`Attributes::user`]). The HTTP handler wraps each request in it; writes
/// made outside (by in-process controllers) have no user.
pub async fn with_user<F: std::future::Future>(user: Arc<UserInfo>, fut: F) -> F::Output {
    REQUEST_USER.scope(user, fut).await
}

/// The user of the request being served on this task, if any.
pub fn current_user() -> Option<Arc<UserInfo>> {
    REQUEST_USER.try_with(|u| u.clone()).ok()
}

tokio::task_local! {
    static IN_PROCESS: ();
}

/// Runs `fut` (a request of an in-process client, see
/// [`crate::server::inprocess`]) marked as in-process for admission
/// ([`Attributes::in_process`]). Only this process's own code can call it:
/// nothing a remote client sends sets the mark.
pub async fn in_process<F: std::future::Future>(fut: F) -> F::Output {
    IN_PROCESS.scope((), fut).await
}

/// Whether the request being served on this task came from an in-process client.
pub fn is_in_process() -> bool {
    IN_PROCESS.try_with(|_| ()).is_ok()
}

/// The namespace `ns` of the cluster being written to, if it exists; the
/// request's own namespace is read once per write, whichever plugin asks.
pub(crate) async fn get_namespace(
    store: &ReadOnlyStore<'_>,
    attrs: &Attributes<'_>,
    namespaces: &ResourceInfo,
    ns: &str,
) -> Result<Option<Value>, ApiError> {
    let read = || async {
        match store.get(&attrs.target(namespaces, None), ns).await {
            Ok(obj) => Ok(Some(obj)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    };
    if attrs.namespace == Some(ns) {
        attrs.namespace_object.get_or_try_init(read).await.cloned()
    } else {
        read().await
    }
}

/// A comma-separated list of names (`a, b`), for messages.
pub(crate) fn join(names: &[String]) -> String {
    names.join(", ")
}

/// Splits a comma-separated list (annotations), dropping blanks.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
