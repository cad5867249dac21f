//! CustomResourceDefinitions as users meet them: kubectl on three minors
//! (apply, printer columns, explain, merge patch, scale, edit, delete
//! cascading to the resources), third-party CRD sets applied unmodified
//! from their Go modules (Gateway API, cert-manager, prometheus-operator)
//! with their examples, a restart, and a second virtual cluster that sees
//! none of it.

use std::path::Path;
use std::time::Duration;

use crate::support::{Kubectl, Server, kubectls, tenant_kubectl, wait_for};
use nestkube_e2e::{Binaries, e2e_disabled};

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, description: "How big the widget is."}
              color: {type: string}
              replicas: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3, color: red, replicas: 1}
"#;

fn scenario(k: &Kubectl) {
    k.ok_stdin(&["apply", "-f", "-"], WIDGET_CRD);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let created = k.ok_stdin(&["apply", "-f", "-"], WIDGET);
    assert!(
        created.contains("widget.example.com/w1 created"),
        "{created}"
    );
    let again = k.ok_stdin(&["apply", "-f", "-"], WIDGET);
    assert!(again.contains("unchanged"), "{again}");

    // Printer columns, `-o wide`, short names and categories.
    let table = k.ok(&["get", "widgets"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    // Only the listed columns: Age is a default only when none are listed.
    assert_eq!(header, ["NAME", "SIZE"], "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("w1"), "{table}");
    let wide = k.ok(&["get", "wd", "-o", "wide"]);
    assert!(wide.contains("COLOR") && wide.contains("red"), "{wide}");
    let all = k.ok(&["get", "all"]);
    assert!(all.contains("widget.example.com/w1"), "{all}");

    // Explain reads the cluster's OpenAPI v3.
    let explain = k.ok(&["explain", "widget.spec.size"]);
    assert!(explain.contains("How big the widget is."), "{explain}");

    // Merge patch, scale, edit (a scripted editor).
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":4}}"#,
    ]);
    k.ok(&["scale", "widget", "w1", "--replicas=3"]);
    let mut edit = k.command(&["edit", "widget", "w1"]);
    edit.env("KUBE_EDITOR", "sed -i s/color:\\ red/color:\\ blue/");
    let out = edit.output().expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = k.ok(&[
        "get",
        "widget",
        "w1",
        "-o",
        "jsonpath={.spec.size} {.spec.replicas} {.spec.color} {.metadata.generation}",
    ]);
    assert_eq!(spec, "4 3 blue 4");

    // Deleting the CRD deletes its resources, then the API is gone.
    k.ok(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    let gone = k.fails(&["get", "widgets"]);
    assert!(
        gone.contains("the server doesn't have a resource type") || gone.contains("NotFound"),
        "{gone}"
    );
}

#[test]
fn kubectl_scenarios_with_a_crd_on_three_minors() {
    for bin in kubectls() {
        let server = Server::start();
        let k = Kubectl {
            bin: bin.clone(),
            kubeconfig: server.kubeconfig.clone(),
        };
        eprintln!("kubectl {}", bin.display());
        scenario(&k);
    }
}

/// Applies every CRD under `dir` server-side (client-side apply would
/// exceed the last-applied annotation's size limit with several, as on
/// kube-apiserver).
fn create_crds(k: &Kubectl, dir: &Path) -> Vec<String> {
    let out = k.ok(&[
        "apply",
        "--server-side",
        "-f",
        dir.to_str().unwrap(),
        "-o",
        "name",
    ]);
    out.lines().map(str::to_string).collect()
}

fn established(k: &Kubectl) -> Vec<(String, String)> {
    let out = k.ok(&[
        "get",
        "crd",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn third_party_crd_sets_are_established_and_serve_their_examples() {
    if e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0");
        return;
    }
    let bins = Binaries::locate().expect("e2e binaries (run e2e/setup)");
    let mut server = Server::start();
    let k = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    let mut created = Vec::new();
    for set in [
        "gateway-api-experimental",
        "cert-manager",
        "prometheus-operator",
    ] {
        created.extend(create_crds(&k, &bins.crds.join(set)));
    }
    assert!(created.len() >= 25, "{created:?}");
    assert!(
        wait_for(Duration::from_secs(30), || {
            let e = established(&k);
            e.len() == created.len() && e.iter().all(|(_, s)| s == "True")
        }),
        "not all established: {:?}",
        established(&k)
    );

    // Gateway API's own examples apply and list.
    let examples = bins.crds.join("gateway-api-examples");
    let applied = k.ok(&["apply", "-f", examples.to_str().unwrap()]);
    assert!(
        applied.contains("httproute.gateway.networking.k8s.io/http-app-1 created"),
        "{applied}"
    );
    let routes = k.ok(&["get", "httproutes", "-A"]);
    assert!(
        routes.contains("http-app-1") && routes.contains("HOSTNAMES"),
        "{routes}"
    );
    let explain = k.ok(&["explain", "httproute.spec.rules.matches.path.type"]);
    assert!(explain.contains("PathPrefix"), "{explain}");
    let explain = k.ok(&["explain", "certificate.spec.privateKey.algorithm"]);
    assert!(explain.contains("RSA"), "{explain}");
    let explain = k.ok(&["explain", "servicemonitor.spec.endpoints.relabelings"]);
    assert!(
        explain.contains("RelabelConfig") || explain.contains("relabel"),
        "{explain}"
    );

    // A cert-manager resource and a prometheus-operator one.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: selfsigned}\nspec: {selfSigned: {}}\n",
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  endpoints: [{port: http}]\n",
    );

    // A restart serves everything again.
    server.restart();
    let routes = k.ok(&["get", "httproute", "http-app-1", "-o", "name"]);
    assert_eq!(
        routes.trim(),
        "httproute.gateway.networking.k8s.io/http-app-1"
    );
    assert_eq!(
        k.ok(&["get", "issuer", "selfsigned", "-o", "name"]).trim(),
        "issuer.cert-manager.io/selfsigned"
    );

    // A tenant's virtual cluster has none of it.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata: {name: tenant, namespace: default}\nspec: {}\n",
    );
    assert!(wait_for(Duration::from_secs(30), || {
        k.output(&["get", "secret", "tenant-kubeconfig"])
            .status
            .success()
    }));
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant_kubectl(&k, dir.path(), "default", "tenant");
    assert!(wait_for(Duration::from_secs(30), || tenant
        .output(&["get", "ns", "default"])
        .status
        .success()));
    let crds = tenant.ok(&["get", "crd", "-o", "name"]);
    assert!(crds.trim().is_empty(), "{crds}");
    let gone = tenant.fails(&["get", "httproutes"]);
    assert!(
        gone.contains("the server doesn't have a resource type"),
        "{gone}"
    );
    // The tenant installs the same CRD with its own schema (a *.k8s.io
    // group needs the approval annotation, as upstream).
    tenant.ok_stdin(
        &["apply", "-f", "-"],
        &WIDGET_CRD
            .replace(
                "  name: widgets.example.com",
                "  name: widgets.example.com\n  annotations: {api-approved.kubernetes.io: \"https://github.com/kubernetes-sigs/gateway-api/pull/1\"}",
            )
            .replace("example.com", "gateway.networking.k8s.io")
            .replace("widgets", "httproutes")
            .replace("Widget", "HTTPRoute")
            .replace("widget", "httproute")
            .replace("[wd]", "[hr]"),
    );
    tenant.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/httproutes.gateway.networking.k8s.io",
        "--timeout=20s",
    ]);
    let explain = tenant.ok(&["explain", "httproute.spec"]);
    assert!(
        explain.contains("size") && !explain.contains("parentRefs"),
        "{explain}"
    );
    let explain = k.ok(&["explain", "httproute.spec"]);
    assert!(explain.contains("parentRefs"), "{explain}");
}

const PYTHON_CUSTOM_OBJECTS: &str = r#"
import sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
api = client.CustomObjectsApi()
body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "py"}, "spec": {"size": 7}}
api.create_namespaced_custom_object("example.com", "v1", "default", "widgets", body)
got = api.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "py")
assert got["spec"]["size"] == 7, got
api.patch_namespaced_custom_object("example.com", "v1", "default", "widgets", "py", {"spec": {"size": 8}})
items = api.list_namespaced_custom_object("example.com", "v1", "default", "widgets")["items"]
assert [i["spec"]["size"] for i in items] == [8], items
scale = api.get_namespaced_custom_object_scale("example.com", "v1", "default", "widgets", "py")
assert scale["kind"] == "Scale", scale
api.delete_namespaced_custom_object("example.com", "v1", "default", "widgets", "py")
print("ok")
"#;

#[test]
fn python_custom_objects_api() {
    if e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0");
        return;
    }
    let bins = Binaries::locate().expect("e2e binaries (run e2e/setup)");
    let server = Server::start();
    let k = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    k.ok_stdin(&["apply", "-f", "-"], WIDGET_CRD);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let out = std::process::Command::new(&bins.python)
        .args(["-c", PYTHON_CUSTOM_OBJECTS])
        .arg(&server.kubeconfig)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn helm_installs_a_chart_with_crds_and_custom_resources() {
    if e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0");
        return;
    }
    let bins = Binaries::locate().expect("e2e binaries (run e2e/setup)");
    let server = Server::start();
    let chart = tempfile::tempdir().unwrap();
    let dir = chart.path();
    std::fs::create_dir_all(dir.join("crds")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("crds/widgets.yaml"), WIDGET_CRD).unwrap();
    std::fs::write(
        dir.join("templates/widget.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: {{ .Release.Name }}}\nspec: {size: {{ .Values.size }}}\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "size: 2\n").unwrap();
    let helm = |args: &[&str]| {
        let out = std::process::Command::new(&bins.helm)
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(args)
            .output()
            .expect("helm");
        assert!(
            out.status.success(),
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Helm installs the CRD first, waits for it, then the resource.
    helm(&["install", "w1", dir.to_str().unwrap(), "--wait"]);
    helm(&["upgrade", "w1", dir.to_str().unwrap(), "--set", "size=5"]);
    let k = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    assert_eq!(
        k.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "5"
    );
    helm(&["uninstall", "w1"]);
    assert!(k.fails(&["get", "widget", "w1"]).contains("NotFound"));
}

#[test]
fn openapi_v2_of_a_virtual_cluster_serves_its_custom_resources() {
    let server = Server::start();
    let root = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    root.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata: {name: v2, namespace: default}\nspec: {}\n",
    );
    root.ok(&["wait", "--for=condition=Ready", "vc/v2", "--timeout=30s"]);
    let tenant = tenant_kubectl(&root, &server.data_dir, "default", "v2");
    let before = tenant.ok(&["get", "--raw", "/openapi/v2"]);
    tenant.ok_stdin(&["apply", "-f", "-"], WIDGET_CRD);
    tenant.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);

    // The document: the built-ins and the CRD's paths and definitions,
    // only in this cluster's document.
    let doc: serde_json::Value =
        serde_json::from_str(&tenant.ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    let widget = &doc["definitions"]["com.example.v1.Widget"];
    assert_eq!(
        widget["properties"]["spec"]["properties"]["size"]["description"],
        "How big the widget is."
    );
    assert_eq!(
        widget["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "example.com", "kind": "Widget", "version": "v1"}])
    );
    assert!(doc["definitions"]["com.example.v1.WidgetList"].is_object());
    let item = &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"];
    assert_eq!(
        item["patch"]["operationId"],
        "patchExampleComV1NamespacedWidget"
    );
    assert!(
        doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status"]
            .is_object()
    );
    let scale = &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/scale"];
    assert_eq!(
        scale["get"]["responses"]["200"]["schema"]["$ref"],
        "#/definitions/io.k8s.api.autoscaling.v1.Scale"
    );
    assert!(doc["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
    let root_doc = root.ok(&["get", "--raw", "/openapi/v2"]);
    assert!(!root_doc.contains("com.example.v1.Widget"));
    assert_eq!(root_doc.len(), before.len(), "the built-in document");

    // Merged once per distinct CRD set: a second cluster with the same CRD
    // gets the same bytes (from the cache), a cluster without CRDs the
    // built-in document.
    root.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata: {name: v2b, namespace: default}\nspec: {}\n",
    );
    root.ok(&["wait", "--for=condition=Ready", "vc/v2b", "--timeout=30s"]);
    let other = tenant_kubectl(&root, &server.data_dir, "default", "v2b");
    assert_eq!(
        other.ok(&["get", "--raw", "/openapi/v2"]).len(),
        before.len()
    );
    other.ok_stdin(&["apply", "-f", "-"], WIDGET_CRD);
    other.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let timed = |k: &Kubectl| {
        let t = std::time::Instant::now();
        let doc = k.ok(&["get", "--raw", "/openapi/v2"]);
        (doc, t.elapsed())
    };
    let (a1, first) = timed(&tenant);
    let (b1, shared) = timed(&other);
    assert_eq!(a1, b1);
    eprintln!(
        "openapi/v2 with one CRD: {} bytes (built-ins {}), fetched in {first:?} then {shared:?} from another cluster (kubectl included)",
        a1.len(),
        before.len()
    );
    // Deleting the CRD takes it out of that cluster's document only.
    other.ok(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    assert!(wait_for(Duration::from_secs(10), || other
        .ok(&["get", "--raw", "/openapi/v2"])
        .len()
        == before.len()));
    assert!(
        tenant
            .ok(&["get", "--raw", "/openapi/v2"])
            .contains("com.example.v1.Widget")
    );
}
