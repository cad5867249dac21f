//! Defaulting, as upstream's `structuraldefaulting.Default` followed by
//! `PruneNonNullableNullsWithoutDefaults`.
//!
//! Missing properties (and `null`s of non-nullable ones) take their schema's
//! `default`, also inside array items and map values; remaining `null`s of
//! non-nullable fields without a default are dropped. This module only fills
//! and drops values; it never validates.

use nestkube_api::error::FieldError;
use serde_json::Value;

use crate::path::{child, key};
use crate::structural::Node;

/// Applies the defaults of `s` to `x`, recursively.
pub(crate) fn apply(s: &Node, x: &mut Value) {
    default(s, x);
    prune_nulls(s, x);
}

fn is_non_nullable_null(x: &Value, s: &Node) -> bool {
    x.is_null() && !s.nullable
}

fn default(s: &Node, x: &mut Value) {
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                let Some(d) = &prop.default else { continue };
                match map.get(k) {
                    Some(v) if !is_non_nullable_null(v, prop) => {}
                    _ => {
                        map.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    default(prop, v);
                } else if let Some(ap) = s.additional.schema() {
                    if is_non_nullable_null(v, ap)
                        && let Some(d) = &ap.default
                    {
                        *v = d.clone();
                    }
                    default(ap, v);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = &s.items else { return };
            for v in items.iter_mut() {
                if is_non_nullable_null(v, item_schema)
                    && let Some(d) = &item_schema.default
                {
                    *v = d.clone();
                }
                default(item_schema, v);
            }
        }
        _ => {}
    }
}

/// `PruneNonNullableNullsWithoutDefaults`.
fn prune_nulls(s: &Node, x: &mut Value) {
    match x {
        Value::Object(map) => {
            map.retain(|k, v| match s.properties.get(k) {
                Some(prop) => !(v.is_null() && prop.default.is_none() && !prop.nullable),
                None => true,
            });
            for (k, v) in map.iter_mut() {
                if let Some(p) = s.field(k) {
                    prune_nulls(p, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &s.items {
                for v in items.iter_mut() {
                    prune_nulls(item_schema, v);
                }
            }
        }
        _ => {}
    }
}

/// Upstream's `ValidateDefaults` for a schema rooted at `path`: every
/// `default` must be pruned already (no unknown fields) and valid against its
/// schema. The root counts as a resource; defaults inside the type and object
/// meta of resources are left to the metadata checks (upstream validates them
/// as ObjectMeta, and forbids them at the root), and, as upstream, defaults
/// below `additionalProperties` are not visited.
pub(crate) fn check(root: &Node, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_node(root, path, true, false, &mut errs);
    errs
}

fn check_node(s: &Node, path: &str, resource: bool, inside_meta: bool, errs: &mut Vec<FieldError>) {
    let resource = resource || s.embedded;
    let inside_meta = inside_meta && !s.embedded;
    if let Some(d) = s.default.as_ref().filter(|_| !inside_meta) {
        let dp = child(path, "default");
        let mut pruned = d.clone();
        crate::prune::prune_value(s, &mut pruned);
        if &pruned != d {
            errs.push(FieldError::invalid(
                dp.clone(),
                d.clone(),
                "must not have unknown fields",
            ));
        }
        errs.extend(crate::validate::openapi_at(s, d, &dp));
    }
    if let Some(items) = &s.items {
        check_node(items, &child(path, "items"), false, inside_meta, errs);
    }
    for (k, p) in &s.properties {
        let meta = resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
        check_node(
            p,
            &key(&child(path, "properties"), k),
            false,
            inside_meta || meta,
            errs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, mut obj: Value) -> Value {
        apply(&Node::parse(&schema), &mut obj);
        obj
    }

    #[test]
    fn defaults_fill_missing_and_non_nullable_nulls() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "string", "default": "A"},
            "b": {"type": "string", "default": "B", "nullable": true},
            "c": {"type": "string"},
            "d": {"type": "string", "nullable": true}}});
        assert_eq!(
            run(s, json!({"a": null, "b": null, "c": null, "d": null})),
            json!({"a": "A", "b": null, "d": null})
        );
    }

    #[test]
    fn defaults_reach_items_and_map_values() {
        let s = json!({"type": "object", "properties": {
            "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer", "default": 1}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"y": {"type": "string", "default": "y"}}}}}});
        assert_eq!(
            run(s, json!({"list": [{}, {"x": 2}], "map": {"k": {}}})),
            json!({"list": [{"x": 1}, {"x": 2}], "map": {"k": {"y": "y"}}})
        );
    }

    #[test]
    fn a_defaulted_object_is_itself_defaulted() {
        let s = json!({"type": "object", "properties": {
            "spec": {"type": "object", "default": {}, "properties": {"r": {"type": "integer", "default": 3}}}}});
        assert_eq!(run(s, json!({})), json!({"spec": {"r": 3}}));
    }
}
