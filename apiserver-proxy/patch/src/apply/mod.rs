//! Server-side apply: field ownership and the merge of applied
//! configurations, as kube-apiserver does with
//! `sigs.k8s.io/structured-merge-diff` (v6).
//!
//! * [`fieldpath`]: paths, sets of paths, the `FieldsV1` encoding;
//! * [`schema`]: the [`TypeResolver`] trait (list types, map types, keys)
//!   and its implementation over the built-in OpenAPI ([`OpenApiTypes`]);
//! * [`typed`]: field sets, merge, removal and comparison of values by type;
//! * [`updater`]: ownership across managers for `Update` and `Apply`
//!   operations, pruning and conflicts.
//!
//! It owns no storage and no HTTP: `metadata.managedFields` entries (names,
//! times, operations) are the registry's; this module works on sets keyed
//! by opaque manager identifiers. It never holds a rule for one Kubernetes
//! type: everything comes from the schema.

pub mod fieldpath;
pub mod schema;
pub mod typed;
pub mod updater;

use serde_json::Value;
use thiserror::Error;

pub use fieldpath::{Path, PathElement, Set};
pub use schema::{Kind, ListKind, OpenApiTypes, TypeResolver, Untyped};
pub use updater::{Applied, ManagedFields, Typing, VersionedSet, apply, update};

/// A field another manager owns and an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's identifier.
    pub manager: String,
    /// The field.
    pub path: Path,
}

/// Why an apply (or ownership computation) failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// Fields other managers own would change (and `force` was not set).
    #[error("{} conflicts", .0.len())]
    Conflicts(Vec<Conflict>),
    /// The value does not fit its type (e.g. a list-map item without its key).
    #[error("{0}")]
    Invalid(String),
}

/// Reads the body of an `application/apply-patch+yaml` request: YAML (of
/// which JSON is a subset). The result must be an object.
pub fn parse_apply_body(body: &[u8]) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return match v {
            Value::Object(_) => Ok(v),
            other => Err(format!(
                "error decoding YAML: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                crate::gofmt::json_kind(&other)
            )),
        };
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("error decoding YAML: {e}"))?;
    let v: Value = serde_yaml::from_str(text).map_err(|e| format!("error decoding YAML: {e}"))?;
    match v {
        Value::Object(_) => Ok(v),
        other => Err(format!(
            "error decoding YAML: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            crate::gofmt::json_kind(&other)
        )),
    }
}

#[cfg(test)]
mod tests;
