//! The host-escape guard: a virtual cluster's pods run on its parent's
//! nodes, so whatever would let them reach past the virtual cluster is
//! refused in every non-root cluster, whatever its Pod Security level (also
//! `privileged`): everything upstream's Pod Security *baseline* forbids
//! (hostPath volumes, host namespaces, privileged containers, host ports,
//! added capabilities, seccomp and AppArmor `Unconfined`, SELinux types,
//! users and roles, `procMount: Unmasked`, unsafe sysctls, Windows host
//! processes, probe and lifecycle hosts; the checks are
//! [`super::baseline`]'s, shared with Pod Security), the legacy seccomp
//! annotations, pinning to a node with `spec.nodeName` at create,
//! tolerating the control-plane taints, every taint, or a protected taint
//! ([`PROTECTED_TAINTS`]), and the system priority classes.
//!
//! Some of these a cluster's VirtualCluster may allow
//! (`spec.isolation.allowedHostEscapes`, see [`Allowance`]); what a pod may
//! use is what its cluster's VirtualCluster and every ancestor's allow
//! ([`Allowance::of`]), so a nested cluster never gets more than its
//! parent. hostPath volumes, host namespaces, privileged containers, host
//! ports, `nodeName`, the control-plane taints, tolerating every taint and
//! the system priority classes are never allowed. The root cluster is a
//! plain cluster and is not guarded.
//!
//! Refusals are 403 Forbidden naming every offending field. Pod templates
//! are not judged (their pods are). This module must never change an object.

use async_trait::async_trait;
use nestkube_tenant_crds::HostEscapesSpec;
use serde_json::Value;

use super::baseline::{self, Check, Offence};
use super::podsecurity::significant_update;
use super::{Attributes, Operation, Plugin};
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;

/// Taints of control-plane nodes a tenant pod may not tolerate.
const CONTROL_PLANE_TAINTS: &[&str] = &[
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// Taints keeping nodes for the parent's own workloads: tolerated only
/// where the VirtualCluster allows it (`allowedHostEscapes.tolerations`).
pub const PROTECTED_TAINTS: &[&str] = &["CriticalAddonsOnly"];

/// Priority classes reserved for the host's system components.
const SYSTEM_PRIORITY_CLASSES: &[&str] = &["system-cluster-critical", "system-node-critical"];

/// The legacy seccomp annotations (a kubelet or API server that still reads
/// them turns them into the profile).
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// What a cluster's pods may use beyond baseline: the intersection of the
/// `allowedHostEscapes` of its VirtualCluster and of every ancestor's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowance(HostEscapesSpec);

/// A capability name as the runtime reads it: upper case, without `CAP_`.
fn capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .map(str::to_string)
        .unwrap_or(upper)
}

impl Allowance {
    /// Nothing beyond baseline (a cluster without a VirtualCluster).
    pub fn none() -> Self {
        Self::default()
    }

    /// What one VirtualCluster spec allows by itself.
    pub fn from_spec(spec: &HostEscapesSpec) -> Self {
        Self(spec.clone())
    }

    /// What the pods of a cluster may use: its own VirtualCluster's
    /// allowance narrowed by each of `ancestors`'. A cluster without its own
    /// VirtualCluster (`own` is `None`) is allowed nothing.
    pub fn of<'a>(
        own: Option<&'a HostEscapesSpec>,
        ancestors: impl IntoIterator<Item = &'a HostEscapesSpec>,
    ) -> Self {
        let Some(own) = own else {
            return Self::none();
        };
        ancestors
            .into_iter()
            .fold(Self::from_spec(own), |acc, a| acc.narrowed_by(a))
    }

    /// What both this and `other` allow.
    fn narrowed_by(self, other: &HostEscapesSpec) -> Self {
        let a = self.0;
        let caps: Vec<String> = other.capabilities.iter().map(|c| capability(c)).collect();
        Self(HostEscapesSpec {
            capabilities: a
                .capabilities
                .into_iter()
                .filter(|c| caps.contains(&capability(c)))
                .collect(),
            seccomp_unconfined: a.seccomp_unconfined && other.seccomp_unconfined,
            app_armor_unconfined: a.app_armor_unconfined && other.app_armor_unconfined,
            se_linux_options: a.se_linux_options && other.se_linux_options,
            unmasked_proc_mount: a.unmasked_proc_mount && other.unmasked_proc_mount,
            sysctls: a
                .sysctls
                .into_iter()
                .filter(|s| other.sysctls.contains(s))
                .collect(),
            windows_host_process: a.windows_host_process && other.windows_host_process,
            probe_hosts: a.probe_hosts && other.probe_hosts,
            tolerations: a
                .tolerations
                .into_iter()
                .filter(|t| other.tolerations.contains(t))
                .collect(),
        })
    }

    /// Every entry of `child` this does not allow, as (field under
    /// `spec.isolation.allowedHostEscapes`, value): what a nested
    /// VirtualCluster may not ask for.
    pub fn exceeded_by(&self, child: &HostEscapesSpec) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, c) in child.capabilities.iter().enumerate() {
            if !self.allows_capability(c) {
                out.push((format!("capabilities[{i}]"), format!("{c:?}")));
            }
        }
        let a = &self.0;
        for (field, wanted, has) in [
            (
                "seccompUnconfined",
                child.seccomp_unconfined,
                a.seccomp_unconfined,
            ),
            (
                "appArmorUnconfined",
                child.app_armor_unconfined,
                a.app_armor_unconfined,
            ),
            ("seLinuxOptions", child.se_linux_options, a.se_linux_options),
            (
                "unmaskedProcMount",
                child.unmasked_proc_mount,
                a.unmasked_proc_mount,
            ),
            (
                "windowsHostProcess",
                child.windows_host_process,
                a.windows_host_process,
            ),
            ("probeHosts", child.probe_hosts, a.probe_hosts),
        ] {
            if wanted && !has {
                out.push((field.to_string(), "true".to_string()));
            }
        }
        for (name, theirs, ours) in [
            ("sysctls", &child.sysctls, &a.sysctls),
            ("tolerations", &child.tolerations, &a.tolerations),
        ] {
            for (i, v) in theirs.iter().enumerate() {
                if !ours.contains(v) {
                    out.push((format!("{name}[{i}]"), format!("{v:?}")));
                }
            }
        }
        out
    }

    /// Whether the capability `name` may be added.
    fn allows_capability(&self, name: &str) -> bool {
        let name = capability(name);
        self.0.capabilities.iter().any(|c| capability(c) == name)
    }

    /// Whether a baseline offence is allowed.
    fn allows(&self, o: &Offence) -> bool {
        let a = &self.0;
        match o.check {
            Check::AppArmor => a.app_armor_unconfined,
            Check::Capabilities => self.allows_capability(&o.value),
            Check::ProbeHosts => a.probe_hosts,
            Check::ProcMount => a.unmasked_proc_mount && o.value == "Unmasked",
            Check::SeLinuxOptions => a.se_linux_options,
            Check::Seccomp => a.seccomp_unconfined && o.value == "Unconfined",
            Check::Sysctls => a.sysctls.contains(&o.value),
            Check::HostProcess => a.windows_host_process,
            Check::HostNamespaces
            | Check::HostPathVolumes
            | Check::HostPorts
            | Check::Privileged => false,
        }
    }
}

/// Why a baseline offence is refused, after its field.
fn why(o: &Offence) -> String {
    let v = &o.value;
    match o.check {
        Check::HostPathVolumes => "hostPath volumes are not allowed".into(),
        Check::HostNamespaces => "host namespaces are not allowed".into(),
        Check::Privileged => "privileged containers are not allowed".into(),
        Check::HostPorts => "host ports are not allowed".into(),
        Check::AppArmor => format!("the AppArmor profile {v:?} is not allowed"),
        Check::Capabilities => format!("adding the capability {v:?} is not allowed"),
        Check::ProbeHosts => format!("a probe or lifecycle handler host ({v:?}) is not allowed"),
        Check::ProcMount => format!("procMount {v:?} is not allowed"),
        Check::SeLinuxOptions => {
            let key = o.field.rsplit('.').next().unwrap_or_default();
            format!("the SELinux {key} {v:?} is not allowed")
        }
        Check::Seccomp => format!("the seccomp profile {v:?} is not allowed"),
        Check::Sysctls => format!("the sysctl {v:?} is not allowed"),
        Check::HostProcess => "Windows host-process containers are not allowed".into(),
    }
}

/// Whether a legacy seccomp annotation value is confined.
fn confined_seccomp_annotation(v: &str) -> bool {
    matches!(v, "" | "runtime/default" | "docker/default") || v.starts_with("localhost/")
}

/// Every field of a pod (`metadata`, `spec`) that escapes to the host
/// beyond `allowed`, with why. `create` adds the checks that only apply to
/// a new pod (`nodeName`).
pub fn escapes(metadata: &Value, spec: &Value, create: bool, allowed: &Allowance) -> Vec<String> {
    let mut out: Vec<String> = baseline::offences(metadata, spec)
        .iter()
        .filter(|o| !allowed.allows(o))
        .map(|o| format!("{}: {}", o.field, why(o)))
        .collect();
    if !allowed.0.seccomp_unconfined {
        for (k, v) in metadata["annotations"].as_object().into_iter().flatten() {
            let v = v.as_str().unwrap_or_default();
            let seccomp =
                k == SECCOMP_POD_ANNOTATION || k.starts_with(SECCOMP_CONTAINER_ANNOTATION_PREFIX);
            if seccomp && !confined_seccomp_annotation(v) {
                out.push(format!(
                    "metadata.annotations[{k}]: the seccomp profile {v:?} is not allowed"
                ));
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
        } else if PROTECTED_TAINTS.contains(&key) && !allowed.0.tolerations.iter().any(|k| k == key)
        {
            out.push(format!(
                "spec.tolerations[{i}]: tolerating the protected taint {key:?} is not allowed"
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
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let judged = attrs.resource.group.is_empty()
            && attrs.resource.resource == "pods"
            && matches!(attrs.subresource, None | Some("ephemeralcontainers"));
        if !judged || attrs.is_root() || attrs.operation == Operation::Delete {
            return Ok(());
        }
        // Annotations count too (AppArmor, seccomp), as for Pod Security.
        if attrs.operation == Operation::Update && old.is_some_and(|o| !significant_update(obj, o))
        {
            return Ok(());
        }
        let own = attrs.placement();
        let allowed = Allowance::of(
            own.as_ref().map(|p| &p.spec.isolation.allowed_host_escapes),
            attrs
                .ancestors
                .iter()
                .map(|a| &a.spec.isolation.allowed_host_escapes),
        );
        let found = escapes(
            &obj["metadata"],
            &obj["spec"],
            attrs.operation == Operation::Create,
            &allowed,
        );
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

    fn none(spec: &Value) -> Vec<String> {
        escapes(&json!({}), spec, true, &Allowance::none())
    }

    #[test]
    fn every_escape_is_named() {
        let spec = json!({
            "hostNetwork": true, "hostPID": false, "hostIPC": true,
            "nodeName": "n1", "priorityClassName": "system-node-critical",
            "volumes": [{"name": "e", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}],
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                            {"operator": "Exists"}, {"key": "gpu", "operator": "Exists"},
                            {"key": "CriticalAddonsOnly", "operator": "Exists"}],
            "containers": [{"name": "c", "securityContext": {"privileged": true},
                            "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 81}]}]});
        assert_eq!(
            none(&spec),
            [
                "spec.hostNetwork: host namespaces are not allowed",
                "spec.hostIPC: host namespaces are not allowed",
                "spec.volumes[1].hostPath: hostPath volumes are not allowed",
                "spec.containers[0].ports[1].hostPort: host ports are not allowed",
                "spec.containers[0].securityContext.privileged: privileged containers are not allowed",
                "spec.nodeName: pinning a pod to a node (\"n1\") is not allowed",
                "spec.tolerations[0]: tolerating the control-plane taint \"node-role.kubernetes.io/control-plane\" is not allowed",
                "spec.tolerations[1]: tolerating every taint (including the control-plane taints) is not allowed",
                "spec.tolerations[3]: tolerating the protected taint \"CriticalAddonsOnly\" is not allowed",
                "spec.priorityClassName: the system priority class \"system-node-critical\" is not allowed",
            ]
        );
        assert_eq!(
            escapes(&json!({}), &spec, false, &Allowance::none()).len(),
            9,
            "nodeName only at create"
        );
        assert!(none(&json!({"containers": [{"name": "c"}]})).is_empty());
    }

    /// A pod with every kernel-level escape baseline forbids.
    fn kernel() -> (Value, Value) {
        let meta = json!({"annotations": {
            "container.apparmor.security.beta.kubernetes.io/c": "unconfined",
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined"}});
        let spec = json!({
            "securityContext": {"seccompProfile": {"type": "Unconfined"},
                                "sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "containers": [{"name": "c", "securityContext": {
                "capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN", "CAP_BPF"]},
                "appArmorProfile": {"type": "Unconfined"},
                "seLinuxOptions": {"type": "spc_t", "user": "root"},
                "procMount": "Unmasked",
                "windowsOptions": {"hostProcess": true}},
                "livenessProbe": {"httpGet": {"host": "169.254.169.254", "port": 80}}}]});
        (meta, spec)
    }

    #[test]
    fn kernel_escapes_are_named_field_by_field() {
        let (meta, spec) = kernel();
        assert_eq!(
            escapes(&meta, &spec, true, &Allowance::none()),
            [
                "spec.containers[0].securityContext.appArmorProfile.type: the AppArmor profile \"Unconfined\" is not allowed",
                "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]: the AppArmor profile \"unconfined\" is not allowed",
                "spec.containers[0].securityContext.capabilities.add[1]: adding the capability \"SYS_ADMIN\" is not allowed",
                "spec.containers[0].securityContext.capabilities.add[2]: adding the capability \"CAP_BPF\" is not allowed",
                "spec.containers[0].livenessProbe.httpGet.host: a probe or lifecycle handler host (\"169.254.169.254\") is not allowed",
                "spec.containers[0].securityContext.procMount: procMount \"Unmasked\" is not allowed",
                "spec.containers[0].securityContext.seLinuxOptions.type: the SELinux type \"spc_t\" is not allowed",
                "spec.containers[0].securityContext.seLinuxOptions.user: the SELinux user \"root\" is not allowed",
                "spec.securityContext.seccompProfile.type: the seccomp profile \"Unconfined\" is not allowed",
                "spec.securityContext.sysctls[0].name: the sysctl \"kernel.msgmax\" is not allowed",
                "spec.containers[0].securityContext.windowsOptions.hostProcess: Windows host-process containers are not allowed",
                "metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]: the seccomp profile \"unconfined\" is not allowed",
            ]
        );
    }

    #[test]
    fn allowances_let_through_exactly_what_they_name() {
        let (meta, spec) = kernel();
        let all = HostEscapesSpec {
            capabilities: vec!["sys_admin".into(), "BPF".into()],
            seccomp_unconfined: true,
            app_armor_unconfined: true,
            se_linux_options: true,
            unmasked_proc_mount: true,
            sysctls: vec!["kernel.msgmax".into()],
            windows_host_process: true,
            probe_hosts: true,
            tolerations: vec!["CriticalAddonsOnly".into()],
        };
        assert!(escapes(&meta, &spec, true, &Allowance::from_spec(&all)).is_empty());
        // A parent allowing less narrows the child: only what both allow.
        let parent = HostEscapesSpec {
            capabilities: vec!["CAP_BPF".into()],
            probe_hosts: true,
            ..Default::default()
        };
        let got = escapes(&meta, &spec, true, &Allowance::of(Some(&all), [&parent]));
        assert_eq!(got.len(), 10, "{got:#?}");
        assert!(got.iter().any(|e| e.contains("\"SYS_ADMIN\"")), "{got:#?}");
        assert!(
            !got.iter()
                .any(|e| e.contains("BPF") || e.contains("host ("))
        );
        // No VirtualCluster of its own: nothing allowed whatever the ancestors.
        assert_eq!(Allowance::of(None, [&all]), Allowance::none());
        // Never allowable: the host namespaces and friends.
        let host = json!({"hostPID": true, "tolerations": [{"operator": "Exists"}]});
        assert_eq!(
            escapes(&json!({}), &host, true, &Allowance::from_spec(&all)).len(),
            2
        );
        let critical =
            json!({"tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}]});
        assert!(escapes(&json!({}), &critical, true, &Allowance::from_spec(&all)).is_empty());
    }
}
