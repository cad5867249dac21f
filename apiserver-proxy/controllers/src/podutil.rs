//! Small pure helpers shared by workload controllers: label selectors from
//! `metav1.LabelSelector` JSON, pod readiness and availability, controller
//! references, and upstream's order for choosing pods to delete.
//!
//! Pure functions only: nothing here reads or writes storage.

use std::cmp::Reverse;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::garbagecollector::{OwnerRef, owner_refs};
use nestkube_api::pod::ready_condition;

pub use nestkube_api::pod::{is_active, is_ready, selector};

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(obj: &Value) -> Option<OwnerRef> {
    owner_refs(obj).into_iter().find(|r| r.controller)
}

/// A new pod from a pod `template` with the owner reference `owner`: the
/// template's labels (always an object), annotations and finalizers, and
/// its spec. The caller names it.
pub fn pod_from_template(template: &Value, owner: Value) -> Value {
    let mut metadata = serde_json::json!({"ownerReferences": [owner], "labels": {}});
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(field).filter(|v| !v.is_null()) {
            metadata[field] = v.clone();
        }
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": template["spec"]})
}

/// When the pod became ready (its `Ready` condition's transition time).
pub fn ready_since(pod: &Value) -> Option<DateTime<Utc>> {
    let c = ready_condition(pod).filter(|c| c["status"] == "True")?;
    DateTime::parse_from_rfc3339(c["lastTransitionTime"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds until a ready pod becomes available (`0` = available now);
/// `None` when it is not ready.
pub fn until_available(pod: &Value, min_ready_seconds: i64, now: DateTime<Utc>) -> Option<i64> {
    if !is_ready(pod) {
        return None;
    }
    if min_ready_seconds <= 0 {
        return Some(0);
    }
    let since = ready_since(pod).unwrap_or(now);
    Some((min_ready_seconds - (now - since).num_seconds()).max(0))
}

/// Sorts pods so the ones to delete first come first (upstream's
/// `ActivePods` order): unscheduled before scheduled, pending before
/// unknown before running, not ready before ready, recently ready before
/// long ready, more restarts before fewer, newer before older.
pub fn sort_for_deletion(pods: &mut [Value]) {
    pods.sort_by_key(|p| {
        let scheduled = p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let phase = match p["status"]["phase"].as_str() {
            Some("Pending") | None => 0,
            Some("Running") => 2,
            _ => 1,
        };
        let restarts: i64 = p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["restartCount"].as_i64())
            .sum();
        (
            scheduled,
            phase,
            is_ready(p),
            Reverse(ready_since(p)),
            Reverse(restarts),
            Reverse(
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(str::to_string),
            ),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::meta;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_from_json() {
        let s = selector(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}))
        .unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));
        assert!(
            selector(&json!({"matchExpressions": [{"key": "x", "operator": "Nope"}]})).is_none()
        );
    }

    #[test]
    fn deletion_prefers_unscheduled_and_not_ready() {
        let ready = json!({"metadata": {"name": "ready", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}]}});
        let running = json!({"metadata": {"name": "running"}, "spec": {"nodeName": "n"},
            "status": {"phase": "Running"}});
        let pending =
            json!({"metadata": {"name": "pending"}, "spec": {}, "status": {"phase": "Pending"}});
        let mut pods = vec![ready, running, pending];
        sort_for_deletion(&mut pods);
        let names: Vec<&str> = pods.iter().map(meta::name).collect();
        assert_eq!(names, ["pending", "running", "ready"]);
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let now = Utc::now();
        let since = (now - chrono::Duration::seconds(3)).to_rfc3339();
        let pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]}});
        assert_eq!(until_available(&pod, 0, now), Some(0));
        assert_eq!(until_available(&pod, 10, now), Some(7));
        assert_eq!(until_available(&json!({}), 0, now), None);
    }
}
