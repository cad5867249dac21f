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
//! The baseline checks live in [`super::baseline`] (shared with the
//! host-escape guard); the restricted ones here. Only pods are refused. As upstream, workload templates (Deployments,
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

use super::{Attributes, Operation, Plugin, baseline, get_namespace};
use crate::error::{ApiError, FieldError, Subject};
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};

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

pub(super) fn join_quote(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("\"{}\"", items.join("\", \""))
    }
}

pub(super) fn pluralize<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 { singular } else { plural }
}

pub(super) fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Init containers, containers, then ephemeral containers (upstream's visit order).
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    baseline::containers(spec).map(|(_, c)| c)
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
        let added = capabilities["add"].as_array().into_iter().flatten();
        for cap in added.filter_map(Value::as_str) {
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

/// Containers without a seccomp profile, and whether the pod sets a valid one.
fn seccomp_unset(spec: &Value) -> (Vec<String>, bool) {
    let pod = &spec["securityContext"]["seccompProfile"];
    let pod_set = pod.is_object() && baseline::valid_seccomp(pod);
    let unset = containers(spec)
        .filter(|c| !sc(c, "seccompProfile").is_object())
        .map(cname)
        .collect();
    (unset, pod_set)
}

fn seccomp_profile_restricted(meta: &Value, spec: &Value) -> Option<Violation> {
    if let Some(v) = baseline::violation(baseline::Check::Seccomp, meta, spec) {
        return Some(v);
    }
    let (unset, pod_set) = seccomp_unset(spec);
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

/// Baseline checks the restricted level replaces with its own.
const REPLACED_IN_RESTRICTED: &[baseline::Check] = &[
    baseline::Check::Capabilities,
    baseline::Check::HostPathVolumes,
    baseline::Check::Seccomp,
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

/// The violations of a pod (`metadata`, `spec`) at `level`, in upstream's
/// order: the baseline checks ([`baseline`]), then the restricted ones.
pub fn evaluate(level: PodSecurityLevel, metadata: &Value, spec: &Value) -> Vec<Violation> {
    match level {
        PodSecurityLevel::Privileged => Vec::new(),
        PodSecurityLevel::Baseline => baseline::violations(metadata, spec, &[]),
        PodSecurityLevel::Restricted => {
            let mut out = baseline::violations(metadata, spec, REPLACED_IN_RESTRICTED);
            out.extend(RESTRICTED.iter().filter_map(|check| check(metadata, spec)));
            out
        }
    }
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
pub(super) fn significant_update(new: &Value, old: &Value) -> bool {
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
        store: &ReadOnlyStore<'_>,
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
        store: &ReadOnlyStore<'_>,
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
