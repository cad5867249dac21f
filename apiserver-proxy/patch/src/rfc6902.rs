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
//! Growth is bounded as upstream bounds it, and further: the `copy`
//! operations of one patch may add at most [`MAX_COPY_BYTES`] (evanphx's
//! `AccumulatedCopySizeLimit`, with its error), and no operation may nest the
//! document deeper than [`MAX_DEPTH`] (checked after each operation, so a
//! document never gets deeper than twice that while being patched).
//!
//! It must never mutate the caller's object (it patches a copy) and never
//! interpret schemas.

use json_patch::PatchOperation;
use serde_json::{Map, Value};

use crate::error::{MAX_JSON_PATCH_OPERATIONS, PatchError};
use crate::gofmt::json_kind;
use crate::limits::{MAX_COPY_BYTES, MAX_DEPTH, depth_within, json_size_within};

/// Applies a JSON patch body to `original`.
pub fn apply(original: &Value, patch_body: &[u8]) -> Result<Value, PatchError> {
    let ops = decode(patch_body)?;
    let mut doc = original.clone();
    // Bytes added by `copy` so far (evanphx `accumulatedCopySize`).
    let mut copied = 0u64;
    for op in ops {
        apply_op(&mut doc, op, &mut copied)?;
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

fn apply_op(
    doc: &mut Value,
    op: Option<Map<String, Value>>,
    copied: &mut u64,
) -> Result<(), PatchError> {
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
    if let PatchOperation::Copy(c) = &operation {
        count_copy(doc, c.from.as_str(), &parent, copied)?;
    }
    match json_patch::patch(doc, std::slice::from_ref(&operation)) {
        Ok(()) => check_depth(doc, &operation),
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

/// Adds the size of what a `copy` duplicates to `copied`, failing past
/// [`MAX_COPY_BYTES`] with evanphx's error. Like evanphx, it counts only once
/// the source and the destination's parent are found.
fn count_copy(
    doc: &Value,
    from: &str,
    parent: &Parent,
    copied: &mut u64,
) -> Result<(), PatchError> {
    let (Some(source), false) = (doc.pointer(from), matches!(parent, Parent::Missing)) else {
        return Ok(());
    };
    // Exact, for the message; bounded by the document, which is bounded.
    let size = json_size_within(source, u64::MAX).unwrap_or(u64::MAX);
    *copied = copied.saturating_add(size);
    if *copied > MAX_COPY_BYTES {
        return Err(failed(format!(
            "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_COPY_BYTES}"
        )));
    }
    Ok(())
}

/// After an operation that inserted a value: fails if the value now nests
/// the document deeper than [`MAX_DEPTH`]. A `move` or `copy` to a place no
/// deeper than its source cannot deepen the document and is not walked.
fn check_depth(doc: &Value, operation: &PatchOperation) -> Result<(), PatchError> {
    let (path, from) = match operation {
        PatchOperation::Add(o) => (o.path.as_str(), None),
        PatchOperation::Replace(o) => (o.path.as_str(), None),
        PatchOperation::Move(o) => (o.path.as_str(), Some(o.from.as_str())),
        PatchOperation::Copy(o) => (o.path.as_str(), Some(o.from.as_str())),
        PatchOperation::Remove(_) | PatchOperation::Test(_) => return Ok(()),
    };
    let above = path.matches('/').count();
    if from.is_some_and(|from| above <= from.matches('/').count()) {
        return Ok(());
    }
    let deep_enough = above <= MAX_DEPTH
        && inserted_at(doc, path).is_none_or(|v| depth_within(v, MAX_DEPTH - above));
    if deep_enough {
        Ok(())
    } else {
        Err(PatchError::TooDeep { max: MAX_DEPTH })
    }
}

/// The value an `add` (or `move`, `copy`, `replace`) to `path` put in `doc`:
/// for `-` the last element of the array.
fn inserted_at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    match path.rsplit_once('/') {
        Some((parent, "-")) => match doc.pointer(parent) {
            Some(Value::Array(a)) => a.last(),
            other => other.and_then(|p| p.get("-")),
        },
        _ => doc.pointer(path),
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
