//! Odd, hostile and deeply nested inputs: every patch type must answer with
//! a result or an error, never a panic.

use nestkube_patch::{PatchSchema, PatchType, apply_patch, strategic_merge_patch};
use serde_json::{Value, json};

fn schema() -> PatchSchema {
    let doc: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/openapi-v2.json"
        ))
        .unwrap(),
    )
    .unwrap();
    PatchSchema::from_openapi_v2(&doc).unwrap()
}

fn originals() -> Vec<Value> {
    vec![
        json!({}),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 1}]}, "junk", 7, null, [1]]}}}}),
        json!({"metadata": {"finalizers": ["a", 1, null, {"x": 1}, ["y"]]}, "spec": "str"}),
        json!({"spec": {"template": {"spec": {"containers": {"not": "a list"}, "volumes": [{"noname": true}]}}}}),
        json!({"metadata": {"finalizers": [[1], [2]]}}),
    ]
}

fn patches() -> Vec<String> {
    let mut out: Vec<String> = [
        r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","$patch":7}]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","$patch":"replace"},"x"]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":["x", 1, null]}}}}"#,
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":"nope"}}}}"#,
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[1,2,{"name":"a"}],"containers":[{"name":"a"}]}}}}"#,
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":{"name":"a"}}}}}"#,
        r#"{"spec":{"template":{"spec":{"$setElementOrder/volumes":[]}}}}"#,
        r#"{"spec":{"template":{"spec":{"$setElementOrder":[]}}}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":[{"a":1},[1]]}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveList":[1]}}"#,
        r#"{"metadata":{"finalizers":[1.5,"a",true]}}"#,
        r#"{"metadata":{"finalizers":[[1]]}}"#,
        r#"{"$retainKeys":{"a":1}}"#,
        r#"{"$retainKeys":["spec"],"spec":null,"metadata":1}"#,
        r#"{"$patch":null}"#,
        r#"{"$patch":"delete"}"#,
        r#"{"spec":{"$patch":"replace","$retainKeys":["x"]}}"#,
        r#"{"spec":{"template":{"spec":{"volumes":[{"name":"v","$retainKeys":[1,2],"emptyDir":{}}]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":[{"name":{"weird":"key"}}]}}}}"#,
        r#"[{"op":"add","path":"/a/b/c/d","value":1}]"#,
        r#"[{"op":"move","from":"/spec","path":"/spec/x"}]"#,
        r#"[{"op":"copy","from":"/nope","path":"/x"}]"#,
        r#"[null, {"op":null}, {"op":"add"}, {"op":"add","path":7}]"#,
        r#"[{"op":"remove","path":""}]"#,
        r#"[{"op":"replace","path":"/metadata/finalizers/-1","value":1}]"#,
        "\"\\u0000\"",
        "{\"a\":\"\\ud800\"}",
        "true",
        "1e400",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Deep nesting, past the JSON decoder's recursion limit and just below it.
    for depth in [100usize, 127, 200, 10_000] {
        out.push(format!(
            "{}{}",
            "{\"a\":".repeat(depth),
            "1".to_string() + &"}".repeat(depth)
        ));
        out.push(format!(
            "{{\"spec\":{}1{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        ));
    }
    out
}

#[test]
fn no_input_panics() {
    let schema = schema();
    let types = [
        None,
        schema.root("apps", "v1", "Deployment"),
        schema.root("", "v1", "Pod"),
    ];
    for original in originals() {
        for body in patches() {
            for kind in [
                PatchType::Json,
                PatchType::Merge,
                PatchType::StrategicMerge,
                PatchType::Apply,
            ] {
                for ty in types {
                    let result = apply_patch(&original, body.as_bytes(), kind, ty);
                    if let Err(e) = result {
                        let code = e.status_code();
                        assert!(
                            [400, 413, 415, 422, 500].contains(&code),
                            "{code} for {body}"
                        );
                        let _ = (e.reason(), e.status_message(), e.causes());
                    }
                }
            }
        }
    }
}

#[test]
fn deeply_nested_values_are_rejected_not_overflowed() {
    // Built in memory (not via the parser, which caps nesting at 128).
    let mut deep = json!(1);
    for _ in 0..5_000 {
        let mut m = serde_json::Map::new();
        m.insert("a".to_string(), deep);
        deep = Value::Object(m);
    }
    let original = json!({"a": {"a": 1}});
    let err = strategic_merge_patch(&original, &deep, None).unwrap_err();
    assert_eq!(err.status_code(), 400);
    // Tear down iteratively to keep the test's own drop off the stack.
    let mut cur = deep;
    while let Value::Object(mut m) = cur {
        cur = m.remove("a").unwrap_or(Value::Null);
    }
}

#[test]
fn non_object_originals_are_handled() {
    for original in [json!(null), json!([1]), json!("s")] {
        let _ = apply_patch(&original, b"{}", PatchType::StrategicMerge, None);
        let _ = apply_patch(&original, b"{\"a\":1}", PatchType::Merge, None);
        let _ = apply_patch(&original, b"[]", PatchType::Json, None);
    }
}

#[test]
fn schema_from_odd_documents() {
    assert!(PatchSchema::from_openapi_v2(&json!({})).is_err());
    assert!(PatchSchema::from_openapi_v2(&json!({"definitions": []})).is_err());
    // Cycles, dangling refs, alias chains and junk extension values.
    let s = PatchSchema::from_openapi_v2(&json!({"definitions": {
        "a": {"$ref": "#/definitions/b"},
        "b": {"$ref": "#/definitions/a"},
        "c": {"properties": {
            "self": {"$ref": "#/definitions/c", "x-kubernetes-patch-strategy": 5},
            "dangling": {"$ref": "#/definitions/nope"},
            "list": {"type": "array", "items": {"$ref": "#/definitions/a"}, "x-kubernetes-patch-merge-key": ["x"]}
        }, "x-kubernetes-group-version-kind": [{"group": 1}, "junk", {"kind": "C", "version": "v1"}]},
        "d": 7
    }}))
    .unwrap();
    let c = s.root("", "v1", "C").unwrap();
    assert!(c.field("self").is_some());
    let p = json!({"self": {"self": {"x": 1}}, "list": [{"a": 1}], "dangling": {"q": null}});
    let _ = strategic_merge_patch(
        &json!({"self": {}, "list": [1], "dangling": {"q": 1}}),
        &p,
        Some(c),
    )
    .unwrap();
    let a = s.definition("a").unwrap();
    let _ =
        strategic_merge_patch(&json!({"x": {"y": 1}}), &json!({"x": {"y": 2}}), Some(a)).unwrap();
}
