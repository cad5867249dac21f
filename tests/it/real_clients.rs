//! Real client libraries against a running `nestkube serve`: the Python
//! client (`kubernetes` from PyPI) and client-go (the e2e checker: typed
//! CRUD, informers, watch). Both come from `e2e/setup`.

use std::path::Path;
use std::process::Command;

use crate::support::{Kubectl, Server};
use nestkube_e2e::{Binaries, e2e_disabled};

fn bins() -> Option<Binaries> {
    if e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0");
        return None;
    }
    Some(Binaries::locate().expect("e2e binaries (run e2e/setup)"))
}

const PYTHON_SCENARIO: &str = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()
apps = client.AppsV1Api()
names = [n.metadata.name for n in v1.list_namespace().items]
assert "default" in names and "kube-system" in names, names
v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-client")))
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"app": "py"}), data={"a": "b"})
v1.create_namespaced_config_map("py-client", cm)
assert v1.read_namespaced_config_map("py", "py-client").data == {"a": "b"}
d = apps.create_namespaced_deployment("py-client", {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate", d.spec
apps.patch_namespaced_deployment_scale("web", "py-client", {"spec": {"replicas": 4}})
assert apps.read_namespaced_deployment("web", "py-client").spec.replicas == 4
try:
    v1.read_namespaced_config_map("missing", "py-client")
    raise SystemExit("expected 404")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
stale = v1.read_namespaced_config_map("py", "py-client")
v1.patch_namespaced_config_map("py", "py-client", {"data": {"a": "c"}})
try:
    v1.replace_namespaced_config_map("py", "py-client", stale)
    raise SystemExit("expected 409")
except client.exceptions.ApiException as e:
    assert e.status == 409, e.status
seen = [ev["object"].metadata.name for ev in watch.Watch().stream(
    v1.list_namespaced_config_map, "py-client", label_selector="app=py", timeout_seconds=2)]
assert seen == ["py"], seen
print("python client: ok")
"#;

/// Runs a program with the kubeconfig as its last argument and requires success.
fn run_with(program: &Path, args: &[&str], kubeconfig: &Path, what: &str) {
    let out = Command::new(program)
        .args(args)
        .arg(kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python_scenario(bins: &Binaries, kubeconfig: &Path) {
    run_with(
        &bins.python,
        &["-c", PYTHON_SCENARIO],
        kubeconfig,
        "python client scenario",
    );
}

fn checker(bins: &Binaries, kubeconfig: &Path) {
    run_with(
        &bins.checker,
        &["all", "--timeout", "90s", "--kubeconfig"],
        kubeconfig,
        "client-go checker",
    );
}

#[test]
fn python_client() {
    let Some(bins) = bins() else { return };
    let server = Server::start();
    python_scenario(&bins, &server.kubeconfig);
}

#[test]
fn client_go_checker() {
    let Some(bins) = bins() else { return };
    let server = Server::start();
    checker(&bins, &server.kubeconfig);
}

/// The kubeconfig a VirtualCluster's Secret hands the tenant works with
/// client-go and the Python client, inside that virtual cluster only.
#[test]
fn clients_with_a_virtual_cluster_kubeconfig() {
    let Some(bins) = bins() else { return };
    let server = Server::start();
    let nestkube = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nestkube"))
            .arg("vc")
            .args(args)
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .output()
            .expect("run nestkube vc");
        assert!(
            out.status.success(),
            "nestkube vc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    nestkube(&["create", "clients"]);
    let root = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    root.ok(&[
        "wait",
        "--for=condition=Ready",
        "vc/clients",
        "--timeout=30s",
    ]);
    let tenant = server.data_dir.join("clients.kubeconfig");
    std::fs::write(&tenant, nestkube(&["kubeconfig", "clients"])).expect("write kubeconfig");
    python_scenario(&bins, &tenant);
    checker(&bins, &tenant);
    // What the tenant created stays in its cluster.
    let leaked = root.ok(&["get", "namespaces", "-o", "name"]);
    assert!(
        !leaked.contains("py-client"),
        "tenant namespace visible in root: {leaked}"
    );
}
