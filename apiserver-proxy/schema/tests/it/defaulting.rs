//! Defaulting, after upstream's `defaulting/algorithm_test.go` (`TestDefault`)
//! and `prunenulls_test.go`.

use serde_json::{Value, json};

use crate::schema;

fn default(s: Value, mut obj: Value) -> Value {
    schema(s).apply_defaults(&mut obj);
    obj
}

#[test]
fn upstream_default_table() {
    let s = json!({"type": "object", "properties": {
        "a": {"type": "string", "default": "A"},
        "b": {"type": "string", "default": "B", "nullable": true},
        "c": {"type": "string", "default": "C"},
        "d": {"type": "array", "items": {"type": "object", "properties": {
            "a": {"type": "string", "default": "A"},
            "b": {"type": "string", "default": "B", "nullable": true},
            "c": {"type": "string"}}}},
        "e": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "a": {"type": "string", "default": "A"}}}},
        "f": {"type": "object", "default": {}, "properties": {"g": {"type": "integer", "default": 7}}}}});
    let obj = json!({"a": "a", "b": null, "c": null, "d": [{"a": null}, {"b": null}, {"c": null}], "e": {"x": {}, "y": {"a": "y"}}});
    assert_eq!(
        default(s, obj),
        json!({
            "a": "a", "b": null, "c": "C",
            "d": [{"a": "A", "b": "B"}, {"a": "A", "b": null}, {"a": "A", "b": "B"}],
            "e": {"x": {"a": "A"}, "y": {"a": "y"}},
            "f": {"g": 7}
        })
    );
}

#[test]
fn null_items_and_map_values_take_the_default() {
    let s = json!({"type": "object", "properties": {
        "list": {"type": "array", "items": {"type": "string", "default": "x"}},
        "map": {"type": "object", "additionalProperties": {"type": "string", "default": "y"}},
        "nullableList": {"type": "array", "items": {"type": "string", "default": "x", "nullable": true}}}});
    assert_eq!(
        default(
            s,
            json!({"list": ["a", null], "map": {"k": null}, "nullableList": [null]})
        ),
        json!({"list": ["a", "x"], "map": {"k": "y"}, "nullableList": [null]})
    );
}

#[test]
fn non_nullable_nulls_without_defaults_are_dropped() {
    let s = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "nullable": true},
            "c": {"type": "object", "properties": {"d": {"type": "integer"}}}}}}});
    assert_eq!(
        default(s, json!({"spec": {"a": null, "b": null, "c": {"d": null}}})),
        json!({"spec": {"b": null, "c": {}}})
    );
}

#[test]
fn defaults_do_not_reach_unknown_fields() {
    let s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
        "spec": {"type": "object", "properties": {"a": {"type": "string", "default": "A"}}}}});
    assert_eq!(
        default(s, json!({"other": {"a": null}})),
        json!({"other": {"a": null}})
    );
}
