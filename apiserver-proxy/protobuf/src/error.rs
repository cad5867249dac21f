//! The one error type of the crate. Messages are meant for clients: the API
//! server answers 400 BadRequest with them, so they name the Go type and field
//! (in JSON terms) where decoding failed and never echo large input.
//!
//! Never carries input bytes beyond a short, printable excerpt.

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the 4-byte `k8s\0` magic.
    #[error("protobuf body does not start with the Kubernetes magic prefix \"k8s\\x00\"")]
    BadMagic,
    /// The `runtime.Unknown` envelope itself is malformed.
    #[error("invalid protobuf envelope: {0}")]
    Envelope(String),
    /// The envelope names no kind or apiVersion.
    #[error("protobuf envelope has no {0}")]
    MissingTypeMeta(&'static str),
    /// The envelope declares a content encoding (e.g. gzip) that is not supported.
    #[error("unsupported protobuf content encoding {0:?}")]
    ContentEncoding(String),
    /// No protobuf schema is known for the envelope's apiVersion and kind.
    #[error("no protobuf decoding is known for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The embedded object is not valid protobuf for its Go type.
    #[error("invalid protobuf for {type_name} at {path}: {message}")]
    Invalid {
        /// Short Go type name (`v1.PodSpec`).
        type_name: String,
        /// JSON path of the field being decoded (`spec.containers[0]`), `.` for the root.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// Messages nest deeper than [`crate::MAX_DEPTH`].
    #[error("protobuf messages nest deeper than {0} levels")]
    TooDeep(usize),
    /// The decoded object nests deeper than [`crate::MAX_JSON_DEPTH`] JSON
    /// levels (it could not be read back once stored).
    #[error("decoded object nests deeper than {0} JSON levels")]
    JsonTooDeep(usize),
    /// The decoded object would exceed the value budget (see [`crate::decode`]).
    #[error("decoded object exceeds the limit of {0} JSON values")]
    TooLarge(usize),
    /// The body is larger than [`crate::MAX_BODY_BYTES`].
    #[error("protobuf body of {0} bytes exceeds the limit of {1} bytes")]
    BodyTooLarge(usize, usize),
    /// The embedded schema table failed to load (a build defect, not a client error).
    #[error("protobuf schema table is invalid: {0}")]
    Schema(String),
}
