//! The nesting bound of patched documents.
//!
//! Owns [`MAX_DOCUMENT_DEPTH`] and the guard that keeps every document a
//! patch produces within it. A JSON patch can nest a document without limit
//! using small operations (`add` a 120-level value, `move` the document
//! under it, repeat: a 400 KB body gives 48 000 levels), and everything
//! downstream of a patch (serializing, cloning, dropping, typed decoding)
//! recurses once per level: such a document overflows the stack and aborts
//! the whole server. A document nested past what the JSON reader accepts
//! also could never be read back from storage.
//!
//! Must never recurse over a document (every walk here is iterative), nor
//! let an operation run on a document already past the bound.

use serde_json::{Map, Value};

use crate::error::PatchError;

/// Deepest nesting of a patched document, in containers: a scalar is 0,
/// `{}` and `{"a":1}` are 1, `[[]]` is 2.
/// It is what `serde_json`'s reader accepts (127 levels; it refuses the
/// 128th), so every patched document can be stored and read back.
pub const MAX_DOCUMENT_DEPTH: usize = 127;

/// How often a JSON patch may need its document measured again (each time
/// O(document)); patches of real clients never need it at all.
const MAX_REMEASURES: u32 = 64;

/// The nesting depth of `v`, without recursing.
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Object(m) => {
                max = max.max(d + 1);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Checks `doc`, the result of any patch type.
pub(crate) fn check(doc: &Value) -> Result<(), PatchError> {
    if depth(doc) > MAX_DOCUMENT_DEPTH {
        return Err(too_deep());
    }
    Ok(())
}

fn too_deep() -> PatchError {
    PatchError::TooDeep {
        max: MAX_DOCUMENT_DEPTH,
    }
}

/// Tokens of a JSON pointer (`""` is the root: 0; `/a/b`: 2).
fn tokens(pointer: &str) -> usize {
    pointer.bytes().filter(|b| *b == b'/').count()
}

/// Keeps a document within [`MAX_DOCUMENT_DEPTH`] across the operations of
/// one JSON patch, in O(1) per operation: it tracks an upper bound of the
/// document's depth and measures the document again only when an operation
/// may have pushed the bound past the limit.
pub(crate) struct JsonPatchGuard {
    bound: usize,
    remeasures: u32,
}

impl JsonPatchGuard {
    /// A guard for `original`, refused if it is already too deep.
    pub(crate) fn new(original: &Value) -> Result<Self, PatchError> {
        let bound = depth(original);
        if bound > MAX_DOCUMENT_DEPTH {
            return Err(too_deep());
        }
        Ok(Self {
            bound,
            remeasures: 0,
        })
    }

    /// An upper bound of the document's depth once `op` is applied.
    pub(crate) fn bound_after(&self, op: Option<&Map<String, Value>>) -> usize {
        let Some(op) = op else { return self.bound };
        let field = |k: &str| op.get(k).and_then(Value::as_str);
        let (Some(kind), Some(path)) = (field("op"), field("path")) else {
            return self.bound;
        };
        let placed = match kind {
            "add" | "replace" => tokens(path) + op.get("value").map_or(0, depth),
            // The moved or copied subtree is at most as deep as what lies
            // below `from`.
            "move" | "copy" => {
                tokens(path) + self.bound.saturating_sub(field("from").map_or(0, tokens))
            }
            _ => 0,
        };
        self.bound.max(placed)
    }

    /// After an operation whose [`JsonPatchGuard::bound_after`] was `bound`:
    /// accepts it, or measures `doc` when the bound passed the limit.
    pub(crate) fn after(&mut self, bound: usize, doc: &Value) -> Result<(), PatchError> {
        if bound <= MAX_DOCUMENT_DEPTH {
            self.bound = bound;
            return Ok(());
        }
        self.remeasures += 1;
        if self.remeasures > MAX_REMEASURES {
            return Err(too_deep());
        }
        self.bound = depth(doc);
        if self.bound > MAX_DOCUMENT_DEPTH {
            return Err(too_deep());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize, inner: &str) -> String {
        format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn the_limit_is_what_the_json_reader_accepts() {
        for inner in ["1", ""] {
            let ok: Value = serde_json::from_str(&nested(MAX_DOCUMENT_DEPTH, inner)).unwrap();
            assert_eq!(depth(&ok), MAX_DOCUMENT_DEPTH);
            assert!(serde_json::from_str::<Value>(&nested(MAX_DOCUMENT_DEPTH + 1, inner)).is_err());
        }
    }

    #[test]
    fn pointer_tokens() {
        assert_eq!(tokens(""), 0);
        assert_eq!(tokens("/a"), 1);
        assert_eq!(tokens("/a~1b/0"), 2);
    }
}
