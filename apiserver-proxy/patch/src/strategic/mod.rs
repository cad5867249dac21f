//! Strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! Owns applying a strategic merge patch to an object exactly as
//! kube-apiserver does (`strategicpatch.StrategicMergeMapPatch` with
//! `MergeParallelList` and `IgnoreUnmatchedNulls`): per-field strategies and
//! merge keys from a [`TypeRef`], union of primitive lists, lists of maps
//! merged by key, `$patch`, `$retainKeys`, `$deleteFromPrimitiveList/…`,
//! `$setElementOrder/…`, `null` deleting a field. Fields without schema merge
//! like JSON merge patch (maps recurse, lists replace).
//!
//! It must never guess merge keys (no schema, no merge) and never mutate the
//! caller's values. Directive handling lives in [`directives`], list order in
//! [`order`].
//!
//! Deliberate deviations, invisible through the typed API: upstream walks
//! patch keys in random (Go map) order; we apply them in patch order, with
//! `$deleteFromPrimitiveList/…` lists after the other keys, which is the
//! order upstream's own three-way patches rely on.

mod directives;
mod order;

use serde_json::{Map, Value};

use self::directives::{
    DELETE_FROM_PRIMITIVE_LIST_PREFIX, DIRECTIVE_MARKER, GO_MAP, GO_SLICE, MERGE_DIRECTIVE,
    REPLACE_DIRECTIVE, SET_ELEMENT_ORDER_PREFIX, apply_retain_keys_directive, discard_null_values,
    err_bad_arg_type, err_bad_patch_type, err_no_merge_key, extract_key,
    extract_retain_keys_patch_strategy, handle_directive_in_merge_map, remove_directives,
};
use self::order::{
    MapFinder, canonical, normalize_element_order, partition_maps, partition_primitives,
};
use crate::error::{PatchError, StrategicError};
use crate::gofmt::{go_v, json_kind};
use crate::schema::{FieldMeta, TypeRef};

/// Deepest patch nesting accepted (the JSON decoder already stops at 128).
const MAX_DEPTH: usize = 256;

/// The Go dynamic type of a decoded JSON value (upstream compares
/// `reflect.TypeOf` of original and patch values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Slice,
    Map,
}

pub(crate) fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Nil,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Slice,
        Value::Object(_) => Kind::Map,
    }
}

/// Decodes a strategic merge patch body and applies it to `original`.
/// A `null` body changes nothing, as upstream.
pub fn apply(
    original: &Value,
    patch_body: &[u8],
    schema: Option<TypeRef<'_>>,
) -> Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(patch_body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    match patch {
        Value::Null => Ok(original.clone()),
        Value::Object(_) => strategic_merge_patch(original, &patch, schema),
        other => Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        ))),
    }
}

/// Applies a decoded strategic merge patch to `original` (both JSON objects),
/// with `schema` the type of `original` (`None`: no patch metadata anywhere).
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: Option<TypeRef<'_>>,
) -> Result<Value, PatchError> {
    if depth_exceeds(patch, MAX_DEPTH) {
        return Err(StrategicError::TooDeep.into());
    }
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(StrategicError::BadJsonDoc.into());
    };
    let merged = merge_map(original.clone(), patch.clone(), schema)?;
    Ok(Value::Object(merged))
}

/// Whether `v` nests deeper than `max` (iterative, safe on any input).
fn depth_exceeds(v: &Value, max: usize) -> bool {
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        if d > max {
            return true;
        }
        match v {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    false
}

fn lookup_struct<'a>(
    schema: Option<TypeRef<'a>>,
    key: &str,
) -> (Option<TypeRef<'a>>, &'a FieldMeta) {
    match schema {
        Some(t) => t.lookup_struct(key),
        None => (None, FieldMeta::empty()),
    }
}

fn lookup_slice<'a>(
    schema: Option<TypeRef<'a>>,
    key: &str,
) -> (Option<TypeRef<'a>>, &'a FieldMeta) {
    match schema {
        Some(t) => t.lookup_slice(key),
        None => (None, FieldMeta::empty()),
    }
}

/// Sets `original[key]` to a value taken as-is from the patch (nulls and
/// directives stripped), or removes it if the value is itself a directive.
fn take_patch_value(original: &mut Map<String, Value>, key: String, mut value: Value) {
    discard_null_values(&mut value);
    match remove_directives(value) {
        Some(v) => {
            original.insert(key, v);
        }
        None => {
            original.shift_remove(&key);
        }
    }
}

/// `mergeMap`: merges `patch` into `original`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Option<TypeRef<'_>>,
) -> Result<Map<String, Value>, StrategicError> {
    if patch.contains_key(DIRECTIVE_MARKER) {
        return handle_directive_in_merge_map(patch);
    }
    apply_retain_keys_directive(&mut original, &mut patch)?;
    merge_patch_into_original(&mut original, &mut patch, schema)?;

    let (deletions, others): (Vec<_>, Vec<_>) = patch
        .into_iter()
        .partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX));
    for (key, patch_v) in others.into_iter().chain(deletions) {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?, true)
        } else {
            (key, false)
        };
        if patch_v.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let Some(original_v) = original.get_mut(&key) else {
            if !is_delete_list {
                take_patch_value(&mut original, key, patch_v);
            }
            continue;
        };
        if kind_of(original_v) != kind_of(&patch_v) {
            if !is_delete_list {
                take_patch_value(&mut original, key, patch_v);
            }
            continue;
        }
        match (std::mem::take(original_v), patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let (sub, meta) = lookup_struct(schema, &key);
                let (_, strategy) = extract_retain_keys_patch_strategy(&meta.patch_strategies)?;
                *original_v = Value::Object(if strategy != REPLACE_DIRECTIVE {
                    merge_map(o, p, sub)?
                } else {
                    p
                });
            }
            (Value::Array(o), Value::Array(p)) => {
                let (sub, meta) = lookup_slice(schema, &key);
                let (_, strategy) = extract_retain_keys_patch_strategy(&meta.patch_strategies)?;
                let merge_key = meta.patch_merge_key.as_deref().unwrap_or("");
                *original_v = Value::Array(merge_slice_handler(
                    o,
                    p,
                    sub,
                    strategy,
                    merge_key,
                    is_delete_list,
                )?);
            }
            (_, p) => *original_v = p,
        }
    }
    Ok(original)
}

/// `mergeSliceHandler`: merge lists with the merge strategy (or a deletion
/// list), replace them otherwise.
fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Option<TypeRef<'_>>,
    strategy: &str,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, StrategicError> {
    if strategy == MERGE_DIRECTIVE || is_delete_list {
        merge_slice(original, patch, schema, merge_key, is_delete_list)
    } else {
        Ok(patch)
    }
}

/// `sliceElementType`: the common Go type of all elements; lists of lists
/// and mixed lists are errors.
fn slice_element_type(slices: &[&[Value]]) -> Result<Kind, StrategicError> {
    let mut prev: Option<Kind> = None;
    for s in slices {
        for v in s.iter() {
            let k = kind_of(v);
            match prev {
                None => {
                    if k == Kind::Nil {
                        return Err(StrategicError::Other(
                            "list element types are not identical: unexpected null element"
                                .to_string(),
                        ));
                    }
                    if k == Kind::Slice {
                        return Err(StrategicError::NoListOfLists);
                    }
                    prev = Some(k);
                }
                Some(p) if p != k => {
                    let all: Vec<Value> = slices.iter().map(|s| Value::Array(s.to_vec())).collect();
                    return Err(StrategicError::Other(format!(
                        "list element types are not identical: {}",
                        go_v(&Value::Array(all))
                    )));
                }
                Some(_) => {}
            }
        }
    }
    prev.ok_or_else(|| StrategicError::Other("no elements in any of the given slices".to_string()))
}

/// `mergeSlice`: merges two lists with the merge strategy.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Option<TypeRef<'_>>,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, StrategicError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_type(&[&original, &patch])?;
    let (merged, server_order, patch_order) = if kind != Kind::Map {
        if is_delete_list {
            return Ok(delete_from_slice(original, &patch));
        }
        let merged = deduplicate_scalars(original.iter().chain(patch.iter()).cloned());
        (merged, original, patch)
    } else {
        if merge_key.is_empty() {
            return Err(StrategicError::Other(format!(
                "cannot merge lists without merge key for {}",
                if schema.is_some() { "struct" } else { "map" }
            )));
        }
        let (original, patch) = merge_slice_with_special_elements(original, patch, merge_key)?;
        let server_order = original.clone();
        let merged = merge_slice_without_special_elements(original, &patch, merge_key, schema)?;
        (merged, server_order, patch)
    };
    let (patch_items, server_only) = if merge_key.is_empty() {
        partition_primitives(merged, &patch_order)
    } else {
        partition_maps(merged, &patch_order, merge_key)?
    };
    normalize_element_order(
        patch_items,
        server_only,
        &patch_order,
        &server_order,
        merge_key,
        kind,
    )
}

/// Union of scalars, first occurrence kept (`deduplicateScalars`; its
/// element order is irrelevant as the result is re-sorted).
fn deduplicate_scalars(items: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|v| seen.insert(canonical(v))).collect()
}

/// `deleteFromSlice`: removes every item listed in `to_delete`.
fn delete_from_slice(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    let delete: std::collections::HashSet<String> = to_delete.iter().map(canonical).collect();
    current
        .into_iter()
        .filter(|v| !delete.contains(&canonical(v)))
        .collect()
}

/// `mergeSliceWithSpecialElements`: applies `$patch: delete|replace`
/// elements; returns the new original and the patch without them.
fn merge_slice_with_special_elements(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    let mut delete_keys = std::collections::HashSet::new();
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(err_bad_arg_type(GO_MAP, &v));
        };
        let Some(directive) = m.get(DIRECTIVE_MARKER) else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some(directives::DELETE_DIRECTIVE) => match m.get(merge_key) {
                Some(value) => {
                    delete_keys.insert(canonical(value));
                }
                None => return Err(err_no_merge_key(m, merge_key)),
            },
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => {
                return Err(StrategicError::Other(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            _ => return Err(err_bad_patch_type(directive, m)),
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    let original = if delete_keys.is_empty() {
        original
    } else {
        // `deleteMatchingEntries` for every delete element at once.
        if let Some((i, _)) = original.iter().enumerate().find(|(_, v)| !v.is_object()) {
            return Err(StrategicError::Other(format!(
                "value for key {i} is not a map"
            )));
        }
        original
            .into_iter()
            .filter(|v| {
                !v.get(merge_key)
                    .is_some_and(|k| delete_keys.contains(&canonical(k)))
            })
            .collect()
    };
    Ok((original, plain))
}

/// `mergeSliceWithoutSpecialElements`: merges each patch element into the
/// original element with the same merge key value, or appends it.
fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    schema: Option<TypeRef<'_>>,
) -> Result<Vec<Value>, StrategicError> {
    let mut finder = MapFinder::new(&original, merge_key);
    for v in patch {
        let Value::Object(m) = v else {
            return Err(err_bad_arg_type(GO_MAP, v));
        };
        let Some(merge_value) = m.get(merge_key) else {
            return Err(err_no_merge_key(m, merge_key));
        };
        match finder.find(merge_value)? {
            Some(i) => {
                let Value::Object(o) = std::mem::take(&mut original[i]) else {
                    return Err(StrategicError::Other(format!(
                        "value for key {i} is not a map"
                    )));
                };
                original[i] = Value::Object(merge_map(o, m.clone(), schema)?);
            }
            None => {
                finder.push(m, merge_key, original.len());
                original.push(v.clone());
            }
        }
    }
    Ok(original)
}

/// `validatePatchWithSetOrderList`: patch items must appear in the
/// `$setElementOrder` list, in the same relative order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    set_order: &[Value],
    merge_key: &str,
) -> Result<(), StrategicError> {
    if set_order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<Value> = if merge_key.is_empty() {
        patch_list.to_vec()
    } else {
        order::extract_to_delete_items(patch_list.to_vec())?.0
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < set_order.len() {
        if non_delete[pi]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
        {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(&non_delete[pi], &set_order[si], merge_key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= set_order.len() {
        return Err(StrategicError::Other(format!(
            "the order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}",
            go_v(&Value::Array(patch_list.to_vec())),
            go_v(&Value::Array(set_order.to_vec()))
        )));
    }
    Ok(())
}

/// `mergeKeyValueEqual`.
fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: &str,
) -> Result<bool, StrategicError> {
    if merge_key.is_empty() {
        return Ok(kind_of(left) == kind_of(right) && left == right);
    }
    let Value::Object(l) = left else {
        return Err(err_bad_arg_type(GO_MAP, left));
    };
    let Value::Object(r) = right else {
        return Err(err_bad_arg_type(GO_MAP, right));
    };
    let lv = l
        .get(merge_key)
        .ok_or_else(|| err_no_merge_key(l, merge_key))?;
    let rv = r
        .get(merge_key)
        .ok_or_else(|| err_no_merge_key(r, merge_key))?;
    Ok(canonical(lv) == canonical(rv))
}

/// `mergePatchIntoOriginal`: merges each list that has a `$setElementOrder`
/// directive and puts its items in the requested order.
fn merge_patch_into_original(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<TypeRef<'_>>,
) -> Result<(), StrategicError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(set_order) = patch.shift_remove(&key) else {
            continue;
        };
        let Value::Array(set_order) = set_order else {
            return Err(err_bad_arg_type(GO_SLICE, &set_order));
        };
        let original_key = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?;
        let original_list = match original.get(&original_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(err_bad_arg_type(GO_SLICE, other)),
        };
        let patch_list = match patch.get(&original_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(err_bad_arg_type(GO_SLICE, other)),
        };
        let (sub, meta) = lookup_slice(schema, &original_key);
        let (_, strategy) = extract_retain_keys_patch_strategy(&meta.patch_strategies)?;
        let merge_key = meta.patch_merge_key.as_deref().unwrap_or("");
        validate_patch_with_set_order_list(
            patch_list.as_deref().unwrap_or(&[]),
            &set_order,
            merge_key,
        )?;
        let original_values = original_list.clone().unwrap_or_default();
        let patch_values = patch_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => match remove_directives(Value::Array(p)) {
                Some(Value::Array(p)) => p,
                _ => continue,
            },
            (Some(o), Some(p)) => merge_slice_handler(o, p, sub, strategy, merge_key, false)?,
            (None, None) => continue,
        };
        let (patch_items, server_only) = if merge_key.is_empty() {
            partition_primitives(merged, &set_order)
        } else {
            partition_maps(merged, &set_order, merge_key)?
        };
        let kind = slice_element_type(&[&original_values, &patch_values])?;
        let both = normalize_element_order(
            patch_items,
            server_only,
            &set_order,
            &original_values,
            merge_key,
            kind,
        )?;
        original.insert(original_key.clone(), Value::Array(both));
        patch.shift_remove(&original_key);
    }
    Ok(())
}
