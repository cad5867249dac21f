//! ValidatingAdmissionPolicy (upstream's
//! `k8s.io/apiserver/pkg/admission/plugin/policy/validating`): the
//! `ValidatingAdmissionPolicy` admission plugin, enforcing each cluster's own
//! `validatingadmissionpolicies` through their
//! `validatingadmissionpolicybindings`.
//!
//! Per write, the plugin lists the cluster's policies through the write's
//! [`ReadOnlyStore`] (a cluster with none pays one empty prefix scan), and
//! only then its bindings. Policies and bindings are read from the cluster
//! written to, never from another: a nested cluster has its own. Expressions
//! are compiled once per process ([`crate::cel::compile`]).
//!
//! As upstream: `matchConstraints` and a binding's `matchResources`
//! (`resourceRules` with `resourceNames`, `excludeResourceRules`,
//! `namespaceSelector`, `objectSelector`, `matchPolicy`), `matchConditions`,
//! `paramKind`/`paramRef` (by name or selector, namespaced or not, with
//! `parameterNotFoundAction`; params may be custom resources of the same
//! cluster), `variables`, `validations` (`message`, `messageExpression`,
//! `reason` as the status code), `validationActions` `Deny`/`Warn`/`Audit`
//! and `failurePolicy`, with upstream's messages. `auditAnnotations` are
//! evaluated (an error under `failurePolicy: Fail` denies, as upstream) but
//! published nowhere: there is no audit log; neither is `Audit` recorded.
//!
//! Differences: type checking against the matched kinds' schemas
//! (`status.typeChecking`) is not done, and expressions are not type-checked
//! at compile time (a non-bool validation fails when evaluated); the
//! `authorizer` variable is not offered.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::cel::matchconditions::{MatchConditions, MatchResult};
use crate::cel::{self, Activation, Env, EvalError, Evaluation, Limits, Variable};
use crate::error::ApiError;
use crate::matching::{self, MatchPolicy, Rule};
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::store::ListOptions;
use crate::{Attributes, Operation, Plugin};

pub mod mutating;

const GROUP: &str = "admissionregistration.k8s.io";

/// The `ValidatingAdmissionPolicy` plugin.
pub struct ValidatingAdmissionPolicy {
    policies: Option<Arc<ResourceInfo>>,
    bindings: Option<Arc<ResourceInfo>>,
    shared: Shared,
}

/// What the validating and mutating policies share: matching, params and
/// the namespace object, read in the request's own cluster.
struct Shared {
    namespaces: Option<Arc<ResourceInfo>>,
    catalog: Arc<Catalog>,
}

impl Shared {
    fn new(catalog: &Arc<Catalog>) -> Self {
        Self {
            namespaces: catalog.get("", "v1", "namespaces").cloned(),
            catalog: catalog.clone(),
        }
    }
}

impl ValidatingAdmissionPolicy {
    /// The plugin for `catalog`'s resources.
    pub fn new(catalog: &Arc<Catalog>) -> Self {
        Self {
            policies: catalog
                .get(GROUP, "v1", "validatingadmissionpolicies")
                .cloned(),
            bindings: catalog
                .get(GROUP, "v1", "validatingadmissionpolicybindings")
                .cloned(),
            shared: Shared::new(catalog),
        }
    }
}

/// A decision that refuses, with what upstream reports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Denial {
    policy: String,
    binding: Option<String>,
    message: String,
    reason: String,
}

/// Upstream's `reasonToCode`.
fn reason_code(reason: &str) -> (u16, &'static str) {
    match reason {
        "Forbidden" => (403, "Forbidden"),
        "Unauthorized" => (401, "Unauthorized"),
        "RequestEntityTooLarge" => (413, "RequestEntityTooLarge"),
        _ => (422, "Invalid"),
    }
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

/// A cluster's policies of one kind that have bindings, in name order, each
/// with its bindings in name order (upstream evaluates in this order), or
/// nothing when the cluster has no policy or no binding.
async fn bound_policies(
    attrs: &Attributes<'_>,
    store: &ReadOnlyStore<'_>,
    policies: &ResourceInfo,
    bindings: &ResourceInfo,
) -> Result<Vec<(Value, Vec<Value>)>, ApiError> {
    let mut policies = store
        .list(&attrs.target(policies, None), &ListOptions::default())
        .await?
        .items;
    if policies.is_empty() {
        return Ok(Vec::new());
    }
    let bindings = store
        .list(&attrs.target(bindings, None), &ListOptions::default())
        .await?
        .items;
    if bindings.is_empty() {
        return Ok(Vec::new());
    }
    policies.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    let mut bound = Vec::new();
    for policy in policies {
        let name = name_of(&policy);
        let mut own: Vec<Value> = bindings
            .iter()
            .filter(|b| b["spec"]["policyName"].as_str() == Some(name))
            .cloned()
            .collect();
        if own.is_empty() {
            continue;
        }
        own.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        bound.push((policy, own));
    }
    Ok(bound)
}

/// `matchConstraints` or a binding's `matchResources`.
struct Constraints<'v> {
    raw: &'v Value,
    rules: Vec<Rule>,
    excluded: Vec<Rule>,
    policy: MatchPolicy,
}

impl<'v> Constraints<'v> {
    fn read(raw: &'v Value) -> Self {
        Self {
            raw,
            rules: Rule::list(&raw["resourceRules"]),
            excluded: Rule::list(&raw["excludeResourceRules"]),
            policy: MatchPolicy::from_json(&raw["matchPolicy"]),
        }
    }
}

/// One write as the policies see it.
struct Request<'r> {
    attrs: &'r Attributes<'r>,
    /// `object` (none on a delete).
    object: Option<&'r Value>,
    /// `oldObject` (none on a create).
    old: Option<&'r Value>,
    store: &'r ReadOnlyStore<'r>,
    versions: Vec<Arc<ResourceInfo>>,
}

impl Shared {
    /// Upstream's `Matcher.Matches`: selectors, then exclusions, then rules.
    /// `Some(version matched)` when the constraints match; with
    /// `rules_optional`, no `resourceRules` means every resource (a binding).
    async fn matches(
        &self,
        c: &Constraints<'_>,
        r: &Request<'_>,
        rules_optional: bool,
    ) -> Result<Option<Arc<ResourceInfo>>, ApiError> {
        let attrs = r.attrs;
        let selector_obj = r.object.or(r.old);
        if let Some(ns) = &self.namespaces
            && !matching::namespace_selector_matches(
                &c.raw["namespaceSelector"],
                attrs,
                selector_obj,
                r.store,
                ns,
            )
            .await?
        {
            return Ok(None);
        }
        if !matching::object_selector_matches(&c.raw["objectSelector"], r.object, r.old)? {
            return Ok(None);
        }
        let named = |rules: &[Rule]| -> Vec<Rule> {
            rules
                .iter()
                .filter(|rule| rule.matches_name(attrs.name))
                .cloned()
                .collect()
        };
        if matching::matched_version(&named(&c.excluded), c.policy, attrs, &r.versions).is_some() {
            return Ok(None);
        }
        if rules_optional && c.rules.is_empty() {
            return Ok(Some(attrs_resource(r)));
        }
        Ok(matching::matched_version(
            &named(&c.rules),
            c.policy,
            attrs,
            &r.versions,
        ))
    }

    /// Upstream's `CollectParams`: the params to evaluate a binding with
    /// (`[None]` without a paramKind or paramRef; empty when none is found
    /// and the binding allows that).
    async fn params(
        &self,
        policy: &Value,
        binding: &Value,
        r: &Request<'_>,
    ) -> Result<Vec<Option<Value>>, String> {
        let kind = &policy["spec"]["paramKind"];
        let param_ref = &binding["spec"]["paramRef"];
        if !kind.is_object() || !param_ref.is_object() {
            return Ok(vec![None]);
        }
        let api_version = kind["apiVersion"].as_str().unwrap_or("");
        let kind_name = kind["kind"].as_str().unwrap_or("");
        let info = self
            .param_resource(r.attrs.path, api_version, kind_name)
            .ok_or_else(|| format!("paramKind kind `{api_version}, Kind={kind_name}` not known"))?;
        let ref_ns = param_ref["namespace"].as_str().unwrap_or("");
        let namespace = if info.namespaced {
            let ns = if ref_ns.is_empty() {
                r.attrs.namespace.unwrap_or("")
            } else {
                ref_ns
            };
            if ns.is_empty() {
                return Err("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources".into());
            }
            Some(ns)
        } else {
            if !ref_ns.is_empty() {
                return Err(
                    "paramRef.namespace must not be provided for a cluster-scoped `paramKind`"
                        .into(),
                );
            }
            None
        };
        let target = r.attrs.target(&info, namespace);
        let with_type = |mut p: Value| {
            if p.get("kind")
                .is_none_or(|k| k.as_str().is_none_or(str::is_empty))
            {
                p["apiVersion"] = api_version.into();
                p["kind"] = kind_name.into();
            }
            Some(p)
        };
        let mut params = Vec::new();
        if let Some(name) = param_ref["name"].as_str().filter(|n| !n.is_empty()) {
            match r.store.get(&target, name).await {
                Ok(p) => params.push(with_type(p)),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        } else if param_ref["selector"].is_object() {
            let sel = nestkube_api::pod::selector(&param_ref["selector"])
                .ok_or_else(|| "invalid paramRef.selector".to_string())?;
            let list = r
                .store
                .list(&target, &ListOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            params.extend(
                list.items
                    .into_iter()
                    .filter(|p| sel.matches(&matching::labels_of(p)))
                    .map(with_type),
            );
        } else {
            return Err("one of name or selector must be provided".into());
        }
        if params.is_empty() && param_ref["parameterNotFoundAction"].as_str() == Some("Deny") {
            return Err(
                "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
            );
        }
        Ok(params)
    }

    fn param_resource(
        &self,
        cluster: &str,
        api_version: &str,
        kind: &str,
    ) -> Option<Arc<ResourceInfo>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let preferred = self.catalog.by_kind_in(cluster, group, kind)?;
        if preferred.version == version {
            return Some(preferred);
        }
        self.catalog
            .resources_in(cluster)
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }
}

fn attrs_resource(r: &Request<'_>) -> Arc<ResourceInfo> {
    r.versions[0].clone()
}

/// One compiled validation: expression, messageExpression, reason, message.
type Validation = (
    Arc<cel::Compiled>,
    Option<Arc<cel::Compiled>>,
    &'static str,
    String,
);

/// A policy compiled for evaluation (programs come from the process-wide
/// cache).
struct CompiledPolicy {
    match_conditions: MatchConditions,
    variables: Vec<Variable>,
    validations: Vec<Validation>,
    audit: Vec<Arc<cel::Compiled>>,
    fail: bool,
}

fn reason_of(v: &Value) -> &'static str {
    match v["reason"].as_str() {
        Some("Forbidden") => "Forbidden",
        Some("Unauthorized") => "Unauthorized",
        Some("RequestEntityTooLarge") => "RequestEntityTooLarge",
        _ => "Invalid",
    }
}

impl CompiledPolicy {
    fn compile(policy: &Value) -> Self {
        let spec = &policy["spec"];
        let (variables, env) = cel::compile_variables(&spec["variables"], Env::policy);
        let validations = spec["validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    cel::compile(v["expression"].as_str().unwrap_or(""), &env),
                    v["messageExpression"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .map(|m| cel::compile(m, &env)),
                    reason_of(v),
                    v["message"].as_str().unwrap_or("").trim().to_string(),
                )
            })
            .collect();
        let audit = spec["auditAnnotations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| cel::compile(a["valueExpression"].as_str().unwrap_or(""), &env))
            .collect();
        Self {
            match_conditions: MatchConditions::from_json(&spec["matchConditions"], &env),
            variables,
            validations,
            audit,
            fail: spec["failurePolicy"].as_str() != Some("Ignore"),
        }
    }

    /// Upstream's `validator.Validate` for one (binding, param): the
    /// decisions that refuse, as `(message, reason)`.
    fn validate(&self, activation: &Activation) -> Vec<(String, &'static str)> {
        let eval = Evaluation::new(activation, &self.variables, Limits::DEFAULT);
        let error = |message: String| {
            if self.fail {
                vec![(message, "Invalid")]
            } else {
                Vec::new()
            }
        };
        match self.match_conditions.matches_in(&eval) {
            MatchResult::Matches => {}
            MatchResult::NoMatch(_) => return Vec::new(),
            MatchResult::Error(e) => return error(e),
        }
        let mut out = Vec::new();
        for (expr, message_expr, reason, message) in &self.validations {
            match eval.eval_bool(expr) {
                Ok(true) => {}
                Ok(false) => {
                    let from_expression = message_expr
                        .as_ref()
                        .and_then(|m| match eval.eval(m) {
                            Ok(kube_cel::cel::Value::String(s)) => Some(s.trim().to_string()),
                            _ => None,
                        })
                        .filter(|m| !m.is_empty() && !m.contains('\n') && m.len() <= 5 * 1024);
                    let text = from_expression
                        .or_else(|| Some(message.clone()).filter(|m| !m.is_empty()))
                        .unwrap_or_else(|| format!("failed expression: {}", expr.text.trim()));
                    out.push((text, *reason));
                }
                Err(e) => {
                    if self.fail {
                        out.push((expression_error(expr, &e), "Invalid"));
                    }
                }
            }
        }
        for a in &self.audit {
            // Evaluated for its errors only: there is no audit log to publish to.
            match eval.eval(a) {
                Ok(kube_cel::cel::Value::String(_) | kube_cel::cel::Value::Null) => {}
                Ok(other) => out.extend(error(format!(
                    "valueExpression '{}' resulted in unsupported return type: {}. Return type must be either string or null.",
                    a.text,
                    cel::type_name(&other)
                ))),
                Err(e) => out.extend(error(expression_error(a, &e))),
            }
        }
        out
    }
}

fn expression_error(expr: &cel::Compiled, e: &EvalError) -> String {
    match e {
        EvalError::Compile(_) => format!("compilation error: {e}"),
        EvalError::Runtime(_) => format!("expression '{}' resulted in error: {e}", expr.text),
    }
}

#[async_trait]
impl Plugin for ValidatingAdmissionPolicy {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionPolicy"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let (Some(policies_info), Some(bindings_info)) = (&self.policies, &self.bindings) else {
            return Ok(());
        };
        if matching::is_exempt(&attrs.resource.group, &attrs.resource.resource) {
            return Ok(());
        }
        let bound = bound_policies(attrs, store, policies_info, bindings_info).await?;
        if bound.is_empty() {
            return Ok(());
        }
        let (object, old) = match attrs.operation {
            Operation::Create => (Some(obj), None),
            Operation::Update => (Some(obj), old),
            Operation::Delete => (None, old.or(Some(obj))),
            // A connection's object is its options (`PodExecOptions`).
            Operation::Connect => (Some(obj), None),
        };
        // Every admitted resource is served; one that is not matches nothing.
        let Some(requested) = self.shared.catalog.resolve(
            attrs.path,
            &attrs.resource.group,
            &attrs.resource.version,
            &attrs.resource.resource,
        ) else {
            return Ok(());
        };
        let r = Request {
            attrs,
            object,
            old,
            store,
            versions: matching::equivalents(&self.shared.catalog, attrs.path, &requested),
        };
        let mut denials = Vec::new();
        let mut namespace: Option<Option<Value>> = None;
        for (policy, own) in &bound {
            let policy_name = name_of(policy);
            let constraints = Constraints::read(&policy["spec"]["matchConstraints"]);
            let Some(matched) = self.shared.matches(&constraints, &r, false).await? else {
                continue;
            };
            let fail = policy["spec"]["failurePolicy"].as_str() != Some("Ignore");
            let kind = &policy["spec"]["paramKind"];
            if kind.is_object() {
                let api_version = kind["apiVersion"].as_str().unwrap_or("");
                let kind_name = kind["kind"].as_str().unwrap_or("");
                if self
                    .shared
                    .param_resource(attrs.path, api_version, kind_name)
                    .is_none()
                {
                    if fail {
                        denials.push(Denial {
                            policy: policy_name.to_string(),
                            binding: None,
                            message: format!(
                                "failed to configure policy: failed to find resource referenced by paramKind: '{}'",
                                gvk_string(api_version, kind_name)
                            ),
                            reason: "Invalid".into(),
                        });
                    }
                    continue;
                }
            }
            let compiled = CompiledPolicy::compile(policy);
            for binding in own {
                let binding_name = name_of(binding);
                let matched_binding = match binding["spec"].get("matchResources") {
                    Some(m) if m.is_object() => self
                        .shared
                        .matches(&Constraints::read(m), &r, true)
                        .await?
                        .is_some(),
                    _ => true,
                };
                if !matched_binding {
                    continue;
                }
                let params = match self.shared.params(policy, binding, &r).await {
                    Ok(p) => p,
                    Err(e) => {
                        if fail {
                            denials.push(Denial {
                                policy: policy_name.to_string(),
                                binding: Some(binding_name.to_string()),
                                message: format!("failed to configure binding: {e}"),
                                reason: "Invalid".into(),
                            });
                        }
                        continue;
                    }
                };
                if params.is_empty() {
                    continue;
                }
                if namespace.is_none() {
                    namespace = Some(self.shared.namespace_object(attrs, store).await?);
                }
                let request = cel::request_json(
                    attrs,
                    (&matched.group, &matched.version, &matched.kind),
                    (&matched.group, &matched.version, &matched.resource),
                );
                let (object, old) =
                    match matching::converted_to(attrs, &matched, r.object, r.old, store).await? {
                        Some(converted) => converted,
                        None => (
                            r.object.map(|o| in_version(o, &matched)),
                            r.old.map(|o| in_version(o, &matched)),
                        ),
                    };
                let actions: Vec<&str> = binding["spec"]["validationActions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for param in &params {
                    let activation = Activation::new(object.as_ref(), old.as_ref(), &request)
                        .with_params(param.as_ref())
                        .with_namespace(namespace.as_ref().and_then(Option::as_ref));
                    for (message, reason) in compiled.validate(&activation) {
                        for action in &actions {
                            match *action {
                                "Deny" => denials.push(Denial {
                                    policy: policy_name.to_string(),
                                    binding: Some(binding_name.to_string()),
                                    message: message.clone(),
                                    reason: reason.to_string(),
                                }),
                                "Warn" => attrs.warn(format!(
                                    "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {message}"
                                )),
                                // Audit: no audit log to annotate.
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        let Some(first) = denials.into_iter().next() else {
            return Ok(());
        };
        let message = match &first.binding {
            Some(b) => format!(
                "ValidatingAdmissionPolicy '{}' with binding '{b}' denied request: {}",
                first.policy, first.message
            ),
            None => format!(
                "ValidatingAdmissionPolicy '{}' denied request: {}",
                first.policy, first.message
            ),
        };
        let (code, reason) = reason_code(&first.reason);
        let full = attrs.forbidden(&message).to_string();
        Err(ApiError::Other {
            code,
            reason,
            message: full,
            causes: vec![message],
        })
    }
}

impl Shared {
    /// The request's namespace as `namespaceObject` (none for cluster-scoped
    /// requests and namespaces themselves).
    async fn namespace_object(
        &self,
        attrs: &Attributes<'_>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<Option<Value>, ApiError> {
        let (Some(ns), Some(info)) = (attrs.namespace, &self.namespaces) else {
            return Ok(None);
        };
        if attrs.is("", "namespaces") {
            return Ok(None);
        }
        Ok(crate::get_namespace(store, attrs, info, ns)
            .await?
            .map(|n| cel::namespace_object(&n)))
    }
}

/// `group/version, Kind=kind` as Go prints a GroupVersionKind.
fn gvk_string(api_version: &str, kind: &str) -> String {
    format!("{api_version}, Kind={kind}")
}

/// The object in the matched version (versions of one resource differ here
/// only in `apiVersion`, see [`matching::equivalents`]).
fn in_version(obj: &Value, matched: &ResourceInfo) -> Value {
    let mut o = obj.clone();
    if o.get("apiVersion").is_some() {
        o["apiVersion"] = if matched.group.is_empty() {
            matched.version.clone().into()
        } else {
            format!("{}/{}", matched.group, matched.version).into()
        };
    }
    o
}

#[cfg(test)]
mod tests;
