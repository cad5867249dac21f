//! The Pod Security *baseline* checks as field-level offences: every field
//! of a pod that upstream's baseline level forbids, with its path and value
//! ([`offences`]), and upstream's wording of each failed check
//! ([`violations`]).
//!
//! Shared by [`super::podsecurity`] (which enforces a cluster's level and
//! words refusals as upstream) and [`super::hostescape`] (which refuses
//! these fields in every virtual cluster, whatever its level, naming each
//! field and letting through what the VirtualCluster allows), so the two can
//! never disagree on what baseline forbids. A check upstream adds belongs
//! here, once. This module only reads pods.

use std::collections::BTreeSet;

use serde_json::Value;

use super::podsecurity::{Violation, containers_phrase, join_quote, pluralize};

/// The baseline checks, in upstream's order (its source files' order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// AppArmor profile other than RuntimeDefault or Localhost.
    AppArmor,
    /// Capabilities added beyond [`BASELINE_CAPABILITIES`].
    Capabilities,
    /// hostNetwork, hostPID, hostIPC.
    HostNamespaces,
    /// hostPath volumes.
    HostPathVolumes,
    /// Container host ports.
    HostPorts,
    /// Probe and lifecycle handler hosts.
    ProbeHosts,
    /// Privileged containers.
    Privileged,
    /// procMount other than Default.
    ProcMount,
    /// SELinux types other than the container ones, users, roles.
    SeLinuxOptions,
    /// seccomp profile other than RuntimeDefault or Localhost.
    Seccomp,
    /// Sysctls outside [`SAFE_SYSCTLS`].
    Sysctls,
    /// Windows host-process containers.
    HostProcess,
}

/// Who set a forbidden value (for upstream's wording).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setter {
    /// The pod's own securityContext or spec.
    Pod,
    /// The container of this name.
    Container(String),
    /// The volume of this name.
    Volume(String),
    /// The annotation with this key.
    Annotation(String),
}

/// One field of a pod that the baseline level forbids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offence {
    /// The check it fails.
    pub check: Check,
    /// Its path, e.g. `spec.containers[0].securityContext.capabilities.add[1]`.
    pub field: String,
    /// Who set it.
    pub setter: Setter,
    /// The forbidden value, e.g. `SYS_ADMIN`.
    pub value: String,
}

/// Capabilities baseline lets containers add.
pub const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls baseline lets pods set.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];

/// SELinux types baseline allows (besides none).
const SE_LINUX_TYPES: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];

/// Probe and lifecycle handlers of a container, by field.
const HANDLERS: &[&str] = &[
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle.postStart",
    "lifecycle.preStop",
];

/// Init containers, containers, then ephemeral containers (upstream's visit
/// order), each with its path (`spec.containers[0]`).
pub fn containers(spec: &Value) -> impl Iterator<Item = (String, &Value)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| {
            spec[k]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(i, c)| (format!("spec.{k}[{i}]"), c))
        })
}

fn name(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

/// A JSON value at a dotted path (`lifecycle.postStart`).
fn at<'a>(v: &'a Value, dotted: &str) -> &'a Value {
    dotted.split('.').fold(v, |v, k| &v[k])
}

/// The pod securityContext and each container's, with who set them.
fn security_contexts(spec: &Value) -> impl Iterator<Item = (String, Setter, &Value)> {
    std::iter::once((
        "spec.securityContext".to_string(),
        Setter::Pod,
        &spec["securityContext"],
    ))
    .chain(containers(spec).map(|(path, c)| {
        (
            format!("{path}.securityContext"),
            Setter::Container(name(c)),
            &c["securityContext"],
        )
    }))
}

type Scan = fn(&Value, &Value, &mut Vec<Offence>);

fn scan_app_armor(meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, setter, sc) in security_contexts(spec) {
        let p = &sc["appArmorProfile"];
        if p.is_object() && !matches!(p["type"].as_str(), Some("RuntimeDefault" | "Localhost")) {
            out.push(Offence {
                check: Check::AppArmor,
                field: format!("{path}.appArmorProfile.type"),
                setter,
                value: p["type"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    for (k, v) in meta["annotations"].as_object().into_iter().flatten() {
        let v = v.as_str().unwrap_or_default();
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
        {
            out.push(Offence {
                check: Check::AppArmor,
                field: format!("metadata.annotations[{k}]"),
                setter: Setter::Annotation(k.clone()),
                value: v.to_string(),
            });
        }
    }
}

fn scan_capabilities(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, c) in containers(spec) {
        let added = c["securityContext"]["capabilities"]["add"].as_array();
        for (j, cap) in added.into_iter().flatten().enumerate() {
            if let Some(cap) = cap.as_str().filter(|c| !BASELINE_CAPABILITIES.contains(c)) {
                out.push(Offence {
                    check: Check::Capabilities,
                    field: format!("{path}.securityContext.capabilities.add[{j}]"),
                    setter: Setter::Container(name(c)),
                    value: cap.to_string(),
                });
            }
        }
    }
}

fn scan_host_namespaces(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for f in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[f].as_bool() == Some(true) {
            out.push(Offence {
                check: Check::HostNamespaces,
                field: format!("spec.{f}"),
                setter: Setter::Pod,
                value: "true".into(),
            });
        }
    }
}

fn scan_host_path(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        if v.get("hostPath").is_some_and(|h| !h.is_null()) {
            out.push(Offence {
                check: Check::HostPathVolumes,
                field: format!("spec.volumes[{i}].hostPath"),
                setter: Setter::Volume(name(v)),
                value: v["hostPath"]["path"].as_str().unwrap_or_default().into(),
            });
        }
    }
}

fn scan_host_ports(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, c) in containers(spec) {
        for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
            if let Some(h) = p["hostPort"].as_i64().filter(|h| *h != 0) {
                out.push(Offence {
                    check: Check::HostPorts,
                    field: format!("{path}.ports[{j}].hostPort"),
                    setter: Setter::Container(name(c)),
                    value: h.to_string(),
                });
            }
        }
    }
}

fn scan_probe_hosts(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, c) in containers(spec) {
        for handler in HANDLERS {
            for kind in ["httpGet", "tcpSocket"] {
                let host = at(c, handler)[kind]["host"].as_str();
                if let Some(host) = host.filter(|s| !s.is_empty()) {
                    out.push(Offence {
                        check: Check::ProbeHosts,
                        field: format!("{path}.{handler}.{kind}.host"),
                        setter: Setter::Container(name(c)),
                        value: host.to_string(),
                    });
                }
            }
        }
    }
}

fn scan_privileged(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, c) in containers(spec) {
        if c["securityContext"]["privileged"].as_bool() == Some(true) {
            out.push(Offence {
                check: Check::Privileged,
                field: format!("{path}.securityContext.privileged"),
                setter: Setter::Container(name(c)),
                value: "true".into(),
            });
        }
    }
}

fn scan_proc_mount(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, c) in containers(spec) {
        if let Some(t) = c["securityContext"]["procMount"].as_str()
            && t != "Default"
        {
            out.push(Offence {
                check: Check::ProcMount,
                field: format!("{path}.securityContext.procMount"),
                setter: Setter::Container(name(c)),
                value: t.to_string(),
            });
        }
    }
}

fn scan_se_linux(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, setter, sc) in security_contexts(spec) {
        let o = &sc["seLinuxOptions"];
        if !o.is_object() {
            continue;
        }
        let t = o["type"].as_str().unwrap_or_default();
        let mut push = |key: &str, value: &str| {
            out.push(Offence {
                check: Check::SeLinuxOptions,
                field: format!("{path}.seLinuxOptions.{key}"),
                setter: setter.clone(),
                value: value.to_string(),
            })
        };
        if !SE_LINUX_TYPES.contains(&t) {
            push("type", t);
        }
        for key in ["user", "role"] {
            if let Some(v) = o[key].as_str().filter(|s| !s.is_empty()) {
                push(key, v);
            }
        }
    }
}

/// Whether a seccompProfile has a type baseline allows.
pub fn valid_seccomp(p: &Value) -> bool {
    matches!(p["type"].as_str(), Some("RuntimeDefault" | "Localhost"))
}

fn scan_seccomp(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, setter, sc) in security_contexts(spec) {
        let p = &sc["seccompProfile"];
        if p.is_object() && !valid_seccomp(p) {
            out.push(Offence {
                check: Check::Seccomp,
                field: format!("{path}.seccompProfile.type"),
                setter,
                value: p["type"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
}

fn scan_sysctls(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    let sysctls = spec["securityContext"]["sysctls"].as_array();
    for (i, s) in sysctls.into_iter().flatten().enumerate() {
        if let Some(n) = s["name"].as_str().filter(|n| !SAFE_SYSCTLS.contains(n)) {
            out.push(Offence {
                check: Check::Sysctls,
                field: format!("spec.securityContext.sysctls[{i}].name"),
                setter: Setter::Pod,
                value: n.to_string(),
            });
        }
    }
}

fn scan_host_process(_meta: &Value, spec: &Value, out: &mut Vec<Offence>) {
    for (path, setter, sc) in security_contexts(spec) {
        if sc["windowsOptions"]["hostProcess"].as_bool() == Some(true) {
            out.push(Offence {
                check: Check::HostProcess,
                field: format!("{path}.windowsOptions.hostProcess"),
                setter,
                value: "true".into(),
            });
        }
    }
}

/// Every check with its scan, in upstream's order.
const SCANS: &[(Check, Scan)] = &[
    (Check::AppArmor, scan_app_armor),
    (Check::Capabilities, scan_capabilities),
    (Check::HostNamespaces, scan_host_namespaces),
    (Check::HostPathVolumes, scan_host_path),
    (Check::HostPorts, scan_host_ports),
    (Check::ProbeHosts, scan_probe_hosts),
    (Check::Privileged, scan_privileged),
    (Check::ProcMount, scan_proc_mount),
    (Check::SeLinuxOptions, scan_se_linux),
    (Check::Seccomp, scan_seccomp),
    (Check::Sysctls, scan_sysctls),
    (Check::HostProcess, scan_host_process),
];

/// Every field of a pod (`metadata`, `spec`) that baseline forbids, check
/// by check in upstream's order.
pub fn offences(metadata: &Value, spec: &Value) -> Vec<Offence> {
    let mut out = Vec::new();
    for (_, scan) in SCANS {
        scan(metadata, spec, &mut out);
    }
    out
}

/// The names of the containers among `offences`' setters, each once, in order.
fn container_names(offences: &[&Offence]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for o in offences {
        if let Setter::Container(n) = &o.setter
            && !names.contains(n)
        {
            names.push(n.clone());
        }
    }
    names
}

/// `pod` and/or `container(s) "a", "b"`, as upstream names setters.
fn setters(offences: &[&Offence]) -> Vec<String> {
    let mut out = Vec::new();
    if offences.iter().any(|o| o.setter == Setter::Pod) {
        out.push("pod".to_string());
    }
    let names = container_names(offences);
    if !names.is_empty() {
        out.push(containers_phrase(&names));
    }
    out
}

fn values(offences: &[&Offence]) -> Vec<String> {
    let set: BTreeSet<String> = offences.iter().map(|o| o.value.clone()).collect();
    set.into_iter().collect()
}

/// Upstream's wording of one failed check, from its offences (not empty).
fn word(check: Check, offences: &[&Offence]) -> Violation {
    let violation = |reason: &str, detail: String| Violation {
        reason: reason.into(),
        detail,
    };
    match check {
        Check::AppArmor => {
            let (annotated, fields): (Vec<&Offence>, Vec<&Offence>) = offences
                .iter()
                .copied()
                .partition(|o| matches!(o.setter, Setter::Annotation(_)));
            let mut who = setters(&fields);
            let mut vals = values(&fields);
            let mut annotations: Vec<String> = annotated
                .iter()
                .filter_map(|o| match &o.setter {
                    Setter::Annotation(k) => Some(format!("{k}={:?}", o.value)),
                    _ => None,
                })
                .collect();
            if !annotations.is_empty() {
                annotations.sort();
                who.push(pluralize("annotation", "annotations", annotations.len()).to_string());
                vals.extend(annotations);
            }
            violation(
                pluralize(
                    "forbidden AppArmor profile",
                    "forbidden AppArmor profiles",
                    vals.len(),
                ),
                format!(
                    "{} must not set AppArmor profile type to {}",
                    who.join(" and "),
                    join_quote(&vals)
                ),
            )
        }
        Check::Capabilities => violation(
            "non-default capabilities",
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_phrase(&container_names(offences)),
                join_quote(&values(offences))
            ),
        ),
        Check::HostNamespaces => violation(
            "host namespaces",
            offences
                .iter()
                .map(|o| format!("{}=true", o.field.trim_start_matches("spec.")))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Check::HostPathVolumes => {
            let names: Vec<String> = offences
                .iter()
                .filter_map(|o| match &o.setter {
                    Setter::Volume(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            violation(
                "hostPath volumes",
                format!(
                    "{} {}",
                    pluralize("volume", "volumes", names.len()),
                    join_quote(&names)
                ),
            )
        }
        Check::HostPorts => {
            let names = container_names(offences);
            // Upstream sorts the ports as strings.
            let ports = values(offences);
            violation(
                "hostPort",
                format!(
                    "{} {} {} {}",
                    containers_phrase(&names),
                    pluralize("uses", "use", names.len()),
                    pluralize("hostPort", "hostPorts", ports.len()),
                    ports.join(", ")
                ),
            )
        }
        Check::ProbeHosts => {
            // Upstream sorts the containers here.
            let mut names = container_names(offences);
            names.sort();
            let hosts = values(offences);
            violation(
                "probe or lifecycle host",
                format!(
                    "{} {} {} {}",
                    containers_phrase(&names),
                    pluralize("uses", "use", names.len()),
                    pluralize(
                        "probe or lifecycle host",
                        "probe or lifecycle hosts",
                        hosts.len()
                    ),
                    join_quote(&hosts)
                ),
            )
        }
        Check::Privileged => violation(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                containers_phrase(&container_names(offences))
            ),
        ),
        Check::ProcMount => violation(
            "procMount",
            format!(
                "{} must not set securityContext.procMount to {}",
                containers_phrase(&container_names(offences)),
                join_quote(&values(offences))
            ),
        ),
        Check::SeLinuxOptions => {
            let of = |key: &str| -> Vec<&Offence> {
                offences
                    .iter()
                    .copied()
                    .filter(|o| o.field.ends_with(&format!(".{key}")))
                    .collect()
            };
            let mut data = Vec::new();
            let types = values(&of("type"));
            if !types.is_empty() {
                data.push(format!(
                    "{} {}",
                    pluralize("type", "types", types.len()),
                    join_quote(&types)
                ));
            }
            for key in ["user", "role"] {
                if !of(key).is_empty() {
                    data.push(format!("{key} may not be set"));
                }
            }
            violation(
                "seLinuxOptions",
                format!(
                    "{} set forbidden securityContext.seLinuxOptions: {}",
                    setters(offences).join(" and "),
                    data.join("; ")
                ),
            )
        }
        Check::Seccomp => violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters(offences).join(" and "),
                join_quote(&values(offences))
            ),
        ),
        Check::Sysctls => violation(
            "forbidden sysctls",
            offences
                .iter()
                .map(|o| o.value.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Check::HostProcess => violation(
            "hostProcess",
            format!(
                "{} must not set securityContext.windowsOptions.hostProcess=true",
                setters(offences).join(" and ")
            ),
        ),
    }
}

/// Upstream's wording of `check` if a pod fails it.
pub fn violation(check: Check, metadata: &Value, spec: &Value) -> Option<Violation> {
    let (_, scan) = SCANS.iter().find(|(c, _)| *c == check)?;
    let mut found = Vec::new();
    scan(metadata, spec, &mut found);
    (!found.is_empty()).then(|| word(check, &found.iter().collect::<Vec<_>>()))
}

/// The failed baseline checks of a pod in upstream's order and wording,
/// leaving out `skip` (checks the restricted level replaces).
pub fn violations(metadata: &Value, spec: &Value, skip: &[Check]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut found = Vec::new();
    for (check, scan) in SCANS {
        if skip.contains(check) {
            continue;
        }
        found.clear();
        scan(metadata, spec, &mut found);
        if !found.is_empty() {
            out.push(word(*check, &found.iter().collect::<Vec<_>>()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_offence_names_its_field() {
        let meta = json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}});
        let spec = json!({
            "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies"}, {"name": "kernel.msgmax"}],
                                "seLinuxOptions": {"role": "r"}},
            "containers": [{"name": "c", "securityContext": {
                "capabilities": {"add": ["CHOWN", "SYS_ADMIN"]},
                "seccompProfile": {"type": "Unconfined"}},
                "lifecycle": {"preStop": {"tcpSocket": {"host": "169.254.169.254", "port": 80}}}}]});
        let got: Vec<(Check, String, String)> = offences(&meta, &spec)
            .into_iter()
            .map(|o| (o.check, o.field, o.value))
            .collect();
        let s = |x: &str| x.to_string();
        assert_eq!(
            got,
            [
                (
                    Check::AppArmor,
                    s("metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]"),
                    s("unconfined")
                ),
                (
                    Check::Capabilities,
                    s("spec.containers[0].securityContext.capabilities.add[1]"),
                    s("SYS_ADMIN")
                ),
                (
                    Check::ProbeHosts,
                    s("spec.containers[0].lifecycle.preStop.tcpSocket.host"),
                    s("169.254.169.254")
                ),
                (
                    Check::SeLinuxOptions,
                    s("spec.securityContext.seLinuxOptions.role"),
                    s("r")
                ),
                (
                    Check::Seccomp,
                    s("spec.containers[0].securityContext.seccompProfile.type"),
                    s("Unconfined")
                ),
                (
                    Check::Sysctls,
                    s("spec.securityContext.sysctls[1].name"),
                    s("kernel.msgmax")
                ),
            ]
        );
    }
}
