//! Kubernetes patch formats for the nestkube API server.
//!
//! This crate owns the three patch types kube-apiserver accepts for built-in
//! resources, applied to `serde_json::Value` objects with upstream's exact
//! semantics and error statuses:
//!
//! * `application/json-patch+json` (RFC 6902) in [`rfc6902`],
//! * `application/merge-patch+json` (RFC 7386) in [`rfc7386`],
//! * `application/strategic-merge-patch+json` in [`strategic`], driven by the
//!   patch metadata of the OpenAPI v2 document ([`schema`]).
//!
//! Every patch type is held to the same bounds ([`limits`]): a patch can
//! neither produce an object larger than a request body may be or nested
//! deeper than the decoder reads, nor (JSON patch `copy`) grow a document by
//! more than upstream allows while being applied.
//!
//! Server-side apply (`application/apply-patch+yaml`) is not a patch of one
//! object but a merge with field ownership across managers: it lives in
//! [`apply`] (field sets, merge by schema, conflicts), and the registry
//! drives it with the object's `managedFields`; [`apply_patch`] refuses it.
//!
//! It never reads storage, never knows about HTTP beyond the status mapping of
//! [`PatchError`], and never panics on request input.
//!
//! ```
//! use nestkube_patch::{apply_patch, PatchType};
//! use serde_json::json;
//!
//! let cm = json!({"metadata": {"name": "a", "labels": {"x": "1"}}});
//! let kind = PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap();
//! let out = apply_patch(&cm, br#"{"metadata":{"labels":{"x":null,"y":"2"}}}"#, kind, None).unwrap();
//! assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
//! ```

pub mod apply;
pub mod error;
mod gofmt;
pub mod limits;
pub mod rfc6902;
pub mod rfc7386;
pub mod schema;
pub mod strategic;

use serde_json::Value;

pub use error::{PatchError, StrategicError};
/// The deepest nesting a stored object may have (what the JSON reader reads).
pub use limits::{MAX_DEPTH as MAX_DOCUMENT_DEPTH, depth_within};
pub use schema::{FieldMeta, PatchSchema, SchemaError, TypeRef};
pub use strategic::strategic_merge_patch;

/// The patch types of a PATCH request, named by their media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply, see [`apply`]).
    Apply,
}

impl PatchType {
    /// Parses a `Content-Type` header value. Parameters (`; charset=utf-8`) are
    /// ignored, as upstream does. Returns `None` for any other media type; the
    /// caller answers those with [`PatchType::unsupported_media_type`].
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        // Upstream cuts at the first ';' (only when it is not the first byte).
        let media = match content_type.find(';') {
            Some(idx) if idx > 0 => &content_type[..idx],
            _ => content_type,
        };
        match media.trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }

    /// The 415 error upstream returns for a media type it does not accept.
    pub fn unsupported_media_type() -> PatchError {
        PatchError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            error::SUPPORTED_PATCH_MEDIA_TYPES
        ))
    }
}

/// Applies `patch_body` of type `kind` to `original` and returns the patched
/// object. `schema` is the type of `original` (from
/// [`PatchSchema::root`]); it is only used by strategic merge patch, where
/// `None` makes every field behave like JSON merge patch (plus directives).
///
/// `original` is never modified. Errors carry upstream's status mapping.
/// The patched object is checked against [`limits`] whatever the patch type.
pub fn apply_patch(
    original: &Value,
    patch_body: &[u8],
    kind: PatchType,
    schema: Option<TypeRef<'_>>,
) -> Result<Value, PatchError> {
    let patched = match kind {
        PatchType::Json => rfc6902::apply(original, patch_body)?,
        PatchType::Merge => rfc7386::apply(original, patch_body)?,
        PatchType::StrategicMerge => strategic::apply(original, patch_body, schema)?,
        PatchType::Apply => {
            return Err(PatchError::UnsupportedMediaType(
                "server-side apply (application/apply-patch+yaml) is not served for this endpoint"
                    .to_string(),
            ));
        }
    };
    limits::check_patched(&patched)?;
    if !patched.is_object() {
        return Err(PatchError::InvalidResult {
            value: serde_json::to_string(&patched).unwrap_or_default(),
            detail: format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                gofmt::json_kind(&patched)
            ),
        });
    }
    Ok(patched)
}
