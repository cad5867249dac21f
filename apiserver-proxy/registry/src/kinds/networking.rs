//! Strategies for `networking.k8s.io`: ingresses, ingressclasses,
//! networkpolicies (`pkg/apis/networking/v1/defaults.go`,
//! `pkg/apis/networking/validation`, `pkg/registry/networking/*`).
//!
//! Owns object rules and printing only; never programs any network.

use std::sync::Arc;

use serde_json::{Value, json};

use super::printing::{AGE, arr, col, format_label_selector, load_balancer_status, name_cell, s};
use super::{child, each_mut, labelselector, set, set_default};
use crate::error::FieldError;
use crate::strategy::{Column, Strategy};

/// The strategy for `resource` in `group`, if this module serves it.
pub fn strategy(group: &str, resource: &str) -> Option<Arc<dyn Strategy>> {
    if group != "networking.k8s.io" {
        return None;
    }
    Some(match resource {
        "ingresses" => Arc::new(Ingresses),
        "ingressclasses" => Arc::new(IngressClasses),
        "networkpolicies" => Arc::new(NetworkPolicies),
        _ => return None,
    })
}

/// `pkg/registry/networking/ingress/strategy.go`.
pub struct Ingresses;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

fn validate_backend(b: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let has_service = !b["service"].is_null();
    let has_resource = !b["resource"].is_null();
    match (has_service, has_resource) {
        (true, true) => errs.push(FieldError::invalid(
            path,
            b.clone(),
            "cannot set both resource and service backends",
        )),
        (false, false) => errs.push(FieldError::invalid(
            path,
            b.clone(),
            "resource or service backend is required",
        )),
        (true, false) => {
            let svc = &b["service"];
            if s(svc, &["name"]).is_empty() {
                errs.push(FieldError::required(format!("{path}.service.name"), ""));
            }
            let port = &svc["port"];
            let (has_name, has_number) = (
                !s(port, &["name"]).is_empty(),
                port["number"].as_i64().unwrap_or(0) != 0,
            );
            if has_name && has_number {
                errs.push(FieldError::invalid(
                    format!("{path}.service.port"),
                    port.clone(),
                    "cannot set both port name & port number",
                ));
            } else if !has_name && !has_number {
                errs.push(FieldError::invalid(
                    format!("{path}.service.port"),
                    port.clone(),
                    "port name or number is required",
                ));
            }
        }
        (false, true) => {}
    }
}

impl Strategy for Ingresses {
    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({"loadBalancer": {}}));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = &obj["spec"];
        let rules = arr(spec, &["rules"]);
        if spec["defaultBackend"].is_null() && rules.is_empty() {
            errs.push(FieldError::invalid(
                "spec.rules",
                json!([]),
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if !spec["defaultBackend"].is_null() {
            validate_backend(&spec["defaultBackend"], "spec.defaultBackend", &mut errs);
        }
        for (i, r) in rules.iter().enumerate() {
            for (j, p) in arr(r, &["http", "paths"]).iter().enumerate() {
                let pp = format!("spec.rules[{i}].http.paths[{j}]");
                let path = s(p, &["path"]);
                match s(p, &["pathType"]) {
                    "" => errs.push(FieldError::required(
                        format!("{pp}.pathType"),
                        "pathType must be specified",
                    )),
                    "Exact" | "Prefix" => {
                        if !path.starts_with('/') {
                            errs.push(FieldError::invalid(
                                format!("{pp}.path"),
                                path,
                                "must be an absolute path",
                            ));
                        }
                    }
                    "ImplementationSpecific" => {
                        if !path.is_empty() && !path.starts_with('/') {
                            errs.push(FieldError::invalid(
                                format!("{pp}.path"),
                                path,
                                "must be an absolute path",
                            ));
                        }
                    }
                    t => errs.push(FieldError::not_supported(
                        format!("{pp}.pathType"),
                        t,
                        PATH_TYPES,
                    )),
                }
                validate_backend(&p["backend"], &format!("{pp}.backend"), &mut errs);
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
            col("Class", "string"),
            col("Hosts", "string"),
            col("Address", "string"),
            col("Ports", "string"),
            AGE,
        ]
    }

    /// `printIngress`.
    fn row(&self, obj: &Value) -> Vec<Value> {
        let spec = &obj["spec"];
        let rules = arr(spec, &["rules"]);
        let mut hosts: Vec<&str> = Vec::new();
        let mut more = false;
        for r in rules {
            if hosts.len() == 3 {
                more = true;
            }
            let h = s(r, &["host"]);
            if !more && !h.is_empty() {
                hosts.push(h);
            }
        }
        let hosts = if hosts.is_empty() {
            "*".to_string()
        } else if more {
            format!("{} + {} more...", hosts.join(","), rules.len() - 3)
        } else {
            hosts.join(",")
        };
        let ports = if arr(spec, &["tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name_cell(obj),
            json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
            json!(hosts),
            json!(load_balancer_status(&obj["status"]["loadBalancer"])),
            json!(ports),
            super::printing::age_cell(obj),
        ]
    }
}

/// `pkg/registry/networking/ingressclass/strategy.go`.
pub struct IngressClasses;

impl Strategy for IngressClasses {
    /// `SetDefaults_IngressClass`: parameters scope defaults to Cluster.
    fn default(&self, obj: &mut Value) {
        if let Some(p) = child(obj, "spec").and_then(|s| child(s, "parameters")) {
            set_default(p, "scope", json!("Cluster"));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let c = s(obj, &["spec", "controller"]);
        if c.is_empty() {
            return vec![FieldError::required("spec.controller", "")];
        }
        Vec::new()
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(crate::validation::immutable(
            &new["spec"]["controller"],
            &old["spec"]["controller"],
            "spec.controller",
        ));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Controller", "string"),
            col("Parameters", "string"),
            AGE,
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let p = &obj["spec"]["parameters"];
        let params = if p.is_null() {
            "<none>".to_string()
        } else {
            let mut k = s(p, &["kind"]).to_string();
            if let Some(g) = p["apiGroup"].as_str() {
                k = format!("{k}.{g}");
            }
            format!("{k}/{}", s(p, &["name"]))
        };
        vec![
            name_cell(obj),
            json!(s(obj, &["spec", "controller"])),
            json!(params),
            super::printing::age_cell(obj),
        ]
    }
}

/// `pkg/registry/networking/networkpolicy/strategy.go`.
pub struct NetworkPolicies;

impl Strategy for NetworkPolicies {
    /// `SetDefaults_NetworkPolicy` and `_NetworkPolicyPort`.
    fn default(&self, obj: &mut Value) {
        let Some(spec) = child(obj, "spec") else {
            return;
        };
        for dir in ["ingress", "egress"] {
            each_mut(spec, dir, |rule| {
                each_mut(rule, "ports", |p| set_default(p, "protocol", json!("TCP")))
            });
        }
        if arr(spec, &["policyTypes"]).is_empty() {
            let mut types = vec![json!("Ingress")];
            if !arr(spec, &["egress"]).is_empty() {
                types.push(json!("Egress"));
            }
            set(spec, "policyTypes", json!(types));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let mut errs = labelselector::validate(&spec["podSelector"], "spec.podSelector");
        for (i, t) in arr(spec, &["policyTypes"]).iter().enumerate() {
            let t = t.as_str().unwrap_or("");
            if t != "Ingress" && t != "Egress" {
                errs.push(FieldError::not_supported(
                    format!("spec.policyTypes[{i}]"),
                    t,
                    &["Egress", "Ingress"],
                ));
            }
        }
        for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
            for (i, rule) in arr(spec, &[dir]).iter().enumerate() {
                for (j, p) in arr(rule, &["ports"]).iter().enumerate() {
                    let proto = s(p, &["protocol"]);
                    if !["TCP", "UDP", "SCTP"].contains(&proto) {
                        errs.push(FieldError::not_supported(
                            format!("spec.{dir}[{i}].ports[{j}].protocol"),
                            proto,
                            &["SCTP", "TCP", "UDP"],
                        ));
                    }
                }
                for (j, peer) in arr(rule, &[peers]).iter().enumerate() {
                    let pp = format!("spec.{dir}[{i}].{peers}[{j}]");
                    let n = ["podSelector", "namespaceSelector", "ipBlock"]
                        .iter()
                        .filter(|k| !peer[**k].is_null())
                        .count();
                    if n == 0 {
                        errs.push(FieldError::required(pp.clone(), "must specify a peer"));
                    }
                    if !peer["ipBlock"].is_null() && n > 1 {
                        errs.push(FieldError::forbidden(
                            pp.clone(),
                            "may not specify both ipBlock and another peer",
                        ));
                    }
                    if let Some(sel) = peer.get("podSelector").filter(|v| !v.is_null()) {
                        errs.extend(labelselector::validate(sel, &format!("{pp}.podSelector")));
                    }
                    if !peer["ipBlock"].is_null() && s(peer, &["ipBlock", "cidr"]).is_empty() {
                        errs.push(FieldError::required(format!("{pp}.ipBlock.cidr"), ""));
                    }
                }
            }
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, col("Pod-Selector", "string"), AGE]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(format_label_selector(&obj["spec"]["podSelector"])),
            super::printing::age_cell(obj),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_policy_defaults() {
        let mut np = json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}});
        NetworkPolicies.default(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        assert!(NetworkPolicies.validate(&np).is_empty());
        assert_eq!(NetworkPolicies.row(&np)[1], "<none>");
    }

    #[test]
    fn ingress_validation_and_row() {
        let ing = json!({"spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "x", "backend": {"service": {"name": "web", "port": {}}}}]}}]}});
        let errs: Vec<String> = Ingresses
            .validate(&ing)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
                "spec.rules[0].http.paths[1].backend.service.port: Invalid value: {}: port name or number is required",
            ]
        );
        let row = Ingresses.row(&ing);
        assert_eq!(
            &row[1..5],
            &[
                json!("nginx"),
                json!("a.example.com"),
                json!(""),
                json!("80")
            ]
        );
    }
}
