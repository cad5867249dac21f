//! Per-type behaviour: one small [`Strategy`] per resource, split by API
//! group, after upstream's `pkg/apis/*/v1/defaults.go`,
//! `pkg/apis/*/validation`, `pkg/registry/*/*/strategy.go` and
//! `pkg/printers/internalversion/printers.go`.
//!
//! This module owns the dispatch from (group, resource) to a strategy and the
//! JSON helpers strategies share. It never stores, never talks to other
//! objects (no lookups of other resources), and never panics on user input:
//! every access is defensive, because objects come from users.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::strategy::{DefaultStrategy, Strategy};

pub mod admissionregistration;
pub mod apps;
pub mod batch;
pub mod cluster_ip;
pub mod core;
pub mod labelselector;
pub mod misc;
pub mod networking;
pub mod podspec;
pub mod printing;
pub mod rbac;
pub mod tenancy;

pub use nestkube_api::quantity;

pub use printing::{age_cell, humanize_age};

/// The strategy serving `resource` in `group` ("" is core);
/// [`DefaultStrategy`] for anything without specifics.
pub fn strategy_for(group: &str, resource: &str) -> Arc<dyn Strategy> {
    if let Some(s) = core::strategy(group, resource)
        .or_else(|| apps::strategy(group, resource))
        .or_else(|| batch::strategy(group, resource))
        .or_else(|| networking::strategy(group, resource))
        .or_else(|| rbac::strategy(group, resource))
        .or_else(|| misc::strategy(group, resource))
        .or_else(|| tenancy::strategy(group, resource))
    {
        return s;
    }
    Arc::new(DefaultStrategy)
}

/// `v[key]` if `v` is an object and the key is present (and not null).
pub(crate) fn child<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.as_object_mut()?.get_mut(key).filter(|c| !c.is_null())
}

/// `v[key]` as an object, inserting `{}` when absent or null; `None` when `v`
/// is not an object or the field holds something else.
pub(crate) fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map = v.as_object_mut()?;
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.is_object().then_some(entry)
}

/// Sets `v[key] = value` when `v` is an object and the key is absent or null
/// (Go's "if x == nil / == \"\" { x = default }").
pub(crate) fn set_default(v: &mut Value, key: &str, value: Value) {
    if let Some(map) = v.as_object_mut() {
        let empty = match map.get(key) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if empty {
            map.insert(key.to_string(), value);
        }
    }
}

/// Sets `v[key] = value` unconditionally when `v` is an object.
pub(crate) fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(map) = v.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

/// Calls `f` on every element of the array `v[key]`, if any.
pub(crate) fn each_mut(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(Value::Array(items)) = child(v, key) {
        items.iter_mut().for_each(&mut f);
    }
}

/// Whether `v[key]` is absent, null, or an empty string/array/object.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Sorts an object's keys, as Go marshals maps (labels, selectors, data).
pub(crate) fn sort_keys(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        m.extend(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dispatch_falls_back_to_default() {
        let s = strategy_for("example.com", "widgets");
        assert_eq!(s.columns().len(), 2);
        assert!(!s.tracks_generation());
    }

    #[test]
    fn helpers_never_panic_on_wrong_shapes() {
        let mut v = json!("str");
        set_default(&mut v, "a", json!(1));
        assert!(ensure_obj(&mut v, "a").is_none());
        each_mut(&mut v, "a", |_| {});
        let mut v = json!({"a": 5});
        assert!(ensure_obj(&mut v, "a").is_none());
        set_default(&mut v, "b", json!(""));
        set_default(&mut v, "b", json!("x"));
        assert_eq!(v["b"], "x");
    }
}
