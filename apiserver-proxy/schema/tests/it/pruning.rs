//! Pruning, ported from upstream's `pruning/algorithm_test.go` (`TestPrune`)
//! through the public API: the root is always a resource root here.

use serde_json::{Value, json};

use crate::schema;

fn prune(s: Value, mut obj: Value) -> (Value, Vec<String>) {
    let pruned = schema(s).prune(&mut obj);
    (obj, pruned)
}

#[test]
fn object_array_object() {
    let (obj, pruned) = prune(
        json!({"type": "object", "properties": {
            "array": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}, "c": {"type": "integer"}}}},
            "specified": {"type": "object", "properties": {"a": {"type": "integer"}, "c": {"type": "integer"}}}}}),
        json!({"array": [{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}], "unspecified": {"a": 1}, "specified": {"a": 1, "b": 2, "c": 3}}),
    );
    assert_eq!(
        obj,
        json!({"array": [{"a": 1}, {}, {"a": 1, "c": 3}], "specified": {"a": 1, "c": 3}})
    );
    assert_eq!(
        pruned,
        ["array[1].b", "array[2].b", "specified.b", "unspecified"]
    );
}

#[test]
fn nested_preserve_unknown_fields() {
    let s = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "alpha": {"type": "string"},
            "beta": {"type": "number"},
            "pruning": {"type": "object", "properties": {
                "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "pruning": {"type": "object"}}},
            "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "pruning": {"type": "object"}}},
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "additionalProperties": {"type": "object", "properties": {"specified": {"type": "object"}}}},
            "preservingAdditionalPropertiesKeyPruneValues": {
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"specified": {"type": "object"}}}}
        }
    });
    let obj = json!({
        "unspecified": "bar",
        "alpha": "abc",
        "beta": 42.0,
        "unspecifiedObject": {"unspecified": "bar"},
        "pruning": {
            "unspecified": "bar",
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"unspecified": "bar"},
            "apiVersion": "unknown",
            "preserving": {"unspecified": "bar"}
        },
        "preserving": {
            "unspecified": "bar",
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"unspecified": "bar"},
            "preserving": {"unspecified": "bar"}
        },
        "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {
            "foo": {"specified": {"unspecified": "bar"}, "unspecified": "bar"}
        },
        "preservingAdditionalPropertiesKeyPruneValues": {
            "foo": {"specified": {"unspecified": "bar"}, "unspecified": "bar"}
        }
    });
    let (obj, pruned) = prune(s, obj);
    assert_eq!(
        obj,
        json!({
            "unspecified": "bar",
            "alpha": "abc",
            "beta": 42.0,
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"pruning": {}, "preserving": {"unspecified": "bar"}},
            "preserving": {
                "unspecified": "bar",
                "unspecifiedObject": {"unspecified": "bar"},
                "pruning": {},
                "preserving": {"unspecified": "bar"}
            },
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {"foo": {"specified": {}}},
            "preservingAdditionalPropertiesKeyPruneValues": {"foo": {"specified": {}}}
        })
    );
    assert_eq!(
        pruned,
        [
            "preserving.pruning.unspecified",
            "preservingAdditionalPropertiesKeyPruneValues.foo.specified.unspecified",
            "preservingAdditionalPropertiesKeyPruneValues.foo.unspecified",
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields.foo.specified.unspecified",
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields.foo.unspecified",
            "pruning.apiVersion",
            "pruning.pruning.unspecified",
            "pruning.unspecified",
            "pruning.unspecifiedObject",
        ]
    );
}

#[test]
fn additional_properties_with_schema() {
    let (obj, pruned) = prune(
        json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "c": {"type": "object", "additionalProperties": {"type": "integer"}}}}),
        json!({"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1}}}),
    );
    assert_eq!(obj, json!({"a": 1, "c": {"a": 1, "b": 2, "c": {}}}));
    assert_eq!(pruned, ["b", "c.c.a"]);
}

/// Upstream's embedded-resource table, through the whole decoding step: the
/// embedded `metadata` also goes through ObjectMeta (unknown fields dropped,
/// `creationTimestamp: null`), as `objectmeta.Coerce` does after pruning.
#[test]
fn embedded_resources_keep_type_meta_and_coerce_metadata() {
    let embedded = |extra: Value| {
        let mut s = json!({"type": "object", "x-kubernetes-embedded-resource": true});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let s = json!({"type": "object", "properties": {
        "pruned": embedded(json!({"properties": {"spec": {"type": "object"}}})),
        "preserving": embedded(json!({"x-kubernetes-preserve-unknown-fields": true})),
        "nested": embedded(json!({"properties": {"spec": {"type": "object", "properties": {
            "embedded": embedded(json!({"properties": {"spec": {"type": "object"}}}))}}}}))}});
    let resource = |inner: Value| {
        json!({"apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar",
               "metadata": {"name": "instance", "unspecified": "bar"}, "spec": inner})
    };
    let obj = json!({
        "apiVersion": "foo/v1", "kind": "Foo",
        "metadata": {"name": "instance", "unspecified": "bar"},
        "unspecified": "bar",
        "pruned": resource(json!({"unspecified": "bar"})),
        "preserving": resource(json!({"unspecified": "bar"})),
        "nested": resource(json!({"unspecified": "bar", "embedded": resource(json!({"unspecified": "bar"}))})),
    });
    let (obj, pruned) = prune(s, obj);
    let meta = json!({"name": "instance", "creationTimestamp": null});
    assert_eq!(
        obj,
        json!({
            "apiVersion": "foo/v1", "kind": "Foo",
            "metadata": {"name": "instance", "unspecified": "bar"},
            "pruned": {"apiVersion": "foo/v1", "kind": "Foo", "metadata": meta, "spec": {}},
            "preserving": {"apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar", "metadata": meta, "spec": {"unspecified": "bar"}},
            "nested": {"apiVersion": "foo/v1", "kind": "Foo", "metadata": meta, "spec": {
                "embedded": {"apiVersion": "foo/v1", "kind": "Foo", "metadata": meta, "spec": {}}}}
        })
    );
    assert_eq!(
        pruned,
        [
            "nested.metadata.unspecified",
            "nested.spec.embedded.metadata.unspecified",
            "nested.spec.embedded.spec.unspecified",
            "nested.spec.embedded.unspecified",
            "nested.spec.unspecified",
            "nested.unspecified",
            "preserving.metadata.unspecified",
            "pruned.metadata.unspecified",
            "pruned.spec.unspecified",
            "pruned.unspecified",
            "unspecified",
        ]
    );
}

#[test]
fn additional_properties_false_prunes_values_of_objects() {
    let (obj, pruned) = prune(
        json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "c": {"type": "object", "properties": {"a": {"type": "integer"}}}}}),
        json!({"a": 1, "b": 1, "c": {"a": 1, "b": 2}}),
    );
    assert_eq!(obj, json!({"a": 1, "c": {"a": 1}}));
    assert_eq!(pruned, ["b", "c.b"]);
}
