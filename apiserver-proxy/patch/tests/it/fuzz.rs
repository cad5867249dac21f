//! Bounded fuzzing of the three patch types (a tenant sends any body to
//! `PATCH`): every input gives a patched object or a `PatchError` with one
//! of upstream's statuses, never a panic; and the algebra holds: the JSON
//! patch of a diff turns one document into the other, a merge patch made
//! from two documents does too, and applying a merge patch twice changes
//! nothing more.
//!
//! Seeds: `tests/fuzz-corpus/patch` (bodies as clients send them) against
//! `tests/fuzz-corpus/documents`, every type, with and without a schema,
//! run first; then generated and mutated cases. Failing seeds are kept in
//! `proptest-regressions/`. Longer runs: `docs/fuzzing.md`.
//!
//! proptest rather than `cargo fuzz`: it runs under the stable `cargo test`
//! CI already runs; libFuzzer needs a nightly toolchain.

use std::sync::OnceLock;

use nestkube_fuzz_support as fuzz;
use nestkube_patch::{PatchError, PatchSchema, PatchType, TypeRef, apply_patch};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn schema() -> &'static PatchSchema {
    static SCHEMA: OnceLock<PatchSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let bytes = std::fs::read(format!("{DIR}/../data/openapi-v2.json")).expect("openapi");
        let doc: Value = serde_json::from_slice(&bytes).expect("openapi JSON");
        PatchSchema::from_openapi_v2(&doc).expect("schema")
    })
}

/// The types a patch is applied with: none, and two with list merge keys.
fn types() -> [Option<TypeRef<'static>>; 3] {
    let s = schema();
    [
        None,
        s.root("apps", "v1", "Deployment"),
        s.root("", "v1", "Pod"),
    ]
}

const KINDS: [PatchType; 4] = [
    PatchType::Json,
    PatchType::Merge,
    PatchType::StrategicMerge,
    PatchType::Apply,
];

/// The property every patch must satisfy: an object, or an error that maps
/// onto one of upstream's statuses with a renderable message.
fn check(original: &Value, body: &[u8], kind: PatchType, ty: Option<TypeRef<'_>>) {
    match apply_patch(original, body, kind, ty) {
        Ok(patched) => assert!(patched.is_object(), "{kind:?} gave a non-object"),
        Err(e) => check_error(&e),
    }
}

fn check_error(e: &PatchError) {
    assert!(
        [400, 413, 415, 422, 500].contains(&e.status_code()),
        "{} for {e:?}",
        e.status_code()
    );
    let _ = (e.reason(), e.status_message(), e.causes());
}

fn documents() -> Vec<Value> {
    fuzz::corpus(DIR, "documents")
        .into_iter()
        .map(|s| {
            serde_json::from_slice(&s.bytes).unwrap_or_else(|e| panic!("document {}: {e}", s.name))
        })
        .collect()
}

#[test]
fn corpus_and_hostile_bodies() {
    let docs = documents();
    let mut bodies: Vec<(String, Vec<u8>)> = fuzz::corpus(DIR, "patch")
        .into_iter()
        .map(|s| (s.name, s.bytes))
        .collect();
    bodies.extend(fuzz::hostile_json());
    for (name, body) in &bodies {
        for doc in &docs {
            for kind in KINDS {
                for ty in types() {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        check(doc, body, kind, ty)
                    }));
                    assert!(r.is_ok(), "panic: {kind:?} of {name}");
                }
            }
        }
    }
}

/// A JSON pointer into documents like the corpus (and some that miss).
fn pointer() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => prop::sample::select(fuzz::KEYS).prop_map(|k| k.replace('~', "~0").replace('/', "~1")),
        2 => (0usize..4).prop_map(|i| i.to_string()),
        1 => Just("-".to_string()),
        1 => Just("01".to_string()),
        1 => Just("~2".to_string()),
    ];
    prop::collection::vec(segment, 0..6)
        .prop_map(|segs| segs.iter().map(|s| format!("/{s}")).collect::<String>())
}

fn json_patch_op() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "add", "remove", "replace", "move", "copy", "test", "nope",
        ]),
        pointer(),
        pointer(),
        prop::option::of(fuzz::json_value(2, 3)),
    )
        .prop_map(|(op, path, from, value)| {
            let mut m = Map::new();
            m.insert("op".into(), op.into());
            m.insert("path".into(), path.into());
            m.insert("from".into(), from.into());
            if let Some(v) = value {
                m.insert("value".into(), v);
            }
            Value::Object(m)
        })
}

fn doc() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => prop::sample::select(documents()),
        1 => fuzz::json_object(4, 4).prop_map(fuzz::without_floats),
    ]
}

/// A merge-patch-able object: no `null` member in any object, also inside
/// arrays (a merge patch cannot express one: upstream prunes them from every
/// object it adds). `null` array elements stay.
fn object_without_null_members(depth: u32) -> BoxedStrategy<Value> {
    let leaf = fuzz::scalar().prop_filter("no null", |v| !v.is_null());
    let value = leaf.prop_recursive(depth, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(prop_oneof![Just(Value::Null), inner.clone()], 0..3)
                .prop_map(Value::Array),
            prop::collection::vec((fuzz::key(), inner), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::vec((fuzz::key(), value), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .prop_map(fuzz::without_floats)
        .boxed()
}

/// Whether an object inside an array of `v` has a `null` member: upstream's
/// merge patch prunes those only when the array replaces a non-object, so
/// such patches are not idempotent there either (evanphx `merge`).
fn null_member_inside_array(v: &Value) -> bool {
    fn walk(v: &Value, in_array: bool) -> bool {
        match v {
            Value::Array(items) => items.iter().any(|i| walk(i, true)),
            Value::Object(m) => m
                .values()
                .any(|i| (in_array && i.is_null()) || walk(i, in_array)),
            _ => false,
        }
    }
    walk(v, false)
}

/// The RFC 7386 merge patch that turns `from` into `to` (both objects).
fn merge_diff(from: &Map<String, Value>, to: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for k in from.keys().filter(|k| !to.contains_key(*k)) {
        patch.insert(k.clone(), Value::Null);
    }
    for (k, v) in to {
        match (from.get(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => {
                let d = merge_diff(a, b);
                if !d.is_empty() {
                    patch.insert(k.clone(), Value::Object(d));
                }
            }
            (Some(old), new) if old == new => {}
            _ => {
                patch.insert(k.clone(), v.clone());
            }
        }
    }
    patch
}

proptest! {
    #![proptest_config(fuzz::config(DIR, "patch_arbitrary", 1000))]

    /// Arbitrary documents and bodies, every type and schema.
    #[test]
    fn arbitrary_bodies_never_panic(
        original in doc(),
        patch in fuzz::json_value(5, 4),
        kind in prop::sample::select(KINDS.to_vec()),
        ty in 0usize..3,
    ) {
        let body = serde_json::to_vec(&patch).unwrap();
        check(&original, &body, kind, types()[ty]);
    }
}

proptest! {
    #![proptest_config(fuzz::config(DIR, "patch_mutated", 500))]

    /// Corpus bodies with byte-level edits, every type and schema.
    #[test]
    fn mutated_corpus_bodies_never_panic(
        original in doc(),
        body in fuzz::mutated(fuzz::corpus(DIR, "patch").into_iter().map(|s| s.bytes).collect(), 6),
    ) {
        for kind in KINDS {
            for ty in types() {
                check(&original, &body, kind, ty);
            }
        }
    }
}

proptest! {
    #![proptest_config(fuzz::config(DIR, "json_patch_ops", 1500))]

    /// Generated JSON patch operations aimed at the paths documents have.
    #[test]
    fn json_patch_operations_never_panic(
        original in doc(),
        ops in prop::collection::vec(json_patch_op(), 0..8),
    ) {
        let body = serde_json::to_vec(&ops).unwrap();
        check(&original, &body, PatchType::Json, None);
    }

    /// `json_patch::diff(a, b)` applied to `a` gives `b`.
    #[test]
    fn json_patch_of_a_diff_transforms(a in doc(), b in doc()) {
        let diff = json_patch::diff(&a, &b);
        let body = serde_json::to_vec(&diff).unwrap();
        let out = apply_patch(&a, &body, PatchType::Json, None);
        prop_assert_eq!(out, Ok(b));
    }
}

proptest! {
    #![proptest_config(fuzz::config(DIR, "merge_patch_algebra", 1500))]

    /// The merge patch made from `a` and `b` turns `a` into `b`.
    #[test]
    fn merge_patch_of_a_diff_transforms(a in doc(), b in object_without_null_members(3)) {
        let (Value::Object(am), Value::Object(bm)) = (&a, &b) else { unreachable!() };
        let body = serde_json::to_vec(&merge_diff(am, bm)).unwrap();
        let out = apply_patch(&a, &body, PatchType::Merge, None);
        prop_assert_eq!(out, Ok(b));
    }

    /// A merge patch applied twice is applied once (RFC 7386 is idempotent).
    #[test]
    fn merge_patch_is_idempotent(a in doc(), patch in fuzz::json_object(4, 4)) {
        prop_assume!(!null_member_inside_array(&patch));
        let body = serde_json::to_vec(&patch).unwrap();
        if let Ok(once) = apply_patch(&a, &body, PatchType::Merge, None) {
            let twice = apply_patch(&once, &body, PatchType::Merge, None);
            prop_assert_eq!(twice, Ok(once));
        }
    }
}

/// Regressions found by these targets, by name.
mod regressions {
    use super::*;

    /// `{"x": {"x": ... {}}}`, `levels` deep.
    fn chain(levels: usize) -> Value {
        let mut v = json!({});
        for _ in 0..levels {
            v = json!({ "x": v });
        }
        v
    }

    /// Found by the hostile shapes: a 400 KB JSON patch (add a 120-level
    /// value, move the document under it, repeat) nested the result 48 000
    /// levels deep; serializing or dropping it overflowed the stack of the
    /// server's worker thread and aborted the whole process. Run on a
    /// thread with a tokio worker's 2 MiB stack, as the server would.
    #[test]
    fn json_patch_depth_bomb_is_refused() {
        let deep_path = "/x".repeat(120);
        let mut ops = Vec::new();
        for i in 0..400 {
            let (from, to) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
            ops.push(json!({"op": "add", "path": format!("/{to}"), "value": chain(120)}));
            ops.push(json!({"op": "move", "from": format!("/{from}"), "path": format!("/{to}{deep_path}/x")}));
        }
        let body = serde_json::to_vec(&ops).unwrap();
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let result = apply_patch(&json!({"a": {}}), &body, PatchType::Json, None);
                // What the server does next with a result: serialize it.
                result.map(|v| serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(0))
            })
            .unwrap()
            .join()
            .expect("no panic");
        let err = outcome.unwrap_err();
        assert_eq!(err.status_code(), 422, "{err}");
        assert!(matches!(err, PatchError::TooDeep { .. }), "{err}");
    }

    /// Copies and moves that stay shallow are not refused, however many.
    #[test]
    fn many_shallow_moves_are_accepted() {
        let mut ops = vec![json!({"op": "add", "path": "/a", "value": chain(100)})];
        for _ in 0..200 {
            ops.push(json!({"op": "move", "from": "/a", "path": "/b"}));
            ops.push(json!({"op": "move", "from": "/b", "path": "/a"}));
            ops.push(json!({"op": "copy", "from": "/a/x", "path": "/c"}));
        }
        let body = serde_json::to_vec(&ops).unwrap();
        let out = apply_patch(&json!({}), &body, PatchType::Json, None).unwrap();
        assert!(
            nestkube_patch::depth_within(&out, 102) && !nestkube_patch::depth_within(&out, 101)
        );
    }

    /// The limit is exact: a document the JSON reader accepts can be
    /// patched; one level more is refused, for every patch type.
    #[test]
    fn nesting_limit_is_the_readers() {
        let max = nestkube_patch::MAX_DOCUMENT_DEPTH;
        let at_limit = json!({"a": chain(max - 2)});
        // chain(n) is n + 1 containers deep: the innermost `{}` counts.
        assert!(
            nestkube_patch::depth_within(&at_limit, max)
                && !nestkube_patch::depth_within(&at_limit, max - 1)
        );
        for (kind, body) in [
            (
                PatchType::Json,
                json!([{"op": "add", "path": "/b", "value": 1}]),
            ),
            (PatchType::Merge, json!({"b": 1})),
            (PatchType::StrategicMerge, json!({"b": 1})),
        ] {
            let body = serde_json::to_vec(&body).unwrap();
            assert!(
                apply_patch(&at_limit, &body, kind, None).is_ok(),
                "{kind:?}"
            );
        }
        // One level more, in a body the reader accepts (a merge or strategic
        // patch of readable inputs cannot nest deeper than both, so only a
        // JSON patch can get here).
        let body = json!([{"op": "add", "path": "/a/x/x", "value": chain(max - 3)}]);
        let body = serde_json::to_vec(&body).unwrap();
        let err = apply_patch(&at_limit, &body, PatchType::Json, None).unwrap_err();
        assert!(matches!(err, PatchError::TooDeep { .. }), "{err}");
    }
}
