//! Real client libraries against a running `nestkube serve`: the Python
//! client (`kubernetes` from PyPI) and client-go (the e2e checker: typed
//! CRUD, informers, watch). Both come from `e2e/setup`.

mod support;

use std::process::Command;

use nestkube_e2e::{Binaries, e2e_disabled};
use support::Server;

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

#[test]
fn python_client() {
    let Some(bins) = bins() else { return };
    let server = Server::start();
    let out = Command::new(&bins.python)
        .args(["-c", PYTHON_SCENARIO])
        .arg(&server.kubeconfig)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python client scenario failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn client_go_checker() {
    let Some(bins) = bins() else { return };
    let server = Server::start();
    let out = Command::new(&bins.checker)
        .args(["all", "--timeout", "90s", "--kubeconfig"])
        .arg(&server.kubeconfig)
        .output()
        .expect("run checker");
    assert!(
        out.status.success(),
        "client-go checker failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
