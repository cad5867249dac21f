//! JSON patch and JSON merge patch, the entry point, and the status mapping.

use nestkube_patch::{PatchError, PatchType, apply_patch};
use serde_json::{Value, json};

fn cm() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}, "list": [1, 2, 3]})
}

fn json_patch(body: &str) -> Result<Value, PatchError> {
    apply_patch(&cm(), body.as_bytes(), PatchType::Json, None)
}

#[test]
fn content_types() {
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Some(PatchType::Json)
    );
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
        Some(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml"),
        Some(PatchType::Apply)
    );
    assert_eq!(PatchType::from_content_type("application/json"), None);
    assert_eq!(PatchType::unsupported_media_type().status_code(), 415);
    let err = apply_patch(&cm(), b"{}", PatchType::Apply, None).unwrap_err();
    assert_eq!(
        (err.status_code(), err.reason()),
        (415, "UnsupportedMediaType")
    );
}

#[test]
fn json_patch_operations() {
    let got = json_patch(
        r#"[{"op":"add","path":"/metadata/labels/b","value":"2"},
            {"op":"remove","path":"/data/k"},
            {"op":"replace","path":"/list/0","value":9},
            {"op":"move","from":"/list/2","path":"/list/-"},
            {"op":"copy","from":"/metadata/name","path":"/data/name"},
            {"op":"test","path":"/metadata/labels/a","value":"1"}]"#,
    )
    .unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(got["data"], json!({"name": "c"}));
    assert_eq!(got["list"], json!([9, 2, 3]));
}

#[test]
fn json_patch_evanphx_quirks() {
    // replace of a missing member adds it (evanphx/json-patch v4).
    let got =
        json_patch(r#"[{"op":"replace","path":"/metadata/labels/new","value":"x"}]"#).unwrap();
    assert_eq!(got["metadata"]["labels"]["new"], "x");
    // test of a missing member against null succeeds.
    assert!(json_patch(r#"[{"op":"test","path":"/metadata/nope","value":null}]"#).is_ok());
    // null patch: no operations.
    assert_eq!(json_patch("null").unwrap(), cm());
}

#[test]
fn json_patch_failures_are_422_with_the_jsonpatch_message_as_cause() {
    let err = json_patch(r#"[{"op":"test","path":"/metadata/labels/a","value":"2"}]"#).unwrap_err();
    assert_eq!(err.status_code(), 422);
    assert_eq!(err.reason(), "Invalid");
    assert_eq!(
        err.status_message(),
        "the server rejected our request due to an error in our request"
    );
    assert_eq!(
        err.causes(),
        vec!["testing value /metadata/labels/a failed: test failed".to_string()]
    );

    let err = json_patch(r#"[{"op":"remove","path":"/metadata/labels/zzz"}]"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "error in remove for path: '/metadata/labels/zzz': Unable to remove nonexistent key: zzz: missing value"
    );
    let err = json_patch(r#"[{"op":"add","path":"/spec/x/y","value":1}]"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "add operation does not apply: doc is missing path: \"/spec/x/y\": missing value"
    );
    let err = json_patch(r#"[{"op":"frob","path":"/a"}]"#).unwrap_err();
    assert_eq!(
        (err.status_code(), err.to_string().as_str()),
        (422, "Unexpected kind: frob")
    );
    let err = json_patch(r#"[{"op":"add","path":"nope","value":1}]"#).unwrap_err();
    assert_eq!(err.status_code(), 422);
    let err = json_patch(r#"[{"op":"add","path":"/list/7","value":1}]"#).unwrap_err();
    assert_eq!(err.status_code(), 422);
    // A failing operation leaves nothing half-applied: the caller's object is untouched.
    let err = json_patch(
        r#"[{"op":"add","path":"/data/x","value":1},{"op":"test","path":"/data/x","value":2}]"#,
    );
    assert!(err.is_err());
}

#[test]
fn json_patch_bad_bodies_are_400() {
    for body in ["", "{", r#"{"op":"add"}"#, r#"["x"]"#, "42"] {
        let err = json_patch(body).unwrap_err();
        assert_eq!(
            (err.status_code(), err.reason()),
            (400, "BadRequest"),
            "{body}"
        );
    }
}

#[test]
fn json_patch_operation_limit_is_413() {
    let ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/metadata/name", "value": "c"}))
        .collect();
    let body = serde_json::to_vec(&ops).unwrap();
    let err = apply_patch(&cm(), &body, PatchType::Json, None).unwrap_err();
    assert_eq!(
        (err.status_code(), err.reason()),
        (413, "RequestEntityTooLarge")
    );
}

#[test]
fn json_patch_result_must_be_an_object() {
    let err = json_patch(r#"[{"op":"replace","path":"","value":[1]}]"#).unwrap_err();
    assert_eq!((err.status_code(), err.reason()), (422, "Invalid"));
}

#[test]
fn merge_patch_semantics() {
    let got = apply_patch(
        &cm(),
        br#"{"metadata":{"labels":{"a":null,"b":"2"}},"data":null,"list":[{"x":null}],"new":{"y":null,"z":1}}"#,
        PatchType::Merge,
        None,
    )
    .unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"b": "2"}));
    assert!(got.get("data").is_none());
    // New values are pruned of null members (also inside arrays), as evanphx does.
    assert_eq!(got["list"], json!([{}]));
    assert_eq!(got["new"], json!({"z": 1}));
}

#[test]
fn merge_patch_bad_bodies() {
    for body in ["null", "1", "\"x\"", "{", ""] {
        let err = apply_patch(&cm(), body.as_bytes(), PatchType::Merge, None).unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest("Invalid JSON Patch".to_string()),
            "{body}"
        );
    }
    let err = apply_patch(&cm(), b"[1]", PatchType::Merge, None).unwrap_err();
    assert_eq!((err.status_code(), err.reason()), (422, "Invalid"));
}

#[test]
fn strategic_bodies() {
    // null body: nothing changes (upstream decodes it into a nil map).
    assert_eq!(
        apply_patch(&cm(), b"null", PatchType::StrategicMerge, None).unwrap(),
        cm()
    );
    for body in ["[]", "1", "\"x\"", "{", ""] {
        let err = apply_patch(&cm(), body.as_bytes(), PatchType::StrategicMerge, None).unwrap_err();
        assert_eq!(
            (err.status_code(), err.reason()),
            (400, "BadRequest"),
            "{body}"
        );
    }
    let err = apply_patch(&cm(), b"[]", PatchType::StrategicMerge, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
}
