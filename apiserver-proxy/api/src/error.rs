//! API errors and their wire form, `metav1.Status`.
//!
//! Every layer returns [`ApiError`]; only the HTTP edge turns it into a `Status`
//! body with upstream's code, reason and details. Messages follow kube-apiserver's
//! wording so that clients (and people) see what they would see upstream.

use serde_json::{Value, json};

/// The kind of a single field error, as in `k8s.io/apimachinery/pkg/util/validation/field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorType {
    /// `FieldValueRequired`
    Required,
    /// `FieldValueInvalid`
    Invalid,
    /// `FieldValueForbidden`
    Forbidden,
    /// `FieldValueNotSupported`
    NotSupported,
    /// `FieldValueDuplicate`
    Duplicate,
    /// `FieldValueTooLong`
    TooLong,
    /// `FieldValueNotFound`
    NotFound,
    /// `FieldValueTooMany`
    TooMany,
    /// `FieldValueTypeInvalid`
    TypeInvalid,
}

impl FieldErrorType {
    fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Forbidden => "FieldValueForbidden",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::NotFound => "FieldValueNotFound",
            Self::TooMany => "FieldValueTooMany",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// One validation failure at a field path (`spec.containers[0].image`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What went wrong.
    pub kind: FieldErrorType,
    /// The field path in upstream notation.
    pub field: String,
    /// The offending value, when upstream prints it.
    pub value: Option<Value>,
    /// Extra explanation.
    pub detail: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorType::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }
    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    /// `Unsupported value: <value>: supported values: ...`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        supported: &[&str],
    ) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            kind: FieldErrorType::NotSupported,
            field: field.into(),
            value: Some(value.into()),
            detail: format!("supported values: {list}"),
        }
    }
    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            kind: FieldErrorType::Duplicate,
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
    }
    /// `Too long: may not be more than N bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            kind: FieldErrorType::TooLong,
            field: field.into(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }
    /// `Too many: <actual>: must have at most N items` (`field.TooMany`).
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let noun = if max == 1 { "item" } else { "items" };
        Self {
            kind: FieldErrorType::TooMany,
            field: field.into(),
            value: Some(actual.into()),
            detail: format!("must have at most {max} {noun}"),
        }
    }
    /// `Invalid value: <value>: <detail>` with reason `FieldValueTypeInvalid`
    /// (`field.TypeInvalid`).
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorType::TypeInvalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// The message without the field, as in a `StatusCause`.
    pub fn cause_message(&self) -> String {
        let value = || match &self.value {
            Some(Value::String(s)) => format!("{s:?}"),
            Some(Value::Null) | None => "null".to_string(),
            Some(v) => v.to_string(),
        };
        let with_detail = |head: String| {
            if self.detail.is_empty() {
                head
            } else {
                format!("{head}: {}", self.detail)
            }
        };
        // A missing value is upstream's `field.OmitValueType{}`: the type alone.
        let typed = |ty: &str| match &self.value {
            None => ty.to_string(),
            Some(_) => format!("{ty}: {}", value()),
        };
        match self.kind {
            FieldErrorType::Required => with_detail("Required value".into()),
            FieldErrorType::Invalid => with_detail(typed("Invalid value")),
            FieldErrorType::Forbidden => with_detail("Forbidden".into()),
            FieldErrorType::NotSupported => with_detail(typed("Unsupported value")),
            FieldErrorType::Duplicate => typed("Duplicate value"),
            FieldErrorType::TooLong => with_detail("Too long".into()),
            FieldErrorType::NotFound => typed("Not found"),
            FieldErrorType::TooMany => with_detail(typed("Too many")),
            FieldErrorType::TypeInvalid => with_detail(typed("Invalid value")),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.cause_message())
        } else {
            write!(f, "{}: {}", self.field, self.cause_message())
        }
    }
}

/// Identifies the object an error is about, for `Status.details`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subject {
    /// API group ("" for core).
    pub group: String,
    /// Resource (plural) for most errors, Kind for `Invalid`.
    pub kind: String,
    /// Object name, if any.
    pub name: String,
}

/// An error the API returns to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 for an object.
    #[error("{}{} \"{}\" not found", .0.kind, group_suffix(&.0.group), .0.name)]
    NotFound(Subject),
    /// 404 for a path that serves nothing.
    #[error("the server could not find the requested resource")]
    PathNotFound,
    /// 409 on create.
    #[error("{}{} \"{}\" already exists", .0.kind, group_suffix(&.0.group), .0.name)]
    AlreadyExists(Subject),
    /// 409 on a stale resourceVersion or precondition.
    #[error("Operation cannot be fulfilled on {}{} \"{}\": {}", .subject.kind, group_suffix(&.subject.group), .subject.name, .message)]
    Conflict {
        /// The object.
        subject: Subject,
        /// Why.
        message: String,
    },
    /// 422 with field causes. `subject.kind` is the Kind, qualified by group.
    #[error("{}{} \"{}\" is invalid: {}", .subject.kind, group_suffix(&.subject.group), .subject.name, aggregate(.errors))]
    Invalid {
        /// The object.
        subject: Subject,
        /// What is wrong.
        errors: Vec<FieldError>,
    },
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 403 about one object, with its details (upstream's `NewForbidden`
    /// for a resource, e.g. an RBAC escalation).
    #[error("{message}")]
    ForbiddenObject {
        /// The object (`kind` is the resource, as upstream's details).
        subject: Subject,
        /// The whole message.
        message: String,
    },
    /// 405.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406.
    #[error("only the following media types are accepted: {0}")]
    NotAcceptable(String),
    /// 415.
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// 413.
    #[error("the request entity is too large (limit is {0} bytes)")]
    RequestEntityTooLarge(usize),
    /// 410 (watch or list from a compacted revision).
    #[error("{0}")]
    Gone(String),
    /// 410 with reason Expired (continue tokens).
    #[error("{0}")]
    Expired(String),
    /// 429.
    #[error("{0}")]
    TooManyRequests(String),
    /// 504 (e.g. a resourceVersion too far in the future).
    #[error("{0}")]
    Timeout(String),
    /// 500.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// 409 of a server-side apply (upstream's `NewApplyConflict`): one cause
    /// of type `FieldManagerConflict` per field another manager owns.
    #[error("{message}")]
    ApplyConflict {
        /// The whole message (`Apply failed with N conflicts: ...`).
        message: String,
        /// `(field, message)` per conflicting field.
        causes: Vec<(String, String)>,
    },
    /// A whole `metav1.Status` made elsewhere (an admission webhook's
    /// denial), answered as it is: its code, reason, details and message.
    #[error("{}", .0["message"].as_str().unwrap_or_default())]
    Status(Box<Value>),
    /// Any other upstream status (e.g. from patch application), with causes.
    #[error("{message}")]
    Other {
        /// HTTP status code.
        code: u16,
        /// Upstream reason ("" = unknown).
        reason: &'static str,
        /// Message.
        message: String,
        /// Cause messages.
        causes: Vec<String>,
    },
}

fn group_suffix(group: &str) -> String {
    if group.is_empty() {
        String::new()
    } else {
        format!(".{group}")
    }
}

fn aggregate(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl ApiError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound(_) | Self::PathNotFound => 404,
            Self::AlreadyExists(_) | Self::Conflict { .. } => 409,
            Self::Invalid { .. } => 422,
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden(_) | Self::ForbiddenObject { .. } => 403,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable(_) => 406,
            Self::UnsupportedMediaType(_) => 415,
            Self::RequestEntityTooLarge(_) => 413,
            Self::Gone(_) | Self::Expired(_) => 410,
            Self::TooManyRequests(_) => 429,
            Self::Timeout(_) => 504,
            Self::Internal(_) => 500,
            Self::Other { code, .. } => *code,
            Self::ApplyConflict { .. } => 409,
            Self::Status(s) => s["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c))
                .unwrap_or(500),
        }
    }

    /// Upstream `StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound(_) | Self::PathNotFound => "NotFound",
            Self::AlreadyExists(_) => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden(_) | Self::ForbiddenObject { .. } => "Forbidden",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            Self::Gone(_) => "Gone",
            Self::Expired(_) => "Expired",
            Self::TooManyRequests(_) => "TooManyRequests",
            Self::Timeout(_) => "Timeout",
            Self::Internal(_) => "InternalError",
            Self::Other { reason, .. } => reason,
            Self::ApplyConflict { .. } => "Conflict",
            // The status carries its own (any string); see `to_status`.
            Self::Status(_) => "",
        }
    }

    /// A shorthand for an `Invalid` error with one cause.
    pub fn invalid(subject: Subject, error: FieldError) -> Self {
        Self::Invalid {
            subject,
            errors: vec![error],
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        if let Self::Status(s) = self {
            let mut s = (**s).clone();
            s["code"] = json!(self.code());
            return s;
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            Self::NotFound(s)
            | Self::AlreadyExists(s)
            | Self::Conflict { subject: s, .. }
            | Self::ForbiddenObject { subject: s, .. } => Some(details(s)),
            Self::Invalid { subject, errors } => {
                let mut d = details(subject);
                d["causes"] = errors
                    .iter()
                    .map(|e| json!({"reason": e.kind.reason(), "message": e.cause_message(), "field": e.field}))
                    .collect();
                Some(d)
            }
            Self::Internal(message) => Some(json!({"causes": [{"message": message}]})),
            Self::ApplyConflict { causes, .. } => Some(
                json!({"causes": causes.iter().map(|(field, message)| json!({
                "reason": "FieldManagerConflict", "message": message, "field": field,
            })).collect::<Vec<_>>()}),
            ),
            Self::Other { causes, .. } if !causes.is_empty() => Some(
                json!({"causes": causes.iter().map(|m| json!({"message": m})).collect::<Vec<_>>()}),
            ),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        if self.reason().is_empty() {
            // `StatusReasonUnknown` is omitted, as upstream's JSON does.
            status.as_object_mut().map(|m| m.remove("reason"));
        }
        if matches!(self, Self::PathNotFound) {
            status["details"] = json!({});
        }
        status
    }
}

fn details(s: &Subject) -> Value {
    let mut d = serde_json::Map::new();
    if !s.name.is_empty() {
        d.insert("name".into(), s.name.clone().into());
    }
    if !s.group.is_empty() {
        d.insert("group".into(), s.group.clone().into());
    }
    d.insert("kind".into(), s.kind.clone().into());
    Value::Object(d)
}

impl From<nestkube_storage::StorageError> for ApiError {
    fn from(e: nestkube_storage::StorageError) -> Self {
        use nestkube_storage::StorageError as S;
        match e {
            S::Compacted {
                requested,
                compacted,
            } => ApiError::Gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_upstream() {
        let e = ApiError::Invalid {
            subject: Subject {
                group: "apps".into(),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            errors: vec![FieldError::required("spec.selector", "")],
        };
        assert_eq!(
            e.to_string(),
            "Deployment.apps \"web\" is invalid: spec.selector: Required value"
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
    }

    #[test]
    fn not_found_message() {
        let e = ApiError::NotFound(Subject {
            group: String::new(),
            kind: "pods".into(),
            name: "x".into(),
        });
        assert_eq!(e.to_string(), "pods \"x\" not found");
        assert_eq!(e.to_status()["details"]["kind"], "pods");
    }
}
