//! Refuses an admission configuration whose CEL does not compile, as
//! upstream's validation of these kinds does: a webhook's
//! `matchConditions`, and a ValidatingAdmissionPolicy's or
//! MutatingAdmissionPolicy's `matchConditions`, `variables`, `validations`
//! (`expression`, `messageExpression`), `auditAnnotations` and mutations.
//! The rest of their validation is the registry's (its strategies for
//! `admissionregistration.k8s.io`); CEL lives here, in the environments the
//! plugins evaluate with, so what is accepted is what they can run.
//!
//! As upstream's "stored expressions": an update is not refused for an
//! expression the stored object already had.

use std::collections::HashSet;

use async_trait::async_trait;
use serde_json::Value;

use crate::cel::{self, Env};
use crate::error::{ApiError, FieldError, Subject};
use crate::registry::admission_hook::ReadOnlyStore;
use crate::{Attributes, Operation, Plugin};

/// The plugin (stateless: programs come from the process-wide CEL cache).
pub struct AdmissionExpressions;

/// One expression of a configuration: (field path, text, environment).
type Expression = (String, String, Env);

#[async_trait]
impl Plugin for AdmissionExpressions {
    fn name(&self) -> &'static str {
        "AdmissionExpressions"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if attrs.resource.group != "admissionregistration.k8s.io"
            || attrs.subresource.is_some()
            || !matches!(attrs.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        let Some(expressions) = expressions_of(&attrs.resource.resource, obj) else {
            return Ok(());
        };
        let stored: HashSet<String> = old
            .and_then(|o| expressions_of(&attrs.resource.resource, o))
            .into_iter()
            .flatten()
            .map(|(_, text, _)| text)
            .collect();
        let errors: Vec<FieldError> = expressions
            .into_iter()
            .filter(|(_, text, _)| !text.trim().is_empty() && !stored.contains(text))
            .filter_map(|(path, text, env)| {
                let compiled = cel::compile(&text, &env);
                let why = compiled.error()?;
                Some(FieldError::invalid(
                    path,
                    text.as_str(),
                    format!("compilation failed: {why}"),
                ))
            })
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        Err(ApiError::Invalid {
            subject: Subject {
                group: attrs.resource.group.clone(),
                kind: attrs.resource.kind.clone(),
                name: attrs.name.to_string(),
            },
            errors,
        })
    }
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or("").to_string()
}

/// Every CEL expression of a configuration of `resource`, with the
/// environment its plugin compiles it in (`None`: not a kind with CEL).
fn expressions_of(resource: &str, obj: &Value) -> Option<Vec<Expression>> {
    let mut out = Vec::new();
    let conditions = |list: &Value, path: &str, env: &Env, out: &mut Vec<Expression>| {
        for (i, c) in list.as_array().into_iter().flatten().enumerate() {
            out.push((
                format!("{path}.matchConditions[{i}].expression"),
                text(c, "expression"),
                env.clone(),
            ));
        }
    };
    match resource {
        "validatingwebhookconfigurations" | "mutatingwebhookconfigurations" => {
            for (i, hook) in obj["webhooks"].as_array().into_iter().flatten().enumerate() {
                conditions(
                    &hook["matchConditions"],
                    &format!("webhooks[{i}]"),
                    &Env::match_conditions(),
                    &mut out,
                );
            }
        }
        "validatingadmissionpolicies" | "mutatingadmissionpolicies" => {
            let mutating = resource == "mutatingadmissionpolicies";
            let spec = &obj["spec"];
            let make = if mutating {
                Env::mutating_policy
            } else {
                Env::policy
            };
            // Each variable sees the ones before it, as the plugins compile them.
            let mut names = Vec::new();
            for (i, v) in spec["variables"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push((
                    format!("spec.variables[{i}].expression"),
                    text(v, "expression"),
                    make(names.clone()),
                ));
                names.push(text(v, "name"));
            }
            let env = make(names);
            conditions(&spec["matchConditions"], "spec", &env, &mut out);
            for (i, v) in spec["validations"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let path = format!("spec.validations[{i}]");
                out.push((
                    format!("{path}.expression"),
                    text(v, "expression"),
                    env.clone(),
                ));
                out.push((
                    format!("{path}.messageExpression"),
                    text(v, "messageExpression"),
                    env.clone(),
                ));
            }
            for (i, a) in spec["auditAnnotations"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push((
                    format!("spec.auditAnnotations[{i}].valueExpression"),
                    text(a, "valueExpression"),
                    env.clone(),
                ));
            }
            for (i, m) in spec["mutations"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                for kind in ["jsonPatch", "applyConfiguration"] {
                    out.push((
                        format!("spec.mutations[{i}].{kind}.expression"),
                        m[kind]["expression"].as_str().unwrap_or("").to_string(),
                        env.clone(),
                    ));
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_expression_is_found_in_its_environment() {
        let policy = json!({"spec": {
            "variables": [{"name": "a", "expression": "1"}, {"name": "b", "expression": "variables.a + 1"}],
            "matchConditions": [{"name": "m", "expression": "true"}],
            "validations": [{"expression": "variables.b > 0", "messageExpression": "'x'"}],
            "auditAnnotations": [{"key": "k", "valueExpression": "'v'"}],
        }});
        let found = expressions_of("validatingadmissionpolicies", &policy).unwrap();
        let paths: Vec<&str> = found.iter().map(|(p, ..)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.variables[0].expression",
                "spec.variables[1].expression",
                "spec.matchConditions[0].expression",
                "spec.validations[0].expression",
                "spec.validations[0].messageExpression",
                "spec.auditAnnotations[0].valueExpression",
            ]
        );
        for (path, text, env) in &found {
            assert!(cel::compile(text, env).error().is_none(), "{path}: {text}");
        }
        let broken = cel::compile("object.metadata.name ==", &Env::match_conditions());
        assert!(broken.error().is_some());
        let undeclared = cel::compile("params.x == 1", &Env::match_conditions());
        assert!(undeclared.error().is_some());
        assert!(expressions_of("configmaps", &policy).is_none());
    }
}
