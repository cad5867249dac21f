//! Small helpers shared by the workload controllers: which object a watch
//! change concerns, tolerated write races, and `metav1.Time` formatting.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::podutil;
use super::watch::{Change, ObjectKey};
use crate::error::ApiError;

/// A work item: cluster, namespace, name.
pub type Item = (String, String, String);

/// The object a controller reconciles for this change: the object itself
/// when it is in `own_segment` (e.g. `batch/jobs`), or its controlling owner
/// of `owner_group`/`owner_kind` when it is in `child_segment` (e.g. a Job's
/// pods in `core/pods`). Owners are always in the child's own cluster and
/// namespace.
pub fn self_or_controller(
    change: &Change<'_>,
    own_segment: &str,
    child_segment: &str,
    owner_group: &str,
    owner_kind: &str,
) -> Option<Item> {
    let k = ObjectKey::parse(change.key()?)?;
    let name = if k.segment == own_segment {
        k.name.to_string()
    } else if k.segment == child_segment {
        let r = podutil::controller_ref(&change.object()?)?;
        if r.kind != owner_kind || r.group() != owner_group {
            return None;
        }
        r.name
    } else {
        return None;
    };
    Some((k.cluster.to_string(), k.namespace.to_string(), name))
}

/// A write that lost a race (the object is gone or changed meanwhile) is
/// not an error: the next event reconciles again.
pub fn tolerate<T>(r: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound(_)) | Err(ApiError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a `metav1.Time` (RFC 3339).
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a `metav1.Time` as upstream (seconds, UTC).
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
