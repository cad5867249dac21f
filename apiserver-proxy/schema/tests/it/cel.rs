//! `x-kubernetes-validations`: compilation errors at CRD level, evaluation
//! errors shaped as upstream's CEL validator reports them.

use nestkube_schema::Schema;
use serde_json::{Value, json};

use crate::{messages, schema};

fn with_rules(rules: Value) -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": rules,
        "properties": {
            "replicas": {"type": "integer"},
            "min": {"type": "integer"},
            "name": {"type": "string"}}}}})
}

/// Since Kubernetes 1.35 a failing rule shows a scalar's value and omits an
/// object's or array's (it used to show the type name, `"object"`).
#[test]
fn failing_rule_omits_object_values() {
    let s = schema(with_rules(json!([
        {"rule": "self.replicas >= self.min", "message": "replicas must be at least min"}
    ])));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"replicas": 1, "min": 2}}), None)),
        ["spec: Invalid value: replicas must be at least min"]
    );
    assert!(
        s.validate(&json!({"spec": {"replicas": 3, "min": 2}}), None)
            .is_empty()
    );
}

#[test]
fn default_message_names_the_rule() {
    let s = schema(with_rules(json!([{"rule": "self.replicas > 0"}])));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"replicas": 0}}), None)),
        ["spec: Invalid value: failed rule: self.replicas > 0"]
    );
}

#[test]
fn message_expression_reason_and_field_path() {
    let s = schema(with_rules(json!([
        {"rule": "self.name.startsWith('a')", "messageExpression": "'name ' + self.name + ' must start with a'",
         "reason": "FieldValueForbidden", "fieldPath": ".name"},
        {"rule": "self.replicas < 10", "reason": "FieldValueRequired", "message": "too many"}
    ])));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"name": "bob", "replicas": 10}}), None)),
        [
            "spec: Required value: too many",
            "spec.name: Forbidden: name bob must start with a",
        ]
    );
}

#[test]
fn transition_rules_only_run_on_update() {
    let s = schema(with_rules(json!([
        {"rule": "self.name == oldSelf.name", "message": "name is immutable"}
    ])));
    let new = json!({"spec": {"name": "b"}});
    assert!(s.validate(&new, None).is_empty());
    assert_eq!(
        messages(&s.validate(&new, Some(&json!({"spec": {"name": "a"}})))),
        ["spec: Invalid value: name is immutable"]
    );
}

#[test]
fn root_rules_report_the_nil_path() {
    let s = schema(json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "has(self.spec)", "message": "spec is required"}],
        "properties": {"spec": {"type": "object"}}}));
    assert_eq!(
        messages(&s.validate(&json!({}), None)),
        ["<nil>: Invalid value: spec is required"]
    );
}

#[test]
fn blocking_schema_errors_skip_rules() {
    let s = schema(with_rules(json!([{"rule": "self.replicas > 0"}])));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"replicas": "x"}}), None)),
        [
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
}

#[test]
fn rules_on_items_and_map_values() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "ports": {"type": "array", "maxItems": 10, "items": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self > 0 && self < 65536", "message": "bad port"}]}},
        "labels": {"type": "object", "maxProperties": 10, "additionalProperties": {"type": "string", "maxLength": 10,
            "x-kubernetes-validations": [{"rule": "self != ''", "message": "empty"}]}}}}}}),
    );
    assert_eq!(
        messages(&s.validate(
            &json!({"spec": {"ports": [80, 0], "labels": {"a": ""}}}),
            None
        )),
        [
            "spec.labels[a]: Invalid value: \"\": empty",
            "spec.ports[1]: Invalid value: 0: bad port",
        ]
    );
}

#[test]
fn ratcheting_skips_rules_on_unchanged_values() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "a": {"type": "string", "maxLength": 10, "x-kubernetes-validations": [{"rule": "self.size() < 3", "message": "short"}]},
        "b": {"type": "string", "maxLength": 10, "x-kubernetes-validations": [{"rule": "self.size() < 3", "message": "short"}]}}}}}),
    );
    let old = json!({"spec": {"a": "long", "b": "ok"}});
    let new = json!({"spec": {"a": "long", "b": "long"}});
    let v = s.validate_with_warnings(&new, Some(&old));
    assert_eq!(
        messages(&v.errors),
        ["spec.b: Invalid value: \"long\": short"]
    );
    assert_eq!(v.warnings, ["spec.a: Invalid value: \"long\": short"]);
}

#[test]
fn compile_errors_point_at_the_rule() {
    let e = Schema::compile(
        &with_rules(json!([{"rule": "self.replicas >"}])),
        "spec.versions[0].schema.openAPIV3Schema",
    )
    .unwrap_err();
    let m = messages(&e);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with("spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {\"rule\":\"self.replicas >\"}: compilation failed"),
        "{m:?}"
    );
}

#[test]
fn static_rule_checks() {
    let e = Schema::compile(
        &with_rules(json!([
            {"rule": " "},
            {"rule": "self.a\n  > 1"},
            {"rule": "true", "reason": "Nope"},
            {"rule": "true", "fieldPath": ".nothere"},
            {"rule": "true", "optionalOldSelf": true}
        ])),
        "s",
    )
    .unwrap_err();
    assert_eq!(
        messages(&e),
        [
            "s.properties[spec].x-kubernetes-validations[0].rule: Required value: rule is not specified",
            "s.properties[spec].x-kubernetes-validations[1].message: Required value: message must be specified if rule contains line breaks",
            "s.properties[spec].x-kubernetes-validations[2].reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
            "s.properties[spec].x-kubernetes-validations[3].fieldPath: Invalid value: \".nothere\": fieldPath must be a valid path",
            "s.properties[spec].x-kubernetes-validations[4].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule",
        ]
    );
}

#[test]
fn old_self_needs_a_correlatable_place() {
    let e = Schema::compile(
        &json!({"type": "object", "properties": {"list": {"type": "array", "items": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}),
        "s",
    )
    .unwrap_err();
    assert_eq!(
        messages(&e),
        [
            "s.properties[list].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within s.properties[list]"
        ]
    );
}

#[test]
fn unbounded_rules_are_too_expensive() {
    let e = Schema::compile(
        &json!({"type": "object", "properties": {"list": {"type": "array",
            "items": {"type": "array", "items": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.all(a, self.all(b, a.all(x, b.all(y, x == y))))"}]}}}),
        "s",
    );
    let m = messages(&e.unwrap_err());
    assert!(
        m.iter().any(|e| e.starts_with("s.properties[list].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of")),
        "{m:?}"
    );
}

#[test]
fn transition_rules_pair_map_list_items_by_key() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "maxItems": 10, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "maxLength": 10},
                "size": {"type": "integer", "x-kubernetes-validations": [
                    {"rule": "self >= oldSelf", "message": "may not shrink"}]}}}}}}}}),
    );
    let old = json!({"spec": {"items": [{"name": "a", "size": 1}, {"name": "b", "size": 5}]}});
    // Reordered, one grown, one new: nothing shrank.
    let new = json!({"spec": {"items": [{"name": "c", "size": 0}, {"name": "b", "size": 5}, {"name": "a", "size": 2}]}});
    assert!(
        s.validate(&new, Some(&old)).is_empty(),
        "{:?}",
        messages(&s.validate(&new, Some(&old)))
    );
    let shrunk = json!({"spec": {"items": [{"name": "b", "size": 4}, {"name": "a", "size": 1}]}});
    assert_eq!(
        messages(&s.validate(&shrunk, Some(&old))),
        ["spec.items[0].size: Invalid value: 4: may not shrink"]
    );
}

#[test]
fn ratcheting_below_an_atomic_list_looks_at_the_list() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "hosts": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 20,
            "x-kubernetes-validations": [{"rule": "self.endsWith('.com')", "message": "must end in .com"}]}},
        "other": {"type": "string"}}}}}),
    );
    let old = json!({"spec": {"hosts": ["a.org"], "other": "x"}});
    assert!(
        s.validate(
            &json!({"spec": {"hosts": ["a.org"], "other": "y"}}),
            Some(&old)
        )
        .is_empty()
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"hosts": ["a.org", "b.com"]}}), Some(&old))),
        ["spec.hosts[0]: Invalid value: \"a.org\": must end in .com"]
    );
}

#[test]
fn rules_may_only_select_declared_fields() {
    let e = Schema::compile(
        &with_rules(json!([{"rule": "self.replicas > 0 && self.replica < 5"}])),
        "s",
    )
    .unwrap_err();
    assert_eq!(
        messages(&e),
        [
            "s.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {\"rule\":\"self.replicas > 0 && self.replica < 5\"}: compilation failed: ERROR: <input>: undefined field 'replica'"
        ]
    );
    // Maps, unknown fields and type meta of resources stay open.
    schema(json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "self.metadata.name != '' && self.kind != ''"}],
        "properties": {"spec": {"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"},
                "x-kubernetes-validations": [{"rule": "self.anything == 'x' || true"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-validations": [{"rule": "has(self.whatever) || true"}]},
            "list": {"type": "array", "items": {"type": "object", "properties": {"a-b": {"type": "string"}}},
                "x-kubernetes-validations": [{"rule": "self.all(x, x.a__dash__b != '') && self[0].a__dash__b != ''"}]}}}}}));
}

#[test]
fn evaluation_errors_name_the_rule() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.a / self.b > 0"}],
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}),
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"a": 1, "b": 0}}), None)),
        ["spec: Invalid value: \"object\": division by zero evaluating rule: self.a / self.b > 0"]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"a": 1}}), None)),
        ["spec: Invalid value: \"object\": no such key: b evaluating rule: self.a / self.b > 0"]
    );
}

#[test]
fn map_entries_are_keys_even_with_dots() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "labels": {"type": "object", "maxProperties": 10, "additionalProperties": {"type": "object",
            "properties": {"v": {"type": "string", "maxLength": 10}},
            "x-kubernetes-validations": [{"rule": "self.v != ''", "message": "empty"}]}}}}}}),
    );
    assert_eq!(
        messages(&s.validate(
            &json!({"spec": {"labels": {"app.kubernetes.io/name": {"v": ""}}}}),
            None
        )),
        ["spec.labels[app.kubernetes.io/name]: Invalid value: empty"]
    );
}

#[test]
fn an_empty_message_expression_falls_back_to_the_message() {
    let s = schema(with_rules(json!([
        {"rule": "self.replicas > 0", "message": "needs replicas", "messageExpression": "''"}
    ])));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"replicas": 0}}), None)),
        ["spec: Invalid value: needs replicas"]
    );
}

#[test]
fn defaults_must_pass_the_rules() {
    let e = Schema::compile(
        &json!({"type": "object", "properties": {"spec": {"type": "object",
            "default": {"replicas": 0},
            "x-kubernetes-validations": [{"rule": "self.replicas > 0", "message": "needs replicas"}],
            "properties": {"replicas": {"type": "integer", "default": 5,
                "x-kubernetes-validations": [{"rule": "self < 3", "message": "at most 2"}]}}}}}),
        "s",
    )
    .unwrap_err();
    assert_eq!(
        messages(&e),
        [
            "s.properties[spec].default: Invalid value: needs replicas",
            "s.properties[spec].properties[replicas].default: Invalid value: 5: at most 2",
        ]
    );
}
