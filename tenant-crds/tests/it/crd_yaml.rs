//! The checked-in CRD YAML matches the Rust types, and the CRD and the sample
//! have the shape the API promises.

use std::path::PathBuf;

use kube::CustomResourceExt;
use nestkube_tenant_crds::{
    PodSecurityLevel, REGENERATE_COMMAND, VirtualCluster, crd, crd_yaml, validate,
};

fn crate_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Fails when `crd/virtualcluster.yaml` differs from what the types generate.
/// `NESTKUBE_UPDATE_CRD=1` rewrites the file instead.
#[test]
fn checked_in_crd_matches_types() {
    let path = crate_file("crd/virtualcluster.yaml");
    let want = crd_yaml();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        return;
    }
    if std::env::var("NESTKUBE_UPDATE_CRD").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).expect("write crd/virtualcluster.yaml");
        eprintln!("rewrote {}", path.display());
        return;
    }
    let first_diff = have
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
    panic!(
        "tenant-crds/crd/virtualcluster.yaml is out of date with the Rust types \
         (first difference at line {}).\nRegenerate it from the repository root with:\n  {}\n\
         (or NESTKUBE_UPDATE_CRD=1 cargo test -p nestkube-tenant-crds --test it crd_yaml)",
        first_diff + 1,
        REGENERATE_COMMAND
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    let crd = crd();
    assert_eq!(crd, VirtualCluster::crd());
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("virtualclusters.tenancy.nestkube.io")
    );
    assert_eq!(crd.spec.group, "tenancy.nestkube.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "VirtualCluster");
    assert_eq!(crd.spec.names.short_names, Some(vec!["vc".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let cols: Vec<_> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.type_.as_str(),
                c.json_path.as_str(),
                c.priority,
            )
        })
        .collect();
    assert_eq!(
        cols,
        vec![
            (
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#,
                None
            ),
            ("Phase", "string", ".status.phase", None),
            (
                "Runtime",
                "string",
                ".spec.isolation.runtimeClassName",
                None
            ),
            ("Age", "date", ".metadata.creationTimestamp", None),
            ("Endpoint", "string", ".status.endpoint", Some(1)),
        ]
    );
}

#[test]
fn schema_carries_validation() {
    let crd = serde_json::to_value(crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let iso = &spec["properties"]["isolation"];
    assert_eq!(
        iso["properties"]["podSecurity"]["enum"],
        serde_json::json!(["privileged", "baseline", "restricted"])
    );
    assert_eq!(iso["properties"]["podSecurity"]["default"], "baseline");
    let rule = &iso["x-kubernetes-validations"][0];
    assert_eq!(rule["fieldPath"], ".runtimeClassName");
    assert!(
        rule["rule"]
            .as_str()
            .unwrap()
            .contains("in self.allowedRuntimeClassNames")
    );
    for f in ["maxObjects", "requestsPerSecond", "maxConcurrentRequests"] {
        assert_eq!(
            spec["properties"]["limits"]["properties"][f]["minimum"], 1.0,
            "{f}"
        );
    }
    // No page-long Quantity prose in the CRD.
    assert!(!crd_yaml().contains("Quantity is a fixed-point representation"));
}

#[test]
fn sample_is_valid() {
    let text = std::fs::read_to_string(crate_file("examples/virtualcluster.yaml")).unwrap();
    let vc: VirtualCluster = serde_yaml::from_str(&text).expect("sample deserializes");
    assert_eq!(vc.metadata.name.as_deref(), Some("team-a"));
    assert_eq!(
        vc.spec.isolation.runtime_class_name.as_deref(),
        Some("kata")
    );
    assert_eq!(
        vc.spec.isolation.allowed_runtime_class_names,
        vec!["kata", "gvisor"]
    );
    assert_eq!(vc.spec.isolation.pod_security, PodSecurityLevel::Restricted);
    assert_eq!(validate(&vc.spec), vec![]);
}

#[test]
fn defaults_and_camel_case() {
    let vc: VirtualCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {"hostNamespace": "h"},
        "status": {
            "phase": "Ready",
            "observedGeneration": 3,
            "kubeconfigSecretRef": {"name": "x-kubeconfig", "key": "value"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Serving",
                            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }
    }))
    .unwrap();
    assert_eq!(vc.spec.isolation.pod_security, PodSecurityLevel::Baseline);
    let status = vc.status.as_ref().unwrap();
    assert!(status.is_ready());
    assert_eq!(
        status.kubeconfig_secret_ref,
        Some(nestkube_tenant_crds::SecretKeyRef::kubeconfig_for("x"))
    );
    let back = serde_json::to_value(&vc).unwrap();
    assert_eq!(back["spec"]["hostNamespace"], "h");
    assert_eq!(
        back["spec"]["isolation"],
        serde_json::json!({"podSecurity": "baseline"})
    );
    assert_eq!(back["status"]["observedGeneration"], 3);
}
