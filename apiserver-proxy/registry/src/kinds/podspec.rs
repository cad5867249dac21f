//! The PodSpec shared by pods and every pod template (Deployments,
//! ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, RCs, PodTemplates):
//! defaulting (`core/v1/defaults.go`: `SetDefaults_PodSpec`, `_Container`,
//! `_Volume`, `_Probe`, ...), validation (`core/validation.ValidatePodSpec`
//! subset) and QoS class (`qos.ComputePodQOS`).
//!
//! Owns PodSpec rules only; pod-only behaviour (status, grace period, update
//! rules) is in `core.rs`, template rules per workload in its group module.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::printing::{arr, s};
use super::quantity;
use super::{child, each_mut, ensure_obj, set, set_default};
use crate::error::{FieldError, FieldErrorType};
use crate::validation::{
    content_label_value, dns1123_label, dns1123_subdomain, inclusive_range_error, label_key,
    port_name, validate_labels,
};

/// `SetDefaults_PodSpec` and everything nested (containers, volumes, probes).
/// Pod-only defaults are in [`default_pod_only`].
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    ensure_obj(spec, "securityContext");
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    // v1 conversion keeps the deprecated `serviceAccount` mirrored.
    let sa = s(spec, &["serviceAccountName"]).to_string();
    let deprecated = s(spec, &["serviceAccount"]).to_string();
    if sa.is_empty() && !deprecated.is_empty() {
        set(spec, "serviceAccountName", json!(deprecated));
    } else if !sa.is_empty() {
        set(spec, "serviceAccount", json!(sa));
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        each_mut(spec, key, default_container);
    }
    each_mut(spec, "volumes", default_volume);
}

/// `SetDefaults_Pod`: what only a Pod (not a template) gets.
pub fn default_pod_only(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    // Requests default to limits.
    for key in ["containers", "initContainers"] {
        each_mut(spec, key, |c| {
            let Some(limits) = c["resources"]["limits"].as_object().cloned() else {
                return;
            };
            if let Some(res) = ensure_obj(c, "resources")
                && let Some(req) = ensure_obj(res, "requests").and_then(Value::as_object_mut)
            {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
                let mut sorted: Vec<(String, Value)> = std::mem::take(req).into_iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                req.extend(sorted);
            }
        });
    }
    set_default(spec, "enableServiceLinks", json!(true));
    if spec["hostNetwork"].as_bool() == Some(true) {
        // defaultHostNetworkPorts
        for key in ["containers", "initContainers"] {
            each_mut(spec, key, |c| {
                each_mut(c, "ports", |p| {
                    if p["hostPort"].as_i64().unwrap_or(0) == 0 {
                        let cp = p["containerPort"].clone();
                        set(p, "hostPort", cp);
                    }
                })
            });
        }
    }
}

/// Defaults of a `PodTemplateSpec` (its `spec`).
pub fn default_template(template: &mut Value) {
    if let Some(spec) = child(template, "spec") {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_Container` plus nested ports, probes, env and resources.
fn default_container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    if s(c, &["imagePullPolicy"]).is_empty() {
        let policy = if image_tag(s(c, &["image"])) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        set(c, "imagePullPolicy", json!(policy));
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    // ResourceRequirements is a struct: always serialized.
    ensure_obj(c, "resources");
    each_mut(c, "ports", |p| set_default(p, "protocol", json!("TCP")));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            default_probe(p);
        }
    }
    if let Some(lc) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lc, hook).and_then(|h| child(h, "httpGet")) {
                default_http_get(h);
            }
        }
    }
    each_mut(c, "env", |e| {
        if let Some(from) = child(e, "valueFrom") {
            default_env_source(from);
        }
    });
}

fn default_env_source(from: &mut Value) {
    if let Some(f) = child(from, "fieldRef") {
        set_default(f, "apiVersion", json!("v1"));
    }
    if let Some(r) = child(from, "resourceFieldRef") {
        // Quantity is a struct in Go: the zero divisor serializes as "0".
        set_default(r, "divisor", json!("0"));
    }
}

/// The tag `parsers.ParseImageName` would return: `latest` when there is
/// neither tag nor digest.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag,
        None if digest => "",
        None if image.is_empty() => "",
        None => "latest",
    }
}

/// `SetDefaults_Probe` and its handler.
fn default_probe(p: &mut Value) {
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    if let Some(h) = child(p, "httpGet") {
        default_http_get(h);
    }
}

/// `SetDefaults_HTTPGetAction`.
fn default_http_get(h: &mut Value) {
    set_default(h, "path", json!("/"));
    set_default(h, "scheme", json!("HTTP"));
}

/// The source keys a volume may carry (everything except `name`).
fn volume_sources(v: &Value) -> usize {
    v.as_object().map_or(0, |m| {
        m.iter()
            .filter(|(k, val)| k.as_str() != "name" && !val.is_null())
            .count()
    })
}

/// `SetDefaults_Volume` and its sources.
fn default_volume(v: &mut Value) {
    if !v.is_object() {
        return;
    }
    if volume_sources(v) == 0 {
        set(v, "emptyDir", json!({}));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(src) = child(v, key) {
            set_default(src, "defaultMode", json!(420));
        }
    }
    if let Some(d) = child(v, "downwardAPI") {
        each_mut(d, "items", |i| {
            if let Some(f) = child(i, "fieldRef") {
                set_default(f, "apiVersion", json!("v1"));
            }
        });
    }
    if let Some(p) = child(v, "projected") {
        each_mut(p, "sources", |src| {
            if let Some(t) = child(src, "serviceAccountToken") {
                set_default(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = child(src, "downwardAPI") {
                each_mut(d, "items", |i| {
                    if let Some(f) = child(i, "fieldRef") {
                        set_default(f, "apiVersion", json!("v1"));
                    }
                });
            }
        });
    }
    if let Some(h) = child(v, "hostPath") {
        set_default(h, "type", json!(""));
    }
    if let Some(i) = child(v, "iscsi") {
        set_default(i, "iscsiInterface", json!("default"));
    }
    if let Some(t) = child(v, "ephemeral")
        .and_then(|e| child(e, "volumeClaimTemplate"))
        .and_then(|t| child(t, "spec"))
    {
        set_default(t, "volumeMode", json!("Filesystem"));
    }
}

/// `qos.ComputePodQOS` over containers and init containers (cpu and memory).
pub fn qos_class(spec: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = arr(spec, &["containers"])
        .iter()
        .chain(arr(spec, &["initContainers"]));
    for c in containers {
        for (name, target) in [("requests", &mut requests), ("limits", &mut limits)] {
            let mut found = HashSet::new();
            if let Some(m) = c["resources"][name].as_object() {
                for (res, q) in m {
                    let res = match res.as_str() {
                        "cpu" => "cpu",
                        "memory" => "memory",
                        _ => continue,
                    };
                    let v = q.as_str().and_then(quantity::parse).unwrap_or(0);
                    if v > 0 {
                        found.insert(res);
                        *target.entry(res).or_insert(0) += v;
                    }
                }
            }
            if name == "limits" && !(found.contains("cpu") && found.contains("memory")) {
                guaranteed = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

fn not_found(field: String, value: &str) -> FieldError {
    FieldError {
        kind: FieldErrorType::NotFound,
        field,
        value: Some(json!(value)),
        detail: String::new(),
    }
}

/// Sorted `sets.List` of supported values, as upstream's NotSupported lists.
const RESTART_POLICIES: &[&str] = &["Always", "Never", "OnFailure"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["FallbackToLogsOnError", "File"];

/// The subset of `ValidatePodSpec` we enforce, with upstream paths under `path`
/// (e.g. `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(
        arr(spec, &["volumes"]),
        &format!("{path}.volumes"),
        &mut errs,
    );
    let mut names = HashSet::new();
    let containers = arr(spec, &["containers"]);
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    for (i, c) in containers.iter().enumerate() {
        validate_container(
            c,
            &format!("{path}.containers[{i}]"),
            &volumes,
            &mut names,
            &mut errs,
        );
    }
    for (i, c) in arr(spec, &["initContainers"]).iter().enumerate() {
        validate_container(
            c,
            &format!("{path}.initContainers[{i}]"),
            &volumes,
            &mut names,
            &mut errs,
        );
    }
    match s(spec, &["restartPolicy"]) {
        "" => errs.push(FieldError::required(format!("{path}.restartPolicy"), "")),
        p if !RESTART_POLICIES.contains(&p) => errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            p,
            RESTART_POLICIES,
        )),
        _ => {}
    }
    match s(spec, &["dnsPolicy"]) {
        "" => errs.push(FieldError::required(format!("{path}.dnsPolicy"), "")),
        "None" if spec["dnsConfig"].is_null() => errs.push(FieldError::required(
            format!("{path}.dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        )),
        p if !DNS_POLICIES.contains(&p) => errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            p,
            DNS_POLICIES,
        )),
        _ => {}
    }
    if let Some(m) = spec["nodeSelector"].as_object() {
        errs.extend(validate_labels(m, &format!("{path}.nodeSelector")));
    }
    let sa = s(spec, &["serviceAccountName"]);
    if !sa.is_empty() {
        for msg in dns1123_subdomain(sa) {
            errs.push(FieldError::invalid(
                format!("{path}.serviceAccountName"),
                sa,
                msg,
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = s(spec, &[key]);
        if !v.is_empty() {
            for msg in dns1123_label(v) {
                errs.push(FieldError::invalid(format!("{path}.{key}"), v, msg));
            }
        }
    }
    let pc = s(spec, &["priorityClassName"]);
    if !pc.is_empty() {
        for msg in dns1123_subdomain(pc) {
            errs.push(FieldError::invalid(
                format!("{path}.priorityClassName"),
                pc,
                msg,
            ));
        }
    }
    if let Some(ads) = spec["activeDeadlineSeconds"].as_i64()
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            ads,
            inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for (i, t) in arr(spec, &["tolerations"]).iter().enumerate() {
        let p = format!("{path}.tolerations[{i}]");
        let key = s(t, &["key"]);
        if !key.is_empty() {
            for msg in label_key(key) {
                errs.push(FieldError::invalid(format!("{p}.key"), key, msg));
            }
        }
        match s(t, &["operator"]) {
            "" | "Equal" => {
                let v = s(t, &["value"]);
                for msg in content_label_value(v) {
                    errs.push(FieldError::invalid(format!("{p}.operator"), v, msg));
                }
            }
            "Exists" => {
                if !s(t, &["value"]).is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{p}.operator"),
                        t["value"].clone(),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            op => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                op,
                &["Equal", "Exists"],
            )),
        }
        let effect = s(t, &["effect"]);
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(FieldError::not_supported(
                format!("{p}.effect"),
                effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
    errs
}

fn validate_volumes(volumes: &[Value], path: &str, errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let name = s(v, &["name"]);
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else {
            let msgs = dns1123_label(name);
            let ok = msgs.is_empty();
            for msg in msgs {
                errs.push(FieldError::invalid(format!("{p}.name"), name, msg));
            }
            if ok && !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{p}.name"), name));
            }
        }
        match volume_sources(v) {
            0 => errs.push(FieldError::required(
                p.clone(),
                "must specify a volume type",
            )),
            1 => {}
            _ => errs.push(FieldError::forbidden(
                p.clone(),
                "may not specify more than 1 volume type",
            )),
        }
        for (key, src) in [
            ("secret", "secretName"),
            ("configMap", "name"),
            ("persistentVolumeClaim", "claimName"),
        ] {
            if let Some(obj) = v.get(key).filter(|o| o.is_object()) {
                let val = s(obj, &[src]);
                if val.is_empty() && key != "configMap" {
                    errs.push(FieldError::required(format!("{p}.{key}.{src}"), ""));
                }
            }
        }
        if let Some(h) = v.get("hostPath").filter(|o| o.is_object())
            && s(h, &["path"]).is_empty()
        {
            errs.push(FieldError::required(format!("{p}.hostPath.path"), ""));
        }
    }
    names
}

fn validate_container(
    c: &Value,
    path: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = s(c, &["name"]);
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        let msgs = dns1123_label(name);
        let ok = msgs.is_empty();
        for msg in msgs {
            errs.push(FieldError::invalid(format!("{path}.name"), name, msg));
        }
        if ok && !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
    }
    let image = s(c, &["image"]);
    if image.is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            format!("{path}.image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    let mut port_names = HashSet::new();
    for (i, p) in arr(c, &["ports"]).iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        let pname = s(p, &["name"]);
        if !pname.is_empty() {
            let msgs = port_name(pname);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(format!("{pp}.name"), pname, msg));
                }
            } else if !port_names.insert(pname.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), pname));
            }
        }
        let cp = p["containerPort"].as_i64().unwrap_or(0);
        if cp == 0 {
            errs.push(FieldError::required(format!("{pp}.containerPort"), ""));
        } else if !(1..=65535).contains(&cp) {
            errs.push(FieldError::invalid(
                format!("{pp}.containerPort"),
                cp,
                inclusive_range_error(1, 65535),
            ));
        }
        let hp = p["hostPort"].as_i64().unwrap_or(0);
        if hp != 0 && !(1..=65535).contains(&hp) {
            errs.push(FieldError::invalid(
                format!("{pp}.hostPort"),
                hp,
                inclusive_range_error(1, 65535),
            ));
        }
        match s(p, &["protocol"]) {
            "" => errs.push(FieldError::required(format!("{pp}.protocol"), "")),
            proto if !PROTOCOLS.contains(&proto) => errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                proto,
                PROTOCOLS,
            )),
            _ => {}
        }
    }
    for (i, e) in arr(c, &["env"]).iter().enumerate() {
        let ep = format!("{path}.env[{i}]");
        let ename = s(e, &["name"]);
        if ename.is_empty() {
            errs.push(FieldError::required(format!("{ep}.name"), ""));
        } else if ename
            .chars()
            .any(|ch| !ch.is_ascii() || ch.is_ascii_control() || ch == '=')
        {
            errs.push(FieldError::invalid(
                format!("{ep}.name"),
                ename,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if !s(e, &["value"]).is_empty() && !e["valueFrom"].is_null() {
            errs.push(FieldError::invalid(
                format!("{ep}.valueFrom"),
                "",
                "may not be specified when `value` is not empty",
            ));
        }
    }
    let mut mount_paths = HashSet::new();
    for (i, m) in arr(c, &["volumeMounts"]).iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        let mname = s(m, &["name"]);
        if mname.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(mname) {
            errs.push(not_found(format!("{mp}.name"), mname));
        }
        let mpath = s(m, &["mountPath"]);
        if mpath.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        }
        if !mount_paths.insert(mpath.to_string()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                mpath,
                "must be unique",
            ));
        }
    }
    let pull = s(c, &["imagePullPolicy"]);
    if pull.is_empty() {
        errs.push(FieldError::required(format!("{path}.imagePullPolicy"), ""));
    } else if !PULL_POLICIES.contains(&pull) {
        errs.push(FieldError::not_supported(
            format!("{path}.imagePullPolicy"),
            pull,
            PULL_POLICIES,
        ));
    }
    let tmp = s(c, &["terminationMessagePolicy"]);
    if tmp.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.terminationMessagePolicy"),
            "",
        ));
    } else if !TERMINATION_MESSAGE_POLICIES.contains(&tmp) {
        errs.push(FieldError::not_supported(
            format!("{path}.terminationMessagePolicy"),
            tmp,
            TERMINATION_MESSAGE_POLICIES,
        ));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &c[probe];
        if p.is_null() {
            continue;
        }
        let pp = format!("{path}.{probe}");
        for (key, min) in [
            ("timeoutSeconds", 1),
            ("periodSeconds", 1),
            ("successThreshold", 1),
            ("failureThreshold", 1),
        ] {
            if let Some(v) = p[key].as_i64().filter(|v| *v < min) {
                errs.push(FieldError::invalid(
                    format!("{pp}.{key}"),
                    v,
                    "must be greater than or equal to 1",
                ));
            }
        }
        if (probe == "livenessProbe" || probe == "startupProbe")
            && p["successThreshold"].as_i64().is_some_and(|v| v != 1)
        {
            errs.push(FieldError::invalid(
                format!("{pp}.successThreshold"),
                p["successThreshold"].clone(),
                "must be 1",
            ));
        }
        let handlers = ["exec", "httpGet", "tcpSocket", "grpc"]
            .iter()
            .filter(|h| !p[**h].is_null())
            .count();
        if handlers == 0 {
            errs.push(FieldError::required(
                pp.clone(),
                "must specify a handler type",
            ));
        } else if handlers > 1 {
            errs.push(FieldError::forbidden(
                pp.clone(),
                "may not specify more than 1 handler type",
            ));
        }
    }
}

/// Validation of a `PodTemplateSpec` at `path` (`spec.template`): template
/// metadata labels/annotations and the pod spec.
pub fn validate_template(template: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(l) = template["metadata"]["labels"].as_object() {
        errs.extend(validate_labels(l, &format!("{path}.metadata.labels")));
    }
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        errs.extend(crate::validation::validate_annotations(
            a,
            &format!("{path}.metadata.annotations"),
        ));
    }
    errs.extend(validate_pod_spec(
        &template["spec"],
        &format!("{path}.spec"),
    ));
    errs
}

/// `ValidatePodTemplateSpecForReplicaSet` and its siblings: the template of a
/// controller whose pods must always restart. `selector_matches` is whether
/// the controller's (non-empty) selector matches the template labels; `kind`
/// names the controller in the activeDeadlineSeconds message.
pub fn validate_controller_template(
    template: &Value,
    selector_matches: bool,
    path: &str,
    kind: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if template.is_null() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    if !selector_matches {
        errs.push(FieldError::invalid(
            format!("{path}.metadata.labels"),
            template["metadata"]["labels"].clone(),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(validate_template(template, path));
    let rp = s(template, &["spec", "restartPolicy"]);
    if !rp.is_empty() && rp != "Always" {
        errs.push(FieldError::not_supported(
            format!("{path}.spec.restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if !template["spec"]["activeDeadlineSeconds"].is_null() {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:1.25"), "1.25");
        assert_eq!(image_tag("registry:5000/nginx"), "latest");
        assert_eq!(image_tag("nginx@sha256:abc"), "");
        assert_eq!(image_tag("nginx:latest"), "latest");
    }

    #[test]
    fn template_spec_defaults() {
        let mut spec = json!({"containers": [{"name": "c", "image": "nginx:1.25",
            "ports": [{"containerPort": 80}],
            "livenessProbe": {"httpGet": {"port": 80}},
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]});
        default_pod_spec(&mut spec);
        assert_eq!(
            spec,
            json!({"containers": [{"name": "c", "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "livenessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}}],
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "resources": {}}],
                "volumes": [{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x", "defaultMode": 420}}],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"})
        );
    }

    #[test]
    fn qos() {
        let be = json!({"containers": [{"resources": {}}]});
        assert_eq!(qos_class(&be), "BestEffort");
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn validation_messages() {
        let spec = json!({"containers": [
            {"name": "a", "image": "x", "imagePullPolicy": "Always", "terminationMessagePolicy": "File",
             "volumeMounts": [{"name": "missing", "mountPath": "/m"}], "ports": [{"containerPort": 70000, "protocol": "TCP"}]},
            {"name": "a", "image": "", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}],
            "restartPolicy": "Sometimes", "dnsPolicy": "ClusterFirst"});
        let errs: Vec<String> = validate_pod_spec(&spec, "spec")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
                "spec.containers[1].name: Duplicate value: \"a\"",
                "spec.containers[1].image: Required value",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\"",
            ]
        );
        let errs = validate_pod_spec(
            &json!({"restartPolicy": "Always", "dnsPolicy": "Default"}),
            "spec",
        );
        assert_eq!(errs[0].to_string(), "spec.containers: Required value");
    }
}
