//! JSON merge patch (`application/merge-patch+json`, RFC 7386).
//!
//! Owns applying a merge patch body to an object the way kube-apiserver does
//! (`jsonpatch.MergePatch` of evanphx/json-patch v4): a `null` member deletes,
//! objects merge recursively, anything else replaces; members set to `null`
//! inside newly added objects are pruned (nulls inside arrays stay). A body
//! that is not a JSON object or array is `ErrBadJSONPatch` (400).
//!
//! It must never look at schemas: merge patch is schema-less by definition.

use serde_json::{Map, Value};

use crate::error::PatchError;

/// Upstream's `jsonpatch.ErrBadJSONPatch` message.
const BAD_JSON_PATCH: &str = "Invalid JSON Patch";

/// Applies a merge patch body to `original`.
pub fn apply(original: &Value, patch_body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(patch_body)
        .map_err(|_| PatchError::BadRequest(BAD_JSON_PATCH.to_string()))?;
    merge_patch(original, patch)
}

/// Applies an already-decoded merge patch to `original`.
pub(crate) fn merge_patch(original: &Value, patch: Value) -> Result<Value, PatchError> {
    match patch {
        Value::Object(patch) => match original {
            Value::Object(doc) => {
                let mut doc = doc.clone();
                merge_docs(&mut doc, patch);
                Ok(Value::Object(doc))
            }
            // Not a document: the (pruned) patch becomes the document.
            _ => {
                let mut p = Value::Object(patch);
                prune_nulls(&mut p);
                Ok(p)
            }
        },
        Value::Array(_) => {
            // Upstream returns the array (pruned) and fails later when decoding
            // it into the object; `apply_patch` reports that as 422.
            let mut p = patch;
            prune_nulls(&mut p);
            Ok(p)
        }
        _ => Err(PatchError::BadRequest(BAD_JSON_PATCH.to_string())),
    }
}

fn merge_docs(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            doc.shift_remove(&k);
            continue;
        }
        match doc.get_mut(&k) {
            None | Some(Value::Null) => {
                let mut v = v;
                prune_nulls(&mut v);
                doc.insert(k, v);
            }
            Some(cur) => merge(cur, v),
        }
    }
}

fn merge(cur: &mut Value, patch: Value) {
    match (cur, patch) {
        (Value::Object(cur), Value::Object(patch)) => merge_docs(cur, patch),
        // Current is an object but the patch is not: replaced, not pruned.
        (cur @ Value::Object(_), patch) => *cur = patch,
        // Current is not an object: the pruned patch replaces it.
        (cur, mut patch) => {
            prune_nulls(&mut patch);
            *cur = patch;
        }
    }
}

/// Removes `null` members of objects, recursively (also inside arrays); null
/// array elements are kept.
fn prune_nulls(v: &mut Value) {
    // Iterative to stay safe on deeply nested input.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                stack.extend(m.values_mut());
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
}
