//! OpenAPI validation of custom resources, with upstream's messages
//! (kube-openapi's errors through `kubeOpenAPIResultToFieldErrors`).

use serde_json::{Value, json};

use crate::{messages, schema};

fn errors(s: Value, obj: Value) -> Vec<String> {
    messages(&schema(s).validate(&obj, None))
}

fn spec(props: Value) -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors(
            spec(json!({"replicas": {"type": "integer"}})),
            json!({"spec": {"replicas": "x"}})
        ),
        [
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        ]
    );
    assert_eq!(
        errors(
            spec(json!({"b": {"type": "boolean"}})),
            json!({"spec": {"b": 1.5}})
        ),
        ["spec.b: Invalid value: \"number\": spec.b in body must be of type boolean: \"number\""]
    );
}

#[test]
fn enum_is_unsupported_value() {
    assert_eq!(
        errors(
            spec(json!({"mode": {"type": "string", "enum": ["a", "b"]}})),
            json!({"spec": {"mode": "x"}})
        ),
        ["spec.mode: Unsupported value: \"x\": supported values: \"a\", \"b\""]
    );
    assert_eq!(
        errors(
            spec(json!({"n": {"type": "integer", "enum": [1, 2]}})),
            json!({"spec": {"n": 3}})
        ),
        ["spec.n: Unsupported value: 3: supported values: \"1\", \"2\""]
    );
    assert!(
        errors(
            spec(json!({"n": {"type": "number", "enum": [1, 2.5]}})),
            json!({"spec": {"n": 1.0}})
        )
        .is_empty()
    );
}

#[test]
fn required_fields() {
    let s = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
        "required": ["foo"], "properties": {"foo": {"type": "string"}}}}});
    assert_eq!(errors(s.clone(), json!({})), ["spec: Required value"]);
    assert_eq!(errors(s, json!({"spec": {}})), ["spec.foo: Required value"]);
}

#[test]
fn strings() {
    let s = spec(json!({
        "name": {"type": "string", "maxLength": 3},
        "one": {"type": "string", "maxLength": 1},
        "min": {"type": "string", "minLength": 2},
        "p": {"type": "string", "pattern": "^[a-z]+$"},
        "ts": {"type": "string", "format": "date-time"},
        "free": {"type": "string", "format": "my-own-format"}}));
    assert_eq!(
        errors(
            s,
            json!({"spec": {"name": "abcd", "one": "ab", "min": "a", "p": "A1", "ts": "noon", "free": "anything"}})
        ),
        [
            "spec.min: Invalid value: \"a\": spec.min in body should be at least 2 chars long",
            "spec.name: Too long: may not be more than 3 bytes",
            "spec.one: Too long: may not be more than 1 byte",
            "spec.p: Invalid value: \"A1\": spec.p in body should match '^[a-z]+$'",
            "spec.ts: Invalid value: \"noon\": spec.ts in body must be of type date-time: \"noon\"",
        ]
    );
}

#[test]
fn max_length_counts_characters() {
    let s = spec(json!({"name": {"type": "string", "maxLength": 2}}));
    assert!(errors(s, json!({"spec": {"name": "éé"}})).is_empty());
}

/// An integer compares with a bound truncated to an integer, as upstream's
/// `MinimumNativeType` does: `1` passes `minimum: 1.5`.
#[test]
fn numbers() {
    let s = spec(json!({
        "max": {"type": "integer", "maximum": 10},
        "xmax": {"type": "integer", "maximum": 10, "exclusiveMaximum": true},
        "min": {"type": "number", "minimum": 1.5},
        "xmin": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
        "mult": {"type": "integer", "multipleOf": 3},
        "fmult": {"type": "number", "multipleOf": 0.5}}));
    assert_eq!(
        errors(
            s,
            json!({"spec": {"max": 11, "xmax": 10, "min": 1, "xmin": 0, "mult": 4, "fmult": 0.3}})
        ),
        [
            "spec.fmult: Invalid value: 0.3: spec.fmult in body should be a multiple of 0.5",
            "spec.max: Invalid value: 11: spec.max in body should be less than or equal to 10",
            "spec.mult: Invalid value: 4: spec.mult in body should be a multiple of 3",
            "spec.xmax: Invalid value: 10: spec.xmax in body should be less than 10",
            "spec.xmin: Invalid value: 0: spec.xmin in body should be greater than 0",
        ]
    );
}

#[test]
fn int32_range() {
    let s = spec(json!({"r": {"type": "integer", "format": "int32"}}));
    assert_eq!(
        errors(s, json!({"spec": {"r": 3_000_000_000i64}})),
        [
            "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.r"
        ]
    );
}

#[test]
fn arrays_and_objects() {
    let s = spec(json!({
        "l": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
        "m": {"type": "object", "additionalProperties": {"type": "integer"}, "maxProperties": 1, "minProperties": 1}}));
    assert_eq!(
        errors(
            s.clone(),
            json!({"spec": {"l": ["a", "b", "c", 4], "m": {"a": 1, "b": "x"}}})
        ),
        [
            "spec.l[3]: Invalid value: \"integer\": spec.l[3] in body must be of type string: \"integer\"",
            "spec.l: Too many: 4: must have at most 3 items",
            "spec.m: Too many: 2: must have at most 1 item",
            "spec.m.b: Invalid value: \"string\": spec.m.b in body must be of type integer: \"string\"",
        ]
    );
    assert_eq!(
        errors(s, json!({"spec": {"l": ["a"], "m": {}}})),
        [
            "spec.l: Invalid value: 1: spec.l in body should have at least 2 items",
            "spec.m: Invalid value: 0: spec.m in body should have at least 1 properties",
        ]
    );
}

#[test]
fn nullable() {
    let s = spec(json!({"a": {"type": "string"}, "b": {"type": "object", "nullable": true}}));
    assert_eq!(
        errors(s, json!({"spec": {"a": null, "b": null}})),
        ["spec.a: Invalid value: \"null\": spec.a in body must be of type string: \"null\""]
    );
}

#[test]
fn int_or_string() {
    let s = spec(json!({"port": {"x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]}}));
    assert!(errors(s.clone(), json!({"spec": {"port": 80}})).is_empty());
    assert!(errors(s.clone(), json!({"spec": {"port": "http"}})).is_empty());
    assert_eq!(
        errors(s, json!({"spec": {"port": true}})),
        [
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "<nil>: Invalid value: \"\": \"spec.port\" must validate at least one schema (anyOf)",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer: \"boolean\"",
        ]
    );
}

#[test]
fn junctors() {
    let s = spec(json!({
        "one": {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}]},
        "all": {"type": "string", "allOf": [{"minLength": 2}, {"maxLength": 3}]},
        "not": {"type": "string", "not": {"enum": ["forbidden"]}}}));
    assert!(
        errors(
            s.clone(),
            json!({"spec": {"one": "ax", "all": "abc", "not": "ok"}})
        )
        .is_empty()
    );
    assert_eq!(
        errors(
            s,
            json!({"spec": {"one": "ab", "all": "a", "not": "forbidden"}})
        ),
        [
            "spec.all: Invalid value: \"a\": spec.all in body should be at least 2 chars long",
            "<nil>: Invalid value: \"\": \"spec.all\" must validate all the schemas (allOf)",
            "<nil>: Invalid value: \"\": \"spec.not\" must not validate the schema (not)",
            "<nil>: Invalid value: \"\": \"spec.one\" must validate one and only one schema (oneOf). Found 2 valid alternatives",
        ]
    );
}

#[test]
fn list_type_set_and_map() {
    let s = spec(json!({
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}}}));
    assert_eq!(
        errors(
            s,
            json!({"spec": {"set": ["a", "b", "a"], "map": [{"name": "x", "v": 1}, {"name": "x", "v": 2}]}})
        ),
        [
            "spec.set[2]: Duplicate value: \"a\"",
            "spec.map[1]: Duplicate value: {\"name\":\"x\"}",
        ]
    );
}

#[test]
fn embedded_resources_need_type_meta_and_valid_metadata() {
    let s = spec(
        json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true}}),
    );
    assert_eq!(
        errors(
            s.clone(),
            json!({"spec": {"template": {"metadata": {"name": "a/b"}}}})
        ),
        [
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.template.kind: Required value: must not be empty",
            "spec.template.metadata.name: Invalid value: \"a/b\": may not contain '/'",
        ]
    );
    assert!(
        errors(
            s,
            json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}}}})
        )
        .is_empty()
    );
}

#[test]
fn ratcheting_keeps_unchanged_invalid_values() {
    let s = schema(spec(json!({
        "a": {"type": "string", "maxLength": 2},
        "b": {"type": "string", "maxLength": 2}})));
    let old = json!({"spec": {"a": "long", "b": "ok"}});
    let new = json!({"spec": {"a": "long", "b": "longer"}});
    assert_eq!(
        messages(&s.validate(&new, Some(&old))),
        ["spec.b: Too long: may not be more than 2 bytes"]
    );
    assert_eq!(s.validate(&new, None).len(), 2);
}

#[test]
fn errors_sort_stably() {
    // Properties are walked in name order, so errors read the same every time.
    let s = spec(json!({"b": {"type": "integer"}, "a": {"type": "integer"}}));
    let e = errors(s, json!({"spec": {"b": "x", "a": "y"}}));
    assert!(e[0].starts_with("spec.a:"), "{e:?}");
}

/// Upstream's `TestValidateCustomResource` table (apiserver/validation), the
/// OpenAPI cases: each object either passes or fails with exactly these
/// errors (compared as sets, as upstream does).
#[test]
fn upstream_validate_custom_resource_table() {
    fn field(schema: Value) -> Value {
        json!({"type": "object", "properties": {"field": schema}})
    }
    /// A schema, objects it accepts, and objects it refuses with their errors.
    type Case = (Value, Vec<Value>, Vec<(Value, Vec<&'static str>)>);
    let cases: Vec<Case> = vec![
        (
            field(json!({"type": "object"})),
            vec![json!({}), json!({"field": {}})],
            vec![
                (
                    json!({"field": "foo"}),
                    vec![
                        r#"field: Invalid value: "string": field in body must be of type object: "string""#,
                    ],
                ),
                (
                    json!({"field": 42}),
                    vec![
                        r#"field: Invalid value: "integer": field in body must be of type object: "integer""#,
                    ],
                ),
                (
                    json!({"field": true}),
                    vec![
                        r#"field: Invalid value: "boolean": field in body must be of type object: "boolean""#,
                    ],
                ),
                (
                    json!({"field": 1.2}),
                    vec![
                        r#"field: Invalid value: "number": field in body must be of type object: "number""#,
                    ],
                ),
                (
                    json!({"field": []}),
                    vec![
                        r#"field: Invalid value: "array": field in body must be of type object: "array""#,
                    ],
                ),
                (
                    json!({"field": null}),
                    vec![
                        r#"field: Invalid value: "null": field in body must be of type object: "null""#,
                    ],
                ),
            ],
        ),
        (
            field(json!({"type": "object", "nullable": true})),
            vec![json!({}), json!({"field": {}}), json!({"field": null})],
            vec![(
                json!({"field": []}),
                vec![
                    r#"field: Invalid value: "array": field in body must be of type object: "array""#,
                ],
            )],
        ),
        (
            field(json!({"x-kubernetes-int-or-string": true})),
            vec![json!({}), json!({"field": 42}), json!({"field": "foo"})],
            vec![
                (
                    json!({"field": null}),
                    vec![
                        r#"field: Invalid value: "null": field in body must be of type integer,string: "null""#,
                    ],
                ),
                (
                    json!({"field": 1.2}),
                    vec![
                        r#"field: Invalid value: "number": field in body must be of type integer,string: "number""#,
                    ],
                ),
                (
                    json!({"field": {}}),
                    vec![
                        r#"field: Invalid value: "object": field in body must be of type integer,string: "object""#,
                    ],
                ),
            ],
        ),
        (
            field(json!({"nullable": true, "x-kubernetes-int-or-string": true,
                "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}]})),
            vec![
                json!({}),
                json!({"field": null}),
                json!({"field": 42}),
                json!({"field": "foo"}),
            ],
            vec![(
                json!({"field": true}),
                vec![
                    r#"<nil>: Invalid value: "": "field" must validate all the schemas (allOf). None validated"#,
                    r#"<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)"#,
                    r#"field: Invalid value: "boolean": field in body must be of type integer,string: "boolean""#,
                    r#"field: Invalid value: "boolean": field in body must be of type integer: "boolean""#,
                ],
            )],
        ),
        (
            json!({"type": "object", "required": ["field"], "properties": {"field": {"type": "object",
                "required": ["nested"], "properties": {"nested": {"type": "string"}}}}}),
            vec![json!({"field": {"nested": "x"}})],
            vec![
                (json!({"test": "a"}), vec!["field: Required value"]),
                (json!({"field": {}}), vec!["field.nested: Required value"]),
            ],
        ),
        (
            field(
                json!({"type": "object", "required": ["nestedint", "nestedstring"], "properties": {
                "nestedint": {"type": "integer", "enum": [1, 2]},
                "nestedstring": {"type": "string", "enum": ["a", "b"]}}}),
            ),
            vec![json!({"field": {"nestedint": 1, "nestedstring": "a"}})],
            vec![
                (
                    json!({"field": {}}),
                    vec![
                        "field.nestedint: Required value",
                        "field.nestedstring: Required value",
                    ],
                ),
                (
                    json!({"field": {"nestedint": "x", "nestedstring": true}}),
                    vec![
                        r#"field.nestedint: Invalid value: "string": field.nestedint in body must be of type integer: "string""#,
                        r#"field.nestedint: Unsupported value: "x": supported values: "1", "2""#,
                        r#"field.nestedstring: Invalid value: "boolean": field.nestedstring in body must be of type string: "boolean""#,
                        r#"field.nestedstring: Unsupported value: true: supported values: "a", "b""#,
                    ],
                ),
            ],
        ),
    ];
    for (s, ok, failing) in cases {
        let compiled = schema(s.clone());
        for obj in ok {
            assert!(
                compiled.validate(&obj, None).is_empty(),
                "{s} {obj}: {:?}",
                messages(&compiled.validate(&obj, None))
            );
        }
        for (obj, expected) in failing {
            let mut got = messages(&compiled.validate(&obj, None));
            got.sort();
            let mut want: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{s} {obj}");
        }
    }
}

#[test]
fn ratcheting_spares_a_new_required_field_of_an_untouched_spec() {
    // The CRD gained a required field; an update that leaves spec alone is
    // accepted, one that changes spec must add it.
    let s = schema(json!({"type": "object", "properties": {
        "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["added"], "properties": {
            "added": {"type": "string"}, "size": {"type": "integer"}}}}}));
    let old = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"size": 1}});
    let relabelled = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"size": 1}});
    assert!(s.validate(&relabelled, Some(&old)).is_empty());
    let resized = json!({"metadata": {}, "spec": {"size": 2}});
    assert_eq!(
        messages(&s.validate(&resized, Some(&old))),
        ["spec.added: Required value"]
    );
}

#[test]
fn list_invariants_ratchet_as_a_whole() {
    let s = schema(spec(json!({
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "other": {"type": "string"}})));
    let broken = json!({"spec": {"set": ["a", "a"], "other": "x"}});
    let fine = json!({"spec": {"set": ["a"], "other": "x"}});
    let still_broken = json!({"spec": {"set": ["a", "a", "b", "b"], "other": "y"}});
    assert!(s.validate(&still_broken, Some(&broken)).is_empty());
    assert_eq!(
        messages(&s.validate(&still_broken, Some(&fine))),
        [
            "spec.set[1]: Duplicate value: \"a\"",
            "spec.set[3]: Duplicate value: \"b\"",
        ]
    );
}
