//! Bounds on what applying a patch may cost and what it may produce.
//!
//! Owns the limits every patch type is held to, so that a small body can
//! never make the server build a large or deeply nested document:
//!
//! * the bytes a JSON patch may add by `copy` ([`MAX_COPY_BYTES`], upstream's
//!   `JSONPatchMaxCopyBytes`, enforced by evanphx/json-patch's
//!   `AccumulatedCopySizeLimit`),
//! * the size of a patched object ([`MAX_OBJECT_BYTES`], upstream's request
//!   body limit: a patch may not produce what a PUT could not have sent),
//! * the nesting depth of a patched object ([`MAX_DEPTH`], what the server's
//!   JSON decoder reads back from storage).
//!
//! It only measures: it never changes a document, never copies one (sizes
//! are counted as they would be written, and counting stops at the cap), and
//! never recurses (depths are walked with an explicit stack, stopping at the
//! limit).

use std::io;

use serde_json::Value;

use crate::error::PatchError;

/// Largest total size, in bytes of JSON, the `copy` operations of one JSON
/// patch may add (upstream `JSONPatchMaxCopyBytes`, 3 MiB).
pub const MAX_COPY_BYTES: u64 = 3 * 1024 * 1024;

/// Largest patched object, in bytes of compact JSON: upstream's maximum
/// request body (`MaxRequestBodyBytes`, 3 MiB), so that a patch never stores
/// an object no create or update could have sent.
pub const MAX_OBJECT_BYTES: u64 = 3 * 1024 * 1024;

/// Deepest nesting of objects and arrays a patched object may have: the most
/// `serde_json` decodes (its recursion limit is 128, so 127 levels), which is
/// what every request body and every stored object is read with.
pub const MAX_DEPTH: usize = 127;

/// The size of `v` as Go's `json.Marshal` writes it (compact; `<`, `>`, `&`,
/// U+2028 and U+2029 escaped), or `None` once it exceeds `cap` bytes.
pub(crate) fn json_size_within(v: &Value, cap: u64) -> Option<u64> {
    let mut counter = Counter { bytes: 0, cap };
    match serde_json::to_writer(&mut counter, v) {
        Ok(()) => Some(counter.bytes),
        Err(_) => None,
    }
}

/// An `io::Write` that only counts, failing (which stops the serializer)
/// once past its cap.
struct Counter {
    bytes: u64,
    cap: u64,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // These bytes only occur inside strings, where Go writes `\u003c`
        // (six bytes) for each; U+2028/U+2029 become `\u2028` (three more).
        let html = buf
            .iter()
            .filter(|b| matches!(b, b'<' | b'>' | b'&'))
            .count() as u64;
        let separators = buf
            .windows(3)
            .filter(|w| matches!(w, [0xE2, 0x80, 0xA8 | 0xA9]))
            .count() as u64;
        self.bytes += buf.len() as u64 + 5 * html + 3 * separators;
        if self.bytes > self.cap {
            return Err(io::Error::other("size limit exceeded"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `v` nests at most `max` objects and arrays deep (a scalar is 0
/// deep, `[]` 1, `{"a":[]}` 2). Iterative; stops at the first path deeper
/// than `max`.
pub fn depth_within(v: &Value, max: usize) -> bool {
    if !(v.is_object() || v.is_array()) {
        return true;
    }
    let mut stack = vec![(v, 0usize)];
    while let Some((v, above)) = stack.pop() {
        if above + 1 > max {
            return false;
        }
        let containers = |c: &&Value| c.is_object() || c.is_array();
        match v {
            Value::Object(m) => stack.extend(m.values().filter(containers).map(|c| (c, above + 1))),
            Value::Array(a) => stack.extend(a.iter().filter(containers).map(|c| (c, above + 1))),
            _ => {}
        }
    }
    true
}

/// Checks a patched object against [`MAX_DEPTH`] and [`MAX_OBJECT_BYTES`].
pub(crate) fn check_patched(v: &Value) -> Result<(), PatchError> {
    if !depth_within(v, MAX_DEPTH) {
        return Err(PatchError::TooDeep { max: MAX_DEPTH });
    }
    if json_size_within(v, MAX_OBJECT_BYTES).is_none() {
        return Err(PatchError::ObjectTooLarge {
            limit: MAX_OBJECT_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn max_depth_is_what_the_json_decoder_reads() {
        let at: Value = serde_json::from_str(&nested(MAX_DEPTH)).unwrap();
        assert!(depth_within(&at, MAX_DEPTH));
        assert!(!depth_within(&at, MAX_DEPTH - 1));
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn depth_counts_containers() {
        assert!(depth_within(&json!(1), 0));
        assert!(!depth_within(&json!([]), 0));
        assert!(depth_within(&json!({"a": [], "b": 1}), 2));
        assert!(!depth_within(&json!({"a": [[]], "b": 1}), 2));
    }

    #[test]
    fn size_is_go_compact_json() {
        let v = json!({"a": [1, "x"], "b": null});
        assert_eq!(
            json_size_within(&v, 1000),
            Some(serde_json::to_vec(&v).unwrap().len() as u64)
        );
        // Go escapes HTML characters and line separators.
        assert_eq!(json_size_within(&json!("<&>"), 1000), Some(2 + 18));
        assert_eq!(json_size_within(&json!("\u{2028}"), 1000), Some(2 + 6));
        assert_eq!(json_size_within(&v, 3), None);
    }

    #[test]
    fn size_counting_stops_at_the_cap() {
        // A large value is not serialized in full to find it is too large.
        let big = Value::Array(vec![json!("x".repeat(1024)); 64 * 1024]);
        assert_eq!(json_size_within(&big, 4096), None);
    }
}
