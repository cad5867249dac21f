//! The Kubernetes protobuf envelope: the 4-byte magic `k8s\0` followed by a
//! `runtime.Unknown` message (typeMeta{apiVersion=1, kind=2}=1, raw=2,
//! contentEncoding=3, contentType=4).
//!
//! Owns only the envelope; never interprets `raw`.

use crate::error::ProtobufError;
use crate::wire::{Reader, WireValue};

/// The magic prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The decoded `runtime.Unknown` envelope, borrowing `raw` from the body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope<'a> {
    /// `typeMeta.apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `typeMeta.kind`, e.g. `Deployment`.
    pub kind: String,
    /// The object's own protobuf encoding.
    pub raw: &'a [u8],
    /// `contentEncoding` (empty for client-go).
    pub content_encoding: String,
    /// `contentType` (empty for client-go).
    pub content_type: String,
}

fn env_err(e: crate::wire::WireError) -> ProtobufError {
    ProtobufError::Envelope(e.0)
}

fn string_field(v: WireValue<'_>, name: &str) -> Result<String, ProtobufError> {
    match v {
        WireValue::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(ProtobufError::Envelope(format!(
            "wrong wire type {} for {name}",
            other.wire_type()
        ))),
    }
}

/// Parses the magic and the envelope. Later occurrences of a field win, as in Go.
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let mut env = Envelope::default();
    let mut r = Reader::new(rest);
    while let Some((num, v)) = r.next_field().map_err(env_err)? {
        match num {
            1 => {
                let WireValue::Bytes(tm) = v else {
                    return Err(ProtobufError::Envelope(
                        "wrong wire type for typeMeta".into(),
                    ));
                };
                let mut tr = Reader::new(tm);
                while let Some((n, tv)) = tr.next_field().map_err(env_err)? {
                    match n {
                        1 => env.api_version = string_field(tv, "typeMeta.apiVersion")?,
                        2 => env.kind = string_field(tv, "typeMeta.kind")?,
                        _ => {}
                    }
                }
            }
            2 => match v {
                WireValue::Bytes(b) => env.raw = b,
                _ => return Err(ProtobufError::Envelope("wrong wire type for raw".into())),
            },
            3 => env.content_encoding = string_field(v, "contentEncoding")?,
            4 => env.content_type = string_field(v, "contentType")?,
            _ => {}
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_envelope() {
        let mut body = MAGIC.to_vec();
        body.extend([0x0a, 0x0e, 0x0a, 0x02, b'v', b'1', 0x12, 0x08]);
        body.extend(b"Namespac");
        body.extend([0x12, 0x00]);
        let env = parse(&body).unwrap();
        assert_eq!(env.api_version, "v1");
        assert_eq!(env.kind, "Namespac");
        assert!(env.raw.is_empty());
        assert_eq!(parse(b"k8s"), Err(ProtobufError::BadMagic));
        assert_eq!(parse(b"{\"kind\":1}"), Err(ProtobufError::BadMagic));
    }
}
