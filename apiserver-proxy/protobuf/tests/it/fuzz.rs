//! Bounded fuzzing of the protobuf request decoder (any client may send
//! `application/vnd.kubernetes.protobuf`): every body decodes to an object
//! with the envelope's kind, or to a `ProtobufError`, never a panic; and a
//! decoded object is one the server can store and read back (it survives a
//! JSON round trip through `serde_json`'s reader, whose nesting limit the
//! store's reads have).
//!
//! Seeds: `tests/fuzz-corpus/protobuf` (bodies client-go sent), replayed
//! first, then mutated; plus generated wire messages under a real envelope.
//! Failing seeds are kept in `proptest-regressions/`. Longer runs:
//! `docs/fuzzing.md`. proptest rather than `cargo fuzz`: stable toolchain.

use nestkube_fuzz_support as fuzz;
use nestkube_protobuf::{ProtobufError, decode};
use proptest::prelude::*;
use serde_json::Value;

const DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The property: an object of the envelope's kind that reads back, or an error.
fn check(body: &[u8]) {
    match decode(body) {
        Ok(d) => {
            assert!(d.object.is_object(), "not an object");
            assert_eq!(d.object["kind"], Value::String(d.kind.clone()));
            assert_eq!(d.object["apiVersion"], Value::String(d.api_version.clone()));
            let bytes = serde_json::to_vec(&d.object).expect("serializable");
            let back: Result<Value, _> = serde_json::from_slice(&bytes);
            assert!(
                back.is_ok(),
                "decoded {} nests {} deep: unreadable once stored ({:?})",
                d.kind,
                fuzz::depth(&d.object),
                back.err()
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    fuzz::corpus(DIR, "protobuf")
        .into_iter()
        .map(|s| s.bytes)
        .collect()
}

#[test]
fn corpus_decodes() {
    for seed in fuzz::corpus(DIR, "protobuf") {
        let d = decode(&seed.bytes).unwrap_or_else(|e| panic!("{}: {e}", seed.name));
        assert!(!d.kind.is_empty(), "{}", seed.name);
        check(&seed.bytes);
    }
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A protobuf wire field: number, wire type and payload, generated blindly
/// (the schema decides what it means).
fn field() -> BoxedStrategy<Vec<u8>> {
    let leaf = (
        1u64..40,
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..12),
        0u8..6,
    )
        .prop_map(|(num, n, bytes, wt)| {
            let mut out = Vec::new();
            varint((num << 3) | u64::from(wt), &mut out);
            match wt {
                0 => varint(n, &mut out),
                1 => out.extend(n.to_le_bytes()),
                2 => {
                    varint(bytes.len() as u64, &mut out);
                    out.extend(bytes);
                }
                5 => out.extend((n as u32).to_le_bytes()),
                _ => {}
            }
            out
        });
    leaf.prop_recursive(6, 48, 4, |inner| {
        (1u64..40, prop::collection::vec(inner, 0..4)).prop_map(|(num, fields)| {
            let payload: Vec<u8> = fields.concat();
            let mut out = Vec::new();
            varint((num << 3) | 2, &mut out);
            varint(payload.len() as u64, &mut out);
            out.extend(payload);
            out
        })
    })
    .boxed()
}

/// A real envelope (`k8s\0`, typeMeta of a served kind) around generated fields.
fn enveloped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![
            ("v1", "Pod"),
            ("v1", "ConfigMap"),
            ("v1", "Service"),
            ("apps/v1", "Deployment"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ("meta.k8s.io/v1", "DeleteOptions"),
        ]),
        prop::collection::vec(field(), 0..6),
    )
        .prop_map(|((api_version, kind), fields)| {
            let mut tm = Vec::new();
            for (num, s) in [(1u64, api_version), (2, kind)] {
                varint((num << 3) | 2, &mut tm);
                varint(s.len() as u64, &mut tm);
                tm.extend(s.as_bytes());
            }
            let raw: Vec<u8> = fields.concat();
            let mut body = b"k8s\0".to_vec();
            for (num, payload) in [(1u64, tm), (2, raw)] {
                varint((num << 3) | 2, &mut body);
                varint(payload.len() as u64, &mut body);
                body.extend(payload);
            }
            body
        })
}

proptest! {
    #![proptest_config(fuzz::config(DIR, "protobuf", 4000))]

    /// Real bodies with byte-level edits.
    #[test]
    fn mutated_bodies(body in fuzz::mutated(seeds(), 8)) {
        check(&body);
    }

    /// Generated messages of served kinds.
    #[test]
    fn generated_messages(body in enveloped()) {
        check(&body);
    }

    /// Anything after the magic.
    #[test]
    fn arbitrary_bytes(tail in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut body = b"k8s\0".to_vec();
        body.extend(tail);
        check(&body);
    }
}

/// Found by this target: a CRD whose schema nests 61 to 99 levels decoded
/// (messages nest at most 100) to JSON 128 to 204 levels deep, which the
/// store's reader refuses: stored, it made every read and LIST of the
/// cluster's CRDs fail. Now refused with `JsonTooDeep`; 60 levels still decode.
#[test]
fn deepest_accepted_object_reads_back() {
    fn len_delim(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint((field << 3) | 2, &mut out);
        varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }
    let mut deepest_ok = 0;
    for levels in [10usize, 30, 60, 61, 62, 70, 80, 98, 99, 100] {
        // A CRD schema nesting `levels` times through `properties` (field 29).
        let mut props = Vec::new();
        for _ in 0..levels {
            let mut entry = len_delim(1, b"a");
            entry.extend(len_delim(2, &props));
            props = len_delim(29, &entry);
        }
        let crd = len_delim(2, &len_delim(7, &len_delim(4, &len_delim(1, &props))));
        let mut tm = len_delim(1, b"apiextensions.k8s.io/v1");
        tm.extend(len_delim(2, b"CustomResourceDefinition"));
        let mut body = b"k8s\0".to_vec();
        body.extend(len_delim(1, &tm));
        body.extend(len_delim(2, &crd));
        check(&body);
        match decode(&body) {
            Ok(_) => deepest_ok = levels,
            Err(e) => assert!(
                matches!(e, ProtobufError::TooDeep(_) | ProtobufError::JsonTooDeep(_)),
                "{levels}: {e}"
            ),
        }
    }
    assert_eq!(deepest_ok, 60);
}
