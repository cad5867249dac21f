//! Strategic merge patch cases ported from upstream's
//! `strategicpatch/patch_test.go`, against a hand-written OpenAPI fragment
//! equivalent to upstream's `mergeItem` test type.

use nestkube_patch::{PatchError, PatchSchema, StrategicError, strategic_merge_patch};
use serde_json::{Value, json};

fn schema() -> PatchSchema {
    let item_list = |strategy: Option<&str>, key: Option<&str>| {
        let mut v = json!({"type": "array", "items": {"$ref": "#/definitions/mergeItem"}});
        if let Some(s) = strategy {
            v["x-kubernetes-patch-strategy"] = json!(s);
        }
        if let Some(k) = key {
            v["x-kubernetes-patch-merge-key"] = json!(k);
        }
        v
    };
    let doc = json!({
        "swagger": "2.0",
        "definitions": {
            "mergeItem": {
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "other": {"type": "string"},
                    "mergingList": item_list(Some("merge"), Some("name")),
                    "nonMergingList": item_list(None, None),
                    "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
                    "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
                    "mergeItemPtr": {"$ref": "#/definitions/mergeItem", "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
                    "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
                    "replacingItem": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.runtime.RawExtension", "x-kubernetes-patch-strategy": "replace"},
                    "retainKeysMap": {"$ref": "#/definitions/retainKeysMergeItem", "x-kubernetes-patch-strategy": "retainKeys"},
                    "retainKeysMergingList": item_list(Some("merge,retainKeys"), Some("name"))
                },
                "x-kubernetes-group-version-kind": [{"group": "fake-group", "kind": "mergeItem", "version": "some-version"}]
            },
            "retainKeysMergeItem": {
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "other": {"type": "string"},
                    "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
                    "mergingList": item_list(Some("merge"), Some("name")),
                    "nonMergingList": item_list(None, None),
                    "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"}
                }
            },
            "io.k8s.apimachinery.pkg.runtime.RawExtension": {
                "properties": {"Raw": {"type": "string", "format": "byte"}}
            }
        }
    });
    PatchSchema::from_openapi_v2(&doc).unwrap()
}

fn patch(original: Value, p: Value) -> Result<Value, PatchError> {
    let s = schema();
    let ty = s.root("fake-group", "some-version", "mergeItem");
    assert!(ty.is_some());
    strategic_merge_patch(&original, &p, ty)
}

fn check(description: &str, original: Value, p: Value, expected: Value) {
    let got = patch(original, p).unwrap_or_else(|e| panic!("{description}: {e}"));
    assert_eq!(got, expected, "{description}");
    // Lists must come out in the same order too.
    assert_eq!(
        serde_json::to_string(&sort_keys(&got)).unwrap(),
        serde_json::to_string(&sort_keys(&expected)).unwrap(),
        "{description}"
    );
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sort_keys(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

#[test]
fn unique_scalars_when_merging_lists() {
    check(
        "unique scalars",
        json!({"mergingIntList": [1, 2]}),
        json!({"mergingIntList": [2, 3]}),
        json!({"mergingIntList": [1, 2, 3]}),
    );
}

#[test]
fn delete_map_from_nested_map() {
    check(
        "delete map from nested map",
        json!({"simpleMap": {"key1": "1", "key2": "1"}}),
        json!({"simpleMap": {"$patch": "delete"}}),
        json!({"simpleMap": {}}),
    );
}

#[test]
fn delete_all_items_from_merging_list() {
    check(
        "replace directive in list",
        json!({"mergingList": [{"name": "1"}, {"name": "2"}]}),
        json!({"mergingList": [{"$patch": "replace"}]}),
        json!({"mergingList": []}),
    );
}

#[test]
fn merge_empty_merging_lists() {
    check(
        "empty lists",
        json!({"mergingList": []}),
        json!({"mergingList": []}),
        json!({"mergingList": []}),
    );
}

#[test]
fn replace_and_delete_all_keys_from_map() {
    check(
        "delete all keys",
        json!({"name": "1", "value": "1"}),
        json!({"$patch": "replace"}),
        json!({}),
    );
    check(
        "add key and delete all keys",
        json!({"name": "1", "value": "1"}),
        json!({"other": "a", "$patch": "replace"}),
        json!({"other": "a"}),
    );
}

#[test]
fn delete_directive_removes_all_duplicates() {
    check(
        "delete all duplicate entries",
        json!({"mergingList": [{"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}, {"name": "3"}]}),
        json!({"mergingList": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}),
        json!({"mergingList": [{"name": "2", "value": "a"}]}),
    );
}

#[test]
fn retain_keys_without_directive_merges() {
    check(
        "add",
        json!({"retainKeysMap": {"name": "foo"}}),
        json!({"retainKeysMap": {"value": "bar"}}),
        json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
    );
    check(
        "delete",
        json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
        json!({"retainKeysMap": {"value": null}}),
        json!({"retainKeysMap": {"name": "foo"}}),
    );
    check(
        "list change",
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
        json!({"retainKeysMergingList": [{"name": "foo", "value": "b"}]}),
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "b"}]}),
    );
}

#[test]
fn retain_keys_directive_clears_unlisted_fields() {
    check(
        "retainKeys",
        json!({"retainKeysMap": {"name": "foo", "value": "a", "other": "b"}}),
        json!({"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "c"}}),
        json!({"retainKeysMap": {"name": "foo", "value": "c"}}),
    );
    // A patched key missing from $retainKeys is a 400.
    let err = patch(
        json!({"retainKeysMap": {"name": "foo"}}),
        json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "c"}}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PatchError::Strategic(StrategicError::BadPatchFormatForRetainKeys)
    );
    assert_eq!(err.status_code(), 400);
    // $retainKeys must be a list.
    let err = patch(
        json!({"retainKeysMap": {"name": "foo"}}),
        json!({"retainKeysMap": {"$retainKeys": "name"}}),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 400);
}

#[test]
fn preserve_the_order_from_the_patch() {
    check(
        "order from patch in merging list",
        json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}),
        json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "other": "x"}]}),
        json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "value": "b", "other": "x"}]}),
    );
    check(
        "order from patch in merging list 2",
        json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}),
        json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}]}),
        json!({"mergingList": [{"name": "2", "value": "b"}, {"name": "3", "value": "c"}, {"name": "1", "value": "a"}]}),
    );
    check(
        "order from patch in merging int list",
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"mergingIntList": [3, 1, 2]}),
        json!({"mergingIntList": [3, 1, 2]}),
    );
    check(
        "order from patch in merging int list 2",
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"mergingIntList": [3, 1]}),
        json!({"mergingIntList": [2, 3, 1]}),
    );
}

#[test]
fn set_element_order_with_missing_item() {
    check(
        "$setElementOrder contains item not present in the list",
        json!({"mergingList": [{"name": "1"}, {"name": "3"}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]
        }),
        json!({"mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]}),
    );
    check(
        "$setElementOrder on an int list only",
        json!({"mergingIntList": [1, 3]}),
        json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
        json!({"mergingIntList": [3, 1]}),
    );
}

#[test]
fn set_element_order_interleaves_server_only_items() {
    check(
        "server-only items keep their place",
        json!({"mergingList": [{"name": "1"}, {"name": "2"}, {"name": "3"}, {"name": "4"}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": "4"}, {"name": "2"}, {"name": "5"}],
            "mergingList": [{"name": "5", "value": "new"}]
        }),
        // Traced through upstream's mergeSortedSlice: server-only items are
        // placed by their live position relative to the ordered patch items.
        json!({"mergingList": [{"name": "1"}, {"name": "3"}, {"name": "4"}, {"name": "2"}, {"name": "5", "value": "new"}]}),
    );
}

#[test]
fn set_element_order_must_match_patch_order() {
    let err = patch(
        json!({"mergingList": [{"name": "1"}, {"name": "2"}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}],
            "mergingList": [{"name": "2", "value": "b"}, {"name": "1", "value": "a"}]
        }),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert!(
        err.to_string().starts_with("the order in patch list:"),
        "{err}"
    );
}

#[test]
fn delete_from_primitive_list() {
    check(
        "$deleteFromPrimitiveList",
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [1, 3]}),
        json!({"mergingIntList": [2]}),
    );
    check(
        "add and delete in the same patch",
        json!({"mergingIntList": [1, 2]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [1], "mergingIntList": [3]}),
        // Merged first ([3, 1, 2]: new items lead), then deleted.
        json!({"mergingIntList": [3, 2]}),
    );
    check(
        "deletion list for an absent field is ignored",
        json!({"name": "a"}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [1]}),
        json!({"name": "a"}),
    );
    let err = patch(
        json!({"mergingIntList": [1]}),
        json!({"$deleteFromPrimitiveListmergingIntList": [1]}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PatchError::Strategic(StrategicError::BadPatchFormatForPrimitiveList)
    );
    assert_eq!(err.status_code(), 400);
}

#[test]
fn non_merging_lists_are_replaced() {
    check(
        "nonMergingList",
        json!({"nonMergingList": [{"name": "1"}, {"name": "2"}]}),
        json!({"nonMergingList": [{"name": "3"}]}),
        json!({"nonMergingList": [{"name": "3"}]}),
    );
    check(
        "nonMergingIntList",
        json!({"nonMergingIntList": [1, 2]}),
        json!({"nonMergingIntList": [2, 3]}),
        json!({"nonMergingIntList": [2, 3]}),
    );
}

#[test]
fn nested_merging_lists() {
    check(
        "nested",
        json!({"mergingList": [
            {"name": "1", "mergingList": [{"name": "a", "value": "1"}, {"name": "b"}], "mergingIntList": [1]},
            {"name": "2"}
        ]}),
        json!({"mergingList": [
            {"name": "1", "mergingList": [{"name": "b", "value": "2"}, {"name": "a", "$patch": "delete"}], "mergingIntList": [2]}
        ]}),
        json!({"mergingList": [
            // Upstream puts patch items not found in the live list first.
            {"name": "1", "mergingList": [{"name": "b", "value": "2"}], "mergingIntList": [2, 1]},
            {"name": "2"}
        ]}),
    );
}

#[test]
fn replace_strategy_replaces_maps() {
    check(
        "replacingItem",
        json!({"replacingItem": {"a": "1", "b": {"c": "2"}}}),
        json!({"replacingItem": {"b": {"d": "3"}}}),
        json!({"replacingItem": {"b": {"d": "3"}}}),
    );
}

#[test]
fn null_deletes_and_unmatched_nulls_are_dropped() {
    check(
        "null",
        json!({"name": "a", "value": "b"}),
        json!({"value": null, "other": null, "simpleMap": {"x": null, "y": "1"}}),
        json!({"name": "a", "simpleMap": {"y": "1"}}),
    );
}

#[test]
fn new_values_lose_directives() {
    check(
        "added list with directive elements",
        json!({"name": "a"}),
        json!({"mergingList": [{"name": "x"}, {"name": "y", "$patch": "delete"}]}),
        json!({"name": "a", "mergingList": [{"name": "x"}]}),
    );
}

#[test]
fn missing_merge_key_is_an_internal_error() {
    let err = patch(
        json!({"mergingList": [{"name": "1"}]}),
        json!({"mergingList": [{"value": "x"}]}),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert_eq!(err.reason(), "");
    assert_eq!(
        err.to_string(),
        "map: map[value:x] does not contain declared merge key: name"
    );
}

#[test]
fn unknown_patch_directive() {
    let err = patch(
        json!({"simpleMap": {"a": "1"}}),
        json!({"simpleMap": {"$patch": "frobnicate"}}),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert_eq!(
        err.to_string(),
        "unknown patch type: frobnicate in map: map[$patch:frobnicate]"
    );
    let err = patch(
        json!({"mergingList": [{"name": "1"}]}),
        json!({"mergingList": [{"name": "1", "$patch": "merge"}]}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "merging lists cannot yet be specified in the patch"
    );
}

#[test]
fn list_of_lists_is_422() {
    let err = patch(
        json!({"mergingIntList": [[1]]}),
        json!({"mergingIntList": [[2]]}),
    )
    .unwrap_err();
    assert_eq!(err, PatchError::Strategic(StrategicError::NoListOfLists));
    assert_eq!(err.status_code(), 422);
    assert_eq!(err.reason(), "Invalid");
    assert_eq!(
        err.causes(),
        vec!["lists of lists are not supported".to_string()]
    );
}

#[test]
fn type_change_replaces() {
    check(
        "list replaced by map",
        json!({"mergingList": [{"name": "1"}]}),
        json!({"mergingList": {"name": "x"}}),
        json!({"mergingList": {"name": "x"}}),
    );
}

#[test]
fn no_schema_behaves_like_merge_patch() {
    let original = json!({"spec": {"list": [1, 2], "map": {"a": 1, "b": 2}}});
    let p = json!({"spec": {"list": [3], "map": {"a": null, "c": 3}}});
    let got = strategic_merge_patch(&original, &p, None).unwrap();
    assert_eq!(got, json!({"spec": {"list": [3], "map": {"b": 2, "c": 3}}}));
}
