//! Untrusted input: wrong magic, truncation at every byte, bit flips and random
//! garbage must give a `ProtobufError`, never a panic.

use nestkube_protobuf::{ProtobufError, decode};

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/golden/{name}.pb",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A tiny deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn wrong_magic_and_empty() {
    assert_eq!(decode(b""), Err(ProtobufError::BadMagic));
    assert_eq!(
        decode(b"{\"kind\":\"Namespace\"}"),
        Err(ProtobufError::BadMagic)
    );
    let mut body = sample("namespace");
    body[0] = b'K';
    assert_eq!(decode(&body), Err(ProtobufError::BadMagic));
    assert_eq!(
        decode(b"k8s\0"),
        Err(ProtobufError::MissingTypeMeta("kind"))
    );
}

#[test]
fn unknown_kind_is_reported() {
    // typeMeta{apiVersion="v1", kind="Nope"}
    let mut body = b"k8s\0".to_vec();
    body.extend([
        0x0a, 0x0a, 0x0a, 0x02, b'v', b'1', 0x12, 0x04, b'N', b'o', b'p', b'e',
    ]);
    let err = decode(&body).unwrap_err();
    assert!(matches!(err, ProtobufError::UnknownKind { .. }), "{err}");
    assert!(err.to_string().contains("Nope"));
}

#[test]
fn truncation_never_panics() {
    for name in ["deployment", "pod", "crd", "secret"] {
        let body = sample(name);
        for len in 0..body.len() {
            // Truncated bodies mostly fail; a cut at a field boundary may decode.
            let _ = decode(&body[..len]);
        }
        assert!(decode(&body).is_ok());
    }
}

#[test]
fn truncated_envelope_is_an_error() {
    let body = sample("deployment");
    let err = decode(&body[..body.len() - 3]).unwrap_err();
    assert!(matches!(err, ProtobufError::Envelope(_)), "{err}");
}

#[test]
fn bit_flips_and_garbage_never_panic() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for name in ["deployment", "pod", "crd", "configmap", "lease", "service"] {
        let body = sample(name);
        for _ in 0..2000 {
            let mut b = body.clone();
            for _ in 0..(1 + rng.next() % 4) {
                let i = 4 + (rng.next() as usize) % (b.len() - 4);
                b[i] ^= 1 << (rng.next() % 8);
            }
            let _ = decode(&b);
        }
    }
    for _ in 0..5000 {
        let len = (rng.next() % 200) as usize;
        let mut b = b"k8s\0".to_vec();
        b.extend((0..len).map(|_| rng.next() as u8));
        let _ = decode(&b);
    }
}

#[test]
fn deep_nesting_is_rejected() {
    // A CRD whose openAPIV3Schema nests 400 levels through `properties` (field 29):
    // props = {properties: {key: "a", value: props}}, built bottom-up.
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn len_delim(field: usize, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint((field << 3) | 2, &mut out);
        varint(payload.len(), &mut out);
        out.extend_from_slice(payload);
        out
    }
    let mut props = Vec::new();
    for _ in 0..400 {
        let mut entry = len_delim(1, b"a");
        entry.extend(len_delim(2, &props));
        props = len_delim(29, &entry);
    }
    // CustomResourceValidation{openAPIV3Schema=1}, version{schema=4}, spec{versions=7}, CRD{spec=2}
    let validation = len_delim(1, &props);
    let version = len_delim(4, &validation);
    let spec = len_delim(7, &version);
    let crd = len_delim(2, &spec);
    let mut tm = len_delim(1, b"apiextensions.k8s.io/v1");
    tm.extend(len_delim(2, b"CustomResourceDefinition"));
    let mut body = b"k8s\0".to_vec();
    body.extend(len_delim(1, &tm));
    body.extend(len_delim(2, &crd));
    let err = decode(&body).unwrap_err();
    assert!(matches!(err, ProtobufError::TooDeep(_)), "{err}");
}

#[test]
fn zero_struct_amplification_is_bounded() {
    // Many empty `containers` entries in a Pod spec: each 2-byte occurrence expands
    // to a whole zero Container. It must either decode or hit the value budget.
    let mut spec = Vec::new();
    for _ in 0..200_000 {
        spec.extend([(2 << 3) | 2, 0]);
    }
    let mut spec_field = vec![(2 << 3) | 2];
    let mut n = spec.len();
    while n >= 0x80 {
        spec_field.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    spec_field.push(n as u8);
    spec_field.extend(spec);
    let mut body = b"k8s\0".to_vec();
    body.extend([
        0x0a, 0x09, 0x0a, 0x02, b'v', b'1', 0x12, 0x03, b'P', b'o', b'd',
    ]);
    body.push((2 << 3) | 2);
    let mut n = spec_field.len();
    while n >= 0x80 {
        body.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    body.extend(spec_field);
    match decode(&body) {
        Ok(d) => assert!(d.object["spec"]["containers"].as_array().unwrap().len() == 200_000),
        Err(e) => assert!(matches!(e, ProtobufError::TooLarge(_)), "{e}"),
    }
}
