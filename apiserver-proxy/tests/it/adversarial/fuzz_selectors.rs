//! Bounded fuzzing of label and field selectors (`?labelSelector=`,
//! `?fieldSelector=`, any string a tenant puts in a query): parsing never
//! panics, matching never panics, and what parses renders back to a string
//! that parses to the same selector (upstream's `String()` forms).
//!
//! Seeds: `tests/fuzz-corpus/{label,field}_selector`, then generated strings
//! over the selectors' own alphabet plus arbitrary Unicode. Failing seeds:
//! `proptest-regressions/`. Longer runs: `docs/fuzzing.md`.

use std::collections::BTreeMap;

use nestkube_apiserver::registry::selector::{FieldSelector, LabelSelector, Op};
use nestkube_fuzz_support as fuzz;
use proptest::prelude::*;

const DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Upstream's string form of a parsed label selector.
fn render_labels(s: &LabelSelector) -> String {
    let set = |vals: &[String]| vals.join(",");
    s.0.iter()
        .map(|r| match &r.op {
            Op::In(v) => format!("{} in ({})", r.key, set(v)),
            Op::NotIn(v) => format!("{} notin ({})", r.key, set(v)),
            Op::Exists => r.key.clone(),
            Op::DoesNotExist => format!("!{}", r.key),
            Op::Gt(n) => format!("{}>{n}", r.key),
            Op::Lt(n) => format!("{}<{n}", r.key),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Upstream's string form of a parsed field selector (`\`, `,`, `=` and `!`
/// escaped, so every term splits where it did).
fn render_fields(s: &FieldSelector) -> String {
    let esc = |v: &str| {
        let mut out = String::new();
        for c in v.chars() {
            if matches!(c, '\\' | ',' | '=' | '!') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    s.0.iter()
        .map(|r| {
            let op = if r.negated { "!=" } else { "=" };
            format!("{}{op}{}", esc(&r.field), esc(&r.value))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The properties of one input string.
fn check(input: &str) {
    if let Ok(sel) = LabelSelector::parse(input) {
        let again = LabelSelector::parse(&render_labels(&sel));
        assert_eq!(again.as_ref(), Ok(&sel), "label selector {input:?}");
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("n".to_string(), "7".to_string()),
        ]);
        let _ = sel.matches(&labels);
    }
    if let Ok(sel) = FieldSelector::parse(input) {
        let again = FieldSelector::parse(&render_fields(&sel));
        assert_eq!(again.as_ref(), Ok(&sel), "field selector {input:?}");
        let _ = sel.matches(|f| (f == "metadata.name").then(|| "web".to_string()));
        let _ = sel.required_value("metadata.name");
    }
}

#[test]
fn corpus_parses_and_round_trips() {
    for target in ["label_selector", "field_selector"] {
        for seed in fuzz::corpus(DIR, target) {
            let s = String::from_utf8(seed.bytes).expect("UTF-8 corpus");
            let parsed = if target == "label_selector" {
                LabelSelector::parse(&s).map(|_| ())
            } else {
                FieldSelector::parse(&s).map(|_| ())
            };
            assert!(parsed.is_ok(), "{target}/{}: {parsed:?}", seed.name);
            check(&s);
        }
    }
}

/// Found by this target: a field selector with a non-ASCII character
/// (`?fieldSelector=metadata.name%3D%C3%A9`) panicked while looking for
/// the operator (byte index inside a character), killing the connection.
#[test]
fn regression_non_ascii_field_selector() {
    for input in ["é", "metadata.name=é", "é!=x", "\\é=x", "a\\é", "ノ=ド,x=y"] {
        check(input);
    }
    let s = FieldSelector::parse("metadata.name=é").unwrap();
    assert_eq!(s.required_value("metadata.name"), Some("é"));
}

/// Strings over the selectors' alphabet, where the parser has decisions to make.
fn selector_like() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "a", "app", "x.io/k", "-", "_", ".", "/", "7", "-3", "", " ", ",", "=", "==", "!=", "!",
        "<", ">", "(", ")", " in ", " notin ", "in", "\\", "\\,", "\\=", "é", "\u{0}",
    ]);
    prop::collection::vec(token, 0..16).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(fuzz::config(DIR, "selectors", 4000))]

    #[test]
    fn selector_like_strings(input in selector_like()) {
        check(&input);
    }

    #[test]
    fn arbitrary_strings(input in "\\PC{0,40}") {
        check(&input);
    }

    #[test]
    fn mutated_corpus(bytes in fuzz::mutated(
        fuzz::corpus(DIR, "label_selector").into_iter()
            .chain(fuzz::corpus(DIR, "field_selector"))
            .map(|s| s.bytes).collect(),
        6,
    )) {
        check(&String::from_utf8_lossy(&bytes));
    }
}
