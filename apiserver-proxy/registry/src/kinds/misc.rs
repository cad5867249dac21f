//! Strategies for the remaining groups: storage, scheduling, node,
//! coordination, discovery, policy, autoscaling, certificates and events.k8s.io
//! (their `v1/defaults.go`,
//! validation and printers).
//!
//! Each strategy stays small; none reads other objects, and CRD schema work
//! belongs to [`crate::apiextensions`], not here.

use std::sync::Arc;

use serde_json::{Value, json};

use super::printing::{
    AGE, arr, col, human_duration, int, int_or_string, list_with_more, name_cell, s,
};
use super::{child, each_mut, ensure_obj, labelselector, set, set_default};
use crate::error::FieldError;
use crate::strategy::{Column, Strategy};
use crate::validation::{dns1123_label, immutable};

/// The strategy for `resource` in `group`, if this module serves it.
pub fn strategy(group: &str, resource: &str) -> Option<Arc<dyn Strategy>> {
    Some(match (group, resource) {
        ("storage.k8s.io", "storageclasses") => Arc::new(StorageClasses),
        ("scheduling.k8s.io", "priorityclasses") => Arc::new(PriorityClasses),
        ("node.k8s.io", "runtimeclasses") => Arc::new(RuntimeClasses),
        ("coordination.k8s.io", "leases") => Arc::new(Leases),
        ("discovery.k8s.io", "endpointslices") => Arc::new(EndpointSlices),
        ("policy", "poddisruptionbudgets") => Arc::new(PodDisruptionBudgets),
        ("autoscaling", "horizontalpodautoscalers") => Arc::new(HorizontalPodAutoscalers),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            Arc::new(CertificateSigningRequests)
        }
        ("events.k8s.io", "events") => Arc::new(super::core::Events),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            Arc::new(crate::apiextensions::crd_strategy::CustomResourceDefinitions)
        }
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => Arc::new(super::admissionregistration::WebhookConfigurations),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            Arc::new(super::admissionregistration::ValidatingAdmissionPolicies)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            Arc::new(super::admissionregistration::ValidatingAdmissionPolicyBindings)
        }
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies") => {
            Arc::new(super::admissionregistration::MutatingAdmissionPolicies)
        }
        ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings") => {
            Arc::new(super::admissionregistration::MutatingAdmissionPolicyBindings)
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------- storage classes

/// `pkg/registry/storage/storageclass/strategy.go`.
pub struct StorageClasses;

impl Strategy for StorageClasses {
    /// `SetDefaults_StorageClass`.
    fn default(&self, obj: &mut Value) {
        set_default(obj, "reclaimPolicy", json!("Delete"));
        set_default(obj, "volumeBindingMode", json!("Immediate"));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if s(obj, &["provisioner"]).is_empty() {
            errs.push(FieldError::required("provisioner", ""));
        }
        match s(obj, &["reclaimPolicy"]) {
            "Delete" | "Retain" => {}
            p => errs.push(FieldError::not_supported(
                "reclaimPolicy",
                p,
                &["Delete", "Retain"],
            )),
        }
        match s(obj, &["volumeBindingMode"]) {
            "Immediate" | "WaitForFirstConsumer" => {}
            m => errs.push(FieldError::not_supported(
                "volumeBindingMode",
                m,
                &["Immediate", "WaitForFirstConsumer"],
            )),
        }
        errs
    }

    /// `ValidateStorageClassUpdate`.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        let norm = |v: &Value| {
            if v.as_object().is_some_and(|m| m.is_empty()) {
                Value::Null
            } else {
                v.clone()
            }
        };
        if norm(&new["parameters"]) != norm(&old["parameters"]) {
            errs.push(FieldError::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if new["provisioner"] != old["provisioner"] {
            errs.push(FieldError::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if new["reclaimPolicy"] != old["reclaimPolicy"] {
            errs.push(FieldError::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        errs.extend(immutable(
            &new["volumeBindingMode"],
            &old["volumeBindingMode"],
            "volumeBindingMode",
        ));
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Provisioner", "string"),
            col("ReclaimPolicy", "string"),
            col("VolumeBindingMode", "string"),
            col("AllowVolumeExpansion", "string"),
            AGE,
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let ann = |k: &str| s(obj, &["metadata", "annotations", k]) == "true";
        let mut name = s(obj, &["metadata", "name"]).to_string();
        if ann("storageclass.kubernetes.io/is-default-class")
            || ann("storageclass.beta.kubernetes.io/is-default-class")
        {
            name.push_str(" (default)");
        }
        let or = |k: &str, d: &str| {
            let v = s(obj, &[k]);
            if v.is_empty() {
                d.to_string()
            } else {
                v.to_string()
            }
        };
        vec![
            json!(name),
            json!(s(obj, &["provisioner"])),
            json!(or("reclaimPolicy", "Delete")),
            json!(or("volumeBindingMode", "Immediate")),
            json!(obj["allowVolumeExpansion"].as_bool().unwrap_or(false)),
            super::printing::age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------- priority and runtime classes, leases

/// `pkg/registry/scheduling/priorityclass/strategy.go`.
pub struct PriorityClasses;

impl Strategy for PriorityClasses {
    fn default(&self, obj: &mut Value) {
        set_default(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let name = s(obj, &["metadata", "name"]);
        let system = ["system-node-critical", "system-cluster-critical"];
        if name.starts_with("system-") && !system.contains(&name) {
            return vec![FieldError::invalid(
                "metadata.name",
                name,
                "priority class names with 'system-' prefix are reserved",
            )];
        }
        Vec::new()
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if new["value"] != old["value"] {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        errs.extend(immutable(
            &new["preemptionPolicy"],
            &old["preemptionPolicy"],
            "preemptionPolicy",
        ));
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Value", "integer"),
            col("Global-Default", "boolean"),
            AGE,
            col("PreemptionPolicy", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(int(obj, &["value"])),
            json!(obj["globalDefault"].as_bool().unwrap_or(false)),
            super::printing::age_cell(obj),
            json!(s(obj, &["preemptionPolicy"])),
        ]
    }
}

/// `pkg/registry/node/runtimeclass/strategy.go`.
pub struct RuntimeClasses;

impl Strategy for RuntimeClasses {
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let handler = s(obj, &["handler"]);
        if handler.is_empty() {
            return vec![FieldError::required("handler", "")];
        }
        dns1123_label(handler)
            .into_iter()
            .map(|m| FieldError::invalid("handler", handler, m))
            .collect()
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(immutable(&new["handler"], &old["handler"], "handler"));
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, col("Handler", "string"), AGE]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(s(obj, &["handler"])),
            super::printing::age_cell(obj),
        ]
    }
}

/// `pkg/registry/coordination/lease/strategy.go`.
pub struct Leases;

impl Strategy for Leases {
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        match obj["spec"]["leaseDurationSeconds"].as_i64() {
            Some(d) if d <= 0 => vec![FieldError::invalid(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            )],
            _ => Vec::new(),
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, col("Holder", "string"), AGE]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(s(obj, &["spec", "holderIdentity"])),
            super::printing::age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------- endpoint slices

/// `pkg/registry/discovery/endpointslice/strategy.go`.
pub struct EndpointSlices;

impl Strategy for EndpointSlices {
    /// `SetDefaults_EndpointPort`.
    fn default(&self, obj: &mut Value) {
        each_mut(obj, "ports", |p| {
            if p.is_object() && p.get("name").is_none_or(Value::is_null) {
                set(p, "name", json!(""));
            }
            set_default(p, "protocol", json!("TCP"));
        });
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        match s(obj, &["addressType"]) {
            "IPv4" | "IPv6" | "FQDN" => Vec::new(),
            "" => vec![FieldError::required("addressType", "")],
            t => vec![FieldError::not_supported(
                "addressType",
                t,
                &["FQDN", "IPv4", "IPv6"],
            )],
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(immutable(
            &new["addressType"],
            &old["addressType"],
            "addressType",
        ));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    /// Any change outside metadata bumps the generation.
    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        let strip = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut().map(|m| m.remove("metadata"));
            v
        };
        strip(new) != strip(old)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("AddressType", "string"),
            col("Ports", "string"),
            col("Endpoints", "string"),
            AGE,
        ]
    }

    /// `printEndpointSlice` (`formatDiscoveryPorts`, `formatDiscoveryEndpoints`).
    fn row(&self, obj: &Value) -> Vec<Value> {
        let ports = arr(obj, &["ports"]);
        let port_list: Vec<String> = ports
            .iter()
            .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_string(),
                _ => "*".to_string(),
            })
            .collect();
        let addrs: Vec<String> = arr(obj, &["endpoints"])
            .iter()
            .flat_map(|e| {
                arr(e, &["addresses"])
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
            })
            .collect();
        vec![
            name_cell(obj),
            json!(s(obj, &["addressType"])),
            json!(list_with_more(&port_list, port_list.len(), 3)),
            json!(list_with_more(&addrs, addrs.len(), 3)),
            super::printing::age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------- disruption budgets and autoscalers

/// `pkg/registry/policy/poddisruptionbudget/strategy.go`.
pub struct PodDisruptionBudgets;

impl Strategy for PodDisruptionBudgets {
    fn prepare_for_create(&self, obj: &mut Value) {
        set(
            obj,
            "status",
            json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
        );
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let mut errs = Vec::new();
        if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
            errs.push(FieldError::invalid(
                "spec",
                spec.clone(),
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
            errs.extend(labelselector::validate(sel, "spec.selector"));
        }
        match s(spec, &["unhealthyPodEvictionPolicy"]) {
            "" | "IfHealthyBudget" | "AlwaysAllow" => {}
            p => errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            )),
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Min Available", "string"),
            col("Max Unavailable", "string"),
            col("Allowed Disruptions", "integer"),
            AGE,
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(int_or_string(&obj["spec"]["minAvailable"], "N/A")),
            json!(int_or_string(&obj["spec"]["maxUnavailable"], "N/A")),
            json!(int(obj, &["status", "disruptionsAllowed"])),
            super::printing::age_cell(obj),
        ]
    }
}

/// `pkg/registry/autoscaling/horizontalpodautoscaler/strategy.go`, for both
/// `autoscaling/v1` and `autoscaling/v2` shapes (told apart by `apiVersion`).
pub struct HorizontalPodAutoscalers;

fn is_v1(obj: &Value) -> bool {
    s(obj, &["apiVersion"]) == "autoscaling/v1"
}

/// `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules`.
fn default_scaling_rules(rules: &mut Value, up: bool) {
    let (window, policies) = if up {
        (
            0,
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        )
    } else {
        (
            300,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        )
    };
    set_default(rules, "stabilizationWindowSeconds", json!(window));
    set_default(rules, "selectPolicy", json!("Max"));
    set_default(rules, "policies", policies);
}

impl Strategy for HorizontalPodAutoscalers {
    /// `SetDefaults_HorizontalPodAutoscaler` (v1 and v2).
    fn default(&self, obj: &mut Value) {
        let v1 = is_v1(obj);
        let Some(spec) = child(obj, "spec") else {
            return;
        };
        set_default(spec, "minReplicas", json!(1));
        if v1 {
            return;
        }
        if arr(spec, &["metrics"]).is_empty() {
            set(
                spec,
                "metrics",
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
        }
        if let Some(b) = child(spec, "behavior") {
            if let Some(up) = ensure_obj(b, "scaleUp") {
                default_scaling_rules(up, true);
            }
            if let Some(down) = ensure_obj(b, "scaleDown") {
                default_scaling_rules(down, false);
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let status = if is_v1(obj) {
            json!({"currentReplicas": 0, "desiredReplicas": 0})
        } else {
            json!({"desiredReplicas": 0})
        };
        set(obj, "status", status);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let mut errs = Vec::new();
        let min = spec["minReplicas"].as_i64().unwrap_or(1);
        let max = int(spec, &["maxReplicas"]);
        if min < 1 {
            errs.push(FieldError::invalid(
                "spec.minReplicas",
                min,
                "must be greater than or equal to 1",
            ));
        }
        if max < 1 {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                max,
                "must be greater than 0",
            ));
        } else if max < min {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        for key in ["kind", "name"] {
            if s(spec, &["scaleTargetRef", key]).is_empty() {
                errs.push(FieldError::required(
                    format!("spec.scaleTargetRef.{key}"),
                    "",
                ));
            }
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Reference", "string"),
            col("Targets", "string"),
            col("MinPods", "string"),
            col("MaxPods", "integer"),
            col("Replicas", "integer"),
            AGE,
        ]
    }

    /// `printHorizontalPodAutoscaler` with `formatHPAMetrics` for resource
    /// metrics (other metric types print as `<unknown>/<target>`).
    fn row(&self, obj: &Value) -> Vec<Value> {
        let spec = &obj["spec"];
        let reference = format!(
            "{}/{}",
            s(spec, &["scaleTargetRef", "kind"]),
            s(spec, &["scaleTargetRef", "name"])
        );
        let targets = if is_v1(obj) {
            match spec["targetCPUUtilizationPercentage"].as_i64() {
                None => "<none>".to_string(),
                Some(t) => {
                    let cur = obj["status"]["currentCPUUtilizationPercentage"]
                        .as_i64()
                        .map_or("<unknown>".to_string(), |c| format!("{c}%"));
                    format!("cpu: {cur}/{t}%")
                }
            }
        } else {
            hpa_metrics(
                arr(spec, &["metrics"]),
                arr(obj, &["status", "currentMetrics"]),
            )
        };
        let min = spec["minReplicas"]
            .as_i64()
            .map_or("<unset>".to_string(), |m| m.to_string());
        vec![
            name_cell(obj),
            json!(reference),
            json!(targets),
            json!(min),
            json!(int(spec, &["maxReplicas"])),
            json!(int(obj, &["status", "currentReplicas"])),
            super::printing::age_cell(obj),
        ]
    }
}

fn hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    for (i, m) in specs.iter().enumerate() {
        let status = statuses.get(i).unwrap_or(&Value::Null);
        let text = match s(m, &["type"]) {
            "Resource" | "ContainerResource" => {
                let key = if s(m, &["type"]) == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let r = &m[key];
                let name = s(r, &["name"]);
                let current = &status[key]["current"];
                if let Some(avg) = r["target"]["averageValue"].as_str() {
                    let cur = current["averageValue"].as_str().unwrap_or("<unknown>");
                    format!("{name}: {cur}/{avg}")
                } else {
                    let cur = current["averageUtilization"]
                        .as_i64()
                        .map_or("<unknown>".to_string(), |c| format!("{c}%"));
                    let target = r["target"]["averageUtilization"]
                        .as_i64()
                        .map_or("<auto>".to_string(), |t| format!("{t}%"));
                    format!("{name}: {cur}/{target}")
                }
            }
            _ => "<unknown>".to_string(),
        };
        list.push(text);
    }
    let max = 2;
    let shown = list
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > max {
        format!("{shown} + {} more...", list.len() - max)
    } else {
        shown
    }
}

// ---------------------------------------------------------------- certificates

/// `pkg/registry/certificates/certificates/strategy.go`.
pub struct CertificateSigningRequests;

impl Strategy for CertificateSigningRequests {
    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({}));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if s(obj, &["spec", "request"]).is_empty() {
            errs.push(FieldError::invalid(
                "spec.request",
                json!([]),
                "PEM block type must be CERTIFICATE REQUEST",
            ));
        }
        if s(obj, &["spec", "signerName"]).is_empty() {
            errs.push(FieldError::required("spec.signerName", ""));
        }
        if arr(obj, &["spec", "usages"]).is_empty() {
            errs.push(FieldError::required("spec.usages", ""));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            AGE,
            col("SignerName", "string"),
            col("Requestor", "string"),
            col("RequestedDuration", "string"),
            col("Condition", "string"),
        ]
    }

    /// `printCertificateSigningRequest` / `extractCSRStatus`.
    fn row(&self, obj: &Value) -> Vec<Value> {
        let has = |t: &str| {
            arr(obj, &["status", "conditions"])
                .iter()
                .any(|c| s(c, &["type"]) == t)
        };
        let mut status = if has("Denied") {
            "Denied".to_string()
        } else if has("Approved") {
            "Approved".to_string()
        } else {
            "Pending".to_string()
        };
        if has("Failed") {
            status.push_str(",Failed");
        }
        if !s(obj, &["status", "certificate"]).is_empty() {
            status.push_str(",Issued");
        }
        let signer = s(obj, &["spec", "signerName"]);
        let duration = obj["spec"]["expirationSeconds"]
            .as_i64()
            .map_or("<none>".to_string(), human_duration);
        vec![
            name_cell(obj),
            super::printing::age_cell(obj),
            json!(if signer.is_empty() { "<none>" } else { signer }),
            json!(s(obj, &["spec", "username"])),
            json!(duration),
            json!(status),
        ]
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "spec.signerName").then(|| s(obj, &["spec", "signerName"]).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_class_defaults_and_update() {
        let mut sc = json!({"metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "x.io/p", "parameters": {"a": "1"}});
        StorageClasses.default(&mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        assert!(StorageClasses.validate(&sc).is_empty());
        let mut new = sc.clone();
        new["parameters"] = json!({"a": "2"});
        assert_eq!(
            StorageClasses.validate_update(&new, &sc)[0].to_string(),
            "parameters: Forbidden: updates to parameters are forbidden."
        );
        let row = StorageClasses.row(&sc);
        assert_eq!(row[0], "fast (default)");
        assert_eq!(row[4], false);
    }

    #[test]
    fn hpa_v2_defaults_and_row() {
        let mut hpa = json!({"apiVersion": "autoscaling/v2", "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        HorizontalPodAutoscalers.default(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            60
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["value"],
            4
        );
        let row = HorizontalPodAutoscalers.row(&hpa);
        assert_eq!(
            &row[1..5],
            &[
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("1"),
                json!(5)
            ]
        );
    }

    #[test]
    fn endpoint_slice_and_pdb() {
        let mut eps = json!({"addressType": "IPv4", "ports": [{"port": 80}], "endpoints": [{"addresses": ["10.0.0.1"]}]});
        EndpointSlices.default(&mut eps);
        assert_eq!(
            eps["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
        assert_eq!(
            &EndpointSlices.row(&eps)[1..4],
            &[json!("IPv4"), json!("80"), json!("10.0.0.1")]
        );
        let pdb = json!({"spec": {"minAvailable": 1, "maxUnavailable": "10%"}});
        assert_eq!(
            PodDisruptionBudgets.validate(&pdb)[0].detail,
            "minAvailable and maxUnavailable cannot be both set"
        );
        assert_eq!(
            &PodDisruptionBudgets.row(&pdb)[1..3],
            &[json!("1"), json!("10%")]
        );
    }

    #[test]
    fn csr_row() {
        let csr = json!({"spec": {"signerName": "kubernetes.io/kubelet-serving", "username": "bob", "expirationSeconds": 3600},
            "status": {"conditions": [{"type": "Approved"}], "certificate": "abc"}});
        let row = CertificateSigningRequests.row(&csr);
        assert_eq!(
            &row[2..],
            &[
                json!("kubernetes.io/kubelet-serving"),
                json!("bob"),
                json!("60m"),
                json!("Approved,Issued")
            ]
        );
    }
}
