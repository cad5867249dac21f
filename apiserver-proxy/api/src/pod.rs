//! Pure helpers on pods and the selectors that pick them, shared by the
//! eviction subresource, admission and the workload controllers.
//!
//! Nothing here reads or writes storage.

use serde_json::Value;

use crate::meta;
use crate::selector::{LabelSelector, Op, Requirement};

/// A `metav1.LabelSelector` (`matchLabels`, `matchExpressions`) as a
/// [`LabelSelector`]; `None` when it is malformed (an unknown operator).
pub fn selector(sel: &Value) -> Option<LabelSelector> {
    let mut reqs = Vec::new();
    for (k, v) in sel["matchLabels"].as_object().into_iter().flatten() {
        reqs.push(Requirement {
            key: k.clone(),
            op: Op::In(vec![v.as_str()?.to_string()]),
        });
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str()?.to_string();
        let values: Vec<String> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let op = match e["operator"].as_str()? {
            "In" => Op::In(values),
            "NotIn" => Op::NotIn(values),
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            _ => return None,
        };
        reqs.push(Requirement { key, op });
    }
    Some(LabelSelector(reqs))
}

/// The pod's `Ready` condition, if reported.
pub fn ready_condition(pod: &Value) -> Option<&Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some_and(|c| c["status"] == "True")
}

/// Whether a pod counts towards replicas: not being deleted and not
/// finished.
pub fn is_active(pod: &Value) -> bool {
    !meta::is_deleting(pod)
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded") | Some("Failed")
        )
}
