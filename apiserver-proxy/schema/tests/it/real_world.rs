//! Real CRDs: the project's own VirtualCluster CRD, and an excerpt of Gateway
//! API's HTTPRoute with its CEL rules.

use nestkube_schema::{Schema, default_crd, validate_crd};
use serde_json::{Value, json};

use crate::messages;

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc = text
        .split("\n---")
        .find(|d| d.contains("kind: CustomResourceDefinition"))
        .unwrap();
    serde_yaml::from_str(doc).unwrap()
}

fn schema_of(crd: &Value) -> Schema {
    Schema::compile(
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        "s",
    )
    .unwrap()
}

#[test]
fn virtual_cluster_crd_is_valid() {
    let mut crd = yaml(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tenant-crds/crd/virtualcluster.yaml"
    ));
    default_crd(&mut crd);
    assert_eq!(messages(&validate_crd(&crd)), Vec::<String>::new());
    let s = schema_of(&crd);
    let mut obj = json!({"apiVersion": "tenancy.nestkube.io/v1alpha1", "kind": "VirtualCluster",
        "metadata": {"name": "a"}, "spec": {}, "unknown": 1});
    assert_eq!(s.prune(&mut obj), ["unknown"]);
}

fn httproute() -> Value {
    serde_yaml::from_str(include_str!("../data/httproute-excerpt.yaml")).unwrap()
}

#[test]
fn httproute_excerpt_is_valid() {
    let mut crd = httproute();
    default_crd(&mut crd);
    assert_eq!(messages(&validate_crd(&crd)), Vec::<String>::new());
}

#[test]
fn httproute_rules_run() {
    let s = schema_of(&httproute());
    let route = |path: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
            "spec": {"rules": [{"matches": [{"path": path}]}]}})
    };
    let mut ok = route(json!({"type": "PathPrefix", "value": "/api"}));
    s.apply_defaults(&mut ok);
    assert!(
        s.validate(&ok, None).is_empty(),
        "{:?}",
        messages(&s.validate(&ok, None))
    );
    let mut bad = route(json!({"type": "PathPrefix", "value": "api//x"}));
    s.apply_defaults(&mut bad);
    assert_eq!(
        messages(&s.validate(&bad, None)),
        [
            "spec.rules[0].matches[0].path: Invalid value: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
            "spec.rules[0].matches[0].path: Invalid value: must not contain '//' when type one of ['Exact', 'PathPrefix']",
        ]
    );
    let mut defaulted = route(json!({}));
    s.apply_defaults(&mut defaulted);
    assert_eq!(
        defaulted["spec"]["rules"][0]["matches"][0]["path"],
        json!({"type": "PathPrefix", "value": "/"})
    );
}
