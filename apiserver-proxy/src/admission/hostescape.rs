//! The host-escape guard: a virtual cluster's pods run on its parent's
//! nodes, so whatever would let them reach past the virtual cluster is
//! refused in every non-root cluster, whatever its Pod Security level (also
//! `privileged`): hostPath volumes, host namespaces (network, PID, IPC),
//! privileged containers, host ports, pinning to a node with `spec.nodeName`
//! at create, tolerating the control-plane taints, and the system priority
//! classes. The root cluster is a plain cluster and is not guarded.
//!
//! Refusals are 403 Forbidden naming every offending field. Pod templates
//! are not judged (their pods are). This module must never change an object.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::error::ApiError;
use crate::registry::store::Store;

/// Taints of control-plane nodes a tenant pod may not tolerate.
const CONTROL_PLANE_TAINTS: &[&str] = &[
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// Priority classes reserved for the host's system components.
const SYSTEM_PRIORITY_CLASSES: &[&str] = &["system-cluster-critical", "system-node-critical"];

/// Every field of `spec` that escapes to the host, with why. `create`
/// adds the checks that only apply to a new pod (`nodeName`).
pub fn escapes(spec: &Value, create: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        if v.get("hostPath").is_some_and(|h| !h.is_null()) {
            out.push(format!(
                "spec.volumes[{i}].hostPath: hostPath volumes are not allowed"
            ));
        }
    }
    for ns in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[ns].as_bool() == Some(true) {
            out.push(format!("spec.{ns}: host namespaces are not allowed"));
        }
    }
    for kind in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in spec[kind].as_array().into_iter().flatten().enumerate() {
            if c["securityContext"]["privileged"].as_bool() == Some(true) {
                out.push(format!(
                    "spec.{kind}[{i}].securityContext.privileged: privileged containers are not allowed"
                ));
            }
            for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                if p["hostPort"].as_i64().is_some_and(|h| h != 0) {
                    out.push(format!(
                        "spec.{kind}[{i}].ports[{j}].hostPort: host ports are not allowed"
                    ));
                }
            }
        }
    }
    if create && let Some(node) = spec["nodeName"].as_str().filter(|n| !n.is_empty()) {
        out.push(format!(
            "spec.nodeName: pinning a pod to a node ({node:?}) is not allowed"
        ));
    }
    for (i, t) in spec["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = t["key"].as_str().unwrap_or_default();
        if CONTROL_PLANE_TAINTS.contains(&key) {
            out.push(format!(
                "spec.tolerations[{i}]: tolerating the control-plane taint {key:?} is not allowed"
            ));
        } else if key.is_empty() && t["operator"] == "Exists" {
            out.push(format!(
                "spec.tolerations[{i}]: tolerating every taint (including the control-plane taints) is not allowed"
            ));
        }
    }
    if let Some(pc) = spec["priorityClassName"]
        .as_str()
        .filter(|p| SYSTEM_PRIORITY_CLASSES.contains(p))
    {
        out.push(format!(
            "spec.priorityClassName: the system priority class {pc:?} is not allowed"
        ));
    }
    out
}

/// The host-escape guard plugin.
pub struct HostEscape;

#[async_trait]
impl Plugin for HostEscape {
    fn name(&self) -> &'static str {
        "HostEscape"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        _store: &Store,
    ) -> Result<(), ApiError> {
        let judged = attrs.resource.group.is_empty()
            && attrs.resource.resource == "pods"
            && matches!(attrs.subresource, None | Some("ephemeralcontainers"));
        if !judged || attrs.is_root() || attrs.operation == Operation::Delete {
            return Ok(());
        }
        if attrs.operation == Operation::Update && old.is_some_and(|o| o["spec"] == obj["spec"]) {
            return Ok(());
        }
        let found = escapes(&obj["spec"], attrs.operation == Operation::Create);
        if found.is_empty() {
            return Ok(());
        }
        Err(attrs.forbidden(format!(
            "not allowed in virtual cluster {:?}, whose pods run on shared nodes: {}",
            attrs.path,
            found.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_escape_is_named() {
        let spec = json!({
            "hostNetwork": true, "hostPID": false, "hostIPC": true,
            "nodeName": "n1", "priorityClassName": "system-node-critical",
            "volumes": [{"name": "e", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}],
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                            {"operator": "Exists"}, {"key": "gpu", "operator": "Exists"}],
            "containers": [{"name": "c", "securityContext": {"privileged": true},
                            "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 81}]}]});
        assert_eq!(
            escapes(&spec, true),
            [
                "spec.volumes[1].hostPath: hostPath volumes are not allowed",
                "spec.hostNetwork: host namespaces are not allowed",
                "spec.hostIPC: host namespaces are not allowed",
                "spec.containers[0].securityContext.privileged: privileged containers are not allowed",
                "spec.containers[0].ports[1].hostPort: host ports are not allowed",
                "spec.nodeName: pinning a pod to a node (\"n1\") is not allowed",
                "spec.tolerations[0]: tolerating the control-plane taint \"node-role.kubernetes.io/control-plane\" is not allowed",
                "spec.tolerations[1]: tolerating every taint (including the control-plane taints) is not allowed",
                "spec.priorityClassName: the system priority class \"system-node-critical\" is not allowed",
            ]
        );
        assert_eq!(escapes(&spec, false).len(), 8, "nodeName only at create");
        assert!(escapes(&json!({"containers": [{"name": "c"}]}), true).is_empty());
    }
}
