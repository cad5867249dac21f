//! Realistic kubectl patches against the OpenAPI v2 document of a real
//! kube-apiserver (shipped in `apiserver-proxy/data`).

use std::sync::OnceLock;

use nestkube_patch::{PatchSchema, PatchType, TypeRef, apply_patch};
use serde_json::{Value, json};

fn schema() -> &'static PatchSchema {
    static SCHEMA: OnceLock<PatchSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/openapi-v2.json");
        let bytes = std::fs::read(path).expect("openapi-v2.json");
        let doc: Value = serde_json::from_slice(&bytes).expect("valid JSON");
        PatchSchema::from_openapi_v2(&doc).expect("indexable")
    })
}

fn root(group: &str, version: &str, kind: &str) -> TypeRef<'static> {
    schema()
        .root(group, version, kind)
        .unwrap_or_else(|| panic!("{group}/{version} {kind} not in the document"))
}

fn smp(original: &Value, patch: Value, ty: TypeRef<'_>) -> Value {
    apply_patch(
        original,
        patch.to_string().as_bytes(),
        PatchType::StrategicMerge,
        Some(ty),
    )
    .unwrap()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "finalizers": ["a"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
                        },
                        {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "3600"]}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}]
                }
            }
        }
    })
}

#[test]
fn document_indexes_all_definitions_and_roots() {
    assert!(schema().definition_count() > 500);
    let pod_spec = schema().definition("io.k8s.api.core.v1.PodSpec").unwrap();
    let meta = pod_spec.field_meta("volumes");
    assert_eq!(meta.patch_strategies, vec!["merge", "retainKeys"]);
    assert_eq!(meta.patch_merge_key.as_deref(), Some("name"));
    assert_eq!(meta.list_type.as_deref(), Some("map"));
    let ports = root("", "v1", "Service")
        .field("spec")
        .unwrap()
        .field_meta("ports");
    assert_eq!(ports.patch_merge_key.as_deref(), Some("port"));
    assert_eq!(ports.list_map_keys, vec!["port", "protocol"]);
    assert!(root("apps", "v1", "Deployment").field("spec").is_some());
    assert!(schema().root("apps", "v1", "NoSuchKind").is_none());
}

#[test]
fn kubectl_apply_changes_one_container_image() {
    // What kubectl apply sends after editing the first container's image.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.26", "name": "app"}]
        }}}
    });
    let got = smp(&deployment(), patch, root("apps", "v1", "Deployment"));
    let containers = &got["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 2);
    assert_eq!(containers[0]["name"], "app");
    assert_eq!(containers[0]["image"], "nginx:1.26");
    assert_eq!(
        containers[0]["ports"],
        deployment()["spec"]["template"]["spec"]["containers"][0]["ports"]
    );
    assert_eq!(
        containers[1],
        deployment()["spec"]["template"]["spec"]["containers"][1]
    );
    assert_eq!(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}"
    );
    // Everything else untouched.
    let mut expected = deployment();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    expected["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
    assert_eq!(got, expected);
}

#[test]
fn kubectl_apply_reorders_containers_with_set_element_order() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]
    }}}});
    let got = smp(&deployment(), patch, root("apps", "v1", "Deployment"));
    let names: Vec<&str> = got["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["sidecar", "app"]);
}

#[test]
fn kubectl_set_image() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "busybox:1.37", "name": "sidecar"}]}}}});
    let got = smp(&deployment(), patch, root("apps", "v1", "Deployment"));
    let containers = got["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1]["image"], "busybox:1.37");
    assert_eq!(containers[1]["args"], json!(["sleep", "3600"]));
    assert_eq!(containers[0]["image"], "nginx:1.25");
}

#[test]
fn kubectl_apply_removes_a_port() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{
            "$setElementOrder/ports": [{"containerPort": 80}],
            "name": "app",
            "ports": [{"$patch": "delete", "containerPort": 8080}]
        }]
    }}}});
    let got = smp(&deployment(), patch, root("apps", "v1", "Deployment"));
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
}

#[test]
fn env_merges_by_name_and_tolerations_replace() {
    let patch = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}],
        "tolerations": [{"key": "b", "operator": "Exists"}]
    }}}});
    let got = smp(&deployment(), patch, root("apps", "v1", "Deployment"));
    let spec = &got["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
    // atomic list without patch strategy: replaced.
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

#[test]
fn volumes_merge_with_retain_keys() {
    // kubectl apply switching a volume source sends $retainKeys.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["name", "configMap"], "configMap": {"name": "cfg"}, "name": "data"}]
    }}}});
    let got = smp(&deployment(), patch, root("apps", "v1", "Deployment"));
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cfg"}}])
    );
}

#[test]
fn deployment_strategy_retain_keys() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
    let got = smp(&deployment(), patch, root("apps", "v1", "Deployment"));
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn finalizers_union_and_delete() {
    let d = deployment();
    let ty = root("apps", "v1", "Deployment");
    let got = smp(&d, json!({"metadata": {"finalizers": ["b", "a"]}}), ty);
    assert_eq!(got["metadata"]["finalizers"], json!(["b", "a"]));
    let got = smp(
        &got,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        ty,
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn service_ports_merge_by_port() {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443}]}});
    let got = smp(
        &svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        root("", "v1", "Service"),
    );
    assert_eq!(
        got["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 9090}, {"name": "https", "port": 443}])
    );
}

#[test]
fn kubectl_label_and_annotate_are_merge_patches() {
    let got = apply_patch(
        &deployment(),
        br#"{"metadata":{"labels":{"tier":"frontend"},"annotations":{"note":"hi"}}}"#,
        PatchType::Merge,
        None,
    )
    .unwrap();
    assert_eq!(
        got["metadata"]["labels"],
        json!({"app": "web", "tier": "frontend"})
    );
    assert_eq!(got["metadata"]["annotations"], json!({"note": "hi"}));
    // `kubectl label deploy web app-`
    let got = apply_patch(
        &got,
        br#"{"metadata":{"labels":{"app":null}}}"#,
        PatchType::Merge,
        None,
    )
    .unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"tier": "frontend"}));
    // Same via strategic merge patch (labels are a plain map).
    let got = smp(
        &deployment(),
        json!({"metadata": {"labels": {"tier": "frontend"}}}),
        root("apps", "v1", "Deployment"),
    );
    assert_eq!(
        got["metadata"]["labels"],
        json!({"app": "web", "tier": "frontend"})
    );
}

#[test]
fn kubectl_scale_patch() {
    let got = apply_patch(
        &deployment(),
        br#"{"spec":{"replicas":3}}"#,
        PatchType::Merge,
        None,
    )
    .unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    let got = smp(
        &deployment(),
        json!({"spec": {"replicas": 5}}),
        root("apps", "v1", "Deployment"),
    );
    assert_eq!(got["spec"]["replicas"], 5);
}

#[test]
fn owner_references_merge_by_uid() {
    let cm = json!({"metadata": {"name": "c", "ownerReferences": [
        {"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1"}
    ]}});
    let got = smp(
        &cm,
        json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "b", "uid": "2"}]}}),
        root("", "v1", "ConfigMap"),
    );
    assert_eq!(
        got["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
}
