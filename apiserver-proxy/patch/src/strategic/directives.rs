//! Strategic merge patch directives.
//!
//! Owns the special keys and values of the strategic merge patch format
//! (`$patch`, `$retainKeys`, `$deleteFromPrimitiveList/<field>`,
//! `$setElementOrder/<field>`), their validation and the helpers that apply
//! or strip them, with upstream's error texts. It must never merge lists or
//! look up schemas: that is the job of the parent module.

use serde_json::{Map, Value};

use crate::error::StrategicError;
use crate::gofmt::{go_s, go_type_name, go_v};

/// `$patch`: a directive in a map or list element.
pub(crate) const DIRECTIVE_MARKER: &str = "$patch";
/// `$patch: delete`.
pub(crate) const DELETE_DIRECTIVE: &str = "delete";
/// `$patch: replace`.
pub(crate) const REPLACE_DIRECTIVE: &str = "replace";
/// `$patch: merge` (and the `merge` patch strategy).
pub(crate) const MERGE_DIRECTIVE: &str = "merge";
/// The `retainKeys` patch strategy.
pub(crate) const RETAIN_KEYS_STRATEGY: &str = "retainKeys";
/// `$retainKeys`: the list of keys to keep in a map.
pub(crate) const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
/// Prefix of the parallel list deleting items from a primitive list.
pub(crate) const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
/// Prefix of the parallel list fixing the order of a merged list.
pub(crate) const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// `mergepatch.ErrNoMergeKey`.
pub(crate) fn err_no_merge_key(m: &Map<String, Value>, key: &str) -> StrategicError {
    StrategicError::Other(format!(
        "map: {} does not contain declared merge key: {key}",
        go_v(&Value::Object(m.clone()))
    ))
}

/// `mergepatch.ErrBadArgType` with the expected Go type spelled out.
pub(crate) fn err_bad_arg_type(expected: &str, actual: &Value) -> StrategicError {
    StrategicError::Other(format!(
        "expected a {expected}, but received a {}",
        go_type_name(actual)
    ))
}

/// Go type name of a map, as `reflect.TypeOf(map[string]interface{}{})`.
pub(crate) const GO_MAP: &str = "map[string]interface {}";
/// Go type name of a slice, as `reflect.TypeOf([]interface{}{})`.
pub(crate) const GO_SLICE: &str = "[]interface {}";

/// `mergepatch.ErrBadPatchType`.
pub(crate) fn err_bad_patch_type(t: &Value, m: &Map<String, Value>) -> StrategicError {
    StrategicError::Other(format!(
        "unknown patch type: {} in map: {}",
        go_s(t),
        go_v(&Value::Object(m.clone()))
    ))
}

/// Trims `prefix/` from a parallel-list key (`extractKey`).
pub(crate) fn extract_key(s: &str, prefix: &str) -> Result<String, StrategicError> {
    match s.split_once('/') {
        Some((head, rest)) if head == prefix => Ok(rest.to_string()),
        _ => Err(match prefix {
            DELETE_FROM_PRIMITIVE_LIST_PREFIX => StrategicError::BadPatchFormatForPrimitiveList,
            SET_ELEMENT_ORDER_PREFIX => StrategicError::BadPatchFormatForSetElementOrderList,
            _ => StrategicError::Other(format!("fail to find unknown prefix {prefix:?} in {s}")),
        }),
    }
}

/// Splits `merge,retainKeys`-style strategies into (has retainKeys, the other
/// strategy) as upstream's `extractRetainKeysPatchStrategy`.
pub(crate) fn extract_retain_keys_patch_strategy(
    strategies: &[String],
) -> Result<(bool, &str), StrategicError> {
    let unexpected = || {
        StrategicError::Other(format!(
            "unexpected patch strategy: [{}]",
            strategies.join(" ")
        ))
    };
    match strategies {
        [] => Ok((false, "")),
        [single] if single == RETAIN_KEYS_STRATEGY => Ok((true, "")),
        [single] => Ok((false, single.as_str())),
        [a, b] if a == RETAIN_KEYS_STRATEGY => Ok((true, b.as_str())),
        [a, b] if b == RETAIN_KEYS_STRATEGY => Ok((true, a.as_str())),
        _ => Err(unexpected()),
    }
}

/// A `$patch` directive found in a patch map (`handleDirectiveInMergeMap`).
pub(crate) fn handle_directive_in_merge_map(
    mut patch: Map<String, Value>,
) -> Result<Map<String, Value>, StrategicError> {
    let directive = patch.get(DIRECTIVE_MARKER).cloned().unwrap_or(Value::Null);
    match directive.as_str() {
        Some(REPLACE_DIRECTIVE) => {
            // Use the patch as is, without the marker.
            patch.shift_remove(DIRECTIVE_MARKER);
            Ok(patch)
        }
        Some(DELETE_DIRECTIVE) => Ok(Map::new()),
        _ => Err(err_bad_patch_type(&directive, &patch)),
    }
}

/// Applies a `$retainKeys` directive (`applyRetainKeysDirective`): every key
/// of the patch must be listed, and keys of `original` not listed are cleared.
pub(crate) fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), StrategicError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(list) = retain else {
        return Err(StrategicError::BadPatchFormatForRetainKeys);
    };
    let listed = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !listed(k) {
            return Err(StrategicError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Removes elements and members carrying a `$patch` directive from a value
/// taken as-is from the patch (`removeDirectives`). `None` means the value
/// itself is a directive and must not be kept.
pub(crate) fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            let m = m
                .into_iter()
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                .collect();
            Some(Value::Object(m))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Drops `null` members everywhere in a value taken as-is from the patch
/// (`discardNullValuesFromPatch`).
pub(crate) fn discard_null_values(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_null_values);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_null_values),
        _ => {}
    }
}
