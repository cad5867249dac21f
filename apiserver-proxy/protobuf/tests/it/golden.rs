//! Golden tests: every `tests/golden/**/NAME.pb` (hand-written samples, plus
//! `fuzz/`: one seeded random object of every kind in the scheme) (what client-go sends, built by
//! `e2e/gen-protodata` from real Go types) must decode to exactly
//! `NAME.json` (what kube-apiserver's Go code marshals after decoding it) —
//! equal as JSON values and byte for byte (key order included).

use std::path::{Path, PathBuf};

fn golden_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            golden_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "pb") {
            out.push(path);
        }
    }
}

#[test]
fn golden_bodies_decode_like_kube_apiserver() {
    let mut files = Vec::new();
    golden_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden"),
        &mut files,
    );
    files.sort();
    assert!(
        files.len() >= 10,
        "golden files missing: run e2e/gen-protodata"
    );
    eprintln!("{} golden bodies", files.len());
    let mut failures = Vec::new();
    for pb in &files {
        let body = std::fs::read(pb).unwrap();
        let want_text = std::fs::read_to_string(pb.with_extension("json")).unwrap();
        let want: serde_json::Value = serde_json::from_str(&want_text).unwrap();
        match nestkube_protobuf::decode(&body) {
            Err(e) => failures.push(format!("{}: {e}", pb.display())),
            Ok(got) => {
                if got.object != want {
                    failures.push(format!(
                        "{}:\n  got  {}\n  want {}",
                        pb.display(),
                        got.object,
                        want_text.trim()
                    ));
                } else if !pb.parent().unwrap().ends_with("fuzz")
                    && serde_json::to_string(&got.object).unwrap() != want_text.trim_end()
                {
                    // Byte-for-byte only for the hand-written samples: random floats
                    // print differently (Go `1e+21`, serde `1e21`) while equal as values.
                    failures.push(format!(
                        "{}: key order differs:\n  got  {}\n  want {}",
                        pb.display(),
                        got.object,
                        want_text.trim()
                    ));
                }
                assert_eq!(got.object["kind"], got.kind.as_str());
                assert_eq!(got.object["apiVersion"], got.api_version.as_str());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
