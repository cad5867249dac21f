//! Strategies for the core ("") group: pods, services, namespaces, nodes,
//! configmaps, secrets, serviceaccounts, endpoints, events, persistent
//! volumes and claims, limit ranges, resource quotas, replication
//! controllers and pod templates (`pkg/registry/core/*/strategy.go`).
//!
//! Owns per-type rules only; PodSpec rules live in `podspec.rs`. Never
//! allocates cluster IPs or node ports and never reads other objects.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::podspec::{
    self, default_pod_only, default_pod_spec, default_template, validate_pod_spec,
};
use super::printing::{
    AGE, CREATED_AT, access_modes, age_cell, arr, col, container_cells, created_at_cell,
    format_labels, int, load_balancer_status, map_len, name_cell, replica_columns, replica_row, s,
    since, wide,
};
use super::{child, each_mut, ensure_obj, is_empty, labelselector, set, set_default};
use crate::error::{ApiError, FieldError};
use crate::strategy::{Column, CreateHold, NameRule, Strategy};
use crate::validation::{
    IS_NEGATIVE, config_map_key, dns1123_label, immutable, inclusive_range_error, label_key,
    port_name, validate_labels,
};

/// The strategy for `resource` in `group`, if this module serves it.
pub fn strategy(group: &str, resource: &str) -> Option<Arc<dyn Strategy>> {
    if !group.is_empty() {
        return None;
    }
    Some(match resource {
        "pods" => Arc::new(Pods),
        "services" => Arc::new(Services),
        "namespaces" => Arc::new(Namespaces),
        "nodes" => Arc::new(Nodes),
        "configmaps" => Arc::new(ConfigMaps),
        "secrets" => Arc::new(Secrets),
        "serviceaccounts" => Arc::new(ServiceAccounts),
        "endpoints" => Arc::new(Endpoints),
        "events" => Arc::new(Events),
        "persistentvolumes" => Arc::new(PersistentVolumes),
        "persistentvolumeclaims" => Arc::new(PersistentVolumeClaims),
        "limitranges" => Arc::new(LimitRanges),
        "resourcequotas" => Arc::new(ResourceQuotas),
        "replicationcontrollers" => Arc::new(ReplicationControllers),
        "podtemplates" => Arc::new(PodTemplates),
        _ => return None,
    })
}

/// Go's `%v` of a bool, for field selectors.
fn bool_str(v: &Value) -> String {
    v.as_bool().unwrap_or(false).to_string()
}

// ---------------------------------------------------------------- pods

/// `pkg/registry/core/pod/strategy.go`.
pub struct Pods;

/// `podSuccessConditions`-free STATUS/READY/RESTARTS computation of `printPod`.
fn print_pod(pod: &Value) -> Vec<Value> {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let phase = s(status, &["phase"]);
    let mut reason = if s(status, &["reason"]).is_empty() {
        phase.to_string()
    } else {
        s(status, &["reason"]).into()
    };
    if arr(status, &["conditions"])
        .iter()
        .any(|c| s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let init_specs = arr(spec, &["initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, &["name"]) == name && s(c, &["restartPolicy"]) == "Always")
    };
    let total = arr(spec, &["containers"]).len()
        + init_specs
            .iter()
            .filter(|c| s(c, &["restartPolicy"]) == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart = String::new();
    let mut last_sidecar_restart = String::new();
    let later = |cur: &mut String, t: &str| {
        if !t.is_empty() && t > cur.as_str() {
            *cur = t.to_string();
        }
    };
    let mut initializing = false;
    for (i, c) in arr(status, &["initContainerStatuses"]).iter().enumerate() {
        let name = s(c, &["name"]);
        let count = int(c, &["restartCount"]);
        restarts += count;
        let finished = s(c, &["lastState", "terminated", "finishedAt"]);
        later(&mut last_restart, finished);
        if restartable(name) {
            sidecar_restarts += count;
            later(&mut last_sidecar_restart, finished);
        }
        let term = &c["state"]["terminated"];
        let waiting = &c["state"]["waiting"];
        if !term.is_null() && int(term, &["exitCode"]) == 0 {
            continue;
        } else if restartable(name) && c["started"].as_bool() == Some(true) {
            if c["ready"].as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        } else if !term.is_null() {
            reason = if s(term, &["reason"]).is_empty() {
                if int(term, &["signal"]) != 0 {
                    format!("Init:Signal:{}", int(term, &["signal"]))
                } else {
                    format!("Init:ExitCode:{}", int(term, &["exitCode"]))
                }
            } else {
                format!("Init:{}", s(term, &["reason"]))
            };
        } else if !s(waiting, &["reason"]).is_empty()
            && s(waiting, &["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", s(waiting, &["reason"]));
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = arr(status, &["conditions"])
        .iter()
        .any(|c| s(c, &["type"]) == "Initialized" && s(c, &["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(status, &["containerStatuses"]).iter().rev() {
            restarts += int(c, &["restartCount"]);
            later(
                &mut last_restart,
                s(c, &["lastState", "terminated", "finishedAt"]),
            );
            let term = &c["state"]["terminated"];
            if !s(c, &["state", "waiting", "reason"]).is_empty() {
                reason = s(c, &["state", "waiting", "reason"]).into();
            } else if !s(term, &["reason"]).is_empty() {
                reason = s(term, &["reason"]).into();
            } else if !term.is_null() {
                reason = if int(term, &["signal"]) != 0 {
                    format!("Signal:{}", int(term, &["signal"]))
                } else {
                    format!("ExitCode:{}", int(term, &["exitCode"]))
                };
            } else if c["ready"].as_bool() == Some(true) && !c["state"]["running"].is_null() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = arr(status, &["conditions"])
                .iter()
                .any(|c| s(c, &["type"]) == "Ready" && s(c, &["status"]) == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    if deleting && s(status, &["reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_str = if restarts != 0 && !last_restart.is_empty() {
        format!("{restarts} ({} ago)", since(&json!(last_restart)))
    } else {
        restarts.to_string()
    };
    let ip = arr(status, &["podIPs"])
        .first()
        .map(|p| s(p, &["ip"]))
        .unwrap_or("");
    let none = |v: &str| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.to_string()
        }
    };
    let gates = arr(spec, &["readinessGates"]);
    let gates_str = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                arr(status, &["conditions"])
                    .iter()
                    .find(|c| s(c, &["type"]) == s(g, &["conditionType"]))
                    .is_some_and(|c| s(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name_cell(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        age_cell(pod),
        json!(none(ip)),
        json!(none(s(spec, &["nodeName"]))),
        json!(none(s(status, &["nominatedNodeName"]))),
        json!(gates_str),
    ]
}

/// Priority admission's defaults for a pod without a (resolvable) class.
fn default_priority(spec: &mut Value) {
    let (priority, policy) = match s(spec, &["priorityClassName"]) {
        "" => (0, "PreemptLowerPriority"),
        "system-cluster-critical" => (2_000_000_000, "PreemptLowerPriority"),
        "system-node-critical" => (2_000_001_000, "PreemptLowerPriority"),
        _ => return,
    };
    set_default(spec, "priority", json!(priority));
    set_default(spec, "preemptionPolicy", json!(policy));
}

/// The message of upstream's pod update rule.
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A small rendering of what differs between two specs (upstream prints a
/// `cmp.Diff`).
fn spec_diff(old: &Value, new: &Value) -> String {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return String::new();
    };
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.dedup();
    let mut out = String::from("  core.PodSpec{\n");
    let mut seen = std::collections::HashSet::new();
    for k in keys {
        if !seen.insert(k) || o.get(k) == n.get(k) {
            continue;
        }
        if let Some(v) = o.get(k) {
            out.push_str(&format!("- \t{k}: {v},\n"));
        }
        if let Some(v) = n.get(k) {
            out.push_str(&format!("+ \t{k}: {v},\n"));
        }
    }
    out.push_str("  }\n");
    out
}

/// `ValidatePodUpdate`: only images, activeDeadlineSeconds, toleration
/// additions and terminationGracePeriodSeconds (negative to 1) may change.
fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (ns, os) = (&new["spec"], &old["spec"]);
    if arr(ns, &["containers"]).len() != arr(os, &["containers"]).len() {
        errs.push(FieldError::forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        ));
        return errs;
    }
    match (
        ns["activeDeadlineSeconds"].as_i64(),
        os["activeDeadlineSeconds"].as_i64(),
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n,
                inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Tolerations: existing ones may only change tolerationSeconds.
    let old_tols = arr(os, &["tolerations"]);
    for (i, t) in old_tols.iter().enumerate() {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("tolerationSeconds");
            }
            v
        };
        let still = arr(ns, &["tolerations"])
            .iter()
            .any(|n| strip(n) == strip(t));
        if !still {
            errs.push(FieldError::forbidden(
                format!("spec.tolerations[{i}]"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
    }
    let mut munged = ns.clone();
    for key in ["containers", "initContainers"] {
        let old_list = arr(os, &[key]).to_vec();
        let mut idx = 0;
        each_mut(&mut munged, key, |c| {
            if let Some(o) = old_list.get(idx) {
                set(c, "image", o["image"].clone());
            }
            idx += 1;
        });
    }
    for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
        match os.get(key) {
            Some(v) => set(&mut munged, key, v.clone()),
            None => {
                munged.as_object_mut().map(|m| m.remove(key));
            }
        }
    }
    if os["terminationGracePeriodSeconds"]
        .as_i64()
        .is_some_and(|g| g < 0)
        && munged["terminationGracePeriodSeconds"].as_i64() == Some(1)
    {
        set(
            &mut munged,
            "terminationGracePeriodSeconds",
            os["terminationGracePeriodSeconds"].clone(),
        );
    }
    if &munged != os {
        errs.push(FieldError::forbidden(
            "spec",
            format!("{POD_UPDATE_FORBIDDEN}\n{}", spec_diff(os, &munged)),
        ));
    }
    errs
}

impl Strategy for Pods {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            default_pod_spec(spec);
            default_pod_only(spec);
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let qos = podspec::qos_class(&obj["spec"]);
        let mut status = json!({"phase": "Pending", "qosClass": qos});
        if !arr(obj, &["spec", "schedulingGates"]).is_empty() {
            status["conditions"] = json!([{"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                "lastTransitionTime": null, "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates"}]);
            if let Some(c) = status["conditions"][0].as_object_mut() {
                c.remove("lastProbeTime");
                c.remove("lastTransitionTime");
            }
        }
        set(obj, "status", status);
        if let Some(spec) = child(obj, "spec") {
            default_priority(spec);
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // Priority admission keeps what it set on create.
        for key in ["priority", "preemptionPolicy"] {
            if let (Some(spec), Some(v)) = (child(new, "spec"), old["spec"].get(key)) {
                set_default(spec, key, v.clone());
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_pod_spec(&obj["spec"], "spec")
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(validate_pod_update(new, old));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "The aggregate readiness state of this pod for accepting traffic.",
                ..col("Ready", "string")
            },
            Column {
                description: "The aggregate status of the containers in this pod.",
                ..col("Status", "string")
            },
            Column {
                description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ..col("Restarts", "string")
            },
            AGE,
            wide("IP", "string"),
            wide("Node", "string"),
            wide("Nominated Node", "string"),
            wide("Readiness Gates", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        print_pod(obj)
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        Some(match field {
            "spec.nodeName" => s(obj, &["spec", "nodeName"]).into(),
            "spec.restartPolicy" => s(obj, &["spec", "restartPolicy"]).into(),
            "spec.schedulerName" => s(obj, &["spec", "schedulerName"]).into(),
            "spec.serviceAccountName" => s(obj, &["spec", "serviceAccountName"]).into(),
            "spec.hostNetwork" => bool_str(&obj["spec"]["hostNetwork"]),
            "status.phase" => s(obj, &["status", "phase"]).into(),
            "status.podIP" => arr(obj, &["status", "podIPs"])
                .first()
                .map(|p| s(p, &["ip"]))
                .unwrap_or("")
                .into(),
            "status.nominatedNodeName" => s(obj, &["status", "nominatedNodeName"]).into(),
            _ => return None,
        })
    }

    /// `podStrategy.CheckGracefulDeleteWithOptions`.
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        let mut period = requested.unwrap_or_else(|| {
            obj["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
        });
        if s(obj, &["spec", "nodeName"]).is_empty() {
            period = 0;
        }
        if matches!(s(obj, &["status", "phase"]), "Failed" | "Succeeded") {
            period = 0;
        }
        if period < 0 {
            period = 1;
        }
        (period > 0).then_some(period)
    }
}

// ---------------------------------------------------------------- services

/// `pkg/registry/core/service/strategy.go`; allocation of cluster IPs in
/// [`Strategy::begin_create`] ([`super::cluster_ip`]).
pub struct Services;

fn externally_accessible(spec: &Value) -> bool {
    matches!(s(spec, &["type"]), "LoadBalancer" | "NodePort")
        || (s(spec, &["type"]) == "ClusterIP" && !arr(spec, &["externalIPs"]).is_empty())
}

/// `svcrest`'s `normalizeClusterIPs` on create: the singular field fills the plural.
fn normalize_cluster_ips_create(spec: &mut Value) {
    let ip = s(spec, &["clusterIP"]).to_string();
    if !ip.is_empty() && arr(spec, &["clusterIPs"]).is_empty() {
        set(spec, "clusterIPs", json!([ip]));
    }
}

impl Strategy for Services {
    fn begin_create<'a>(
        &'a self,
        storage: &'a dyn nestkube_storage::Storage,
        cluster: &'a str,
        obj: &'a mut Value,
    ) -> futures::future::BoxFuture<'a, Result<Option<CreateHold>, ApiError>> {
        Box::pin(async move {
            let hold = super::cluster_ip::allocate(storage, cluster, obj).await?;
            Ok(hold.map(|h| Box::new(h) as CreateHold))
        })
    }

    /// `SetDefaults_Service`.
    fn default(&self, obj: &mut Value) {
        let Some(spec) = child(obj, "spec") else {
            return;
        };
        set_default(spec, "sessionAffinity", json!("None"));
        if s(spec, &["sessionAffinity"]) == "None" {
            spec.as_object_mut()
                .map(|m| m.remove("sessionAffinityConfig"));
        }
        set_default(spec, "type", json!("ClusterIP"));
        each_mut(spec, "ports", |p| {
            set_default(p, "protocol", json!("TCP"));
            if matches!(p.get("targetPort"), None | Some(Value::Null))
                || p["targetPort"] == json!(0)
                || p["targetPort"] == json!("")
            {
                let port = p["port"].clone();
                set(p, "targetPort", port);
            }
        });
        if externally_accessible(spec) {
            set_default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if matches!(
            s(spec, &["type"]),
            "NodePort" | "LoadBalancer" | "ClusterIP"
        ) {
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if s(spec, &["type"]) == "LoadBalancer" {
            set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        if s(spec, &["sessionAffinity"]) == "ClientIP"
            && spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"].is_null()
        {
            set(
                spec,
                "sessionAffinityConfig",
                json!({"clientIP": {"timeoutSeconds": 10800}}),
            );
        }
        if s(obj, &["spec", "type"]) == "LoadBalancer"
            && let Some(status) = child(obj, "status").and_then(|s| child(s, "loadBalancer"))
        {
            each_mut(status, "ingress", |i| {
                if !s(i, &["ip"]).is_empty() {
                    set_default(i, "ipMode", json!("VIP"));
                }
            });
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({"loadBalancer": {}}));
        let Some(spec) = child(obj, "spec") else {
            return;
        };
        normalize_cluster_ips_create(spec);
        if s(spec, &["type"]) != "ExternalName" {
            let headless_no_selector =
                s(spec, &["clusterIP"]) == "None" && is_empty(&spec["selector"]);
            let policy = if headless_no_selector {
                "RequireDualStack"
            } else {
                "SingleStack"
            };
            set_default(spec, "ipFamilyPolicy", json!(policy));
            if arr(spec, &["ipFamilies"]).is_empty() {
                set(spec, "ipFamilies", json!(["IPv4"]));
            }
        }
    }

    /// `patchAllocatedValues` and `normalizeClusterIPs` of the service REST.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let os = &old["spec"];
        let Some(spec) = child(new, "spec") else {
            return;
        };
        let needs_ip = |t: &str| t != "ExternalName";
        if needs_ip(s(os, &["type"])) && needs_ip(s(spec, &["type"])) {
            let (old_ip, old_ips) = (
                s(os, &["clusterIP"]).to_string(),
                arr(os, &["clusterIPs"]).to_vec(),
            );
            set_default(spec, "clusterIP", json!(old_ip));
            if arr(spec, &["clusterIPs"]).is_empty()
                && !old_ips.is_empty()
                && s(spec, &["clusterIP"]) == old_ip
            {
                set(spec, "clusterIPs", Value::Array(old_ips.clone()));
            }
            if s(spec, &["clusterIP"]) != old_ip && arr(spec, &["clusterIPs"]) == old_ips.as_slice()
            {
                let ip = s(spec, &["clusterIP"]).to_string();
                set(
                    spec,
                    "clusterIPs",
                    if ip.is_empty() {
                        Value::Null
                    } else {
                        json!([ip])
                    },
                );
                if let Some(m) = spec.as_object_mut() {
                    m.retain(|_, v| !v.is_null())
                }
            }
            for key in ["ipFamilyPolicy", "ipFamilies"] {
                if is_empty(&spec[key]) && !os[key].is_null() {
                    set(spec, key, os[key].clone());
                }
            }
        }
        let needs_node_port = |t: &str| t == "NodePort" || t == "LoadBalancer";
        if needs_node_port(s(os, &["type"])) && needs_node_port(s(spec, &["type"])) {
            let old_ports = arr(os, &["ports"]).to_vec();
            let used: Vec<i64> = arr(spec, &["ports"])
                .iter()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect();
            each_mut(spec, "ports", |p| {
                if p["nodePort"].as_i64().unwrap_or(0) != 0 {
                    return;
                }
                let found = old_ports
                    .iter()
                    .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"]);
                if let Some(n) = found
                    .and_then(|o| o["nodePort"].as_i64())
                    .filter(|n| !used.contains(n))
                {
                    set(p, "nodePort", json!(n));
                }
            });
        }
        if int(spec, &["healthCheckNodePort"]) == 0 && !os["healthCheckNodePort"].is_null() {
            set(
                spec,
                "healthCheckNodePort",
                os["healthCheckNodePort"].clone(),
            );
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_service(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_service(new);
        let (ns, os) = (&new["spec"], &old["spec"]);
        let external = s(ns, &["type"]) == "ExternalName" || s(os, &["type"]) == "ExternalName";
        let headless = |sp: &Value| s(sp, &["clusterIP"]) == "None";
        if !(external || (headless(ns) && headless(os))) {
            let (n, o) = (arr(ns, &["clusterIPs"]), arr(os, &["clusterIPs"]));
            if n.len() == o.len() {
                for (i, ip) in o.iter().enumerate() {
                    if Some(ip) != n.get(i) {
                        errs.push(FieldError::invalid(
                            format!("spec.clusterIPs[{i}]"),
                            json!(n),
                            "may not change once set",
                        ));
                    }
                }
            } else if n.is_empty() && !o.is_empty() {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    json!(n),
                    "primary clusterIP can not be unset",
                ));
            }
        }
        errs
    }

    fn name_rule(&self) -> NameRule {
        NameRule::DnsLabel
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Type", "string"),
            col("Cluster-IP", "string"),
            col("External-IP", "string"),
            col("Port(s)", "string"),
            AGE,
            wide("Selector", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let spec = &obj["spec"];
        let cluster_ip = arr(spec, &["clusterIPs"])
            .first()
            .and_then(Value::as_str)
            .unwrap_or("<none>");
        let external_ips: Vec<&str> = arr(spec, &["externalIPs"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let external = match s(spec, &["type"]) {
            "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
            "ClusterIP" | "NodePort" => "<none>".into(),
            "LoadBalancer" => {
                let lb = load_balancer_status(&obj["status"]["loadBalancer"]);
                let mut all: Vec<String> = if lb.is_empty() {
                    vec![]
                } else {
                    lb.split(',').map(String::from).collect()
                };
                if !external_ips.is_empty() {
                    all.extend(external_ips.iter().map(|s| s.to_string()));
                    all.join(",")
                } else if !lb.is_empty() {
                    lb
                } else {
                    "<pending>".into()
                }
            }
            "ExternalName" => s(spec, &["externalName"]).into(),
            _ => "<unknown>".into(),
        };
        let ports: Vec<String> = arr(spec, &["ports"])
            .iter()
            .map(|p| {
                let proto = s(p, &["protocol"]);
                match int(p, &["nodePort"]) {
                    0 => format!("{}/{proto}", int(p, &["port"])),
                    np => format!("{}:{np}/{proto}", int(p, &["port"])),
                }
            })
            .collect();
        let ports = if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(",")
        };
        vec![
            name_cell(obj),
            json!(s(spec, &["type"])),
            json!(cluster_ip),
            json!(external),
            json!(ports),
            age_cell(obj),
            json!(format_labels(&spec["selector"])),
        ]
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "spec.clusterIP" => Some(s(obj, &["spec", "clusterIP"]).into()),
            "spec.type" => Some(s(obj, &["spec", "type"]).into()),
            _ => None,
        }
    }
}

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// The common part of `ValidateService`.
fn validate_service(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let ty = s(spec, &["type"]);
    let headless = s(spec, &["clusterIP"]) == "None";
    let ports = arr(spec, &["ports"]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "" => errs.push(FieldError::required("spec.type", "")),
        t if !SERVICE_TYPES.contains(&t) => {
            errs.push(FieldError::not_supported("spec.type", t, SERVICE_TYPES))
        }
        "ExternalName" => {
            let name = s(spec, &["externalName"]);
            if name.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            }
            if !s(spec, &["clusterIP"]).is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIP",
                    "may not be set for `type` ExternalName",
                ));
            }
        }
        _ => {}
    }
    let mut names = std::collections::HashSet::new();
    let require_name = ports.len() > 1;
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = s(p, &["name"]);
        if require_name && name.is_empty() {
            errs.push(FieldError::required(format!("{pp}.name"), ""));
        } else if !name.is_empty() {
            for msg in dns1123_label(name) {
                errs.push(FieldError::invalid(format!("{pp}.name"), name, msg));
            }
            if !names.insert(name) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), name));
            }
        }
        let port = int(p, &["port"]);
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                format!("{pp}.port"),
                port,
                inclusive_range_error(1, 65535),
            ));
        }
        match s(p, &["protocol"]) {
            "" => errs.push(FieldError::required(format!("{pp}.protocol"), "")),
            proto if !["SCTP", "TCP", "UDP"].contains(&proto) => errs.push(
                FieldError::not_supported(format!("{pp}.protocol"), proto, &["SCTP", "TCP", "UDP"]),
            ),
            _ => {}
        }
        match &p["targetPort"] {
            Value::Number(n) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    errs.push(FieldError::invalid(
                        format!("{pp}.targetPort"),
                        n,
                        inclusive_range_error(1, 65535),
                    ));
                }
            }
            Value::String(name) => {
                for msg in port_name(name) {
                    errs.push(FieldError::invalid(
                        format!("{pp}.targetPort"),
                        name.as_str(),
                        msg,
                    ));
                }
            }
            _ => {}
        }
        let np = int(p, &["nodePort"]);
        if ty == "ClusterIP" && np != 0 {
            errs.push(FieldError::forbidden(
                format!("{pp}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    match s(spec, &["sessionAffinity"]) {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "None" | "ClientIP" => {}
        a => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            a,
            &["ClientIP", "None"],
        )),
    }
    if let Some(sel) = spec["selector"].as_object() {
        errs.extend(validate_labels(sel, "spec.selector"));
    }
    errs
}

// ---------------------------------------------------------------- namespaces

/// `pkg/registry/core/namespace/strategy.go`.
pub struct Namespaces;

impl Strategy for Namespaces {
    /// `SetDefaults_Namespace` (the name label) and `_NamespaceStatus`.
    fn default(&self, obj: &mut Value) {
        let name = s(obj, &["metadata", "name"]).to_string();
        if let Some(labels) = ensure_obj(obj, "metadata").and_then(|m| ensure_obj(m, "labels")) {
            set(labels, "kubernetes.io/metadata.name", json!(name));
            super::sort_keys(labels);
        }
        if let Some(status) = child(obj, "status") {
            set_default(status, "phase", json!("Active"));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({"phase": "Active"}));
        if let Some(spec) = ensure_obj(obj, "spec")
            && let Some(f) = ensure_arr(spec, "finalizers")
            && !f.iter().any(|v| v == "kubernetes")
        {
            f.push(json!("kubernetes"));
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // Finalizers change only through the finalize subresource.
        match old["spec"].get("finalizers") {
            Some(f) => {
                if let Some(spec) = ensure_obj(new, "spec") {
                    set(spec, "finalizers", f.clone());
                }
            }
            None => {
                if let Some(spec) = child(new, "spec") {
                    spec.as_object_mut().map(|m| m.remove("finalizers"));
                }
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for f in arr(obj, &["spec", "finalizers"])
            .iter()
            .filter_map(Value::as_str)
        {
            for msg in label_key(f) {
                errs.push(FieldError::invalid("spec.finalizers", f, msg));
            }
            if !f.contains('/') && f != "kubernetes" {
                errs.push(FieldError::invalid(
                    "spec.finalizers",
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
        errs
    }

    fn name_rule(&self) -> NameRule {
        NameRule::DnsLabel
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "The status of the namespace",
                ..col("Status", "string")
            },
            AGE,
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(s(obj, &["status", "phase"])),
            age_cell(obj),
        ]
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "status.phase").then(|| s(obj, &["status", "phase"]).into())
    }

    /// The namespace REST's Delete: with finalizers left it turns Terminating.
    fn begin_delete(&self, obj: &mut Value) -> bool {
        if arr(obj, &["spec", "finalizers"]).is_empty() {
            return false;
        }
        if let Some(status) = ensure_obj(obj, "status") {
            set(status, "phase", json!("Terminating"));
        }
        true
    }
}

/// `v[key]` as an array, inserting `[]` when absent or null.
fn ensure_arr<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Vec<Value>> {
    let map = v.as_object_mut()?;
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() {
        *entry = json!([]);
    }
    entry.as_array_mut()
}

// ---------------------------------------------------------------- nodes

/// `pkg/registry/core/node/strategy.go`.
pub struct Nodes;

impl Strategy for Nodes {
    /// `SetDefaults_NodeStatus`: allocatable defaults to capacity.
    fn default(&self, obj: &mut Value) {
        if let Some(status) = child(obj, "status")
            && status["allocatable"].is_null()
            && !status["capacity"].is_null()
        {
            let cap = status["capacity"].clone();
            set(status, "allocatable", cap);
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "The status of the node",
                ..col("Status", "string")
            },
            Column {
                description: "The roles of the node",
                ..col("Roles", "string")
            },
            AGE,
            col("Version", "string"),
            wide("Internal-IP", "string"),
            wide("External-IP", "string"),
            wide("OS-Image", "string"),
            wide("Kernel-Version", "string"),
            wide("Container-Runtime", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let mut status: Vec<String> = Vec::new();
        if let Some(c) = arr(obj, &["status", "conditions"])
            .iter()
            .rev()
            .find(|c| s(c, &["type"]) == "Ready")
        {
            status.push(if s(c, &["status"]) == "True" {
                "Ready".into()
            } else {
                "NotReady".into()
            });
        }
        if status.is_empty() {
            status.push("Unknown".into());
        }
        if obj["spec"]["unschedulable"].as_bool() == Some(true) {
            status.push("SchedulingDisabled".into());
        }
        let mut roles: Vec<String> = Vec::new();
        if let Some(labels) = obj["metadata"]["labels"].as_object() {
            for (k, v) in labels {
                if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                    if !role.is_empty() {
                        roles.push(role.into());
                    }
                } else if k == "kubernetes.io/role"
                    && let Some(v) = v.as_str().filter(|v| !v.is_empty())
                {
                    roles.push(v.into());
                }
            }
        }
        roles.sort();
        roles.dedup();
        let roles = if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        };
        let address = |ty: &str| {
            arr(obj, &["status", "addresses"])
                .iter()
                .find(|a| s(a, &["type"]) == ty)
                .map(|a| s(a, &["address"]).to_string())
                .unwrap_or_else(|| "<none>".into())
        };
        let info = |k: &str| {
            let v = s(obj, &["status", "nodeInfo", k]);
            if v.is_empty() {
                "<unknown>".to_string()
            } else {
                v.to_string()
            }
        };
        vec![
            name_cell(obj),
            json!(status.join(",")),
            json!(roles),
            age_cell(obj),
            json!(s(obj, &["status", "nodeInfo", "kubeletVersion"])),
            json!(address("InternalIP")),
            json!(address("ExternalIP")),
            json!(info("osImage")),
            json!(info("kernelVersion")),
            json!(info("containerRuntimeVersion")),
        ]
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "spec.unschedulable").then(|| bool_str(&obj["spec"]["unschedulable"]))
    }
}

// ---------------------------------------------------------------- configmaps and secrets

/// `MaxSecretSize`, also the ConfigMap limit.
const MAX_DATA_SIZE: usize = 1024 * 1024;

/// Key checks of `ValidateConfigMap` / `ValidateSecret` for one bag.
fn validate_keys(
    bag: &Value,
    field: &str,
    other: Option<(&Value, &str)>,
    errs: &mut Vec<FieldError>,
) -> usize {
    let mut total = 0;
    if let Some(m) = bag.as_object() {
        for (k, v) in m {
            for msg in config_map_key(k) {
                errs.push(FieldError::invalid(
                    format!("{field}[{k}]"),
                    k.as_str(),
                    msg,
                ));
            }
            if let Some((o, oname)) = other
                && o.get(k).is_some()
            {
                errs.push(FieldError::invalid(
                    format!("{field}[{k}]"),
                    k.as_str(),
                    format!("duplicate of key present in {oname}"),
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    total
}

/// The update rule of immutable ConfigMaps and Secrets.
fn validate_immutable_data(new: &Value, old: &Value, bags: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old["immutable"].as_bool() == Some(true) {
        if new["immutable"].as_bool() != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        for bag in bags {
            if !(is_empty(&new[*bag]) && is_empty(&old[*bag])) && new[*bag] != old[*bag] {
                errs.push(FieldError::forbidden(
                    *bag,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errs
}

/// `pkg/registry/core/configmap/strategy.go`.
pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut total = validate_keys(
            &obj["data"],
            "data",
            Some((&obj["binaryData"], "binaryData")),
            &mut errs,
        );
        total += validate_keys(
            &obj["binaryData"],
            "binaryData",
            Some((&obj["data"], "data")),
            &mut errs,
        );
        if total > MAX_DATA_SIZE {
            errs.push(FieldError::too_long("", MAX_DATA_SIZE));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_immutable_data(new, old, &["data", "binaryData"]);
        errs.extend(self.validate(new));
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, col("Data", "string"), AGE]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(map_len(&obj["data"]) + map_len(&obj["binaryData"])),
            age_cell(obj),
        ]
    }
}

/// `pkg/registry/core/secret/strategy.go`.
pub struct Secrets;

impl Strategy for Secrets {
    /// `SetDefaults_Secret` and the v1 conversion that folds `stringData` into `data`.
    fn default(&self, obj: &mut Value) {
        set_default(obj, "type", json!("Opaque"));
        let Some(Value::Object(string_data)) =
            obj.as_object_mut().and_then(|m| m.remove("stringData"))
        else {
            return;
        };
        if let Some(data) = ensure_obj(obj, "data").and_then(Value::as_object_mut) {
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or("");
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
        if let Some(data) = child(obj, "data") {
            super::sort_keys(data);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let data = &obj["data"];
        let mut total = validate_keys(data, "data", None, &mut errs);
        // data holds base64 in JSON; the limit is on decoded bytes.
        total = total * 3 / 4;
        if total > MAX_DATA_SIZE {
            errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
        }
        let has = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
        };
        let mut require = |k: &str| {
            if !has(k) {
                errs.push(FieldError::required(format!("data[{k}]"), ""));
            }
        };
        match s(obj, &["type"]) {
            "kubernetes.io/service-account-token"
                if s(
                    obj,
                    &[
                        "metadata",
                        "annotations",
                        "kubernetes.io/service-account.name",
                    ],
                )
                .is_empty() =>
            {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
            "kubernetes.io/dockercfg" => require(".dockercfg"),
            "kubernetes.io/dockerconfigjson" => require(".dockerconfigjson"),
            "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
                require("username");
                require("password");
            }
            "kubernetes.io/ssh-auth" => require("ssh-privatekey"),
            "kubernetes.io/tls" => {
                require("tls.key");
                require("tls.crt");
            }
            _ => {}
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(immutable(&new["type"], &old["type"], "type"));
        errs.extend(validate_immutable_data(new, old, &["data"]));
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Type", "string"),
            col("Data", "string"),
            AGE,
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(s(obj, &["type"])),
            json!(map_len(&obj["data"])),
            age_cell(obj),
        ]
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "type").then(|| s(obj, &["type"]).into())
    }
}

// ---------------------------------------------------------------- service accounts, endpoints, events

/// `pkg/registry/core/serviceaccount/strategy.go`.
pub struct ServiceAccounts;

impl Strategy for ServiceAccounts {
    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, col("Secrets", "string"), AGE]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(arr(obj, &["secrets"]).len()),
            age_cell(obj),
        ]
    }
}

/// `pkg/registry/core/endpoint/strategy.go`.
pub struct Endpoints;

impl Strategy for Endpoints {
    fn default(&self, obj: &mut Value) {
        each_mut(obj, "subsets", |ss| {
            each_mut(ss, "ports", |p| set_default(p, "protocol", json!("TCP")))
        });
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, col("Endpoints", "string"), AGE]
    }

    /// `formatEndpoints` with no port filter.
    fn row(&self, obj: &Value) -> Vec<Value> {
        let subsets = arr(obj, &["subsets"]);
        let text = if subsets.is_empty() {
            "<none>".to_string()
        } else {
            let (max, mut list, mut count, mut more) = (3, Vec::new(), 0, false);
            for ss in subsets {
                let addrs = arr(ss, &["addresses"]);
                let ports = arr(ss, &["ports"]);
                if ports.is_empty() {
                    count += addrs.len();
                    for a in addrs {
                        if list.len() == max {
                            more = true;
                            break;
                        }
                        list.push(s(a, &["ip"]).to_string());
                    }
                    continue;
                }
                for p in ports {
                    count += addrs.len();
                    for a in addrs {
                        if list.len() == max {
                            more = true;
                            break;
                        }
                        let ip = s(a, &["ip"]);
                        let port = int(p, &["port"]);
                        list.push(if ip.contains(':') {
                            format!("[{ip}]:{port}")
                        } else {
                            format!("{ip}:{port}")
                        });
                    }
                }
            }
            let ret = list.join(",");
            if more {
                format!("{ret} + {} more...", count - max)
            } else {
                ret
            }
        };
        vec![name_cell(obj), json!(text), age_cell(obj)]
    }
}

/// `pkg/registry/core/event/strategy.go` (and events.k8s.io, same storage).
pub struct Events;

/// The columns of `printEvent`.
pub fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string"),
        col("Type", "string"),
        col("Reason", "string"),
        col("Object", "string"),
        wide("Subobject", "string"),
        wide("Source", "string"),
        col("Message", "string"),
        wide("First Seen", "string"),
        wide("Count", "string"),
        Column {
            priority: 1,
            ..Column::NAME
        },
    ]
}

/// `printEvent` over core/v1 field names; `events.k8s.io` objects are read
/// through their equivalent fields.
pub fn event_row(obj: &Value) -> Vec<Value> {
    let pick = |a: &[&str], b: &[&str]| {
        let v = super::printing::at(obj, a);
        if v.is_null() {
            super::printing::at(obj, b).clone()
        } else {
            v.clone()
        }
    };
    let first_ts = pick(&["firstTimestamp"], &["deprecatedFirstTimestamp"]);
    let last_ts = pick(&["lastTimestamp"], &["deprecatedLastTimestamp"]);
    let first = if first_ts.is_null() {
        since(&obj["eventTime"])
    } else {
        since(&first_ts)
    };
    let mut last = if last_ts.is_null() {
        first.clone()
    } else {
        since(&last_ts)
    };
    let mut count = pick(&["count"], &["deprecatedCount"]).as_i64().unwrap_or(0);
    if !obj["series"].is_null() {
        last = since(&obj["series"]["lastObservedTime"]);
        count = int(obj, &["series", "count"]);
    } else if count == 0 {
        count = 1;
    }
    let involved = pick(&["involvedObject"], &["regarding"]);
    let kind = s(&involved, &["kind"]).to_lowercase();
    let name = s(&involved, &["name"]);
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let source = pick(&["source"], &["deprecatedSource"]);
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(s(&source, &["component"]), s(obj, &["reportingController"]));
    let instance = first_non_empty(s(&source, &["host"]), s(obj, &["reportingInstance"]));
    let source = match (component.is_empty(), instance.is_empty()) {
        (true, _) => "<unknown>".to_string(),
        (false, true) => component,
        (false, false) => format!("{component}, {instance}"),
    };
    let message = pick(&["message"], &["note"]);
    vec![
        json!(last),
        json!(s(obj, &["type"])),
        json!(s(obj, &["reason"])),
        json!(target),
        json!(s(&involved, &["fieldPath"])),
        json!(source),
        json!(message.as_str().unwrap_or("").trim()),
        json!(first),
        json!(count),
        name_cell(obj),
    ]
}

/// `event.ToSelectableFields`, reading either API's field names.
pub fn event_field(obj: &Value, field: &str) -> Option<String> {
    let involved = if obj["involvedObject"].is_null() {
        &obj["regarding"]
    } else {
        &obj["involvedObject"]
    };
    let source = if obj["source"].is_null() {
        &obj["deprecatedSource"]
    } else {
        &obj["source"]
    };
    Some(match field {
        "involvedObject.kind" => s(involved, &["kind"]).into(),
        "involvedObject.namespace" => s(involved, &["namespace"]).into(),
        "involvedObject.name" => s(involved, &["name"]).into(),
        "involvedObject.uid" => s(involved, &["uid"]).into(),
        "involvedObject.apiVersion" => s(involved, &["apiVersion"]).into(),
        "involvedObject.resourceVersion" => s(involved, &["resourceVersion"]).into(),
        "involvedObject.fieldPath" => s(involved, &["fieldPath"]).into(),
        "reason" => s(obj, &["reason"]).into(),
        "reportingComponent" => s(obj, &["reportingController"]).into(),
        "source" => {
            let c = s(source, &["component"]);
            if c.is_empty() {
                s(obj, &["reportingController"]).into()
            } else {
                c.into()
            }
        }
        "type" => s(obj, &["type"]).into(),
        _ => return None,
    })
}

impl Strategy for Events {
    fn columns(&self) -> Vec<Column> {
        event_columns()
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        event_row(obj)
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        event_field(obj, field)
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let ns = s(obj, &["metadata", "namespace"]);
        let ins = s(obj, &["involvedObject", "namespace"]);
        if !ins.is_empty() && ins != ns && !obj["involvedObject"].is_null() {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                ins,
                "does not match event.namespace",
            ));
        }
        errs
    }
}

// ---------------------------------------------------------------- volumes

/// `pkg/registry/core/persistentvolume/strategy.go`.
pub struct PersistentVolumes;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn validate_access_modes(modes: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if modes.is_empty() {
        errs.push(FieldError::required(
            path,
            "at least 1 access mode is required",
        ));
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(path, m, ACCESS_MODES));
        }
    }
}

impl Strategy for PersistentVolumes {
    /// `SetDefaults_PersistentVolume`.
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            set_default(spec, "volumeMode", json!("Filesystem"));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        set(
            obj,
            "status",
            json!({"phase": "Pending", "lastPhaseTransitionTime": now}),
        );
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_access_modes(
            arr(obj, &["spec", "accessModes"]),
            "spec.accessModes",
            &mut errs,
        );
        if obj["spec"]["capacity"]["storage"].is_null() {
            errs.push(FieldError::required("spec.capacity", ""));
        }
        match s(obj, &["spec", "persistentVolumeReclaimPolicy"]) {
            "Retain" | "Delete" | "Recycle" => {}
            p => errs.push(FieldError::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                p,
                &["Delete", "Recycle", "Retain"],
            )),
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        for key in ["volumeMode", "nodeAffinity"] {
            if !old["spec"][key].is_null() {
                errs.extend(immutable(
                    &new["spec"][key],
                    &old["spec"][key],
                    &format!("spec.{key}"),
                ));
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Capacity", "string"),
            col("Access Modes", "string"),
            col("Reclaim Policy", "string"),
            col("Status", "string"),
            col("Claim", "string"),
            col("StorageClass", "string"),
            col("VolumeAttributesClass", "string"),
            col("Reason", "string"),
            AGE,
            wide("VolumeMode", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let spec = &obj["spec"];
        let claim = if spec["claimRef"].is_null() {
            String::new()
        } else {
            format!(
                "{}/{}",
                s(spec, &["claimRef", "namespace"]),
                s(spec, &["claimRef", "name"])
            )
        };
        let mut phase = s(obj, &["status", "phase"]).to_string();
        if !obj["metadata"]["deletionTimestamp"].is_null() {
            phase = "Terminating".into();
        }
        let class = storage_class_of(obj);
        let unset = |v: &str| {
            if v.is_empty() {
                "<unset>".to_string()
            } else {
                v.to_string()
            }
        };
        vec![
            name_cell(obj),
            json!(spec["capacity"]["storage"].as_str().unwrap_or("0")),
            json!(access_modes(arr(spec, &["accessModes"]))),
            json!(s(spec, &["persistentVolumeReclaimPolicy"])),
            json!(phase),
            json!(claim),
            json!(class),
            json!(unset(s(spec, &["volumeAttributesClassName"]))),
            json!(s(obj, &["status", "reason"])),
            age_cell(obj),
            json!(unset(s(spec, &["volumeMode"]))),
        ]
    }
}

/// `GetPersistentVolume(Claim)Class`: the beta annotation wins.
fn storage_class_of(obj: &Value) -> String {
    let ann = s(
        obj,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    );
    if ann.is_empty() {
        s(obj, &["spec", "storageClassName"]).into()
    } else {
        ann.into()
    }
}

/// `pkg/registry/core/persistentvolumeclaim/strategy.go`.
pub struct PersistentVolumeClaims;

/// `SetDefaults_PersistentVolumeClaimSpec`.
pub fn default_pvc_spec(spec: &mut Value) {
    set_default(spec, "volumeMode", json!("Filesystem"));
}

/// PVC validation shared with StatefulSet volumeClaimTemplates.
pub fn validate_pvc_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_access_modes(
        arr(spec, &["accessModes"]),
        &format!("{path}.accessModes"),
        &mut errs,
    );
    if spec["resources"]["requests"]["storage"].is_null() {
        errs.push(FieldError::required(
            format!("{path}.resources[storage]"),
            "",
        ));
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        errs.extend(labelselector::validate(sel, &format!("{path}.selector")));
    }
    errs
}

impl Strategy for PersistentVolumeClaims {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            default_pvc_spec(spec);
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({"phase": "Pending"}));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_pvc_spec(&obj["spec"], "spec")
    }

    /// `ValidatePersistentVolumeClaimUpdate`: only requests and
    /// volumeAttributesClassName change (and volumeName while unbound).
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        let mut munged = new["spec"].clone();
        if let Some(res) = ensure_obj(&mut munged, "resources") {
            match old["spec"]["resources"].get("requests") {
                Some(r) => set(res, "requests", r.clone()),
                None => {
                    res.as_object_mut().map(|m| m.remove("requests"));
                }
            }
        }
        for key in ["volumeAttributesClassName", "volumeName"] {
            if key == "volumeName" && !s(old, &["spec", "volumeName"]).is_empty() {
                continue;
            }
            match old["spec"].get(key) {
                Some(v) => set(&mut munged, key, v.clone()),
                None => {
                    munged.as_object_mut().map(|m| m.remove(key));
                }
            }
        }
        let strip_empty = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.retain(|_, x| !is_empty(x));
            }
            v
        };
        if strip_empty(&munged) != strip_empty(&old["spec"]) {
            errs.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Status", "string"),
            col("Volume", "string"),
            col("Capacity", "string"),
            col("Access Modes", "string"),
            col("StorageClass", "string"),
            col("VolumeAttributesClass", "string"),
            AGE,
            wide("VolumeMode", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let spec = &obj["spec"];
        let mut phase = s(obj, &["status", "phase"]).to_string();
        if !obj["metadata"]["deletionTimestamp"].is_null() {
            phase = "Terminating".into();
        }
        let (mut capacity, mut modes) = (String::new(), String::new());
        if !s(spec, &["volumeName"]).is_empty() {
            modes = access_modes(arr(obj, &["status", "accessModes"]));
            capacity = obj["status"]["capacity"]["storage"]
                .as_str()
                .unwrap_or("0")
                .to_string();
        }
        let unset = |v: &str| {
            if v.is_empty() {
                "<unset>".to_string()
            } else {
                v.to_string()
            }
        };
        vec![
            name_cell(obj),
            json!(phase),
            json!(s(spec, &["volumeName"])),
            json!(capacity),
            json!(modes),
            json!(storage_class_of(obj)),
            json!(unset(s(
                obj,
                &["status", "currentVolumeAttributesClassName"]
            ))),
            age_cell(obj),
            json!(unset(s(spec, &["volumeMode"]))),
        ]
    }
}

// ---------------------------------------------------------------- limit ranges and quotas

/// `pkg/registry/core/limitrange/strategy.go`.
pub struct LimitRanges;

impl Strategy for LimitRanges {
    /// `SetDefaults_LimitRangeItem` for Container items.
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            each_mut(spec, "limits", |item| {
                if s(item, &["type"]) != "Container" {
                    return;
                }
                let mut default: Map<String, Value> =
                    item["default"].as_object().cloned().unwrap_or_default();
                let mut request: Map<String, Value> = item["defaultRequest"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in item["max"].as_object().cloned().unwrap_or_default() {
                    default.entry(k).or_insert(v);
                }
                for (k, v) in &default {
                    request.entry(k.clone()).or_insert(v.clone());
                }
                for (k, v) in item["min"].as_object().cloned().unwrap_or_default() {
                    request.entry(k).or_insert(v);
                }
                if !default.is_empty() {
                    set(item, "default", Value::Object(default));
                }
                if !request.is_empty() {
                    set(item, "defaultRequest", Value::Object(request));
                }
            });
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, CREATED_AT]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![name_cell(obj), created_at_cell(obj)]
    }
}

/// `pkg/registry/core/resourcequota/strategy.go`.
pub struct ResourceQuotas;

impl Strategy for ResourceQuotas {
    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({}));
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            AGE,
            col("Request", "string"),
            col("Limit", "string"),
        ]
    }

    /// `printResourceQuota`.
    fn row(&self, obj: &Value) -> Vec<Value> {
        let hard = obj["spec"]["hard"].as_object().cloned().unwrap_or_default();
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        let (mut request, mut limit) = (Vec::new(), Vec::new());
        for name in names {
            let used = obj["status"]["used"][name.as_str()].as_str().unwrap_or("0");
            let h = hard[name.as_str()].as_str().unwrap_or("0");
            let text = format!("{name}: {used}/{h}");
            if name.split('.').next() == Some("limits") && name.contains('.') {
                limit.push(text);
            } else {
                request.push(text);
            }
        }
        vec![
            name_cell(obj),
            age_cell(obj),
            json!(request.join(", ")),
            json!(limit.join(", ")),
        ]
    }
}

// ---------------------------------------------------------------- replication controllers and pod templates

/// `pkg/registry/core/replicationcontroller/strategy.go`.
pub struct ReplicationControllers;

impl Strategy for ReplicationControllers {
    /// `SetDefaults_ReplicationController`.
    fn default(&self, obj: &mut Value) {
        let labels = obj["spec"]["template"]["metadata"]["labels"].clone();
        if labels.is_object() {
            if is_empty(&obj["spec"]["selector"])
                && let Some(spec) = child(obj, "spec")
            {
                set(spec, "selector", labels.clone());
            }
            if is_empty(&obj["metadata"]["labels"])
                && let Some(meta) = ensure_obj(obj, "metadata")
            {
                set(meta, "labels", labels);
            }
        }
        if let Some(spec) = child(obj, "spec") {
            set_default(spec, "replicas", json!(1));
            if let Some(t) = child(spec, "template") {
                default_template(t);
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({"replicas": 0}));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = &obj["spec"];
        let selector = &spec["selector"];
        match selector.as_object() {
            Some(m) if !m.is_empty() => errs.extend(validate_labels(m, "spec.selector")),
            _ => errs.push(FieldError::required("spec.selector", "")),
        }
        if let Some(r) = spec["replicas"].as_i64().filter(|r| *r < 0) {
            errs.push(FieldError::invalid("spec.replicas", r, IS_NEGATIVE));
        }
        let matches = is_empty(selector)
            || labelselector::map_matches(selector, &spec["template"]["metadata"]["labels"]);
        errs.extend(podspec::validate_controller_template(
            &spec["template"],
            matches,
            "spec.template",
            "ReplicationController",
        ));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        replica_columns()
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        replica_row(obj, format_labels(&obj["spec"]["selector"]))
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "status.replicas").then(|| int(obj, &["status", "replicas"]).to_string())
    }
}

/// `pkg/registry/core/podtemplate/strategy.go`.
pub struct PodTemplates;

impl Strategy for PodTemplates {
    fn default(&self, obj: &mut Value) {
        if let Some(t) = child(obj, "template") {
            default_template(t);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        podspec::validate_template(&obj["template"], "template")
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        new.get("template") != old.get("template")
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "Names of each container in the template.",
                ..col("Containers", "string")
            },
            Column {
                description: "Images referenced by each container in the template.",
                ..col("Images", "string")
            },
            Column {
                description: "The labels for the pod template.",
                ..col("Pod Labels", "string")
            },
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = container_cells(&obj["template"]["spec"]);
        vec![
            name_cell(obj),
            names,
            images,
            json!(format_labels(&obj["template"]["metadata"]["labels"])),
        ]
    }
}

#[cfg(test)]
mod tests;
