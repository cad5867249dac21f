//! Pod status up: what the parent reports about a copy is written to the
//! virtual pod's `status` subresource.
//!
//! Copied: phase, conditions, message, reason, podIP(s), hostIP(s),
//! startTime, container statuses (init, regular, ephemeral), QoS class and
//! nominated node. A field the parent does not report is cleared. Nothing
//! is written when the virtual status already says the same.
//!
//! This module never writes the parent, nor any virtual field but status.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Map, Value, json};

use crate::SyncError;

/// Status fields taken from the parent.
const FIELDS: &[&str] = &[
    "phase",
    "conditions",
    "message",
    "reason",
    "podIP",
    "podIPs",
    "hostIP",
    "hostIPs",
    "startTime",
    "initContainerStatuses",
    "containerStatuses",
    "ephemeralContainerStatuses",
    "nominatedNodeName",
    "qosClass",
];

/// The status patch that makes `vpod` report what `hpod` reports
/// (`None`: nothing to change).
pub fn patch(vpod: &Value, hpod: &Value) -> Option<Value> {
    let (have, want) = (&vpod["status"], &hpod["status"]);
    let mut out = Map::new();
    for f in FIELDS {
        let w = want.get(*f).cloned().unwrap_or(Value::Null);
        let h = have.get(*f).cloned().unwrap_or(Value::Null);
        if w != h {
            // qosClass is computed from the spec, which the copy shares;
            // keep the virtual one if the parent has none.
            if *f == "qosClass" && w.is_null() {
                continue;
            }
            out.insert((*f).to_string(), w);
        }
    }
    (!out.is_empty()).then(|| json!({ "status": out }))
}

/// Writes the parent's status of `hpod` to virtual pod `vpod`.
pub(crate) async fn up(
    vapi: &Api<DynamicObject>,
    vpod: &Value,
    hpod: &Value,
) -> Result<(), SyncError> {
    let Some(p) = patch(vpod, hpod) else {
        return Ok(());
    };
    let name = vpod["metadata"]["name"].as_str().unwrap_or("");
    match vapi
        .patch_status(name, &PatchParams::default(), &Patch::Merge(p))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_what_differs_and_clears_what_is_gone() {
        let v = json!({"status": {"phase": "Pending", "qosClass": "BestEffort", "message": "old"}});
        let h =
            json!({"status": {"phase": "Running", "podIP": "10.0.0.5", "hostIP": "192.168.0.2"}});
        let p = patch(&v, &h).unwrap();
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["podIP"], "10.0.0.5");
        assert_eq!(p["status"]["message"], Value::Null);
        assert!(p["status"].get("message").is_some());
        assert!(p["status"].get("qosClass").is_none());
        let same = json!({"status": {"phase": "Running", "podIP": "10.0.0.5", "hostIP": "192.168.0.2", "qosClass": "BestEffort"}});
        assert!(patch(&same, &h).is_none());
    }
}
