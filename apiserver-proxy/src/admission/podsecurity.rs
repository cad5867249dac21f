//! Pod Security admission, as upstream's `k8s.io/pod-security-admission`
//! (checks of the `latest` policy version), enforcing the Pod Security
//! Standards level of the virtual cluster (`spec.isolation.podSecurity`,
//! default baseline) on pod create and on significant pod updates.
//!
//! A namespace's `pod-security.kubernetes.io/enforce` label may tighten the
//! cluster's level, never loosen it: the stricter of the two is enforced. In
//! the root cluster (no policy) the label alone decides, as in a plain
//! cluster. Refusals are 403 with upstream's message,
//! `pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`,
//! the failed checks in upstream's order.
//!
//! Only pods are refused. As upstream, workload templates (Deployments,
//! Jobs, ...) are only warned about (`Warning: would violate PodSecurity
//! ...`), at the enforced level and at the namespace's
//! `pod-security.kubernetes.io/warn` level, which also warns about pods the
//! enforced level admits. This module must never change an object and never
//! read another cluster's namespaces.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use nestkube_tenant_crds::PodSecurityLevel;
use serde_json::Value;

use super::{Attributes, Operation, Plugin, get_namespace};
use crate::error::{ApiError, FieldError, Subject};
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::store::Store;

/// The namespace label naming the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The namespace label naming the level pods are warned about.
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";

/// The pod template of a workload resource (upstream's pod spec
/// extractor), if `group`/`resource` is one.
pub fn pod_template<'a>(group: &str, resource: &str, obj: &'a Value) -> Option<&'a Value> {
    match (group, resource) {
        ("", "podtemplates") => Some(&obj["template"]),
        ("", "replicationcontrollers")
        | ("apps", "replicasets" | "deployments" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some(&obj["spec"]["template"]),
        ("batch", "cronjobs") => Some(&obj["spec"]["jobTemplate"]["spec"]["template"]),
        _ => None,
    }
}

/// A failed check: upstream's `ForbiddenReason` and `ForbiddenDetail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Succinct reason, e.g. `allowPrivilegeEscalation != false`.
    pub reason: String,
    /// Detail, e.g. `container "c" must set ...` (may be empty).
    pub detail: String,
}

/// The level a label value names; an unknown value (only possible in a
/// namespace labelled before this validation) enforces `restricted`,
/// failing closed.
pub fn parse_level(s: &str) -> PodSecurityLevel {
    match s {
        "privileged" => PodSecurityLevel::Privileged,
        "baseline" => PodSecurityLevel::Baseline,
        _ => PodSecurityLevel::Restricted,
    }
}

fn rank(l: PodSecurityLevel) -> u8 {
    match l {
        PodSecurityLevel::Privileged => 0,
        PodSecurityLevel::Baseline => 1,
        PodSecurityLevel::Restricted => 2,
    }
}

/// The stricter of two levels.
pub fn stricter(a: PodSecurityLevel, b: PodSecurityLevel) -> PodSecurityLevel {
    if rank(b) > rank(a) { b } else { a }
}

/// Whether `a` is at least as strict as `b`.
pub fn at_least_as_strict(a: PodSecurityLevel, b: PodSecurityLevel) -> bool {
    rank(a) >= rank(b)
}

fn join_quote(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("\"{}\"", items.join("\", \""))
    }
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 { singular } else { plural }
}

fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Init containers, containers, then ephemeral containers (upstream's visit order).
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| spec[k].as_array().into_iter().flatten())
}

fn cname(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

fn sc<'a>(c: &'a Value, field: &str) -> &'a Value {
    &c["securityContext"][field]
}

fn fail(reason: &str, detail: String) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail,
    })
}

type Check = fn(&Value, &Value) -> Option<Violation>;

fn allow_privilege_escalation(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| sc(c, "allowPrivilegeEscalation").as_bool() != Some(false))
        .map(cname)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

fn app_armor_profile(meta: &Value, spec: &Value) -> Option<Violation> {
    let allowed_type = |t: &Value| matches!(t.as_str(), Some("RuntimeDefault" | "Localhost"));
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    let pod_profile = &spec["securityContext"]["appArmorProfile"];
    if pod_profile.is_object() && !allowed_type(&pod_profile["type"]) {
        setters.push("pod".to_string());
        bad_values.insert(pod_profile["type"].as_str().unwrap_or_default().to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        let p = sc(c, "appArmorProfile");
        if p.is_object() && !allowed_type(&p["type"]) {
            bad.push(cname(c));
            bad_values.insert(p["type"].as_str().unwrap_or_default().to_string());
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let mut values: Vec<String> = bad_values.into_iter().collect();
    let mut annotations = Vec::new();
    if let Some(map) = meta["annotations"].as_object() {
        for (k, v) in map {
            let v = v.as_str().unwrap_or_default();
            if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
            {
                annotations.push(format!("{k}={v:?}"));
            }
        }
    }
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

const BASELINE_CAPABILITIES: &[&str] = &[
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

fn added_capabilities(c: &Value) -> impl Iterator<Item = &str> {
    sc(c, "capabilities")["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn capabilities_baseline(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for cap in added_capabilities(c) {
            if !BASELINE_CAPABILITIES.contains(&cap) {
                valid = false;
                caps.insert(cap.to_string());
            }
        }
        if !valid {
            bad.push(cname(c));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let caps: Vec<String> = caps.into_iter().collect();
    fail(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&caps)
        ),
    )
}

fn capabilities_restricted(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let capabilities = sc(c, "capabilities");
        if !capabilities.is_object() {
            missing_drop.push(cname(c));
            continue;
        }
        let dropped_all = capabilities["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !dropped_all {
            missing_drop.push(cname(c));
        }
        let mut forbidden = false;
        for cap in added_capabilities(c) {
            if cap != "NET_BIND_SERVICE" {
                forbidden = true;
                caps.insert(cap.to_string());
            }
        }
        if forbidden {
            adding.push(cname(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let caps: Vec<String> = caps.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    fail("unrestricted capabilities", details.join("; "))
}

fn host_namespaces(_meta: &Value, spec: &Value) -> Option<Violation> {
    let found: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| spec[*f].as_bool() == Some(true))
        .map(|f| format!("{f}=true"))
        .collect();
    if found.is_empty() {
        return None;
    }
    fail("host namespaces", found.join(", "))
}

fn host_path_volumes(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(cname)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

fn host_ports(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    // Upstream sorts the ports as strings.
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for p in c["ports"].as_array().into_iter().flatten() {
            if let Some(h) = p["hostPort"].as_i64().filter(|h| *h != 0) {
                valid = false;
                ports.insert(h.to_string());
            }
        }
        if !valid {
            bad.push(cname(c));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    fail(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn host_probes_and_lifecycle(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in containers(spec) {
        let handlers = [
            &c["livenessProbe"],
            &c["readinessProbe"],
            &c["startupProbe"],
            &c["lifecycle"]["postStart"],
            &c["lifecycle"]["preStop"],
        ];
        for h in handlers {
            for kind in ["httpGet", "tcpSocket"] {
                if let Some(host) = h[kind]["host"].as_str().filter(|s| !s.is_empty()) {
                    bad.insert(cname(c));
                    hosts.insert(host.to_string());
                }
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    let hosts: Vec<String> = hosts.into_iter().collect();
    fail(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
    )
}

fn privileged(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| sc(c, "privileged").as_bool() == Some(true))
        .map(cname)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

fn proc_mount(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        if let Some(t) = sc(c, "procMount").as_str()
            && t != "Default"
        {
            bad.push(cname(c));
            types.insert(t.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    fail(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        ),
    )
}

/// Inline volume sources the restricted level allows.
const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Restricted volume sources, in upstream's order of precedence.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let has = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
        if ALLOWED_VOLUME_SOURCES.iter().any(|k| has(k)) {
            continue;
        }
        bad.push(cname(v));
        let kind = RESTRICTED_VOLUME_SOURCES
            .iter()
            .find(|k| has(k))
            .copied()
            .unwrap_or("unknown");
        types.insert(kind.to_string());
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    fail(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut pod_non_root = false;
    match spec["securityContext"]["runAsNonRoot"].as_bool() {
        Some(false) => setters.push("pod".to_string()),
        Some(true) => pod_non_root = true,
        None => {}
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match sc(c, "runAsNonRoot").as_bool() {
            Some(false) => explicit.push(cname(c)),
            Some(true) => {}
            None if !pod_non_root => implicit.push(cname(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return fail(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return fail(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn run_as_user(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    if spec["securityContext"]["runAsUser"].as_i64() == Some(0) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| sc(c, "runAsUser").as_i64() == Some(0))
        .map(cname)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn se_linux_options(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad_types = BTreeSet::new();
    let mut set_user = false;
    let mut set_role = false;
    let mut valid = |o: &Value| {
        let mut ok = true;
        let t = o["type"].as_str().unwrap_or_default();
        if !["", "container_t", "container_init_t", "container_kvm_t"].contains(&t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if o["user"].as_str().is_some_and(|s| !s.is_empty()) {
            ok = false;
            set_user = true;
        }
        if o["role"].as_str().is_some_and(|s| !s.is_empty()) {
            ok = false;
            set_role = true;
        }
        ok
    };
    let mut setters = Vec::new();
    let pod_opts = &spec["securityContext"]["seLinuxOptions"];
    if pod_opts.is_object() && !valid(pod_opts) {
        setters.push("pod".to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        let o = sc(c, "seLinuxOptions");
        if o.is_object() && !valid(o) {
            bad.push(cname(c));
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        let types: Vec<String> = bad_types.into_iter().collect();
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if set_user {
        data.push("user may not be set".into());
    }
    if set_role {
        data.push("role may not be set".into());
    }
    fail(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

fn valid_seccomp(p: &Value) -> bool {
    matches!(p["type"].as_str(), Some("RuntimeDefault" | "Localhost"))
}

/// Shared by both seccomp checks: (explicitly bad setters, bad values,
/// containers without a profile, whether the pod sets a valid one).
fn seccomp_setters(spec: &Value) -> (Vec<String>, Vec<String>, Vec<String>, bool) {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut pod_set = false;
    let pod = &spec["securityContext"]["seccompProfile"];
    if pod.is_object() {
        if valid_seccomp(pod) {
            pod_set = true;
        } else {
            setters.push("pod".to_string());
            values.insert(pod["type"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut explicit = Vec::new();
    let mut unset = Vec::new();
    for c in containers(spec) {
        let p = sc(c, "seccompProfile");
        if p.is_object() {
            if !valid_seccomp(p) {
                explicit.push(cname(c));
                values.insert(p["type"].as_str().unwrap_or_default().to_string());
            }
        } else {
            unset.push(cname(c));
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    (setters, values.into_iter().collect(), unset, pod_set)
}

fn seccomp_profile_baseline(_meta: &Value, spec: &Value) -> Option<Violation> {
    let (setters, values, _, _) = seccomp_setters(spec);
    if setters.is_empty() {
        return None;
    }
    fail(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn seccomp_profile_restricted(meta: &Value, spec: &Value) -> Option<Violation> {
    if let Some(v) = seccomp_profile_baseline(meta, spec) {
        return Some(v);
    }
    let (_, _, unset, pod_set) = seccomp_setters(spec);
    if pod_set || unset.is_empty() {
        return None;
    }
    fail(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&unset)
        ),
    )
}

const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];

fn sysctls(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail("forbidden sysctls", bad.join(", "))
}

fn windows_host_process(_meta: &Value, spec: &Value) -> Option<Violation> {
    let host_process = |sc: &Value| sc["windowsOptions"]["hostProcess"].as_bool() == Some(true);
    let mut setters = Vec::new();
    if host_process(&spec["securityContext"]) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| host_process(&c["securityContext"]))
        .map(cname)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

/// Baseline checks in upstream's order (its source files' order), each
/// with whether a restricted check replaces it at the restricted level.
const BASELINE: &[(Check, bool)] = &[
    (app_armor_profile, false),
    (capabilities_baseline, true),
    (host_namespaces, false),
    (host_path_volumes, true),
    (host_ports, false),
    (host_probes_and_lifecycle, false),
    (privileged, false),
    (proc_mount, false),
    (se_linux_options, false),
    (seccomp_profile_baseline, true),
    (sysctls, false),
    (windows_host_process, false),
];
/// Restricted checks.
const RESTRICTED: &[Check] = &[
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_profile_restricted,
];

/// The violations of a pod (`metadata`, `spec`) at `level`, in upstream's order.
pub fn evaluate(level: PodSecurityLevel, metadata: &Value, spec: &Value) -> Vec<Violation> {
    let restricted = match level {
        PodSecurityLevel::Privileged => return Vec::new(),
        PodSecurityLevel::Baseline => false,
        PodSecurityLevel::Restricted => true,
    };
    let baseline = BASELINE
        .iter()
        .filter(|(_, replaced)| !(restricted && *replaced))
        .map(|(check, _)| check);
    let extra: &[Check] = if restricted { RESTRICTED } else { &[] };
    baseline
        .chain(extra)
        .filter_map(|check| check(metadata, spec))
        .collect()
}

/// Upstream's `ForbiddenDetail` of several violations.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `pod-security.kubernetes.io/*` label errors of a namespace, as
/// upstream's namespace validation (level labels must name a level,
/// version labels must be `latest` or `v1.x`).
pub fn namespace_label_errors(ns: &Value) -> Vec<FieldError> {
    let labels = &ns["metadata"]["labels"];
    let mut errors = Vec::new();
    for mode in ["enforce", "audit", "warn"] {
        let key = format!("pod-security.kubernetes.io/{mode}");
        if let Some(v) = labels[&key].as_str()
            && !["privileged", "baseline", "restricted"].contains(&v)
        {
            errors.push(FieldError::invalid(
                format!("metadata.labels[{key}]"),
                v,
                "must be one of privileged, baseline, restricted",
            ));
        }
        let key = format!("{key}-version");
        if let Some(v) = labels[&key].as_str() {
            let valid = v == "latest"
                || v.strip_prefix("v1.")
                    .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                errors.push(FieldError::invalid(
                    format!("metadata.labels[{key}]"),
                    v,
                    "must be \"latest\" or \"v1.x\"",
                ));
            }
        }
    }
    errors
}

/// Whether a pod update changes anything Pod Security judges (upstream's
/// `isSignificantPodUpdate`: the spec, or seccomp/AppArmor annotations).
fn significant_update(new: &Value, old: &Value) -> bool {
    if new["spec"] != old["spec"] {
        return true;
    }
    let judged = |obj: &Value| -> Vec<(String, Value)> {
        obj["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.contains("seccomp.security") || k.contains("apparmor.security"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    judged(new) != judged(old)
}

/// The Pod Security admission plugin.
pub struct PodSecurity {
    namespaces: Option<Arc<ResourceInfo>>,
}

impl PodSecurity {
    /// The plugin, resolving the namespaces resource from `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            namespaces: catalog.get("", "v1", "namespaces").cloned(),
        }
    }

    /// The levels in the namespace written to: enforced (the stricter of
    /// the cluster's and the namespace label's) and warned about (the
    /// namespace's warn label, if any).
    async fn levels(
        &self,
        attrs: &Attributes<'_>,
        store: &Store,
    ) -> Result<(PodSecurityLevel, Option<PodSecurityLevel>), ApiError> {
        // The clusters above count too: their level may have tightened
        // since this cluster's VirtualCluster was admitted.
        let cluster = attrs
            .policy()
            .map(|s| s.isolation.pod_security)
            .into_iter()
            .chain(
                attrs
                    .ancestors
                    .iter()
                    .map(|a| a.spec.isolation.pod_security),
            )
            .fold(PodSecurityLevel::Privileged, stricter);
        let (Some(namespaces), Some(ns)) = (&self.namespaces, attrs.namespace) else {
            return Ok((cluster, None));
        };
        let Some(ns) = get_namespace(store, attrs, namespaces, ns).await? else {
            return Ok((cluster, None));
        };
        let label = |key: &str| ns["metadata"]["labels"][key].as_str().map(parse_level);
        let enforce = match label(ENFORCE_LABEL) {
            Some(l) => stricter(cluster, l),
            None => cluster,
        };
        Ok((enforce, label(WARN_LABEL)))
    }
}

/// Upstream's warning text for violations at `level`.
fn would_violate(level: PodSecurityLevel, violations: &[Violation]) -> String {
    format!(
        "would violate PodSecurity \"{}:latest\": {}",
        level.as_str(),
        describe(violations)
    )
}

#[async_trait]
impl Plugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        store: &Store,
    ) -> Result<(), ApiError> {
        if attrs.is("", "namespaces") && attrs.operation != Operation::Delete {
            let errors = namespace_label_errors(obj);
            let unchanged =
                old.is_some_and(|o| o["metadata"]["labels"] == obj["metadata"]["labels"]);
            if errors.is_empty() || unchanged {
                return Ok(());
            }
            return Err(ApiError::Invalid {
                subject: Subject {
                    group: String::new(),
                    kind: "Namespace".into(),
                    name: attrs.name.to_string(),
                },
                errors,
            });
        }
        if attrs.operation == Operation::Delete {
            return Ok(());
        }
        if attrs.subresource.is_none()
            && let Some(template) =
                pod_template(&attrs.resource.group, &attrs.resource.resource, obj)
        {
            let changed = old.is_none_or(|o| {
                pod_template(&attrs.resource.group, &attrs.resource.resource, o) != Some(template)
            });
            if changed {
                let (enforce, warn) = self.levels(attrs, store).await?;
                for level in std::iter::once(enforce).chain(warn) {
                    let violations = evaluate(level, &template["metadata"], &template["spec"]);
                    if !violations.is_empty() {
                        attrs.warn(would_violate(level, &violations));
                    }
                }
            }
            return Ok(());
        }
        let judged = attrs.resource.group.is_empty()
            && attrs.resource.resource == "pods"
            && matches!(attrs.subresource, None | Some("ephemeralcontainers"));
        if !judged {
            return Ok(());
        }
        if attrs.operation == Operation::Update && old.is_some_and(|o| !significant_update(obj, o))
        {
            return Ok(());
        }
        let (level, warn) = self.levels(attrs, store).await?;
        let violations = evaluate(level, &obj["metadata"], &obj["spec"]);
        if !violations.is_empty() {
            return Err(attrs.forbidden(format!(
                "violates PodSecurity \"{}:latest\": {}",
                level.as_str(),
                describe(&violations)
            )));
        }
        if let Some(warn) = warn {
            let violations = evaluate(warn, &obj["metadata"], &obj["spec"]);
            if !violations.is_empty() {
                attrs.warn(would_violate(warn, &violations));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(level: PodSecurityLevel, spec: Value) -> String {
        describe(&evaluate(level, &json!({}), &spec))
    }

    const B: PodSecurityLevel = PodSecurityLevel::Baseline;
    const R: PodSecurityLevel = PodSecurityLevel::Restricted;

    #[test]
    fn a_plain_pod_is_baseline_but_not_restricted() {
        let spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
        assert_eq!(msg(B, spec.clone()), "");
        assert_eq!(
            msg(R, spec),
            "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert_eq!(
            msg(PodSecurityLevel::Privileged, json!({"hostPID": true})),
            ""
        );
    }

    #[test]
    fn a_hardened_pod_is_restricted() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "v", "configMap": {"name": "x"}}, {"name": "p", "projected": {"sources": []}}],
            "containers": [{"name": "c", "image": "nginx", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]});
        assert_eq!(msg(R, spec), "");
    }

    #[test]
    fn baseline_checks_word_as_upstream() {
        let spec = json!({
        "hostNetwork": true, "hostPID": true,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                        {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                            "seccompProfile": {"type": "Unconfined"}},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "initContainers": [{"name": "i", "image": "x", "securityContext": {"privileged": true}}],
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9, "hostPort": 10}],
             "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]},
                                 "procMount": "Unmasked",
                                 "seLinuxOptions": {"type": "spc_t", "user": "root"},
                                 "appArmorProfile": {"type": "Unconfined"},
                                 "windowsOptions": {"hostProcess": true}},
             "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}},
        ]});
        let got: Vec<Violation> = evaluate(B, &json!({}), &spec);
        let reasons: Vec<&str> = got.iter().map(|v| v.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "forbidden AppArmor profile",
                "non-default capabilities",
                "host namespaces",
                "hostPath volumes",
                "hostPort",
                "probe or lifecycle host",
                "privileged",
                "procMount",
                "seLinuxOptions",
                "seccompProfile",
                "forbidden sysctls",
                "hostProcess",
            ]
        );
        let detail = |r: &str| got.iter().find(|v| v.reason == r).unwrap().detail.clone();
        assert_eq!(detail("host namespaces"), "hostNetwork=true, hostPID=true");
        assert_eq!(
            detail("hostPort"),
            "container \"a\" uses hostPorts 10, 8080"
        );
        assert_eq!(
            detail("probe or lifecycle host"),
            "container \"a\" uses probe or lifecycle host \"10.0.0.1\""
        );
        assert_eq!(
            detail("privileged"),
            "container \"i\" must not set securityContext.privileged=true"
        );
        assert_eq!(
            detail("procMount"),
            "container \"a\" must not set securityContext.procMount to \"Unmasked\""
        );
        assert_eq!(
            detail("seLinuxOptions"),
            "container \"a\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set"
        );
        assert_eq!(detail("forbidden sysctls"), "kernel.msgmax");
        assert_eq!(
            detail("forbidden AppArmor profile"),
            "container \"a\" must not set AppArmor profile type to \"Unconfined\""
        );
        assert_eq!(
            detail("hostProcess"),
            "container \"a\" must not set securityContext.windowsOptions.hostProcess=true"
        );
        assert_eq!(
            detail("non-default capabilities"),
            "container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add"
        );
        assert_eq!(detail("hostPath volumes"), "volume \"host\"");
        assert_eq!(
            detail("seccompProfile"),
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\""
        );
    }

    #[test]
    fn namespace_labels_are_validated_as_upstream() {
        let ns = json!({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "nonsense",
            "pod-security.kubernetes.io/enforce-version": "v1.30",
            "pod-security.kubernetes.io/audit-version": "1.2",
            "pod-security.kubernetes.io/warn": "restricted"}}});
        let errors: Vec<String> = namespace_label_errors(&ns)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"nonsense\": must be one of privileged, baseline, restricted",
                "metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"1.2\": must be \"latest\" or \"v1.x\"",
            ]
        );
    }

    #[test]
    fn se_linux_user_alone_is_named() {
        let spec = json!({"containers": [{"name": "c", "securityContext": {"seLinuxOptions": {"user": "root"}}}]});
        assert_eq!(
            msg(B, spec),
            "seLinuxOptions (container \"c\" set forbidden securityContext.seLinuxOptions: user may not be set)"
        );
    }

    #[test]
    fn restricted_checks_word_as_upstream() {
        let spec = json!({
            "securityContext": {"runAsUser": 0},
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "s", "path": "/"}},
                        {"name": "e", "emptyDir": {}}],
            "containers": [
                {"name": "a", "image": "x", "securityContext": {"runAsNonRoot": false, "allowPrivilegeEscalation": true,
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "capabilities": {"drop": ["ALL"], "add": ["SYS_TIME"]}}},
                {"name": "b", "image": "x", "securityContext": {"runAsUser": 0,
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}}]});
        let got = evaluate(R, &json!({}), &spec);
        assert_eq!(
            describe(&got),
            "allowPrivilegeEscalation != false (containers \"a\", \"b\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"b\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"a\" must not include \"SYS_TIME\" in securityContext.capabilities.add), \
             restricted volume types (volumes \"h\", \"n\" use restricted volume types \"hostPath\", \"nfs\"), \
             runAsNonRoot != true (container \"a\" must not set securityContext.runAsNonRoot=false), \
             runAsUser=0 (pod and container \"b\" must not set runAsUser=0)"
        );
    }

    #[test]
    fn apparmor_annotations_and_levels() {
        let meta = json!({"annotations": {
            "container.apparmor.security.beta.kubernetes.io/c": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/d": "runtime/default"}});
        let got = evaluate(B, &meta, &json!({"containers": [{"name": "c"}]}));
        assert_eq!(
            describe(&got),
            "forbidden AppArmor profile (annotation must not set AppArmor profile type to \"container.apparmor.security.beta.kubernetes.io/c=\"unconfined\"\")"
        );
        assert_eq!(parse_level("nonsense"), R);
        assert_eq!(stricter(B, R), R);
        assert_eq!(stricter(R, PodSecurityLevel::Privileged), R);
        assert!(at_least_as_strict(R, B) && !at_least_as_strict(B, R));
    }
}
