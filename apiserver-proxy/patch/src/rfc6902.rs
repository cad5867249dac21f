//! JSON patch (`application/json-patch+json`, RFC 6902).
//!
//! Owns decoding a JSON patch body and applying it operation by operation
//! with the `json-patch` crate, reproducing the observable behaviour of
//! kube-apiserver (evanphx/json-patch v4): decode errors are 400, more than
//! 10000 operations 413, and failing operations 422 with evanphx's messages.
//! Two evanphx quirks kubectl users can observe are kept: `replace` of a
//! missing object member adds it, and `test` of a missing member against
//! `null` succeeds; an `add`/`replace` without `value` sets `null`.
//!
//! It must never mutate the caller's object (it patches a copy) and never
//! interpret schemas.

use json_patch::PatchOperation;
use serde_json::{Map, Value};

use crate::depth::JsonPatchGuard;
use crate::error::{MAX_JSON_PATCH_OPERATIONS, PatchError};
use crate::gofmt::json_kind;

/// Applies a JSON patch body to `original`.
pub fn apply(original: &Value, patch_body: &[u8]) -> Result<Value, PatchError> {
    let ops = decode(patch_body)?;
    let mut guard = JsonPatchGuard::new(original)?;
    let mut doc = original.clone();
    for op in ops {
        // Checked after every operation: a handful of them can nest the
        // document arbitrarily deep ([`crate::depth`]).
        let bound = guard.bound_after(op.as_ref());
        apply_op(&mut doc, op)?;
        guard.after(bound, &doc)?;
    }
    Ok(doc)
}

/// Decodes a body into raw operations, as `jsonpatch.DecodePatch` does: the
/// body must be an array (or `null`) of objects (or `null`s).
fn decode(body: &[u8]) -> Result<Vec<Option<Map<String, Value>>>, PatchError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_kind(&other)
            )));
        }
    };
    if items.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations { got: items.len() });
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::Null => Ok(None),
            Value::Object(m) => Ok(Some(m)),
            other => Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                json_kind(&other)
            ))),
        })
        .collect()
}

fn failed(msg: String) -> PatchError {
    PatchError::JsonPatchFailed(msg)
}

/// Where a JSON pointer's parent leads in the document.
enum Parent {
    /// Parent does not exist, is a scalar, or the pointer is malformed.
    Missing,
    /// Parent is an object; whether it has the last token.
    Object { has_key: bool },
    /// Parent is an array.
    Array,
}

fn parent_of(doc: &Value, path: &str) -> Parent {
    let Some((parent, last)) = path.rsplit_once('/') else {
        return Parent::Missing;
    };
    if !parent.is_empty() && !parent.starts_with('/') {
        return Parent::Missing;
    }
    let last = last.replace("~1", "/").replace("~0", "~");
    match doc.pointer(parent) {
        Some(Value::Object(m)) => Parent::Object {
            has_key: m.contains_key(&last),
        },
        Some(Value::Array(_)) => Parent::Array,
        _ => Parent::Missing,
    }
}

fn str_field<'a>(op: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    op.get(key).and_then(Value::as_str)
}

fn apply_op(doc: &mut Value, op: Option<Map<String, Value>>) -> Result<(), PatchError> {
    let Some(mut op) = op else {
        return Err(failed("Unexpected kind: unknown".to_string()));
    };
    let kind = str_field(&op, "op").unwrap_or("unknown").to_string();
    if !matches!(
        kind.as_str(),
        "add" | "remove" | "replace" | "move" | "copy" | "test"
    ) {
        return Err(failed(format!("Unexpected kind: {kind}")));
    }
    let Some(path) = str_field(&op, "path").map(String::from) else {
        return Err(failed(format!(
            "{kind} operation failed to decode path: missing value"
        )));
    };
    let from = str_field(&op, "from").map(String::from);
    if matches!(kind.as_str(), "move" | "copy") && from.is_none() {
        return Err(failed(format!(
            "{kind} operation failed to decode from: operation, missing from field: missing value"
        )));
    }

    let mut kind = kind;
    match kind.as_str() {
        "add" | "replace" => {
            op.entry("value").or_insert(Value::Null);
        }
        "test" if !op.contains_key("value") => {
            return Err(failed(format!("testing value {path} failed: test failed")));
        }
        _ => {}
    }
    let parent = parent_of(doc, &path);
    // evanphx quirks.
    if kind == "replace" && matches!(parent, Parent::Object { has_key: false }) {
        kind = "add".to_string();
        op.insert("op".to_string(), Value::String(kind.clone()));
    }
    if kind == "test"
        && matches!(parent, Parent::Object { has_key: false })
        && op.get("value").is_some_and(Value::is_null)
    {
        return Ok(());
    }

    let operation: PatchOperation = match serde_json::from_value(Value::Object(op)) {
        Ok(o) => o,
        // Malformed pointers: evanphx cannot find the container.
        Err(_) => return Err(failed(does_not_apply(&kind, &path, from.as_deref()))),
    };
    match json_patch::patch(doc, std::slice::from_ref(&operation)) {
        Ok(()) => Ok(()),
        Err(e) => Err(failed(evanphx_message(
            doc,
            &kind,
            &path,
            from.as_deref(),
            &parent,
            &e.kind,
        ))),
    }
}

fn does_not_apply(kind: &str, path: &str, from: Option<&str>) -> String {
    match kind {
        "add" | "remove" => {
            format!(
                "{kind} operation does not apply: doc is missing path: \"{path}\": missing value"
            )
        }
        "replace" => {
            format!("replace operation does not apply: doc is missing path: {path}: missing value")
        }
        "test" => format!("test operation does not apply: is missing path: {path}: missing value"),
        _ => format!(
            "{kind} operation does not apply: doc is missing from path: {}: missing value",
            from.unwrap_or_default()
        ),
    }
}

fn last_token(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(_, l)| l.replace("~1", "/").replace("~0", "~"))
        .unwrap_or_default()
}

/// Reconstructs the evanphx/json-patch v4 error text for a failed operation.
fn evanphx_message(
    doc: &Value,
    kind: &str,
    path: &str,
    from: Option<&str>,
    parent: &Parent,
    err: &json_patch::PatchErrorKind,
) -> String {
    use json_patch::PatchErrorKind as K;
    let key = last_token(path);
    match (kind, err) {
        ("test", K::TestFailed) => format!("testing value {path} failed: test failed"),
        ("move" | "copy", K::InvalidFromPointer) => {
            let from = from.unwrap_or_default();
            match parent_of(doc, from) {
                Parent::Missing => does_not_apply(kind, path, Some(from)),
                Parent::Object { .. } => format!(
                    "error in {kind} for path: '{}': Unable to remove nonexistent key: {}: missing value",
                    last_token(from),
                    last_token(from)
                ),
                Parent::Array => format!(
                    "error in {kind} for path: '{}': Unable to access invalid index: {}: invalid index referenced",
                    last_token(from),
                    last_token(from)
                ),
            }
        }
        ("move", K::CannotMoveInsideItself) => format!(
            "move operation does not apply: doc is missing destination path: {path}: missing value"
        ),
        ("move" | "copy", _) => format!(
            "{kind} operation does not apply: doc is missing destination path: {path}: missing value"
        ),
        (_, _) => match parent {
            Parent::Missing => does_not_apply(kind, path, from),
            Parent::Object { .. } if kind == "remove" => format!(
                "error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value"
            ),
            Parent::Array if kind == "replace" => format!(
                "replace operation does not apply: doc is missing key: {path}: missing value"
            ),
            Parent::Array if key.parse::<i64>().is_err() && key != "-" => format!(
                "error in {kind} for path: '{path}': value was not a proper array index: '{key}': strconv.Atoi: parsing \"{key}\": invalid syntax"
            ),
            Parent::Array => format!(
                "error in {kind} for path: '{path}': Unable to access invalid index: {key}: invalid index referenced"
            ),
            Parent::Object { .. } => does_not_apply(kind, path, from),
        },
    }
}
