//! Shared pieces of nestkube's bounded fuzz targets: the case budget, the
//! seed corpora checked in beside each crate's tests, and the strategies
//! that make JSON documents, hostile shapes and mutated byte strings.
//!
//! The targets are `proptest` properties that run under a plain
//! `cargo test` on the stable toolchain, so CI runs them on every change
//! with a small, fixed case count. `cargo fuzz` (libFuzzer) would need a
//! nightly toolchain and the sanitizer runtime, which CI does not have.
//! How to run them longer: `docs/fuzzing.md`.
//!
//! Owns: [`config`] (cases, shrinking, where failures are persisted),
//! [`corpus`] (the seed files every target replays first), the strategies.
//! Never: talks to the network, reads anything outside the repository,
//! or knows about a particular parser (each target lives with its crate).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::{Map, Number, Value};

/// Environment variable that replaces the default case count of every
/// target (e.g. `NESTKUBE_FUZZ_CASES=100000` for a long local run).
pub const CASES_ENV: &str = "NESTKUBE_FUZZ_CASES";

/// The number of generated cases a target runs: `default` (sized so the
/// target takes seconds in a debug build on a small CI machine) unless
/// [`CASES_ENV`] says otherwise.
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The proptest configuration of target `target` of the crate at
/// `manifest_dir` (`env!("CARGO_MANIFEST_DIR")`): [`cases`] cases, a bounded
/// shrink, and failing seeds persisted in
/// `<crate>/proptest-regressions/<target>.txt`, which is checked in and
/// replayed before the generated cases on every later run.
pub fn config(manifest_dir: &str, target: &str, default_cases: u32) -> Config {
    let path = Path::new(manifest_dir)
        .join("proptest-regressions")
        .join(format!("{target}.txt"));
    // `Direct` wants a `&'static str`; a few bytes per target and test run.
    let path: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
    Config {
        cases: cases(default_cases),
        max_shrink_iters: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
        ..Config::default()
    }
}

/// One seed of a corpus: its file name and contents.
#[derive(Clone, Debug)]
pub struct Seed {
    /// File name inside the corpus directory (says what the input is).
    pub name: String,
    /// The bytes fed to the target.
    pub bytes: Vec<u8>,
}

/// The directory of corpus `target` of the crate at `manifest_dir`:
/// `<crate>/tests/fuzz-corpus/<target>`.
pub fn corpus_dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir)
        .join("tests")
        .join("fuzz-corpus")
        .join(target)
}

/// Every file of corpus `target`, sorted by name. Panics when the
/// directory is missing or empty, so a corpus cannot silently vanish.
pub fn corpus(manifest_dir: &str, target: &str) -> Vec<Seed> {
    let dir = corpus_dir(manifest_dir, target);
    let mut seeds: Vec<Seed> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            Seed {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bytes: std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("corpus {}: {e}", path.display())),
            }
        })
        .collect();
    assert!(!seeds.is_empty(), "corpus {} is empty", dir.display());
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    seeds
}

/// Keys a Kubernetes object (and a strategic merge patch of one) is made
/// of, so generated documents reach the paths parsers and patchers
/// treat specially; plus a few odd ones.
pub const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "spec",
    "status",
    "template",
    "containers",
    "initContainers",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "env",
    "value",
    "volumes",
    "volumeMounts",
    "mountPath",
    "emptyDir",
    "replicas",
    "selector",
    "matchLabels",
    "tolerations",
    "key",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/ports",
    "$deleteFromPrimitiveList/finalizers",
    "a",
    "",
    "~0/~1",
    "é",
];

/// String values: names, directives, escapes, and a few unusual ones.
pub const STRINGS: &[&str] = &[
    "",
    "a",
    "web",
    "nginx",
    "TCP",
    "merge",
    "replace",
    "delete",
    "/",
    "/spec",
    "/metadata/labels",
    "/spec/template/spec/containers/0",
    "/spec/template/spec/containers/-",
    "~",
    "~01",
    "\u{0}",
    "\u{feff}",
    "é",
    "-1",
];

/// A JSON scalar, biased towards the values parsers treat specially.
pub fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_string())),
        ".{0,12}".prop_map(Value::String),
    ]
    .boxed()
}

/// A key: mostly from [`KEYS`], sometimes arbitrary.
pub fn key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => ".{0,8}",
    ]
    .boxed()
}

/// An arbitrary JSON value at most `depth` levels deep with at most `width`
/// members per array or object.
pub fn json_value(depth: u32, width: usize) -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(depth, 64, width as u32, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..=width).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..=width)
                    .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// An arbitrary JSON object (what every Kubernetes document is).
pub fn json_object(depth: u32, width: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(
        (key(), json_value(depth.saturating_sub(1), width)),
        0..=width,
    )
    .prop_map(|members| Value::Object(members.into_iter().collect()))
    .boxed()
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip bit `bit` of the byte at (index modulo length).
    FlipBit(usize, u8),
    /// Set the byte at (index modulo length).
    SetByte(usize, u8),
    /// Insert bytes at (index modulo length + 1).
    Insert(usize, Vec<u8>),
    /// Remove up to `len` bytes from (index modulo length).
    Remove(usize, usize),
    /// Copy up to `len` bytes from `from` to `to` (both modulo length).
    Duplicate(usize, usize, usize),
    /// Keep only the first (index modulo length + 1) bytes.
    Truncate(usize),
}

impl Mutation {
    /// Applies the edit to `bytes`.
    pub fn apply(&self, bytes: &mut Vec<u8>) {
        let len = bytes.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match self {
            Mutation::FlipBit(i, bit) if len > 0 => bytes[at(*i)] ^= 1 << (bit % 8),
            Mutation::SetByte(i, b) if len > 0 => bytes[at(*i)] = *b,
            Mutation::Insert(i, ins) => {
                let pos = i % (len + 1);
                bytes.splice(pos..pos, ins.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let start = at(*i);
                let end = (start + n).min(len);
                bytes.drain(start..end);
            }
            Mutation::Duplicate(from, to, n) if len > 0 => {
                let start = at(*from);
                let end = (start + n).min(len);
                let chunk = bytes[start..end].to_vec();
                let pos = to % (len + 1);
                bytes.splice(pos..pos, chunk);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
}

/// Bytes a parser of `interesting` formats treats specially.
fn interesting_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..8),
        prop::sample::select(vec![
            b"{".to_vec(),
            b"}".to_vec(),
            b"[".to_vec(),
            b"]".to_vec(),
            b"\"".to_vec(),
            b"\\".to_vec(),
            b",".to_vec(),
            b":".to_vec(),
            b"null".to_vec(),
            b"\\ud800".to_vec(),
            b"1e999".to_vec(),
            b"-0".to_vec(),
            b"&a ".to_vec(),
            b"*a".to_vec(),
            b"!!binary ".to_vec(),
            b"\n- ".to_vec(),
            b"\xff\xff\xff\xff\x0f".to_vec(),
            b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01".to_vec(),
            vec![0],
        ]),
    ]
    .boxed()
}

/// One [`Mutation`].
pub fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<usize>(), interesting_bytes()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<usize>(), any::<usize>(), 1usize..64)
            .prop_map(|(f, t, n)| Mutation::Duplicate(f, t, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
    .boxed()
}

/// A seed of `seeds` with up to `max_edits` [`Mutation`]s applied: the
/// mutational half of a fuzzer (the generated half is the strategies above).
pub fn mutated(seeds: Vec<Vec<u8>>, max_edits: usize) -> BoxedStrategy<Vec<u8>> {
    assert!(!seeds.is_empty(), "no seeds to mutate");
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 0..=max_edits),
    )
        .prop_map(|(mut bytes, edits)| {
            for e in &edits {
                e.apply(&mut bytes);
            }
            bytes
        })
        .boxed()
}

/// Hostile JSON bodies, named: nesting far past any parser limit, huge
/// numbers, long strings, duplicate and many keys, bad escapes.
pub fn hostile_json() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    // Past 10 000 levels the YAML reader (fed these too) takes seconds:
    // libyaml's scanner is quadratic in flow mapping depth (docs/fuzzing.md).
    for depth in [127usize, 128, 129, 1_000, 10_000] {
        out.push((
            format!("{depth} nested arrays"),
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ));
        out.push((
            format!("{depth} nested objects"),
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes(),
        ));
        out.push((
            format!("{depth} unclosed arrays"),
            "[".repeat(depth).into_bytes(),
        ));
    }
    out.push((
        "huge integer".into(),
        format!("{{\"spec\":{{\"replicas\":{}}}}}", "9".repeat(100_000)).into_bytes(),
    ));
    out.push((
        "huge exponent".into(),
        br#"{"spec":{"replicas":1e999999999,"x":-1e-999999999}}"#.to_vec(),
    ));
    out.push((
        "long string".into(),
        format!("{{\"metadata\":{{\"name\":\"{}\"}}}}", "a".repeat(1 << 20)).into_bytes(),
    ));
    out.push((
        "duplicate keys".into(),
        br#"{"kind":"Pod","kind":"Secret","metadata":{"name":"a","name":"b","namespace":"x","namespace":"y"}}"#.to_vec(),
    ));
    let many: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":{i}")).collect();
    out.push((
        "many keys".into(),
        format!("{{\"metadata\":{{\"labels\":{{{}}}}}}}", many.join(",")).into_bytes(),
    ));
    out.push((
        "lone surrogates".into(),
        br#"{"metadata":{"name":"\ud800\udc00\ud800","x":"\udfff"}}"#.to_vec(),
    ));
    out.push((
        "nul and bom".into(),
        b"\xef\xbb\xbf{\"a\":\"\\u0000\"}\x00".to_vec(),
    ));
    out
}

/// Hostile YAML bodies, named: deep flow and block nesting, alias bombs,
/// odd tags.
pub fn hostile_yaml() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for depth in [127usize, 128, 129, 1_000, 5_000] {
        out.push((
            format!("{depth} nested flow sequences"),
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ));
        out.push((
            format!("{depth} nested flow mappings"),
            format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth)).into_bytes(),
        ));
        let mut block = String::new();
        for level in 0..depth.min(2_000) {
            block.push_str(&" ".repeat(level));
            block.push_str("a:\n");
        }
        out.push((format!("{depth} nested block mappings"), block.into_bytes()));
    }
    // The billion laughs: 9 levels of 9 aliases each.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    out.push(("alias bomb".into(), bomb.into_bytes()));
    out.push(("recursive alias".into(), b"a: &a [*a]\n".to_vec()));
    out.push((
        "tags".into(),
        b"kind: !!binary aGVsbG8=\nspec: !custom {a: 1}\nx: !!float .nan\n".to_vec(),
    ));
    out.push((
        "merge keys".into(),
        b"base: &b {a: 1}\nspec:\n  <<: *b\n  <<: [*b, *b]\n".to_vec(),
    ));
    out.push((
        "multi document".into(),
        b"kind: Pod\n---\nkind: Secret\n".to_vec(),
    ));
    out.push((
        "complex keys".into(),
        b"? [a, b]\n: 1\n? {a: 1}\n: 2\n".to_vec(),
    ));
    out.push((
        "huge integer".into(),
        format!("a: {}", "9".repeat(100_000)).into_bytes(),
    ));
    out
}

/// `v` with every float replaced by an integer. serde_json's default float
/// reader is not correctly rounded (`parse(print(x))` may differ from `x` in
/// the last digit), so properties that compare a value with what it reads
/// back as use documents without floats.
pub fn without_floats(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => Value::Number((n.as_f64().unwrap_or(0.0) as i64).into()),
        Value::Array(items) => Value::Array(items.into_iter().map(without_floats).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, without_floats(v))).collect())
        }
        other => other,
    }
}

/// Drops a deeply nested value without recursing (the default drop of a
/// value nested tens of thousands of levels would overflow the stack).
pub fn drop_deep(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(members) => stack.extend(members.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// The nesting depth of `value` in containers (a scalar is 0, `[]` 1,
/// `[[1]]` 2, as `serde_json`'s reader counts), without recursing.
pub fn depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => {
                max = max.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(members) => {
                max = max.max(d + 1);
                stack.extend(members.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_in_bounds() {
        let edits = [
            Mutation::FlipBit(usize::MAX, 9),
            Mutation::SetByte(7, 1),
            Mutation::Insert(usize::MAX, vec![1, 2]),
            Mutation::Remove(usize::MAX, 1000),
            Mutation::Duplicate(usize::MAX, usize::MAX, 1000),
            Mutation::Truncate(usize::MAX),
        ];
        for e in &edits {
            let mut empty = Vec::new();
            e.apply(&mut empty);
            let mut some = b"abc".to_vec();
            e.apply(&mut some);
        }
    }

    #[test]
    fn depth_counts_levels() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!({"a": [1]})), 2);
        assert_eq!(depth(&serde_json::json!([[]])), 2);
    }
}
