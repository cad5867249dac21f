//! Patch errors and their mapping onto upstream HTTP statuses.
//!
//! Owns [`PatchError`] and [`StrategicError`], and the table that turns them
//! into the `metav1.Status` fields kube-apiserver would send (code, reason,
//! message, causes). It must never build HTTP responses itself: the server
//! crate renders the `Status`; this module only says what goes in it.
//!
//! Mapping (from `k8s.io/apiserver/pkg/endpoints/handlers/patch.go`):
//!
//! | situation | upstream | here |
//! | --- | --- | --- |
//! | body not decodable (any patch type) | `NewBadRequest(err)` | 400 `BadRequest` |
//! | merge patch body `null`/scalar/garbage | `ErrBadJSONPatch` → 400 | 400 `BadRequest`, "Invalid JSON Patch" |
//! | JSON patch with > 10000 operations | `NewRequestEntityTooLargeError` | 413 `RequestEntityTooLarge` |
//! | JSON patch operation fails (test, missing path, bad kind) | `NewGenericServerResponse(422, ..)` | 422 `Invalid`, message "the server rejected our request due to an error in our request", cause = jsonpatch message |
//! | strategic: `ErrBadJSONDoc`, bad `$deleteFromPrimitiveList`/`$retainKeys`/`$setElementOrder` format, unsupported format | `interpretStrategicMergePatchError` → 400 | 400 `BadRequest` |
//! | strategic: lists of lists, content not matching `$retainKeys` | → 422 generic | 422 `Invalid` (generic message + cause) |
//! | strategic: anything else (missing merge key, unknown `$patch`, type mismatch) | plain Go error → 500 | 500, reason `""` (StatusReasonUnknown), message = error text |
//! | patched result is not an object | `errors.NewInvalid(GroupKind{}, "", patch: Invalid value)` | 422 `Invalid` |
//! | patched result nests past the JSON reader's depth (`crate::depth`) | decode error of the result → 422 | 422 `Invalid` |
//! | unsupported content type / server-side apply | `NewUnsupportedMediaTypeError` | 415 `UnsupportedMediaType` |

use thiserror::Error;

/// Message kube-apiserver puts in a generic 422 `Status` (`NewGenericServerResponse`).
pub const GENERIC_UNPROCESSABLE_MESSAGE: &str =
    "the server rejected our request due to an error in our request";

/// The media types kube-apiserver lists in its 415 error for PATCH.
pub const SUPPORTED_PATCH_MEDIA_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

/// Upstream's maximum number of operations in one JSON patch (`maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Any failure to apply a patch. Use [`PatchError::status_code`],
/// [`PatchError::reason`], [`PatchError::status_message`] and
/// [`PatchError::causes`] to fill a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatchError {
    /// The patch body could not be decoded (400 `BadRequest`).
    #[error("{0}")]
    BadRequest(String),
    /// A JSON patch has more operations than upstream allows (413).
    #[error(
        "Request entity too large: The allowed maximum operations in a JSON patch is {max}, got {got}",
        max = MAX_JSON_PATCH_OPERATIONS
    )]
    TooManyOperations {
        /// Number of operations in the rejected patch.
        got: usize,
    },
    /// A JSON patch operation could not be applied (422, generic response;
    /// the message is the jsonpatch error, sent as the single cause).
    #[error("{0}")]
    JsonPatchFailed(String),
    /// Strategic merge patch failed; see [`StrategicError`] for the split
    /// between 400, 422 and 500.
    #[error(transparent)]
    Strategic(#[from] StrategicError),
    /// The patched document is not a JSON object (422 `Invalid`, as upstream's
    /// decode of the result into the typed object fails).
    #[error("\"\" is invalid: patch: Invalid value: {value:?}: {detail}")]
    InvalidResult {
        /// The patched document, serialized.
        value: String,
        /// Why it cannot be an object of the resource.
        detail: String,
    },
    /// The content type is not a patch type we serve (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The patched document nests deeper than `max` levels (422 `Invalid`,
    /// as upstream's decode of a result past its JSON depth limit).
    #[error("\"\" is invalid: patch: Invalid value: \"...\": exceeded max depth {max}")]
    TooDeep {
        /// [`crate::MAX_DOCUMENT_DEPTH`].
        max: usize,
    },
}

/// Strategic merge patch errors, named after upstream's
/// `k8s.io/apimachinery/pkg/util/mergepatch` sentinels.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StrategicError {
    /// `mergepatch.ErrBadJSONDoc` (400).
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// `mergepatch.ErrNoListOfLists` (422).
    #[error("lists of lists are not supported")]
    NoListOfLists,
    /// `mergepatch.ErrBadPatchFormatForPrimitiveList` (400).
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// `mergepatch.ErrBadPatchFormatForRetainKeys` (400).
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// `mergepatch.ErrBadPatchFormatForSetElementOrderList` (400).
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// `mergepatch.ErrPatchContentNotMatchRetainKeys` (422).
    #[error("patch content doesn't match retainKeys list")]
    PatchContentNotMatchRetainKeys,
    /// `mergepatch.ErrUnsupportedStrategicMergePatchFormat` (400).
    #[error("strategic merge patch format is not supported")]
    UnsupportedFormat,
    /// The patch nests deeper than this implementation recurses (400; upstream's
    /// JSON decoder refuses such bodies before patching).
    #[error("patch is nested too deeply")]
    TooDeep,
    /// Any other error: upstream returns these as plain Go errors, which the
    /// API server answers with 500 and an empty reason. The text mirrors
    /// upstream's (e.g. `map: map[image:nginx] does not contain declared merge key: name`).
    #[error("{0}")]
    Other(String),
}

impl StrategicError {
    /// HTTP status upstream answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            StrategicError::BadJsonDoc
            | StrategicError::BadPatchFormatForPrimitiveList
            | StrategicError::BadPatchFormatForRetainKeys
            | StrategicError::BadPatchFormatForSetElementOrderList
            | StrategicError::UnsupportedFormat
            | StrategicError::TooDeep => 400,
            StrategicError::NoListOfLists | StrategicError::PatchContentNotMatchRetainKeys => 422,
            StrategicError::Other(_) => 500,
        }
    }
}

impl PatchError {
    /// HTTP status code of the `metav1.Status` upstream would return.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::JsonPatchFailed(_) => 422,
            PatchError::Strategic(e) => e.status_code(),
            PatchError::InvalidResult { .. } | PatchError::TooDeep { .. } => 422,
            PatchError::UnsupportedMediaType(_) => 415,
        }
    }

    /// `metav1.Status.reason`. Empty for errors upstream does not convert to a
    /// status (`StatusReasonUnknown`), which are answered with 500.
    pub fn reason(&self) -> &'static str {
        match self.status_code() {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            _ => "",
        }
    }

    /// `metav1.Status.message`. For the generic 422 responses this is
    /// upstream's fixed sentence; the specific text is in [`PatchError::causes`].
    pub fn status_message(&self) -> String {
        match self {
            PatchError::JsonPatchFailed(_) => GENERIC_UNPROCESSABLE_MESSAGE.to_string(),
            PatchError::Strategic(e) if e.status_code() == 422 => {
                GENERIC_UNPROCESSABLE_MESSAGE.to_string()
            }
            other => other.to_string(),
        }
    }

    /// `metav1.Status.details.causes[].message`: upstream puts the underlying
    /// error text there for generic 422 responses, and nothing otherwise.
    pub fn causes(&self) -> Vec<String> {
        match self {
            PatchError::JsonPatchFailed(m) => vec![m.clone()],
            PatchError::Strategic(e) if e.status_code() == 422 => vec![e.to_string()],
            _ => Vec::new(),
        }
    }
}
