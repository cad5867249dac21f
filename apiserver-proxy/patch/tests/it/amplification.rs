//! Patch amplification: what a patch may make of a document is bounded for
//! every patch type. JSON patch `copy` adds at most 3 MiB (upstream's
//! accumulated copy limit, with evanphx's error); no patch may produce an
//! object larger than a request body may be (413) or nested deeper than the
//! JSON decoder reads (422), nor build one while being applied.

use nestkube_patch::limits::{MAX_COPY_BYTES, MAX_DEPTH, MAX_OBJECT_BYTES};
use nestkube_patch::{PatchError, PatchType, apply_patch, rfc6902};
use serde_json::{Value, json};

fn json_patch(original: &Value, ops: Value) -> Result<Value, PatchError> {
    apply_patch(
        original,
        &serde_json::to_vec(&ops).unwrap(),
        PatchType::Json,
        None,
    )
}

fn copy_cause(e: &PatchError) -> String {
    assert_eq!(e.status_code(), 422, "{e}");
    assert_eq!(e.reason(), "Invalid");
    assert_eq!(
        e.status_message(),
        "the server rejected our request due to an error in our request"
    );
    e.causes().join("\n")
}

#[test]
fn doubling_copies_stop_at_the_accumulated_limit() {
    // A 1 KB array copied into itself: 1, 2, 4 … KB per copy; the twelfth
    // brings the total copied past 3 MiB.
    let item = "x".repeat(30);
    let mut ops = vec![json!({"op": "add", "path": "/a", "value": vec![item; 32]})];
    ops.extend((0..13).map(|_| json!({"op": "copy", "from": "/a", "path": "/a/-"})));
    let err = json_patch(&json!({}), Value::Array(ops)).unwrap_err();
    let cause = copy_cause(&err);
    let copied: u64 = cause
        .strip_prefix("Unable to complete the copy, the accumulated size increase of copy is ")
        .and_then(|rest| rest.strip_suffix(&format!(", exceeding the limit {MAX_COPY_BYTES}")))
        .unwrap_or_else(|| panic!("{cause}"))
        .parse()
        .unwrap();
    // The array is s = 1057 bytes; copy i adds 2^i·(s + 1) − 1 (it copies
    // the array with i copies in it, commas included): twelve add 4332498.
    assert_eq!(copied, 1058 * 4095 - 12);
}

#[test]
fn copies_count_what_they_copy_not_what_remains() {
    // Exactly 1 MiB copied three times (and removed again) is at the limit;
    // a fourth copy is past it, though the document never grew by more.
    let original = json!({"s": "x".repeat(1024 * 1024 - 2)});
    let round = [
        json!({"op": "copy", "from": "/s", "path": "/t"}),
        json!({"op": "remove", "path": "/t"}),
    ];
    let three: Vec<Value> = round.iter().cycle().take(6).cloned().collect();
    assert_eq!(json_patch(&original, json!(three)).unwrap(), original);
    let four: Vec<Value> = round.iter().cycle().take(8).cloned().collect();
    let cause = copy_cause(&json_patch(&original, json!(four)).unwrap_err());
    assert_eq!(
        cause,
        "Unable to complete the copy, the accumulated size increase of copy is 4194304, exceeding the limit 3145728"
    );
}

#[test]
fn copy_errors_keep_evanphx_precedence() {
    // Missing destination parent: evanphx's error, nothing counted.
    let original = json!({"s": "x".repeat(4 * 1024 * 1024)});
    let err = rfc6902::apply(
        &original,
        br#"[{"op":"copy","from":"/s","path":"/no/where"}]"#,
    )
    .unwrap_err();
    assert_eq!(
        err.causes(),
        [
            "copy operation does not apply: doc is missing destination path: /no/where: missing value"
        ]
    );
    // Destination found: the size is checked before the index.
    let original = json!({"s": "x".repeat(4 * 1024 * 1024), "l": []});
    let err =
        rfc6902::apply(&original, br#"[{"op":"copy","from":"/s","path":"/l/7"}]"#).unwrap_err();
    assert!(
        copy_cause(&err).starts_with("Unable to complete the copy"),
        "{err}"
    );
}

fn too_large(e: PatchError) {
    assert_eq!(e.status_code(), 413, "{e}");
    assert_eq!(e.reason(), "RequestEntityTooLarge");
    assert_eq!(
        e.status_message(),
        format!(
            "Request entity too large: the patched object is larger than the limit of {MAX_OBJECT_BYTES} bytes"
        )
    );
}

#[test]
fn no_patch_type_produces_an_object_larger_than_a_request_body() {
    let half = "x".repeat(2 * 1024 * 1024);
    let original = json!({"metadata": {"name": "a"}, "data": {"a": half}});
    let more = serde_json::to_vec(&json!({"data": {"b": half}})).unwrap();
    too_large(apply_patch(&original, &more, PatchType::Merge, None).unwrap_err());
    too_large(apply_patch(&original, &more, PatchType::StrategicMerge, None).unwrap_err());
    too_large(
        json_patch(
            &original,
            json!([{"op": "add", "path": "/data/b", "value": half}]),
        )
        .unwrap_err(),
    );
    // Replacing the big value keeps it within the limit.
    let swap = serde_json::to_vec(&json!({"data": {"a": null, "b": half}})).unwrap();
    let swapped = apply_patch(&original, &swap, PatchType::Merge, None).unwrap();
    assert_eq!(
        swapped["data"]["b"].as_str().map(str::len),
        Some(half.len())
    );
}

fn too_deep(e: PatchError) {
    assert_eq!(e.status_code(), 422, "{e}");
    assert_eq!(e.reason(), "Invalid");
    assert!(e.status_message().contains("exceeded max depth"), "{e}");
}

/// A chain of `depth` objects `{"a":{"a":…1}}`.
fn chain(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({"a": v});
    }
    v
}

#[test]
fn json_patch_moves_cannot_nest_deeper_than_the_decoder_reads() {
    // Each round of operations would sink the document 100 levels deeper
    // (unchecked, a 3 MiB body makes it hundreds of thousands deep, past any
    // stack); the first that goes past the limit is refused.
    let mut ops = vec![json!({"op": "add", "path": "/x", "value": chain(100)})];
    let under = format!("/y{}/x", "/a".repeat(99));
    for _ in 0..20 {
        ops.push(json!({"op": "add", "path": "/y", "value": chain(100)}));
        ops.push(json!({"op": "move", "from": "/x", "path": under}));
        ops.push(json!({"op": "move", "from": "/y", "path": "/x"}));
    }
    too_deep(json_patch(&json!({}), json!(ops)).unwrap_err());
    // Up to the limit is fine: 1 (the document) + 26 + 100.
    let ok = json_patch(
        &json!({}),
        json!([
            {"op": "add", "path": "/x", "value": chain(100)},
            {"op": "add", "path": "/y", "value": chain(MAX_DEPTH - 101)},
            {"op": "move", "from": "/x", "path": format!("/y{}/x", "/a".repeat(MAX_DEPTH - 102))},
        ]),
    )
    .unwrap();
    assert!(
        ok.pointer(&format!("/y{}/x", "/a".repeat(MAX_DEPTH - 102)))
            .is_some()
    );
}

#[test]
fn json_patch_copies_and_adds_cannot_nest_too_deep() {
    let deep_path = format!("/y{}", "/a".repeat(99));
    let original = json!({"x": chain(100), "y": chain(100)});
    too_deep(
        json_patch(
            &original,
            json!([{"op": "copy", "from": "/x", "path": format!("{deep_path}/z")}]),
        )
        .unwrap_err(),
    );
    too_deep(
        json_patch(
            &original,
            json!([{"op": "add", "path": format!("{deep_path}/z"), "value": chain(50)}]),
        )
        .unwrap_err(),
    );
    too_deep(
        json_patch(
            &original,
            json!([{"op": "replace", "path": format!("{deep_path}/a"), "value": chain(50)}]),
        )
        .unwrap_err(),
    );
    // Moving up never deepens: not even walked.
    let up = json_patch(
        &original,
        json!([{"op": "move", "from": deep_path, "path": "/z"}]),
    )
    .unwrap();
    assert_eq!(up["z"], json!({"a": 1}));
}

#[test]
fn every_patch_type_checks_the_depth_of_its_result() {
    // An original deeper than the decoder reads (built in memory): nothing
    // may be made of it.
    let original = json!({"a": chain(200)});
    too_deep(apply_patch(&original, b"{}", PatchType::Merge, None).unwrap_err());
    too_deep(apply_patch(&original, b"{}", PatchType::StrategicMerge, None).unwrap_err());
    too_deep(apply_patch(&original, b"[]", PatchType::Json, None).unwrap_err());
    let ok = json!({"a": chain(MAX_DEPTH - 1)});
    assert_eq!(apply_patch(&ok, b"{}", PatchType::Merge, None).unwrap(), ok);
}
