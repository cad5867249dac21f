//! MutatingAdmissionPolicy (upstream's
//! `k8s.io/apiserver/pkg/admission/plugin/policy/mutating`): the mutating
//! phase of the `MutatingAdmissionPolicy` plugin, applying each cluster's
//! own `mutatingadmissionpolicies` through their
//! `mutatingadmissionpolicybindings`, before the validating policies.
//!
//! Matching, params and the namespace object are the validating policies'
//! ([`super::Shared`]); expressions are compiled once per process in the
//! mutation environment (`JSONPatch{...}`, `Object{...}`). Mutations of one
//! invocation apply in order, each seeing the object as the previous left
//! it: `JSONPatch` through RFC 6902, `ApplyConfiguration` as a merge of the
//! expression's object into the request's (maps merged key by key, lists
//! replaced, a null removing a field: an approximation of upstream's
//! server-side-apply merge, which merges lists by their list type).
//! `matchConditions` and `failurePolicy` as upstream; errors refuse with
//! upstream's 403 `policy '<p>' with binding '<b>' denied request: ...`
//! (reason `Invalid`). `reinvocationPolicy: IfNeeded` is not honoured (no
//! plugin is re-invoked in this chain).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Constraints, Request, Shared, bound_policies, expression_error, gvk_string, in_version, name_of,
};
use crate::cel::matchconditions::{MatchConditions, MatchResult};
use crate::cel::{self, Activation, Env, Evaluation, Limits, Variable};
use crate::error::ApiError;
use crate::matching;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::{Attributes, Operation, Plugin};

/// The `MutatingAdmissionPolicy` plugin.
pub struct MutatingAdmissionPolicy {
    policies: Option<Arc<ResourceInfo>>,
    bindings: Option<Arc<ResourceInfo>>,
    shared: Shared,
}

impl MutatingAdmissionPolicy {
    /// The plugin for `catalog`'s resources.
    pub fn new(catalog: &Arc<Catalog>) -> Self {
        Self {
            policies: catalog
                .get(super::GROUP, "v1", "mutatingadmissionpolicies")
                .cloned(),
            bindings: catalog
                .get(super::GROUP, "v1", "mutatingadmissionpolicybindings")
                .cloned(),
            shared: Shared::new(catalog),
        }
    }
}

/// How a mutation changes the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchType {
    JsonPatch,
    ApplyConfiguration,
}

/// A policy compiled for evaluation.
struct CompiledMutations {
    match_conditions: MatchConditions,
    variables: Vec<Variable>,
    mutations: Vec<(PatchType, Arc<cel::Compiled>)>,
}

impl CompiledMutations {
    fn compile(policy: &Value) -> Self {
        let spec = &policy["spec"];
        let (variables, env) = cel::compile_variables(&spec["variables"], Env::mutating_policy);
        let mutations = spec["mutations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| match m["patchType"].as_str() {
                Some("JSONPatch") => (
                    PatchType::JsonPatch,
                    cel::compile(m["jsonPatch"]["expression"].as_str().unwrap_or(""), &env),
                ),
                _ => (
                    PatchType::ApplyConfiguration,
                    cel::compile(
                        m["applyConfiguration"]["expression"].as_str().unwrap_or(""),
                        &env,
                    ),
                ),
            })
            .collect();
        Self {
            match_conditions: MatchConditions::from_json(&spec["matchConditions"], &env),
            variables,
            mutations,
        }
    }
}

/// Applies one mutation's result to `obj`.
fn apply(
    kind: PatchType,
    expr: &cel::Compiled,
    result: &Value,
    obj: &Value,
) -> Result<Value, String> {
    match kind {
        PatchType::JsonPatch => {
            if !result.is_array() {
                return Err(format!(
                    "expression '{}' resulted in error: JSONPatch expression must return a list of JSONPatch",
                    expr.text
                ));
            }
            let ops: Vec<Value> = result
                .as_array()
                .into_iter()
                .flatten()
                .map(|op| {
                    let mut op = op.clone();
                    if let Some(o) = op.as_object_mut() {
                        // Unset fields of a JSONPatch are empty, not present.
                        o.retain(|k, v| !(matches!(k.as_str(), "from" | "path") && v == ""));
                    }
                    op
                })
                .collect();
            let bytes = serde_json::to_vec(&ops).unwrap_or_default();
            nestkube_patch::rfc6902::apply(obj, &bytes).map_err(|e| format!("JSON Patch: {e}"))
        }
        PatchType::ApplyConfiguration => {
            if !result.is_object() {
                return Err(format!(
                    "expression '{}' resulted in error: ApplyConfiguration expression must return an Object",
                    expr.text
                ));
            }
            let bytes = serde_json::to_vec(result).unwrap_or_default();
            nestkube_patch::rfc7386::apply(obj, &bytes)
                .map_err(|e| format!("ApplyConfiguration: {e}"))
        }
    }
}

#[async_trait]
impl Plugin for MutatingAdmissionPolicy {
    fn name(&self) -> &'static str {
        "MutatingAdmissionPolicy"
    }

    async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let (Some(policies_info), Some(bindings_info)) = (&self.policies, &self.bindings) else {
            return Ok(());
        };
        // No object to mutate on a delete; the configuration resources are exempt.
        if attrs.operation == Operation::Delete
            || matching::is_exempt(&attrs.resource.group, &attrs.resource.resource)
        {
            return Ok(());
        }
        let bound = bound_policies(attrs, store, policies_info, bindings_info).await?;
        if bound.is_empty() {
            return Ok(());
        }
        let Some(requested) = self.shared.catalog.resolve(
            attrs.path,
            &attrs.resource.group,
            &attrs.resource.version,
            &attrs.resource.resource,
        ) else {
            return Ok(());
        };
        let versions = matching::equivalents(&self.shared.catalog, attrs.path, &requested);
        let old = if attrs.operation == Operation::Update {
            old
        } else {
            None
        };
        let mut errors: Vec<String> = Vec::new();
        let mut namespace: Option<Option<Value>> = None;
        for (policy, own) in &bound {
            let policy_name = name_of(policy);
            let fail = policy["spec"]["failurePolicy"].as_str() != Some("Ignore");
            // Matching reads the object as it is now (earlier policies'
            // mutations included).
            let current = obj.clone();
            let r = Request {
                attrs,
                object: Some(&current),
                old,
                store,
                versions: versions.clone(),
            };
            let constraints = Constraints::read(&policy["spec"]["matchConstraints"]);
            let Some(matched) = self.shared.matches(&constraints, &r, false).await? else {
                continue;
            };
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
                        errors.push(format!(
                            "policy \"{policy_name}\" denied request: failed to configure policy: failed to find resource referenced by paramKind: '{}'",
                            gvk_string(api_version, kind_name)
                        ));
                    }
                    continue;
                }
            }
            let compiled = CompiledMutations::compile(policy);
            for binding in own {
                let binding_name = name_of(binding);
                let denied = |e: &str| {
                    format!(
                        "policy '{policy_name}' with binding '{binding_name}' denied request: {e}"
                    )
                };
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
                            errors.push(denied(&format!("failed to configure binding: {e}")));
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
                // A custom resource matched at another version converted by
                // webhook: the policy sees (and mutates) the object converted
                // to it, converted back afterwards, as upstream.
                let converted =
                    matching::converted_to(attrs, &matched, Some(obj), old, store).await?;
                let (mut target, old_versioned) = match converted {
                    Some((o, p)) => (Some(o.unwrap_or_default()), p),
                    None => (None, old.map(|o| in_version(o, &matched))),
                };
                let outer = &mut *obj;
                let obj: &mut Value = match &mut target {
                    Some(t) => t,
                    None => &mut *outer,
                };
                for param in &params {
                    let activation_of = |o: &Value| {
                        Activation::new(
                            Some(&in_version(o, &matched)),
                            old_versioned.as_ref(),
                            &request,
                        )
                        .with_params(param.as_ref())
                        .with_namespace(namespace.as_ref().and_then(Option::as_ref))
                    };
                    let activation = activation_of(obj);
                    let eval = Evaluation::new(&activation, &compiled.variables, Limits::DEFAULT);
                    match compiled.match_conditions.matches_in(&eval) {
                        MatchResult::Matches => {}
                        MatchResult::NoMatch(_) => continue,
                        MatchResult::Error(e) => {
                            if fail {
                                errors.push(denied(&e));
                            }
                            continue;
                        }
                    }
                    for (kind, expr) in &compiled.mutations {
                        let activation = activation_of(obj);
                        let eval =
                            Evaluation::new(&activation, &compiled.variables, Limits::DEFAULT);
                        let outcome = eval
                            .eval(expr)
                            .map_err(|e| expression_error(expr, &e))
                            .and_then(|v| apply(*kind, expr, &cel::to_json(&v), obj));
                        match outcome {
                            Ok(mutated) => *obj = mutated,
                            Err(e) => {
                                if fail {
                                    errors.push(denied(&e));
                                }
                            }
                        }
                    }
                }
                if let Some(mut versioned) = target {
                    let t = crate::registry::store::Target {
                        cluster: attrs.path,
                        resource: attrs.resource,
                        namespace: attrs.namespace,
                    };
                    store
                        .convert(
                            &t,
                            std::slice::from_mut(&mut versioned),
                            &attrs.resource.api_version(),
                        )
                        .await
                        .map_err(|e| ApiError::Internal(e.0))?;
                    *outer = versioned;
                }
            }
        }
        let Some(first) = errors.first().cloned() else {
            return Ok(());
        };
        Err(ApiError::Other {
            code: 403,
            reason: "Invalid",
            message: first,
            causes: errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_patch_and_apply_configuration() {
        let p = CompiledMutations::compile(&json!({"spec": {"mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'add', path: '/metadata/labels/' + jsonpatch.escapeKey('a/b'), value: 'x'}]"}},
            {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                "Object{spec: Object.spec{replicas: 2}}"}},
        ]}}));
        let obj = json!({"metadata": {"name": "d", "labels": {}}, "spec": {"replicas": 1, "paused": true}});
        let a = Activation::new(Some(&obj), None, &json!({}));
        let e = Evaluation::new(&a, &[], Limits::DEFAULT);
        let mut out = obj.clone();
        for (kind, expr) in &p.mutations {
            let v = cel::to_json(&e.eval(expr).unwrap());
            out = apply(*kind, expr, &v, &out).unwrap();
        }
        assert_eq!(
            out,
            json!({"metadata": {"name": "d", "labels": {"a/b": "x"}}, "spec": {"replicas": 2, "paused": true}})
        );
        let bad = apply(PatchType::JsonPatch, &p.mutations[0].1, &json!("x"), &obj).unwrap_err();
        assert!(
            bad.ends_with("JSONPatch expression must return a list of JSONPatch"),
            "{bad}"
        );
    }
}
