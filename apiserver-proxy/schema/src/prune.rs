//! Pruning of unknown fields, as upstream's `pruning.PruneWithOptions` with
//! the embedded-metadata coercion of `objectmeta.Coerce`.
//!
//! Fields the structural schema does not specify are removed, except under
//! `x-kubernetes-preserve-unknown-fields`, and except `apiVersion`, `kind` and
//! `metadata` at the root and in embedded resources (embedded `metadata` is cut
//! down to ObjectMeta's fields). The root `metadata` is never touched. This
//! module only removes; it never validates or defaults.

use serde_json::Value;

use crate::meta;
use crate::structural::Node;

const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// Prunes `obj` (a whole custom resource) against `root`; returns the pruned
/// paths as upstream's unknown-field warnings name them (`spec.foo`,
/// `spec.list[0].bar`), sorted.
pub(crate) fn prune(root: &Node, obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    walk(obj, Some(root), "", true, &mut pruned);
    pruned.sort();
    pruned
}

/// Prunes a value that is not a whole resource (a schema `default`): meta
/// fields are kept only when `s` is an embedded resource.
pub(crate) fn prune_value(s: &Node, v: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    walk(v, Some(s), "", s.embedded, &mut pruned);
    pruned
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `prune`/`skipPrune` in one: `preserve` keeps unknown fields of this level.
fn walk(x: &mut Value, s: Option<&Node>, path: &str, embedded: bool, pruned: &mut Vec<String>) {
    let preserve = s.is_some_and(|s| s.preserve_unknown);
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                if !preserve {
                    pruned.extend(map.keys().map(|k| join(path, k)));
                    map.clear();
                }
                return;
            };
            let is_root = path.is_empty();
            let mut remove = Vec::new();
            for (k, v) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    if !is_root && k == "metadata" {
                        pruned.extend(meta::coerce_embedded(v, &join(path, k)));
                    }
                    continue;
                }
                let p = join(path, k);
                if let Some(prop) = s.properties.get(k) {
                    walk(v, Some(prop), &p, prop.embedded, pruned);
                } else if s.additional.is_set() {
                    let ap = s.additional.schema();
                    walk(v, ap, &p, ap.is_some_and(|a| a.embedded), pruned);
                } else if !preserve {
                    if !(META_FIELDS.contains(&k.as_str()) && is_root) {
                        pruned.push(p);
                    }
                    remove.push(k.clone());
                }
            }
            for k in remove {
                map.remove(&k);
            }
        }
        Value::Array(items) => {
            if preserve && s.is_some_and(|s| s.items.is_none()) {
                return;
            }
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, v) in items.iter_mut().enumerate() {
                walk(
                    v,
                    item_schema,
                    &format!("{path}[{i}]"),
                    item_schema.is_some_and(|s| s.embedded),
                    pruned,
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, mut obj: Value) -> (Value, Vec<String>) {
        let p = prune(&Node::parse(&schema), &mut obj);
        (obj, p)
    }

    #[test]
    fn unknown_fields_go_and_are_named() {
        let (obj, p) = run(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "foo": 1}, "spec": {"a": "1", "b": 2}, "status": {}}),
        );
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "foo": 1}, "spec": {"a": "1"}})
        );
        assert_eq!(p, ["spec.b", "status"]);
    }

    #[test]
    fn preserve_unknown_fields_keeps_but_prunes_known_children() {
        let (obj, p) = run(
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                   "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
            json!({"spec": {"a": "1", "b": 2}, "other": {"x": 1}}),
        );
        assert_eq!(obj, json!({"spec": {"a": "1"}, "other": {"x": 1}}));
        assert_eq!(p, ["spec.b"]);
    }
}
