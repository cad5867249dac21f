//! `ValidatingWebhookConfiguration`, `MutatingWebhookConfiguration`,
//! `ValidatingAdmissionPolicy`, `MutatingAdmissionPolicy` and their
//! bindings: upstream's defaults
//! (`admissionregistration/v1/defaults.go`) and
//! validation (`pkg/apis/admissionregistration/validation`, with
//! `k8s.io/apiserver/pkg/util/webhook`'s URL and Service checks), so a
//! configuration the admission chain cannot use is refused with upstream's
//! errors instead of being stored and silently mismatched.
//!
//! Updates ratchet as upstream's: a rule the stored object already broke
//! (side effects, review versions, duplicate names) is not enforced on it
//! again, and unchanged `matchConditions` are not validated again.
//!
//! Not here: compiling CEL expressions (`matchConditions`, a policy's
//! validations and variables). The CEL environment lives in the admission
//! layer, whose plugins refuse a configuration with an expression that does
//! not compile (`nestkube-admission`'s `policy::validation`).

use serde_json::{Value, json};

use super::printing::{AGE, arr, col, name_cell, s};
use super::{child, each_mut, ensure_obj, labelselector, set_default};
use crate::error::FieldError;
use crate::strategy::{Column, Strategy};
use crate::validation::{dns1035_label, dns1123_subdomain};
use nestkube_api::names::{path_segment_name, qualified_name};
use nestkube_api::webhook_client::{validate_service, validate_url};

/// Validating and mutating webhook configurations.
pub struct WebhookConfigurations;

/// The AdmissionReview versions this server understands.
const ACCEPTED_REVIEW_VERSIONS: [&str; 2] = ["v1", "v1beta1"];
/// Side-effect classes a new webhook may declare (v1).
const NO_SIDE_EFFECTS: [&str; 2] = ["None", "NoneOnDryRun"];
/// Every side-effect class (what a stored v1beta1-era webhook may carry).
const SIDE_EFFECT_CLASSES: [&str; 4] = ["None", "NoneOnDryRun", "Some", "Unknown"];
const OPERATIONS: [&str; 5] = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: [&str; 3] = ["*", "Cluster", "Namespaced"];
/// Most `matchConditions` per webhook.
const MAX_MATCH_CONDITIONS: usize = 64;

/// What an update ratchets (upstream's `validationOptions`).
struct Options {
    require_no_side_effects: bool,
    require_recognized_review_version: bool,
    require_unique_names: bool,
    ignore_match_conditions: bool,
}

impl Options {
    const CREATE: Options = Options {
        require_no_side_effects: true,
        require_recognized_review_version: true,
        require_unique_names: true,
        ignore_match_conditions: false,
    };

    fn update(new: &Value, old: &Value) -> Options {
        let old_hooks = arr(old, &["webhooks"]);
        let new_hooks = arr(new, &["webhooks"]);
        let mut names = std::collections::HashSet::new();
        Options {
            require_no_side_effects: old_hooks
                .iter()
                .all(|h| NO_SIDE_EFFECTS.contains(&s(h, &["sideEffects"]))),
            require_recognized_review_version: old_hooks.iter().all(|h| {
                let versions = arr(h, &["admissionReviewVersions"]);
                versions.is_empty()
                    || versions
                        .iter()
                        .any(|v| ACCEPTED_REVIEW_VERSIONS.contains(&v.as_str().unwrap_or("")))
            }),
            require_unique_names: old_hooks.iter().all(|h| names.insert(s(h, &["name"]))),
            ignore_match_conditions: new_hooks.len() == old_hooks.len()
                && new_hooks
                    .iter()
                    .zip(old_hooks)
                    .all(|(n, o)| n.get("matchConditions") == o.get("matchConditions")),
        }
    }
}

impl Strategy for WebhookConfigurations {
    /// `SetDefaults_ValidatingWebhook` / `_MutatingWebhook`.
    fn default(&self, obj: &mut Value) {
        let mutating = s(obj, &["kind"]) == "MutatingWebhookConfiguration";
        each_mut(obj, "webhooks", |w| {
            set_default(w, "failurePolicy", json!("Fail"));
            set_default(w, "matchPolicy", json!("Equivalent"));
            ensure_obj(w, "namespaceSelector");
            ensure_obj(w, "objectSelector");
            set_default(w, "timeoutSeconds", json!(10));
            if mutating {
                set_default(w, "reinvocationPolicy", json!("Never"));
            }
            each_mut(w, "rules", |r| set_default(r, "scope", json!("*")));
            if let Some(svc) = child(w, "clientConfig").and_then(|c| child(c, "service")) {
                set_default(svc, "port", json!(443));
            }
        });
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_configuration(obj, &Options::CREATE)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate_configuration(new, &Options::update(new, old))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        new.get("webhooks") != old.get("webhooks")
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, col("Webhooks", "integer"), AGE]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(arr(obj, &["webhooks"]).len()),
            super::printing::age_cell(obj),
        ]
    }
}

/// `ValidatingAdmissionPolicy` (the fields CEL does not decide).
pub struct ValidatingAdmissionPolicies;

/// `ValidatingAdmissionPolicyBinding`.
pub struct ValidatingAdmissionPolicyBindings;

/// Reasons a policy's validation may give.
const POLICY_REASONS: [&str; 3] = ["Forbidden", "Invalid", "RequestEntityTooLarge"];
const VALIDATION_ACTIONS: [&str; 3] = ["Audit", "Deny", "Warn"];
/// Most audit annotations per policy.
const MAX_AUDIT_ANNOTATIONS: usize = 20;

/// `SetDefaults_MatchResources` (and the rules' scope).
fn default_match_resources(m: &mut Value) {
    set_default(m, "matchPolicy", json!("Equivalent"));
    ensure_obj(m, "namespaceSelector");
    ensure_obj(m, "objectSelector");
    for rules in ["resourceRules", "excludeResourceRules"] {
        each_mut(m, rules, |r| set_default(r, "scope", json!("*")));
    }
}

impl Strategy for ValidatingAdmissionPolicies {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            set_default(spec, "failurePolicy", json!("Fail"));
            if let Some(m) = child(spec, "matchConstraints") {
                default_match_resources(m);
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let mut errs = Vec::new();
        validate_policy_head(spec, &mut errs);
        let validations = arr(spec, &["validations"]);
        let annotations = arr(spec, &["auditAnnotations"]);
        if validations.is_empty() && annotations.is_empty() {
            for field in ["spec.validations", "spec.auditAnnotations"] {
                errs.push(FieldError::required(
                    field,
                    "validations or auditAnnotations must contain at least one item",
                ));
            }
            return errs;
        }
        for (i, v) in validations.iter().enumerate() {
            validate_validation(v, &format!("spec.validations[{i}]"), &mut errs);
        }
        if annotations.len() > MAX_AUDIT_ANNOTATIONS {
            errs.push(FieldError::invalid(
                "spec.auditAnnotations",
                json!(annotations),
                format!("must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"),
            ));
        }
        let mut keys = std::collections::HashSet::new();
        let policy = s(obj, &["metadata", "name"]);
        for (i, a) in annotations.iter().enumerate() {
            let p = format!("spec.auditAnnotations[{i}]");
            let key = s(a, &["key"]);
            if key.is_empty() {
                errs.push(FieldError::required(format!("{p}.key"), ""));
            } else {
                let qualified = format!("{policy}/{key}");
                for msg in qualified_name(&qualified) {
                    errs.push(FieldError::invalid(
                        format!("{p}.key"),
                        qualified.as_str(),
                        msg,
                    ));
                }
            }
            if s(a, &["valueExpression"]).trim().is_empty() {
                errs.push(FieldError::required(
                    format!("{p}.valueExpression"),
                    "valueExpression is not specified",
                ));
            }
            if !keys.insert(key) {
                errs.push(FieldError::duplicate(format!("{p}.key"), key));
            }
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

impl Strategy for ValidatingAdmissionPolicyBindings {
    fn default(&self, obj: &mut Value) {
        if let Some(m) = child(obj, "spec").and_then(|spec| child(spec, "matchResources")) {
            default_match_resources(m);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let mut errs = validate_binding_spec(spec);
        let actions = strings(arr(spec, &["validationActions"]));
        let path = "spec.validationActions";
        let mut seen = std::collections::HashSet::new();
        for (i, a) in actions.iter().enumerate() {
            if !VALIDATION_ACTIONS.contains(a) {
                errs.push(FieldError::not_supported(
                    format!("{path}[{i}]"),
                    *a,
                    &VALIDATION_ACTIONS,
                ));
            }
            if !seen.insert(*a) {
                errs.push(FieldError::duplicate(format!("{path}[{i}]"), *a));
            }
        }
        if seen.contains("Deny") && seen.contains("Warn") {
            errs.push(FieldError::invalid(
                path,
                json!(actions),
                "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ));
        }
        if seen.is_empty() {
            errs.push(FieldError::required(
                path,
                "at least one validation action is required",
            ));
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// `MutatingAdmissionPolicy` (the fields CEL does not decide).
pub struct MutatingAdmissionPolicies;

/// `MutatingAdmissionPolicyBinding`.
pub struct MutatingAdmissionPolicyBindings;

impl Strategy for MutatingAdmissionPolicies {
    fn default(&self, obj: &mut Value) {
        ValidatingAdmissionPolicies.default(obj);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let mut errs = Vec::new();
        validate_policy_head(spec, &mut errs);
        let mutations = arr(spec, &["mutations"]);
        if mutations.is_empty() {
            errs.push(FieldError::required(
                "spec.mutations",
                "mutations must contain at least one item",
            ));
        }
        for (i, m) in mutations.iter().enumerate() {
            let path = format!("spec.mutations[{i}]");
            let (wanted, other) = match s(m, &["patchType"]) {
                "ApplyConfiguration" => ("applyConfiguration", "jsonPatch"),
                "JSONPatch" => ("jsonPatch", "applyConfiguration"),
                t => {
                    errs.push(FieldError::not_supported(
                        format!("{path}.patchType"),
                        t,
                        &["ApplyConfiguration", "JSONPatch"],
                    ));
                    continue;
                }
            };
            let patch_type = s(m, &["patchType"]);
            if !m[wanted].is_object() {
                errs.push(FieldError::required(
                    format!("{path}.{wanted}"),
                    format!("must be specified when patchType is {patch_type}"),
                ));
            } else if s(&m[wanted], &["expression"]).trim().is_empty() {
                errs.push(FieldError::required(
                    format!("{path}.{wanted}.expression"),
                    "expression is not specified",
                ));
            }
            if m[other].is_object() {
                errs.push(FieldError::invalid(
                    format!("{path}.{other}"),
                    format!("{{{other}}}"),
                    format!("must not be specified when patchType is {patch_type}"),
                ));
            }
        }
        match spec.get("reinvocationPolicy").and_then(Value::as_str) {
            None => errs.push(FieldError::required("spec.reinvocationPolicy", "")),
            Some(_) => one_of(
                spec,
                "reinvocationPolicy",
                &["IfNeeded", "Never"],
                "spec",
                &mut errs,
            ),
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

impl Strategy for MutatingAdmissionPolicyBindings {
    fn default(&self, obj: &mut Value) {
        ValidatingAdmissionPolicyBindings.default(obj);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_binding_spec(&obj["spec"])
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// What both kinds of binding share: `policyName`, `paramRef`, `matchResources`.
fn validate_binding_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let policy = s(spec, &["policyName"]);
    if policy.is_empty() {
        errs.push(FieldError::required("spec.policyName", ""));
    } else {
        for msg in dns1123_subdomain(policy) {
            errs.push(FieldError::invalid("spec.policyName", policy, msg));
        }
    }
    if let Some(r) = spec.get("paramRef").filter(|r| r.is_object()) {
        validate_param_ref(r, "spec.paramRef", &mut errs);
    }
    if let Some(m) = spec.get("matchResources").filter(|m| m.is_object()) {
        validate_match_resources(m, "spec.matchResources", &mut errs);
    }
    errs
}

/// What both kinds of policy share, in upstream's order: `failurePolicy`,
/// `paramKind`, `matchConstraints` (with at least one resource rule: the
/// rules give the expressions their types), `matchConditions`, `variables`.
fn validate_policy_head(spec: &Value, errs: &mut Vec<FieldError>) {
    match spec.get("failurePolicy").and_then(Value::as_str) {
        None => errs.push(FieldError::required("spec.failurePolicy", "")),
        Some(_) => one_of(spec, "failurePolicy", &["Fail", "Ignore"], "spec", errs),
    }
    if spec["paramKind"].is_object() {
        validate_param_kind(&spec["paramKind"], "spec.paramKind", errs);
    }
    match spec.get("matchConstraints").filter(|m| m.is_object()) {
        None => errs.push(FieldError::required("spec.matchConstraints", "")),
        Some(m) => {
            validate_match_resources(m, "spec.matchConstraints", errs);
            // The rules give the expressions their types.
            if arr(m, &["resourceRules"]).is_empty() {
                errs.push(FieldError::required(
                    "spec.matchConstraints.resourceRules",
                    "",
                ));
            }
        }
    }
    validate_match_conditions(
        arr(spec, &["matchConditions"]),
        "spec.matchConditions",
        errs,
    );
    for (i, v) in arr(spec, &["variables"]).iter().enumerate() {
        let p = format!("spec.variables[{i}]");
        let name = s(v, &["name"]);
        if name.trim().is_empty() {
            errs.push(FieldError::required(
                format!("{p}.name"),
                "name is not specified",
            ));
        } else if !is_cel_identifier(name) {
            errs.push(FieldError::invalid(
                format!("{p}.name"),
                name,
                "name is not a valid CEL identifier",
            ));
        }
        if s(v, &["expression"]).trim().is_empty() {
            errs.push(FieldError::required(
                format!("{p}.expression"),
                "expression is not specified",
            ));
        }
    }
}

/// `validateParamKind`.
fn validate_param_kind(kind: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let api_version = s(kind, &["apiVersion"]);
    let field = format!("{path}.apiVersion");
    if api_version.is_empty() {
        errs.push(FieldError::required(&field, ""));
    } else if api_version.matches('/').count() > 1 {
        errs.push(FieldError::invalid(
            &field,
            api_version,
            format!("unexpected GroupVersion string: {api_version}"),
        ));
    } else {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        if !group.is_empty() {
            let e = dns1123_subdomain(group);
            if !e.is_empty() {
                errs.push(FieldError::invalid(&field, group, e.join(",")));
            }
        }
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &field,
                api_version,
                "version must be specified",
            ));
        } else {
            let e = dns1035_label(version);
            if !e.is_empty() {
                errs.push(FieldError::invalid(&field, version, e.join(",")));
            }
        }
    }
    let k = s(kind, &["kind"]);
    if k.is_empty() {
        errs.push(FieldError::required(format!("{path}.kind"), ""));
    } else {
        let e = dns1035_label(&k.to_lowercase());
        if !e.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.kind"),
                k,
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    e.join(",")
                ),
            ));
        }
    }
}

/// `validateParamRef`.
fn validate_param_ref(r: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let name = s(r, &["name"]);
    let selector = r.get("selector").filter(|v| !v.is_null());
    if !name.is_empty() {
        for msg in path_segment_name(name) {
            errs.push(FieldError::invalid(format!("{path}.name"), name, msg));
        }
        if selector.is_some() {
            errs.push(FieldError::forbidden(
                format!("{path}.name"),
                "name and selector are mutually exclusive",
            ));
        }
    }
    if let Some(sel) = selector {
        errs.extend(labelselector::validate(sel, &format!("{path}.selector")));
        if !name.is_empty() {
            errs.push(FieldError::forbidden(
                format!("{path}.selector"),
                "name and selector are mutually exclusive",
            ));
        }
    }
    if name.is_empty() && selector.is_none() {
        errs.push(FieldError::required(
            path,
            "one of name or selector must be specified",
        ));
    }
    match r.get("parameterNotFoundAction").and_then(Value::as_str) {
        None => errs.push(FieldError::required(
            format!("{path}.parameterNotFoundAction"),
            "",
        )),
        Some("Allow" | "Deny") => {}
        Some(other) => errs.push(FieldError::not_supported(
            format!("{path}.parameterNotFoundAction"),
            other,
            &["Allow", "Deny"],
        )),
    }
}

/// `validateMatchResources` (policy and binding).
fn validate_match_resources(m: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match m.get("matchPolicy").and_then(Value::as_str) {
        None => errs.push(FieldError::required(format!("{path}.matchPolicy"), "")),
        Some(_) => one_of(m, "matchPolicy", &["Equivalent", "Exact"], path, errs),
    }
    for selector in ["namespaceSelector", "objectSelector"] {
        match m.get(selector).filter(|v| !v.is_null()) {
            None => errs.push(FieldError::required(format!("{path}.{selector}"), "")),
            Some(sel) => errs.extend(labelselector::validate(sel, &format!("{path}.{selector}"))),
        }
    }
    for rules in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in arr(m, &[rules]).iter().enumerate() {
            let p = format!("{path}.{rules}[{i}]");
            let mut names = std::collections::HashSet::new();
            for (j, n) in strings(arr(rule, &["resourceNames"])).iter().enumerate() {
                for msg in path_segment_name(n) {
                    errs.push(FieldError::invalid(
                        format!("{p}.resourceNames[{j}]"),
                        *n,
                        msg,
                    ));
                }
                if !names.insert(*n) {
                    errs.push(FieldError::duplicate(format!("{p}.resourceNames[{j}]"), *n));
                }
            }
            validate_rule(rule, &p, errs);
        }
    }
}

/// `validateValidation`, less the CEL compilation.
fn validate_validation(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if s(v, &["expression"]).trim().is_empty() {
        errs.push(FieldError::required(
            format!("{path}.expression"),
            "expression is not specified",
        ));
    }
    let message_expression = s(v, &["messageExpression"]);
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        errs.push(FieldError::invalid(
            format!("{path}.messageExpression"),
            message_expression,
            "must be non-empty if specified",
        ));
    }
    let message = s(v, &["message"]);
    if !message.is_empty() && message.trim().is_empty() {
        errs.push(FieldError::invalid(
            format!("{path}.message"),
            message,
            "message must be non-empty if specified",
        ));
    } else if message.trim().contains(['\n', '\r']) {
        errs.push(FieldError::invalid(
            format!("{path}.message"),
            message,
            "message must not contain line breaks",
        ));
    }
    if let Some(reason) = v.get("reason").and_then(Value::as_str)
        && !POLICY_REASONS.contains(&reason)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.reason"),
            reason,
            &POLICY_REASONS,
        ));
    }
}

/// CEL's identifier grammar, less its reserved words.
fn is_cel_identifier(name: &str) -> bool {
    const RESERVED: [&str; 21] = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name)
}

/// `validateValidatingWebhookConfiguration` / `validateMutatingWebhookConfiguration`.
fn validate_configuration(obj: &Value, opts: &Options) -> Vec<FieldError> {
    let mutating = s(obj, &["kind"]) == "MutatingWebhookConfiguration";
    let mut errs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, hook) in arr(obj, &["webhooks"]).iter().enumerate() {
        let path = format!("webhooks[{i}]");
        validate_webhook(hook, mutating, opts, &path, &mut errs);
        validate_review_versions(
            arr(hook, &["admissionReviewVersions"]),
            opts.require_recognized_review_version,
            &format!("{path}.admissionReviewVersions"),
            &mut errs,
        );
        let name = s(hook, &["name"]);
        if opts.require_unique_names && !name.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
    }
    errs
}

fn validate_webhook(
    hook: &Value,
    mutating: bool,
    opts: &Options,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    errs.extend(fully_qualified_name(
        &format!("{path}.name"),
        s(hook, &["name"]),
    ));
    for (i, rule) in arr(hook, &["rules"]).iter().enumerate() {
        validate_rule(rule, &format!("{path}.rules[{i}]"), errs);
    }
    one_of(hook, "failurePolicy", &["Fail", "Ignore"], path, errs);
    one_of(hook, "matchPolicy", &["Equivalent", "Exact"], path, errs);
    let allowed: &[&str] = if opts.require_no_side_effects {
        &NO_SIDE_EFFECTS
    } else {
        &SIDE_EFFECT_CLASSES
    };
    match hook.get("sideEffects").and_then(Value::as_str) {
        None => errs.push(FieldError::required(
            format!("{path}.sideEffects"),
            format!("must specify one of {}", allowed.join(", ")),
        )),
        Some(v) if !allowed.contains(&v) => errs.push(FieldError::not_supported(
            format!("{path}.sideEffects"),
            v,
            allowed,
        )),
        Some(_) => {}
    }
    if let Some(t) = hook.get("timeoutSeconds").and_then(Value::as_i64)
        && !(1..=30).contains(&t)
    {
        errs.push(FieldError::invalid(
            format!("{path}.timeoutSeconds"),
            t,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    for selector in ["namespaceSelector", "objectSelector"] {
        if let Some(sel) = hook.get(selector).filter(|v| !v.is_null()) {
            errs.extend(labelselector::validate(sel, &format!("{path}.{selector}")));
        }
    }
    if mutating {
        one_of(
            hook,
            "reinvocationPolicy",
            &["IfNeeded", "Never"],
            path,
            errs,
        );
    }
    validate_client_config(&hook["clientConfig"], &format!("{path}.clientConfig"), errs);
    if !opts.ignore_match_conditions {
        validate_match_conditions(
            arr(hook, &["matchConditions"]),
            &format!("{path}.matchConditions"),
            errs,
        );
    }
}

/// An optional enum field: absent is fine (defaulted), anything else must
/// be one of `supported`.
fn one_of(hook: &Value, field: &str, supported: &[&str], path: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = hook.get(field).and_then(Value::as_str)
        && !supported.contains(&v)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.{field}"),
            v,
            supported,
        ));
    }
}

/// `utilvalidation.IsFullyQualifiedName`.
fn fully_qualified_name(path: &str, name: &str) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let errs = dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid(path, name, errs.join(","))];
    }
    if name.split('.').count() < 3 {
        return vec![FieldError::invalid(
            path,
            name,
            "should be a domain with at least three segments separated by dots",
        )];
    }
    Vec::new()
}

fn strings(values: &[Value]) -> Vec<&str> {
    values.iter().map(|v| v.as_str().unwrap_or("")).collect()
}

/// A rule's list `field`: required, and `*` only alone (`what` names its
/// items in the message). Returns the items.
fn wildcard_list<'a>(
    rule: &'a Value,
    field: &str,
    what: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Vec<&'a str> {
    let items = strings(arr(rule, &[field]));
    if items.is_empty() {
        errs.push(FieldError::required(format!("{path}.{field}"), ""));
    }
    if items.len() > 1 && items.contains(&"*") {
        errs.push(FieldError::invalid(
            format!("{path}.{field}"),
            json!(items),
            format!("if '*' is present, must not specify other {what}"),
        ));
    }
    items
}

/// `validateRuleWithOperations` (subresources allowed).
fn validate_rule(rule: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let operations = wildcard_list(rule, "operations", "operations", path, errs);
    for (i, op) in operations.iter().enumerate() {
        if !OPERATIONS.contains(op) {
            errs.push(FieldError::not_supported(
                format!("{path}.operations[{i}]"),
                *op,
                &OPERATIONS,
            ));
        }
    }
    wildcard_list(rule, "apiGroups", "API groups", path, errs);
    let versions = wildcard_list(rule, "apiVersions", "API versions", path, errs);
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            errs.push(FieldError::required(format!("{path}.apiVersions[{i}]"), ""));
        }
    }
    validate_resources(
        &strings(arr(rule, &["resources"])),
        &format!("{path}.resources"),
        errs,
    );
    if let Some(scope) = rule.get("scope").and_then(Value::as_str)
        && !SCOPES.contains(&scope)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.scope"),
            scope,
            &SCOPES,
        ));
    }
}

/// `validateResources`: `x`, `x/y`, `*`, `x/*`, `*/y`, `*/*`, without
/// overlaps that would make one entry redundant.
fn validate_resources(resources: &[&str], path: &str, errs: &mut Vec<FieldError>) {
    if resources.is_empty() {
        errs.push(FieldError::required(path, ""));
    }
    let mut with_wildcard_sub = std::collections::HashSet::new();
    let mut sub_with_wildcard_resource = std::collections::HashSet::new();
    let mut double_wildcard = false;
    let mut single_wildcard = false;
    let mut without_subresource = false;
    for (i, entry) in resources.iter().enumerate() {
        if entry.is_empty() {
            errs.push(FieldError::required(format!("{path}[{i}]"), ""));
            continue;
        }
        double_wildcard |= *entry == "*/*";
        single_wildcard |= *entry == "*";
        let Some((res, sub)) = entry.split_once('/') else {
            // As upstream: the last entry without a subresource decides.
            without_subresource = *entry != "*";
            continue;
        };
        if with_wildcard_sub.contains(res) {
            errs.push(FieldError::invalid(
                format!("{path}[{i}]"),
                *entry,
                format!("if '{res}/*' is present, must not specify {entry}"),
            ));
        }
        if sub_with_wildcard_resource.contains(sub) {
            errs.push(FieldError::invalid(
                format!("{path}[{i}]"),
                *entry,
                format!("if '*/{sub}' is present, must not specify {entry}"),
            ));
        }
        if sub == "*" {
            with_wildcard_sub.insert(res);
        }
        if res == "*" {
            sub_with_wildcard_resource.insert(sub);
        }
    }
    if resources.len() > 1 && double_wildcard {
        errs.push(FieldError::invalid(
            path,
            json!(resources),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single_wildcard && without_subresource {
        errs.push(FieldError::invalid(
            path,
            json!(resources),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// `validateAdmissionReviewVersions`.
fn validate_review_versions(
    versions: &[Value],
    require_recognized: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let accepted = ACCEPTED_REVIEW_VERSIONS.join(", ");
    if versions.is_empty() {
        errs.push(FieldError::required(
            path,
            format!("must specify one of {accepted}"),
        ));
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let mut recognized = false;
    for (i, v) in versions.iter().enumerate() {
        let v = v.as_str().unwrap_or("");
        if !seen.insert(v) {
            errs.push(FieldError::invalid(
                format!("{path}[{i}]"),
                v,
                "duplicate version",
            ));
            continue;
        }
        for msg in dns1035_label(v) {
            errs.push(FieldError::invalid(format!("{path}[{i}]"), v, msg));
        }
        recognized |= ACCEPTED_REVIEW_VERSIONS.contains(&v);
    }
    if require_recognized && !recognized {
        errs.push(FieldError::invalid(
            path,
            json!(versions),
            format!("must include at least one of {accepted}"),
        ));
    }
}

/// Exactly one of `url` and `service`, each as upstream's
/// `ValidateWebhookURL` / `ValidateWebhookService` checks it.
fn validate_client_config(config: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let url = config.get("url").and_then(Value::as_str);
    let service = config.get("service").filter(|v| v.is_object());
    match (url, service) {
        (Some(url), None) => errs.extend(validate_url(&format!("{path}.url"), url)),
        (None, Some(svc)) => errs.extend(validate_service(&format!("{path}.service"), svc)),
        _ => errs.push(FieldError::required(
            path,
            "exactly one of url or service is required",
        )),
    }
}

/// `validateMatchConditions`, less the CEL compilation.
fn validate_match_conditions(conditions: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if conditions.len() > MAX_MATCH_CONDITIONS {
        errs.push(FieldError::too_many(
            path,
            conditions.len() as i64,
            MAX_MATCH_CONDITIONS as i64,
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, c) in conditions.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if s(c, &["expression"]).trim().is_empty() {
            errs.push(FieldError::required(format!("{p}.expression"), ""));
        }
        let name = s(c, &["name"]);
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else {
            for msg in qualified_name(name) {
                errs.push(FieldError::invalid(format!("{p}.name"), name, msg));
            }
        }
        if !name.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(extra: Value) -> Value {
        let mut w = json!({"name": "a.example.com", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://hooks.example.com/x"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]});
        for (k, v) in extra.as_object().unwrap() {
            w[k] = v.clone();
        }
        w
    }

    fn errors(hooks: Vec<Value>) -> Vec<String> {
        let mut obj = json!({"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "x"}, "webhooks": hooks});
        WebhookConfigurations.default(&mut obj);
        WebhookConfigurations
            .validate(&obj)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_valid_configuration_passes() {
        assert_eq!(errors(vec![hook(json!({}))]), Vec::<String>::new());
        let svc = hook(
            json!({"clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "/validate/pods"}}}),
        );
        assert_eq!(errors(vec![svc]), Vec::<String>::new());
    }

    /// Cases from upstream's `TestValidateValidatingWebhookConfiguration`.
    #[test]
    fn errors_as_upstream() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"name": "k8s.io"}),
                "webhooks[0].name: Invalid value: \"k8s.io\": should be a domain with at least three segments separated by dots",
            ),
            (
                json!({"sideEffects": "Some"}),
                "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
            ),
            (
                json!({"sideEffects": null}),
                "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
            ),
            (
                json!({"admissionReviewVersions": []}),
                "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
            ),
            (
                json!({"admissionReviewVersions": ["v1", "invalidVersion"]}),
                "webhooks[0].admissionReviewVersions[1]: Invalid value: \"invalidVersion\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ),
            (
                json!({"timeoutSeconds": 31}),
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            ),
            (
                json!({"failurePolicy": "other"}),
                "webhooks[0].failurePolicy: Unsupported value: \"other\": supported values: \"Fail\", \"Ignore\"",
            ),
            (
                json!({"clientConfig": {}}),
                "webhooks[0].clientConfig: Required value: exactly one of url or service is required",
            ),
            (
                json!({"clientConfig": {"url": "http://example.com"}}),
                "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
            ),
            (
                json!({"clientConfig": {"url": "https://example.com/x?q=1"}}),
                "webhooks[0].clientConfig.url: Invalid value: \"q=1\": query parameters are not permitted in the URL",
            ),
            (
                json!({"clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "foo/"}}}),
                "webhooks[0].clientConfig.service.path: Invalid value: \"foo/\": must start with a '/'",
            ),
            (
                json!({"clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "/a//b"}}}),
                "webhooks[0].clientConfig.service.path: Invalid value: \"/a//b\": segment[1] may not be empty",
            ),
            (
                json!({"rules": [{"operations": ["CREATE", "*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}),
                "webhooks[0].rules[0].operations: Invalid value: [\"CREATE\",\"*\"]: if '*' is present, must not specify other operations",
            ),
            (
                json!({"rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["*/*", "a"]}]}),
                "webhooks[0].rules[0].resources: Invalid value: [\"*/*\",\"a\"]: if '*/*' is present, must not specify other resources",
            ),
            (
                json!({"rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["a/*", "a/x"]}]}),
                "webhooks[0].rules[0].resources[1]: Invalid value: \"a/x\": if 'a/*' is present, must not specify a/x",
            ),
            (
                json!({"rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "other"}]}),
                "webhooks[0].rules[0].scope: Unsupported value: \"other\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
            ),
            (
                json!({"matchConditions": [{"name": "", "expression": "true"}]}),
                "webhooks[0].matchConditions[0].name: Required value",
            ),
        ];
        for (extra, want) in cases {
            let got = errors(vec![hook(extra.clone())]);
            assert_eq!(got, vec![want.to_string()], "{extra}");
        }
        let dup = errors(vec![hook(json!({})), hook(json!({}))]);
        assert_eq!(
            dup,
            vec!["webhooks[1].name: Duplicate value: \"a.example.com\"".to_string()]
        );
    }

    #[test]
    fn updates_ratchet_what_was_stored() {
        let mut old = json!({"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "x"},
            "webhooks": [hook(json!({"sideEffects": "Some"}))]});
        WebhookConfigurations.default(&mut old);
        let mut new = old.clone();
        new["webhooks"][0]["timeoutSeconds"] = json!(5);
        assert!(WebhookConfigurations.validate_update(&new, &old).is_empty());
        assert_eq!(WebhookConfigurations.validate(&new).len(), 1);
    }

    fn policy_errors(spec: Value) -> Vec<String> {
        let mut obj = json!({"metadata": {"name": "p"}, "spec": spec});
        ValidatingAdmissionPolicies.default(&mut obj);
        ValidatingAdmissionPolicies
            .validate(&obj)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn policies_and_bindings_as_upstream() {
        let rules = json!({"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]});
        assert!(
            policy_errors(
                json!({"matchConstraints": rules, "validations": [{"expression": "true"}]})
            )
            .is_empty()
        );
        assert_eq!(
            policy_errors(
                json!({"matchConstraints": {}, "validations": [{"expression": " ", "reason": "Teapot"}]})
            ),
            [
                "spec.matchConstraints.resourceRules: Required value",
                "spec.validations[0].expression: Required value: expression is not specified",
                "spec.validations[0].reason: Unsupported value: \"Teapot\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\"",
            ]
        );
        assert_eq!(
            policy_errors(
                json!({"matchConstraints": rules, "paramKind": {"apiVersion": "a/b/c", "kind": "K"}, "variables": [{"name": "1x", "expression": "1"}]})
            ),
            [
                "spec.paramKind.apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c",
                "spec.variables[0].name: Invalid value: \"1x\": name is not a valid CEL identifier",
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
            ]
        );
        let mut binding = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": ["Deny", "Warn"],
            "paramRef": {"name": "x"}}});
        ValidatingAdmissionPolicyBindings.default(&mut binding);
        let got: Vec<String> = ValidatingAdmissionPolicyBindings
            .validate(&binding)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "spec.paramRef.parameterNotFoundAction: Required value",
                "spec.validationActions: Invalid value: [\"Deny\",\"Warn\"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ]
        );
    }

    /// Messages as kube-apiserver 1.37.2 gives them.
    #[test]
    fn mutating_policies_as_upstream() {
        let mut obj = json!({"metadata": {"name": "p"}, "spec": {
        "reinvocationPolicy": "Sometimes", "failurePolicy": "Maybe",
        "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]},
        "mutations": [
            {"patchType": "Other"},
            {"patchType": "ApplyConfiguration"},
            {"patchType": "JSONPatch", "applyConfiguration": {"expression": "Object{}"}},
        ]}});
        MutatingAdmissionPolicies.default(&mut obj);
        let got: Vec<String> = MutatingAdmissionPolicies
            .validate(&obj)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "spec.failurePolicy: Unsupported value: \"Maybe\": supported values: \"Fail\", \"Ignore\"",
                "spec.mutations[0].patchType: Unsupported value: \"Other\": supported values: \"ApplyConfiguration\", \"JSONPatch\"",
                "spec.mutations[1].applyConfiguration: Required value: must be specified when patchType is ApplyConfiguration",
                "spec.mutations[2].jsonPatch: Required value: must be specified when patchType is JSONPatch",
                "spec.mutations[2].applyConfiguration: Invalid value: \"{applyConfiguration}\": must not be specified when patchType is JSONPatch",
                "spec.reinvocationPolicy: Unsupported value: \"Sometimes\": supported values: \"IfNeeded\", \"Never\"",
            ]
        );
        let mut empty =
            json!({"metadata": {"name": "p"}, "spec": {"matchConstraints": {}, "mutations": []}});
        MutatingAdmissionPolicies.default(&mut empty);
        let got: Vec<String> = MutatingAdmissionPolicies
            .validate(&empty)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "spec.matchConstraints.resourceRules: Required value",
                "spec.mutations: Required value: mutations must contain at least one item",
                "spec.reinvocationPolicy: Required value",
            ]
        );
        let binding = json!({"metadata": {"name": "b"}, "spec": {"paramRef": {"name": "x"}}});
        let got: Vec<String> = MutatingAdmissionPolicyBindings
            .validate(&binding)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "spec.policyName: Required value",
                "spec.paramRef.parameterNotFoundAction: Required value",
            ]
        );
    }
}
