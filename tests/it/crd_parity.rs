//! CRD parity with the real kube-apiserver (the e2e host, v1.37.2): the same
//! CRD must come out with the same status (accepted names, conditions,
//! stored versions) and finalizers; the same custom resources must be
//! defaulted and pruned alike, and the same invalid ones refused with the
//! same messages; the same invalid CRDs must be refused alike.

use std::time::Duration;

use crate::support::{Server, kubectl_with_stdin, wait_for};
use nestkube_e2e::HostCluster;
use serde_json::{Value, json};

/// The schema of the parity CRD's `spec`: most OpenAPI and CEL features.
const SPEC_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["size"],
  "x-kubernetes-validations": [
    {"rule": "self.size <= self.maxSize", "messageExpression": "self.mode + ' gizmo exceeds maxSize'"},
    {"rule": "!has(self.mode) || self.mode != 'Off' || self.size == 0", "message": "an Off gizmo has size 0", "reason": "FieldValueForbidden", "fieldPath": ".size"}
  ],
  "properties": {
    "size": {"type": "integer", "minimum": 0},
    "maxSize": {"type": "integer", "default": 10},
    "mode": {"type": "string", "enum": ["On", "Off", "Auto"], "default": "Auto"},
    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
    "port": {"x-kubernetes-int-or-string": true},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3, "x-kubernetes-list-type": "set"},
    "ports": {
      "type": "array",
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
      "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"},
        "number": {"type": "integer", "format": "int32", "default": 80}}}
    },
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "note": {"type": "string", "nullable": true},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
  }
}"#;

/// A CRD of group `group` exercising schema features.
fn crd(group: &str) -> Value {
    let spec: Value = serde_json::from_str(SPEC_SCHEMA).expect("schema");
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": spec,
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gizmos.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema}
            }]
        }
    })
}

/// Invalid custom resources (name, spec).
fn invalid() -> Vec<(&'static str, Value)> {
    vec![
        ("missing required", json!({})),
        ("wrong type", json!({"size": "big"})),
        ("below minimum", json!({"size": -1})),
        ("not in enum", json!({"size": 1, "mode": "Sideways"})),
        (
            "pattern and length",
            json!({"size": 1, "name": "ABCDEFGHIJ"}),
        ),
        (
            "too many items",
            json!({"size": 1, "tags": ["a", "b", "c", "d"]}),
        ),
        ("duplicate set item", json!({"size": 1, "tags": ["a", "a"]})),
        (
            "duplicate map key",
            json!({"size": 1, "ports": [{"name": "x"}, {"name": "x"}]}),
        ),
        (
            "additionalProperties type",
            json!({"size": 1, "labels": {"a": 1}}),
        ),
        ("cel messageExpression", json!({"size": 20})),
        (
            "cel reason and fieldPath",
            json!({"size": 3, "mode": "Off"}),
        ),
        (
            "int32 range",
            json!({"size": 1, "ports": [{"name": "a", "number": 3000000000u64}]}),
        ),
    ]
}

fn gizmo(group: &str, name: &str, spec: Value) -> String {
    json!({"apiVersion": format!("{group}/v1"), "kind": "Gizmo",
           "metadata": {"name": name}, "spec": spec})
    .to_string()
}

/// The parts of a CRD's status that do not depend on time.
fn status_shape(crd: &Value) -> Value {
    let mut status = crd["status"].clone();
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        c.as_object_mut().map(|m| m.remove("lastTransitionTime"));
    }
    status
}

fn strip_server_fields(v: &mut Value) {
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
            "generation",
        ] {
            m.remove(k);
        }
    }
}

#[test]
fn custom_resources_match_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let bin = host.bins().kubectl.to_string_lossy().into_owned();
    let group = format!("p{}.parity.example.com", std::process::id());
    let targets = [
        ("upstream", host.kubeconfig()),
        ("nestkube", server.kubeconfig.clone()),
    ];
    let definition = crd(&group).to_string();
    let name = format!("gizmos.{group}");
    let mut crds = Vec::new();
    for (who, kc) in &targets {
        let (ok, _, err) =
            kubectl_with_stdin(&bin, kc, &["create", "-f", "-", "-o", "json"], &definition);
        assert!(ok, "{who}: {err}");
        let established = wait_for(Duration::from_secs(30), || {
            let (_, v, _) = kubectl_with_stdin(&bin, kc, &["get", "crd", &name, "-o", "json"], "");
            v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
        assert!(established, "{who}: not established");
        // The Established condition may be written after NamesAccepted; read once both are there.
        let (_, v, _) = kubectl_with_stdin(&bin, kc, &["get", "crd", &name, "-o", "json"], "");
        crds.push(v);
    }
    let mut failures = Vec::new();
    if status_shape(&crds[0]) != status_shape(&crds[1]) {
        failures.push(format!(
            "CRD status:\n  upstream: {}\n  nestkube: {}",
            status_shape(&crds[0]),
            status_shape(&crds[1])
        ));
    }
    if crds[0]["metadata"]["finalizers"] != crds[1]["metadata"]["finalizers"] {
        failures.push(format!(
            "CRD finalizers: upstream {} nestkube {}",
            crds[0]["metadata"]["finalizers"], crds[1]["metadata"]["finalizers"]
        ));
    }

    // Defaulting and pruning of a valid object.
    let valid = gizmo(
        &group,
        "ok",
        json!({"size": 1, "ports": [{"name": "a"}], "unknown": 1, "free": {"x": {"y": 1}}, "note": null}),
    );
    let mut created = Vec::new();
    for (_, kc) in &targets {
        let (_, mut v, err) = kubectl_with_stdin(
            &bin,
            kc,
            &[
                "create",
                "--dry-run=server",
                "-n",
                "default",
                "-o",
                "json",
                "-f",
                "-",
            ],
            &valid,
        );
        strip_server_fields(&mut v);
        created.push((v, err));
    }
    if created[0] != created[1] {
        failures.push(format!(
            "defaults:\n  upstream: {:?}\n  nestkube: {:?}",
            created[0], created[1]
        ));
    }
    // Strict field validation names the unknown field alike.
    let mut strict = Vec::new();
    for (_, kc) in &targets {
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            kc,
            &[
                "create",
                "--dry-run=server",
                "--validate=strict",
                "-n",
                "default",
                "-o",
                "json",
                "-f",
                "-",
            ],
            &valid,
        );
        strict.push((ok, err));
    }
    if strict[0] != strict[1] {
        failures.push(format!(
            "strict:\n  upstream: {:?}\n  nestkube: {:?}",
            strict[0], strict[1]
        ));
    }

    for (what, spec) in invalid() {
        let manifest = gizmo(&group, "bad", spec);
        let mut answers = Vec::new();
        for (_, kc) in &targets {
            let (ok, _, err) = kubectl_with_stdin(
                &bin,
                kc,
                &["create", "--dry-run=server", "-n", "default", "-f", "-"],
                &manifest,
            );
            answers.push((ok, err));
        }
        assert!(!answers[0].0, "upstream accepted {what}");
        if answers[0] != answers[1] {
            failures.push(format!(
                "{what}:\n  upstream: {}\n  nestkube: {}",
                answers[0].1, answers[1].1
            ));
        }
    }

    // Invalid CRDs.
    let mut bad_crds: Vec<(&str, Value)> = Vec::new();
    let mut no_type = crd(&group);
    no_type["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["size"] = json!({"minimum": 0});
    bad_crds.push(("structural: no type", no_type));
    let mut bad_name = crd(&group);
    bad_name["metadata"]["name"] = json!(format!("other.{group}"));
    bad_crds.push(("name mismatch", bad_name));
    let mut bad_rule = crd(&group);
    bad_rule["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.nosuch > 1"}]);
    // Upstream prints the rule as a Go struct and cel-go's caret diagram:
    // compared below by field path and cause only.
    for (_, kc) in &targets {
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            kc,
            &["create", "--dry-run=server", "-f", "-"],
            &bad_rule.to_string(),
        );
        if ok
            || !err.contains("x-kubernetes-validations[0].rule: Invalid value: ")
            || !err.contains("compilation failed: ERROR: <input>")
            || !err.contains("undefined field 'nosuch'")
        {
            failures.push(format!("CEL undeclared field: {err}"));
        }
    }
    for (what, c) in bad_crds {
        let mut answers = Vec::new();
        for (_, kc) in &targets {
            let (ok, _, err) = kubectl_with_stdin(
                &bin,
                kc,
                &["create", "--dry-run=server", "-f", "-"],
                &c.to_string(),
            );
            answers.push((ok, err));
        }
        if answers[0] != answers[1] {
            failures.push(format!(
                "CRD {what}:\n  upstream: {:?}\n  nestkube: {:?}",
                answers[0], answers[1]
            ));
        }
    }

    // An unsupported field selector, and a CRD whose names conflict.
    let mut selectors = Vec::new();
    for (_, kc) in &targets {
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            kc,
            &[
                "get",
                "gizmos",
                "-n",
                "default",
                "--field-selector",
                "spec.size=1",
            ],
            "",
        );
        selectors.push((ok, err));
    }
    if selectors[0] != selectors[1] {
        failures.push(format!(
            "field selector:\n  upstream: {:?}\n  nestkube: {:?}",
            selectors[0], selectors[1]
        ));
    }
    let mut rival = crd(&group);
    rival["metadata"]["name"] = json!(format!("rivals.{group}"));
    rival["spec"]["names"] = json!({"plural": "rivals", "kind": "Gizmo", "shortNames": ["gz"]});
    let mut rivals = Vec::new();
    for (_, kc) in &targets {
        let (ok, _, err) = kubectl_with_stdin(&bin, kc, &["create", "-f", "-"], &rival.to_string());
        assert!(ok, "{err}");
        let rival_name = format!("rivals.{group}");
        wait_for(Duration::from_secs(30), || {
            let (_, v, _) =
                kubectl_with_stdin(&bin, kc, &["get", "crd", &rival_name, "-o", "json"], "");
            v["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.len() >= 2)
        });
        let (_, v, _) =
            kubectl_with_stdin(&bin, kc, &["get", "crd", &rival_name, "-o", "json"], "");
        rivals.push(status_shape(&v));
        kubectl_with_stdin(
            &bin,
            kc,
            &["delete", "crd", &rival_name, "--wait=false"],
            "",
        );
    }
    if rivals[0] != rivals[1] {
        failures.push(format!(
            "name conflict:\n  upstream: {}\n  nestkube: {}",
            rivals[0], rivals[1]
        ));
    }

    // Deletion: the cleanup finalizer and the Terminating condition.
    let mut deleting = Vec::new();
    for (_, kc) in &targets {
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            kc,
            &["create", "-n", "default", "-f", "-"],
            &gizmo(&group, "held", json!({"size": 1})),
        );
        assert!(ok, "{err}");
        kubectl_with_stdin(
            &bin,
            kc,
            &[
                "patch",
                "gizmo",
                "held",
                "-n",
                "default",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
            ],
            "",
        );
        kubectl_with_stdin(&bin, kc, &["delete", "crd", &name, "--wait=false"], "");
        let settled = wait_for(Duration::from_secs(30), || {
            let (_, v, _) = kubectl_with_stdin(&bin, kc, &["get", "crd", &name, "-o", "json"], "");
            v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Terminating" && c["reason"] == "InstanceDeletionInProgress")
        });
        let (_, v, _) = kubectl_with_stdin(&bin, kc, &["get", "crd", &name, "-o", "json"], "");
        deleting.push((
            settled,
            status_shape(&v)["conditions"].clone(),
            v["metadata"]["finalizers"].clone(),
        ));
        kubectl_with_stdin(
            &bin,
            kc,
            &[
                "patch",
                "gizmo",
                "held",
                "-n",
                "default",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            "",
        );
    }
    if deleting[0] != deleting[1] {
        failures.push(format!(
            "deleting:\n  upstream: {:?}\n  nestkube: {:?}",
            deleting[0], deleting[1]
        ));
    }
    assert!(
        failures.is_empty(),
        "CRDs differ from kube-apiserver:\n{}",
        failures.join("\n")
    );
}
