//! `x-kubernetes-validations`: CEL rules compiled once per schema (through the
//! `kube-cel` crate) and evaluated against custom resources, with upstream's
//! error shapes (`spec: Invalid value: "object": <message>`, reasons, field
//! paths), transition rules only on update, and ratcheting of unchanged values.
//!
//! This module owns everything CEL; it never validates OpenAPI keywords and
//! never changes objects.

use std::collections::HashMap;

use kube_cel::{CompilationError, CompiledSchema, ErrorKind, Validator, WarningKind};
use nestkube_api::error::{FieldError, FieldErrorType};
use serde_json::Value;

use crate::path::{child, index, key};
use crate::structural::Node;

/// Upstream's `StaticEstimatedCostLimit`: the most one rule may cost.
const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;

/// The JSON type name upstream prints for a value.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a rule refers to `oldSelf` (a transition rule). A rule that does not
/// parse counts as not referring to it.
pub(crate) fn references_old_self(rule: &str) -> bool {
    kube_cel::cel::Program::compile(rule)
        .map(|p| p.references().has_variable("oldSelf"))
        .unwrap_or(false)
}

/// Where a rule is declared: the schema type at that node (upstream prints it
/// as the error value) and its `fieldPath`.
struct Declared {
    ty: String,
    field_path: String,
    /// The rule's `message`, which upstream names a rule by in evaluation errors.
    message: String,
    /// Whether the rule refers to `oldSelf`.
    transition: bool,
}

/// The compiled rules of one schema.
pub(crate) struct Rules {
    compiled: CompiledSchema,
    /// Rule text to its declarations, to recover the declaring node of an error.
    declared: HashMap<String, Vec<Declared>>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("rules", &self.declared.len())
            .finish()
    }
}

thread_local! {
    /// A CEL environment with the Kubernetes libraries, built once per thread
    /// (registering the functions is the expensive part, not evaluation).
    static VALIDATOR: Validator = Validator::new();
}

impl Rules {
    /// Compiles every rule of `raw`; `None` when the schema declares none.
    /// Errors carry paths below `path` (`….x-kubernetes-validations[0].rule`).
    pub(crate) fn compile(raw: &Value, path: &str) -> Result<Option<Rules>, Vec<FieldError>> {
        let mut declared = HashMap::new();
        collect(raw, &mut declared);
        if declared.is_empty() {
            return Ok(None);
        }
        let compiled = kube_cel::compile_schema(raw);
        let mut errs = Vec::new();
        compile_errors(raw, &compiled, path, true, &mut errs);
        if errs.is_empty() {
            Ok(Some(Rules { compiled, declared }))
        } else {
            Err(errs)
        }
    }

    /// Evaluates the rules on `obj` (and `old` on update); errors are shaped
    /// as upstream's CEL validator reports them. The second list holds the
    /// ratcheted failures, which upstream returns as warnings.
    pub(crate) fn validate(
        &self,
        root: &Node,
        obj: &Value,
        old: Option<&Value>,
    ) -> (Vec<FieldError>, Vec<String>) {
        self.evaluate(&self.compiled, root, obj, old, None)
    }

    /// Upstream's CEL half of `ValidateDefaults`: every `default` (outside
    /// resource meta and map values) must pass the rules of its schema and
    /// below, evaluated with the default as both `self` and `oldSelf`. Errors
    /// read below `<schema path>.default`.
    pub(crate) fn check_defaults(&self, root: &Node, path: &str) -> Vec<FieldError> {
        let mut errs = Vec::new();
        self.defaults_below(&self.compiled, root, path, true, false, &mut errs);
        errs
    }

    fn defaults_below(
        &self,
        c: &CompiledSchema,
        s: &Node,
        path: &str,
        resource: bool,
        inside_meta: bool,
        errs: &mut Vec<FieldError>,
    ) {
        let resource = resource || s.embedded;
        let inside_meta = inside_meta && !s.embedded;
        if let Some(d) = s.default.as_ref().filter(|_| !inside_meta) {
            let at = child(path, "default");
            errs.extend(self.evaluate(c, s, d, Some(d), Some(&at)).0);
        }
        if let (Some(items), Some(ci)) = (&s.items, &c.items) {
            self.defaults_below(ci, items, &child(path, "items"), false, inside_meta, errs);
        }
        for (k, p) in &s.properties {
            if let Some(cp) = c.properties.get(k) {
                let meta = resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                let pp = key(&child(path, "properties"), k);
                self.defaults_below(cp, p, &pp, false, inside_meta || meta, errs);
            }
        }
    }

    /// Evaluates the rules of `compiled` (the schema `root`) on `obj`. Error
    /// paths are relative to `obj`, below `prefix` when given, else at the
    /// nil path for `obj` itself.
    fn evaluate(
        &self,
        compiled: &CompiledSchema,
        root: &Node,
        obj: &Value,
        old: Option<&Value>,
        prefix: Option<&str>,
    ) -> (Vec<FieldError>, Vec<String>) {
        // kube-cel pairs list items with old ones by index; upstream pairs the
        // items of `map` lists by key (and no other lists may hold transition
        // rules). Hand kube-cel an old object whose map lists are aligned with
        // the new ones; items without an old counterpart get themselves, and
        // their transition rules are dropped below, as upstream skips them.
        let mut uncorrelated = Vec::new();
        let aligned = old.map(|o| align_old(root, obj, o, "", &mut uncorrelated));
        let result = VALIDATOR.with(|v| v.validate_compiled(compiled, obj, aligned.as_ref()));
        let Err(errors) = result else {
            return (Vec::new(), Vec::new());
        };
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for e in errors.into_vec() {
            let path = upstream_path(root, obj, e.field_path.trim_start_matches('.'));
            let decl = self.declaration(&e.rule, &path);
            let transition = decl.map_or_else(|| references_old_self(&e.rule), |d| d.transition);
            if transition && uncorrelated.iter().any(|u| within(&path, u)) {
                continue;
            }
            let shown = match (prefix, path.is_empty()) {
                (Some(p), true) => p.to_string(),
                (Some(p), false) => child(p, &path),
                (None, true) => crate::validate::NIL_PATH.to_string(),
                (None, false) => path.clone(),
            };
            let ty = decl.map(|d| d.ty.clone()).unwrap_or_default();
            let base = decl
                .map(|d| {
                    let fp = d.field_path.trim_start_matches('.');
                    path.strip_suffix(fp)
                        .map(|b| b.trim_end_matches('.').to_string())
                        .unwrap_or_else(|| path.clone())
                })
                .unwrap_or_else(|| path.clone());
            // Ratcheting: a rule (other than a transition rule) that returns
            // false on a value left unchanged by the update is only a warning.
            let ratcheted = e.kind == ErrorKind::ValidationFailure
                && !transition
                && old.is_some_and(|old| crate::validate::unchanged_at(root, obj, old, &base));
            // Since 1.35 upstream shows a scalar's value and omits objects' and
            // arrays' (`field.OmitValueType{}`).
            let value = match ty.as_str() {
                "object" | "array" => None,
                _ => crate::validate::value_at(obj, &base).cloned(),
            };
            let err = match e.kind {
                ErrorKind::ValidationFailure => {
                    // A messageExpression that yields an empty or multi-line
                    // string falls back to the message, as upstream.
                    let detail = match e.message.trim() {
                        m if !m.is_empty() && !m.contains('\n') => m.to_string(),
                        _ => decl
                            .map(|d| d.message.clone())
                            .filter(|m| !m.is_empty())
                            .unwrap_or_else(|| format!("failed rule: {}", e.rule.trim())),
                    };
                    match e.reason.as_deref() {
                        Some("FieldValueForbidden") => FieldError::forbidden(shown, detail),
                        Some("FieldValueRequired") => FieldError::required(shown, detail),
                        Some("FieldValueDuplicate") => FieldError {
                            kind: FieldErrorType::Duplicate,
                            field: shown,
                            value,
                            detail: String::new(),
                        },
                        _ => FieldError {
                            kind: FieldErrorType::Invalid,
                            field: shown,
                            value,
                            detail,
                        },
                    }
                }
                _ => {
                    let label = decl
                        .map(|d| d.message.as_str())
                        .filter(|m| !m.is_empty())
                        .unwrap_or(e.rule.trim());
                    FieldError::invalid(shown, ty, runtime_error_detail(&e, label))
                }
            };
            if ratcheted {
                warnings.push(err);
            } else {
                out.push(err);
            }
        }
        // kube-cel walks properties in hash order; sort by path (stably, so
        // rules of one node keep their order) for deterministic responses.
        out.sort_by(|a, b| a.field.cmp(&b.field));
        warnings.sort_by(|a, b| a.field.cmp(&b.field));
        (out, warnings.iter().map(ToString::to_string).collect())
    }

    fn declaration(&self, rule: &str, path: &str) -> Option<&Declared> {
        let candidates = self.declared.get(rule)?;
        candidates
            .iter()
            .find(|d| {
                !d.field_path.is_empty() && path.ends_with(d.field_path.trim_start_matches('.'))
            })
            .or_else(|| candidates.iter().find(|d| d.field_path.is_empty()))
            .or_else(|| candidates.first())
    }
}

/// The detail of a rule that failed to evaluate, worded as cel-go's errors
/// are in upstream's messages where the cause is known.
fn runtime_error_detail(e: &kube_cel::ValidationError, rule: &str) -> String {
    use kube_cel::cel::ExecutionError;
    let cause = std::error::Error::source(e).and_then(|s| s.downcast_ref::<ExecutionError>());
    let text = match cause {
        Some(ExecutionError::NoSuchKey(k)) => format!("no such key: {k}"),
        Some(ExecutionError::NoSuchOverload) => {
            return format!(
                "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule}"
            );
        }
        Some(ExecutionError::DivisionByZero(_)) => "division by zero".to_string(),
        Some(ExecutionError::RemainderByZero(_)) => "modulus by zero".to_string(),
        Some(ExecutionError::Overflow(..)) => "integer overflow".to_string(),
        Some(other) => other.to_string(),
        None => e.message.clone(),
    };
    format!("{text} evaluating rule: {rule}")
}

/// A `kube-cel` error path (`spec.labels.app.kubernetes.io/name`) in
/// upstream's notation (`spec.labels[app.kubernetes.io/name]`): map entries
/// are keys, found in the object itself, so keys with dots stay whole.
fn upstream_path(root: &Node, obj: &Value, kube_path: &str) -> String {
    let mut out = String::new();
    let mut rest = kube_path;
    let (mut s, mut v) = (Some(root), obj);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                return kube_path.to_string();
            };
            let Ok(i) = r[..close].parse::<usize>() else {
                return kube_path.to_string();
            };
            out = index(&out, i);
            s = s.and_then(|s| s.items.as_deref());
            v = v.get(i).unwrap_or(&Value::Null);
            rest = r[close + 1..].trim_start_matches('.');
            continue;
        }
        let Some(map) = v.as_object() else {
            return kube_path.to_string();
        };
        // The longest key of the object that the rest of the path starts with.
        let step = map
            .keys()
            .filter(|k| {
                rest.strip_prefix(k.as_str())
                    .is_some_and(|after| after.is_empty() || after.starts_with(['.', '[']))
            })
            .max_by_key(|k| k.len());
        let Some(k) = step else {
            return kube_path.to_string();
        };
        let declared = s.is_some_and(|s| s.properties.contains_key(k));
        out = if declared {
            child(&out, k)
        } else {
            key(&out, k)
        };
        s = s.and_then(|s| s.field(k));
        v = &map[k];
        rest = rest[k.len()..].trim_start_matches('.');
    }
    out
}

/// Whether error path `path` lies at or below `prefix`.
fn within(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// `old` rearranged so that the items of `map` lists sit at the index of their
/// new counterpart (same keys); new items without one are paired with
/// themselves and their paths recorded in `uncorrelated`.
fn align_old(
    s: &Node,
    new: &Value,
    old: &Value,
    path: &str,
    uncorrelated: &mut Vec<String>,
) -> Value {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            let mut out = o.clone();
            for (k, nv) in n {
                if let (Some(ov), Some(child_schema)) = (o.get(k), s.field(k)) {
                    let p = if s.properties.contains_key(k) {
                        child(path, k)
                    } else {
                        key(path, k)
                    };
                    out.insert(k.clone(), align_old(child_schema, nv, ov, &p, uncorrelated));
                }
            }
            Value::Object(out)
        }
        (Value::Array(n), Value::Array(o)) if s.list_type.as_deref() == Some("map") => {
            let Some(item_schema) = s.items.as_deref() else {
                return old.clone();
            };
            let same_keys =
                |a: &Value, b: &Value| s.list_map_keys.iter().all(|k| a.get(k) == b.get(k));
            let aligned = n
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = format!("{path}[{i}]");
                    match o.iter().find(|oi| same_keys(item, oi)) {
                        Some(oi) => align_old(item_schema, item, oi, &p, uncorrelated),
                        None => {
                            uncorrelated.push(p);
                            item.clone()
                        }
                    }
                })
                .collect();
            Value::Array(aligned)
        }
        _ => old.clone(),
    }
}

fn collect(raw: &Value, declared: &mut HashMap<String, Vec<Declared>>) {
    let Some(o) = raw.as_object() else { return };
    if let Some(rules) = o.get("x-kubernetes-validations").and_then(Value::as_array) {
        let ty = if o.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            String::new()
        } else {
            o.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        for r in rules {
            let Some(text) = r.get("rule").and_then(Value::as_str) else {
                continue;
            };
            declared
                .entry(text.to_string())
                .or_default()
                .push(Declared {
                    ty: ty.clone(),
                    field_path: r
                        .get("fieldPath")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    message: r
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                    transition: references_old_self(text),
                });
        }
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        for p in props.values() {
            collect(p, declared);
        }
    }
    for k in ["items", "additionalProperties"] {
        if let Some(s) = o.get(k).filter(|s| s.is_object()) {
            collect(s, declared);
        }
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for s in o.get(k).and_then(Value::as_array).into_iter().flatten() {
            collect(s, declared);
        }
    }
}

/// CEL's escaping of property names that are not identifiers
/// (`__dash__`, `__dot__`, `__slash__`, `__underscores__`, reserved words).
fn unescape_field(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "package",
        "namespace",
        "null",
        "return",
        "true",
        "var",
        "void",
        "while",
    ];
    if let Some(inner) = name.strip_prefix("__").and_then(|n| n.strip_suffix("__"))
        && RESERVED.contains(&inner)
    {
        return inner.to_string();
    }
    name.replace("__underscores__", "__")
        .replace("__dot__", ".")
        .replace("__dash__", "-")
        .replace("__slash__", "/")
}

/// The schema a CEL expression denotes, when it is `self`/`oldSelf` or a
/// field or index chain from them; `None` for anything else.
fn resolve<'a>(e: &kube_cel::cel::common::ast::Expr, node: &'a Value) -> Option<&'a Value> {
    use kube_cel::cel::common::ast::Expr;
    match e {
        Expr::Ident(name) if name == "self" || name == "oldSelf" => Some(node),
        Expr::Select(sel) if !sel.test => {
            let parent = resolve(&sel.operand.expr, node)?;
            let field = unescape_field(&sel.field);
            parent
                .get("properties")
                .and_then(|p| p.get(&field))
                .or_else(|| parent.get("additionalProperties").filter(|a| a.is_object()))
        }
        Expr::Call(call) if call.func_name == "_[_]" && call.args.len() == 2 => {
            let parent = resolve(&call.args[0].expr, node)?;
            parent
                .get("items")
                .or_else(|| parent.get("additionalProperties"))
                .filter(|s| s.is_object())
        }
        _ => None,
    }
}

/// Whether selecting `field` from `schema` is a compile error upstream: the
/// schema is a closed object (declared properties, no additional ones, not
/// preserving unknown fields) that does not declare it.
fn closed_without(schema: &Value, field: &str, is_root: bool) -> bool {
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return false;
    };
    if props.is_empty()
        || schema.get("type").and_then(Value::as_str) != Some("object")
        || schema
            .get("additionalProperties")
            .is_some_and(|a| !a.is_null())
        || flag("x-kubernetes-preserve-unknown-fields")
    {
        return false;
    }
    let type_meta = (is_root || flag("x-kubernetes-embedded-resource"))
        && matches!(field, "apiVersion" | "kind" | "metadata");
    !type_meta && !props.contains_key(field)
}

/// The first field a rule selects that its schema does not declare.
fn undefined_field(
    expression: &kube_cel::cel::common::ast::IdedExpr,
    node: &Value,
    is_root: bool,
) -> Option<String> {
    use kube_cel::cel::common::ast::{EntryExpr, Expr};
    let mut stack = vec![&expression.expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Select(sel) => {
                if let Some(parent) = resolve(&sel.operand.expr, node) {
                    let field = unescape_field(&sel.field);
                    let root_here = is_root && std::ptr::eq(parent, node);
                    if closed_without(parent, &field, root_here) {
                        return Some(field);
                    }
                }
                stack.push(&sel.operand.expr);
            }
            Expr::Call(call) => {
                stack.extend(call.target.iter().map(|t| &t.expr));
                stack.extend(call.args.iter().map(|a| &a.expr));
            }
            Expr::Comprehension(c) => {
                stack.extend([
                    &c.iter_range.expr,
                    &c.accu_init.expr,
                    &c.loop_cond.expr,
                    &c.loop_step.expr,
                    &c.result.expr,
                ]);
            }
            Expr::List(l) => stack.extend(l.elements.iter().map(|x| &x.expr)),
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        stack.push(&me.key.expr);
                        stack.push(&me.value.expr);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The cost estimate in a `kube-cel` cost warning.
fn parse_cost(message: &str) -> Option<u64> {
    message
        .strip_prefix("estimated cost ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `getCostErrorMessage`.
fn cost_error_message(cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "estimated rule cost exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

fn compile_errors(
    raw: &Value,
    c: &CompiledSchema,
    path: &str,
    is_root: bool,
    errs: &mut Vec<FieldError>,
) {
    let rules = raw
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, result) in c.validations.iter().enumerate() {
        let rp = index(&child(path, "x-kubernetes-validations"), i);
        let rule_json = rules.get(i).cloned().unwrap_or(Value::Null);
        match result {
            Ok(cr) => {
                if let Some(field) = undefined_field(cr.program.expression(), raw, is_root) {
                    errs.push(FieldError::invalid(
                        child(&rp, "rule"),
                        rule_json.clone(),
                        format!("compilation failed: ERROR: <input>: undefined field '{field}'"),
                    ));
                }
                for w in kube_cel::estimate_rule_cost(&cr.rule.rule, c) {
                    if w.kind == WarningKind::CostExceeded
                        && let Some(cost) = parse_cost(&w.message)
                        && cost > STATIC_ESTIMATED_COST_LIMIT
                    {
                        errs.push(FieldError::forbidden(
                            child(&rp, "rule"),
                            cost_error_message(cost, STATIC_ESTIMATED_COST_LIMIT),
                        ));
                    }
                }
            }
            Err(CompilationError::Parse { source, .. }) => errs.push(FieldError::invalid(
                child(&rp, "rule"),
                rule_json,
                format!("compilation failed: {source}"),
            )),
            Err(CompilationError::MessageExpressionParse { source, .. }) => {
                errs.push(FieldError::invalid(
                    child(&rp, "messageExpression"),
                    rule_json,
                    format!("messageExpression compilation failed: {source}"),
                ))
            }
            Err(e) => errs.push(FieldError::invalid(
                child(&rp, "rule"),
                rule_json,
                e.to_string(),
            )),
        }
    }
    if let Some(props) = raw.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            if let Some(cp) = c.properties.get(k) {
                compile_errors(p, cp, &key(&child(path, "properties"), k), false, errs);
            }
        }
    }
    if let (Some(items), Some(ci)) = (raw.get("items"), &c.items) {
        compile_errors(items, ci, &child(path, "items"), false, errs);
    }
    if let (Some(ap), Some(ca)) = (raw.get("additionalProperties"), &c.additional_properties) {
        compile_errors(ap, ca, &child(path, "additionalProperties"), false, errs);
    }
    for (k, branches) in [
        ("allOf", &c.all_of),
        ("anyOf", &c.any_of),
        ("oneOf", &c.one_of),
    ] {
        if let Some(list) = raw.get(k).and_then(Value::as_array) {
            for (i, (s, cs)) in list.iter().zip(branches.iter()).enumerate() {
                compile_errors(s, cs, &index(&child(path, k), i), false, errs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_messages_read_as_upstream() {
        assert_eq!(
            cost_error_message(2_000_000_000, 10_000_000),
            "estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
        );
        assert!(cost_error_message(25_000_000, 10_000_000).contains("factor of 2.5x"));
        assert_eq!(
            parse_cost("estimated cost 12 exceeds K8s budget 1"),
            Some(12)
        );
    }

    #[test]
    fn old_self_is_detected() {
        assert!(references_old_self("self == oldSelf"));
        assert!(!references_old_self("self.a > 1"));
    }
}
