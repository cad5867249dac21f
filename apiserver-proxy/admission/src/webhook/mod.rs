//! Admission webhooks: each cluster's `MutatingWebhookConfiguration`s and
//! `ValidatingWebhookConfiguration`s called for that cluster's requests, as
//! upstream's `MutatingAdmissionWebhook` and `ValidatingAdmissionWebhook`
//! plugins (`k8s.io/apiserver/pkg/admission/plugin/webhook`).
//!
//! - **Which webhooks**: the configurations stored in the cluster written
//!   to, read per write (an empty cluster pays one empty prefix scan),
//!   ordered by configuration name, webhooks in their order; matched by
//!   [`crate::matching`] (rules, `matchPolicy`, namespace and object
//!   selectors). The admission configuration resources themselves are never
//!   sent to a webhook.
//! - **Mutating** webhooks are called one after another in the mutating
//!   phase; a `JSONPatch` answer is applied to the object, and a webhook
//!   with `reinvocationPolicy: IfNeeded` is called once more when a later
//!   webhook changed the object. **Validating** webhooks are called
//!   together in the validating phase; the first refusal (in order) wins.
//! - **Failures** (unreachable, timeout after `timeoutSeconds`, a bad
//!   answer) refuse the request with upstream's 500 under
//!   `failurePolicy: Fail` and are ignored under `Ignore`; a webhook's
//!   refusal is its own `Status`, prefixed as upstream's; `warnings` become
//!   `Warning` headers; a webhook with side effects refuses a dry run.
//! - **Tenancy**: a cluster's webhooks are called only for its own requests,
//!   with at most [`MAX_CALLS_PER_CLUSTER`] calls in flight per cluster, and
//!   reach only what [`transport`] lets that cluster reach. No lock is held
//!   while a webhook is called.
//!
//! `CONNECT` (`pods/exec`, `attach`, `portforward`, `proxy`) is admitted
//! with the request's options as the object ([`Operation::Connect`]).
//!
//! `matchConditions` are evaluated in the admission CEL environment
//! ([`crate::cel`], compiled once per distinct expression per process); an
//! error is a failed call under the webhook's `failurePolicy`.
//!
//! A webhook matching another version of a custom resource whose CRD
//! converts by webhook is sent the objects converted to that version (and
//! a mutating webhook's patch is converted back), as upstream.
//!
//! Not yet: built-in resources are matched only in the request's own
//! version.

pub mod config;
pub mod conversion;
pub mod pool;
pub mod review;
pub mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Semaphore;

use self::config::{Endpoint, FailurePolicy, Kind, Webhook};
use self::transport::Transport;
use crate::cel::matchconditions::{MatchConditions, MatchResult};
use crate::cel::{self, Activation, Env};
use crate::error::ApiError;
use crate::matching;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::store::ListOptions;
use crate::{Attributes, Operation, Plugin};

/// Most webhook calls of one cluster in flight at once: a slow webhook
/// queues only its own tenant's requests.
pub const MAX_CALLS_PER_CLUSTER: usize = 32;
/// Size of the in-flight map above which idle clusters are forgotten.
const PRUNE_IN_FLIGHT_ABOVE: usize = 1024;

/// What both webhook plugins share: the catalog, the transport, and the
/// per-cluster bounds on calls in flight.
pub struct Webhooks {
    catalog: Arc<Catalog>,
    transport: Transport,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhooks")
    }
}

/// One webhook that applies to a request, with the version of the resource
/// it is sent.
struct Invocation {
    hook: Webhook,
    /// `None`: the request's own.
    version: Option<Arc<ResourceInfo>>,
}

impl Webhooks {
    /// The shared state of both plugins.
    pub fn new(catalog: &Arc<Catalog>) -> Arc<Self> {
        Arc::new(Self {
            catalog: catalog.clone(),
            transport: Transport::default(),
            in_flight: Mutex::default(),
        })
    }

    /// Registers who reaches Services of virtual clusters in their parents.
    pub fn set_service_reach(&self, reach: Arc<dyn transport::ServiceReach>) {
        self.transport.set_service_reach(reach);
    }

    /// The plugin calling mutating webhooks.
    pub fn mutating(self: &Arc<Self>) -> Box<dyn Plugin> {
        Box::new(MutatingWebhooks(self.clone()))
    }

    /// The plugin calling validating webhooks.
    pub fn validating(self: &Arc<Self>) -> Box<dyn Plugin> {
        Box::new(ValidatingWebhooks(self.clone()))
    }

    fn semaphore(&self, cluster: &str) -> Arc<Semaphore> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        // Forget the clusters with no call in flight (nobody else holds
        // their semaphore), so the map stays as large as the clusters
        // calling webhooks now, not every cluster that ever did.
        if map.len() >= PRUNE_IN_FLIGHT_ABOVE && !map.contains_key(cluster) {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(cluster.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_CALLS_PER_CLUSTER)))
            .clone()
    }

    /// The webhooks of `kind` that apply to this request, in order.
    async fn relevant(
        &self,
        kind: Kind,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<Vec<Invocation>, ApiError> {
        if matching::is_exempt(&attrs.resource.group, &attrs.resource.resource) {
            return Ok(Vec::new());
        }
        let Some(configs) = self
            .catalog
            .get("admissionregistration.k8s.io", "v1", kind.resource())
        else {
            return Ok(Vec::new());
        };
        let mut stored = store
            .list(&attrs.target(configs, None), &ListOptions::default())
            .await?
            .items;
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        stored.sort_by(|a, b| {
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str())
        });
        let versions = self
            .catalog
            .resolve(
                attrs.path,
                &attrs.resource.group,
                &attrs.resource.version,
                &attrs.resource.resource,
            )
            .map(|r| matching::equivalents(&self.catalog, attrs.path, &r));
        let namespaces = self.catalog.get("", "v1", "namespaces");
        let mut out = Vec::new();
        for hook in stored.iter().flat_map(config::webhooks_of) {
            let version = match &versions {
                Some(v) => {
                    match matching::matched_version(&hook.rules, hook.match_policy, attrs, v) {
                        Some(v) => Some(v),
                        None => continue,
                    }
                }
                None => {
                    let own = matching::RuleRequest::of(attrs, attrs.resource);
                    if !hook.rules.iter().any(|r| r.matches(&own)) {
                        continue;
                    }
                    None
                }
            };
            if let Some(ns) = namespaces
                && !matching::namespace_selector_matches(
                    &hook.namespace_selector,
                    attrs,
                    obj,
                    store,
                    ns,
                )
                .await?
            {
                continue;
            }
            if !matching::object_selector_matches(&hook.object_selector, obj, old)? {
                continue;
            }
            if !hook.match_conditions.is_empty() {
                let r = version.as_deref().unwrap_or(attrs.resource);
                let request = cel::request_json(
                    attrs,
                    (&r.group, &r.version, &r.kind),
                    (&r.group, &r.version, &r.resource),
                );
                let conditions = MatchConditions::from_json(
                    &Value::Array(hook.match_conditions.clone()),
                    &Env::match_conditions(),
                );
                match conditions.matches(&Activation::new(obj, old, &request)) {
                    MatchResult::Matches => {}
                    MatchResult::NoMatch(_) => continue,
                    MatchResult::Error(why) => {
                        let failed = CallError::Calling(format!(
                            "failed to evaluate match conditions: {why}"
                        ));
                        match failed.into_error(&hook) {
                            Some(e) => return Err(e),
                            None => continue,
                        }
                    }
                }
            }
            out.push(Invocation { hook, version });
        }
        Ok(out)
    }

    /// Refuses a tenant's webhook configuration naming a `url` its cluster
    /// may not call (upstream has no such rule: on a shared host a `url`
    /// webhook is a way to make the control plane send requests).
    /// A CRD's conversion webhook is held to the same rule.
    async fn check_urls(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        let is_config = [Kind::Mutating, Kind::Validating]
            .iter()
            .any(|k| attrs.is("admissionregistration.k8s.io", k.resource()));
        let urls: Vec<(String, &str)> = if is_config {
            obj["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, w)| {
                    let url = w["clientConfig"]["url"].as_str()?;
                    Some((format!("webhooks[{i}].clientConfig.url"), url))
                })
                .collect()
        } else if attrs.is("apiextensions.k8s.io", "customresourcedefinitions") {
            obj["spec"]["conversion"]["webhook"]["clientConfig"]["url"]
                .as_str()
                .map(|url| ("spec.conversion.webhook.clientConfig.url".to_string(), url))
                .into_iter()
                .collect()
        } else {
            return Ok(());
        };
        let placements = placements(attrs);
        for (field, url) in urls {
            if let Some(why) = self
                .transport
                .refused_url(attrs.path, &placements, url)
                .await
            {
                return Err(attrs.forbidden(format!(
                    "{field}: {why} (a virtual cluster's url webhooks may reach only its VirtualCluster's spec.network.allowedCIDRs)"
                )));
            }
        }
        Ok(())
    }

    /// `obj` and `old` in the version `inv` matched
    /// ([`matching::converted_to`]).
    async fn converted(
        &self,
        attrs: &Attributes<'_>,
        inv: &Invocation,
        obj: Option<&Value>,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<Option<(Option<Value>, Option<Value>)>, ApiError> {
        match inv.version.as_deref() {
            Some(version) => matching::converted_to(attrs, version, obj, old, store).await,
            None => Ok(None),
        }
    }

    /// Converts a patched object back to the request's version.
    async fn convert_back(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let t = crate::registry::store::Target {
            cluster: attrs.path,
            resource: attrs.resource,
            namespace: attrs.namespace,
        };
        store
            .convert(&t, std::slice::from_mut(obj), &attrs.resource.api_version())
            .await
            .map_err(|e| ApiError::Internal(e.0))
    }

    /// POSTs `body` to a webhook of `cluster` (admission or conversion):
    /// within `timeout` (sent as `?timeout=`, as upstream), counted against
    /// the cluster's calls in flight, reaching only what `placements` (the
    /// cluster's VirtualCluster and those above it) allow. The error is
    /// worded as Go's client: `Post "<url>?timeout=<n>s": <why>`.
    pub(crate) async fn post(
        &self,
        cluster: &str,
        placements: &[Arc<crate::tenancy::Placement>],
        endpoint: &Endpoint,
        ca_bundle: Option<&[u8]>,
        timeout: std::time::Duration,
        body: Bytes,
    ) -> Result<Bytes, String> {
        let query = format!("timeout={}s", timeout.as_secs());
        let url = match endpoint {
            Endpoint::Url(u) => u.clone(),
            Endpoint::Service(s) => format!("https://{}:{}{}", s.server_name(), s.port, s.path),
        };
        let semaphore = self.semaphore(cluster);
        transport::with_timeout(timeout, async {
            let _permit = semaphore.acquire().await.map_err(|e| e.to_string())?;
            match endpoint {
                Endpoint::Url(u) => {
                    self.transport
                        .post_url(cluster, placements, u, &query, ca_bundle, body)
                        .await
                }
                Endpoint::Service(s) => {
                    self.transport
                        .post_service(cluster, s, &query, ca_bundle, body)
                        .await
                }
            }
        })
        .await
        .map_err(|why| format!("Post \"{url}?{query}\": {why}"))
    }

    /// Calls one webhook and verifies its answer.
    async fn call(
        &self,
        attrs: &Attributes<'_>,
        inv: &Invocation,
        mutating: bool,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<review::Verdict, CallError> {
        let hook = &inv.hook;
        if attrs.dry_run {
            if hook.side_effects.is_empty() {
                return Err(CallError::Calling("Webhook SideEffects is nil".into()));
            }
            if !hook.dry_run_safe() {
                return Err(CallError::Refused(ApiError::BadRequest(format!(
                    "admission webhook \"{}\" does not support dry run",
                    hook.name
                ))));
            }
        }
        let version = inv.version.as_deref().unwrap_or(attrs.resource);
        let review = review::request(attrs, version, obj, old);
        let body = Bytes::from(serde_json::to_vec(&review.body).unwrap_or_default());
        let answer = self
            .post(
                attrs.path,
                &placements(attrs),
                &hook.endpoint,
                hook.ca_bundle.as_deref(),
                hook.timeout,
                body,
            )
            .await
            .map_err(|why| CallError::Calling(format!("failed to call webhook: {why}")))?;
        let verdict = review::verify(&review.uid, mutating, &answer).map_err(CallError::Calling)?;
        for w in &verdict.warnings {
            attrs.warn(w.clone());
        }
        if !verdict.allowed {
            return Err(CallError::Refused(ApiError::Status(Box::new(
                review::denial(&hook.name, verdict.status.as_ref()),
            ))));
        }
        Ok(verdict)
    }
}

/// Why a call did not allow the request.
enum CallError {
    /// The webhook could not be called or answered badly (subject to
    /// `failurePolicy`).
    Calling(String),
    /// The webhook (or the dry-run rule) refused the request.
    Refused(ApiError),
}

impl CallError {
    /// The request's error, or `None` when the failure is ignored.
    fn into_error(self, hook: &Webhook) -> Option<ApiError> {
        match self {
            Self::Calling(why) => {
                tracing::warn!(webhook = %hook.name, error = %why, "failed calling webhook");
                (hook.failure_policy == FailurePolicy::Fail).then(|| {
                    ApiError::Internal(format!("failed calling webhook \"{}\": {why}", hook.name))
                })
            }
            Self::Refused(e) => Some(e),
        }
    }
}

/// The VirtualClusters bounding what the cluster written to may reach: its
/// own, then those above it (none for the root cluster).
fn placements(attrs: &Attributes<'_>) -> Vec<Arc<crate::tenancy::Placement>> {
    let mut out: Vec<_> = attrs.placement().into_iter().collect();
    out.extend(attrs.ancestors.iter().cloned());
    out
}

/// The objects a webhook sees for the operation: on delete, the object
/// being deleted is the old object.
fn objects<'v>(
    attrs: &Attributes<'_>,
    obj: &'v Value,
    old: Option<&'v Value>,
) -> (Option<&'v Value>, Option<&'v Value>) {
    match attrs.operation {
        Operation::Delete => (None, Some(obj)),
        _ => (Some(obj), old),
    }
}

/// `MutatingAdmissionWebhook`.
struct MutatingWebhooks(Arc<Webhooks>);

#[async_trait]
impl Plugin for MutatingWebhooks {
    fn name(&self) -> &'static str {
        "MutatingAdmissionWebhook"
    }

    async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if attrs.operation == Operation::Delete {
            return Ok(());
        }
        let hooks = self
            .0
            .relevant(Kind::Mutating, attrs, Some(obj), old, store)
            .await?;
        // For reinvocation: the index of the last webhook that changed the object.
        let mut last_change: Option<usize> = None;
        for (i, inv) in hooks.iter().enumerate() {
            if self.invoke(attrs, inv, obj, old, store).await? {
                last_change = Some(i);
            }
        }
        // Upstream's reinvocation: once, for webhooks asking for it that ran
        // before the last change.
        if let Some(last) = last_change {
            for inv in hooks[..last].iter().filter(|i| i.hook.reinvoke_if_needed) {
                self.invoke(attrs, inv, obj, old, store).await?;
            }
        }
        Ok(())
    }
}

impl MutatingWebhooks {
    /// Calls one mutating webhook and applies its patch; whether the object
    /// changed.
    /// A webhook that matched another version of a custom resource
    /// converted by webhook is sent the object in that version, and its
    /// patch applies there; the result is converted back, as upstream.
    async fn invoke(
        &self,
        attrs: &Attributes<'_>,
        inv: &Invocation,
        obj: &mut Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<bool, ApiError> {
        let converted = self.0.converted(attrs, inv, Some(obj), old, store).await?;
        let (sent, sent_old) = match &converted {
            Some((o, p)) => (o.clone().unwrap_or_default(), p.as_ref()),
            None => (obj.clone(), old),
        };
        let verdict = match self.0.call(attrs, inv, true, Some(&sent), sent_old).await {
            Ok(v) => v,
            Err(e) => return e.into_error(&inv.hook).map_or(Ok(false), Err),
        };
        let Some(patch) = verdict.patch else {
            return Ok(false);
        };
        let mut patched = nestkube_patch::rfc6902::apply(&sent, &patch)
            .ok()
            .filter(Value::is_object);
        if converted.is_some()
            && let Some(p) = &mut patched
        {
            self.0.convert_back(attrs, p, store).await?;
        }
        match patched {
            Some(p) if p != *obj => {
                *obj = p;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => CallError::Calling("the webhook's JSON patch could not be applied".into())
                .into_error(&inv.hook)
                .map_or(Ok(false), Err),
        }
    }
}

/// `ValidatingAdmissionWebhook`.
struct ValidatingWebhooks(Arc<Webhooks>);

#[async_trait]
impl Plugin for ValidatingWebhooks {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionWebhook"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if attrs.operation != Operation::Delete {
            self.0.check_urls(attrs, obj).await?;
        }
        let (obj, old) = objects(attrs, obj, old);
        let hooks = self
            .0
            .relevant(Kind::Validating, attrs, obj, old, store)
            .await?;
        if hooks.is_empty() {
            return Ok(());
        }
        // Objects in the version each webhook matched (converted before
        // any call: the calls run together).
        let mut inputs = Vec::with_capacity(hooks.len());
        for inv in &hooks {
            inputs.push(self.0.converted(attrs, inv, obj, old, store).await?);
        }
        let results = futures::future::join_all(hooks.iter().zip(&inputs).map(|(inv, input)| {
            let (obj, old) = match input {
                Some((o, p)) => (o.as_ref(), p.as_ref()),
                None => (obj, old),
            };
            self.0.call(attrs, inv, false, obj, old)
        }))
        .await;
        for (inv, r) in hooks.iter().zip(results) {
            if let Err(e) = r
                && let Some(err) = e.into_error(&inv.hook)
            {
                return Err(err);
            }
        }
        Ok(())
    }
}
