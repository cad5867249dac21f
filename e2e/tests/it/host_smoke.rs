//! Smoke tests of the e2e host itself: the real control plane schedules and
//! "runs" pods on kwok nodes, serves logs/exec through the apiserver, enforces
//! RuntimeClasses with its own admission, and works with the real clients
//! (kubectl, client-go checker, Python `kubernetes`, helm).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use nestkube_e2e::{HostCluster, run, wait_for};
use serde_json::Value;

const IMAGE: &str = "registry.k8s.io/pause:3.10";
const TIMEOUT: Duration = Duration::from_secs(90);

fn pod_manifest(ns: &str, name: &str, runtime_class: Option<&str>) -> String {
    let rc = runtime_class
        .map(|r| format!("  runtimeClassName: {r}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{rc}  containers:\n  - name: main\n    image: {IMAGE}\n"
    )
}

fn wait_running(host: &HostCluster, ns: &str, pod: &str) -> Value {
    wait_for(
        &format!("pod {ns}/{pod} Running with an IP"),
        TIMEOUT,
        || {
            let p = host.get_json(&["pod", pod, "-n", ns]);
            let ok = p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string();
            ok.then_some(p)
        },
    )
}

#[test]
fn deployment_pods_run_on_kwok_nodes_with_logs_and_exec() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("smoke-deploy");
    let ns = ns.name();
    host.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {IMAGE}
"#
    ));
    let pods = wait_for("3 web pods Running with IPs", TIMEOUT, || {
        let list = host.get_json(&["pods", "-n", ns, "-l", "app=web"]);
        let items = list["items"].as_array()?.clone();
        let running = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string())
            .count();
        (running == 3 && items.len() == 3).then_some(items)
    });
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        // Only node-0 is untainted: plain pods must land there.
        assert_eq!(
            node, "node-0",
            "pod {} scheduled to {node}",
            p["metadata"]["name"]
        );
        let ip = p["status"]["podIP"].as_str().unwrap();
        assert!(
            ip.starts_with("10.244.0."),
            "pod IP {ip} not from node-0's podCIDR"
        );
    }
    let ready = host.get_json(&["deployment", "web", "-n", ns]);
    wait_for("deployment web available", TIMEOUT, || {
        let d = host.get_json(&["deployment", "web", "-n", ns]);
        (d["status"]["availableReplicas"] == 3).then_some(())
    });
    assert_eq!(ready["spec"]["replicas"], 3);

    let pod = pods[0]["metadata"]["name"].as_str().unwrap();
    // Logs go apiserver -> kwok's kubelet API (ClusterLogs config).
    let logs = host.kubectl_ok(&["logs", "-n", ns, pod]);
    assert!(logs.contains("hello from kwok"), "unexpected logs: {logs}");
    // Exec goes apiserver -> kwok (ClusterExec: runs locally in the host's kwok/exec dir).
    let out = host.kubectl_ok(&[
        "exec",
        "-n",
        ns,
        pod,
        "--",
        "sh",
        "-c",
        "echo exec-$NESTKUBE_E2E_EXEC",
    ]);
    assert_eq!(out.trim(), "exec-kwok");
}

#[test]
fn port_forward_reaches_the_pod() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("smoke-pf");
    let ns = ns.name();
    host.apply(&pod_manifest(ns, "echo", None));
    wait_running(host, ns, "echo");
    // ClusterPortForward connects every port to `cat`: an echo server.
    let mut child: Child = host
        .command(&host.bins().kubectl)
        .args([
            "port-forward",
            "-n",
            ns,
            "pod/echo",
            ":8080",
            "--address",
            "127.0.0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl port-forward");
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let port = wait_for("port-forward to print its local port", TIMEOUT, || {
        let mut b = [0u8; 1];
        while stdout.read(&mut b).ok()? == 1 {
            if b[0] == b'\n' {
                let s = String::from_utf8_lossy(&line).to_string();
                // "Forwarding from 127.0.0.1:40123 -> 8080"
                return s
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
            }
            line.push(b[0]);
        }
        None
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to forwarded port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"ping-through-port-forward\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("read echo");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(&buf[..n], b"ping-through-port-forward\n");
}

#[test]
fn unknown_runtime_class_is_rejected_by_admission() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("smoke-rc");
    let out = host.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pod_manifest(ns.name(), "bad", Some("no-such-class"))),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "pod with unknown runtimeClassName was accepted"
    );
    assert!(
        stderr.contains("RuntimeClass \"no-such-class\" not found"),
        "unexpected error: {stderr}"
    );
}

#[test]
fn sandboxed_pods_land_on_their_nodes_with_overhead() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("smoke-sandbox");
    let ns = ns.name();
    for (class, node, cpu, mem) in [
        ("kata", "node-1", "250m", "160Mi"),
        ("gvisor", "node-2", "100m", "64Mi"),
        ("runc", "node-0", "", ""),
    ] {
        let name = format!("pod-{class}");
        host.apply(&pod_manifest(ns, &name, Some(class)));
        let p = wait_running(host, ns, &name);
        assert_eq!(p["spec"]["nodeName"], node, "{class} pod on the wrong node");
        if cpu.is_empty() {
            assert!(p["spec"]["overhead"].is_null(), "runc pod has overhead");
        } else {
            assert_eq!(p["spec"]["overhead"]["cpu"], cpu, "{class} overhead");
            assert_eq!(p["spec"]["overhead"]["memory"], mem, "{class} overhead");
            let key = format!("sandbox.nestkube.io/{class}");
            assert_eq!(p["spec"]["nodeSelector"][&key], "true");
            let tolerated = p["spec"]["tolerations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == key.as_str());
            assert!(tolerated, "{class} pod lacks the sandbox toleration");
        }
    }
}

#[test]
fn client_go_checker_passes() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let ns = nestkube_e2e::unique_name("smoke-checker");
    let mut c = host.command(&host.bins().checker);
    c.args(["all", "--namespace", &ns, "--kubeconfig"])
        .arg(host.kubeconfig());
    let out = run(c, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "checker failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("server version: v1.37.2"), "{stdout}");
    assert!(stdout.contains("PASS watch"), "{stdout}");
    assert!(stdout.contains("PASS ssa"), "{stdout}");
}

#[test]
fn python_client_works() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("smoke-python");
    let script = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
ns = sys.argv[2]
v1 = client.CoreV1Api()
nodes = [n.metadata.name for n in v1.list_node().items]
assert sorted(nodes) == ["node-0", "node-1", "node-2"], nodes
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py"), data={"k": "v"})
created = v1.create_namespaced_config_map(ns, cm)
got = v1.read_namespaced_config_map("py", ns)
assert got.data == {"k": "v"}, got.data
v1.patch_namespaced_config_map("py", ns, {"data": {"k": "v2"}})
# Watch from the create's resourceVersion: the patch arrives as MODIFIED.
w = watch.Watch()
seen = False
for ev in w.stream(v1.list_namespaced_config_map, ns, field_selector="metadata.name=py",
                   resource_version=created.metadata.resource_version, timeout_seconds=30):
    assert ev["type"] == "MODIFIED", ev["type"]
    assert ev["object"].data == {"k": "v2"}
    seen = True
    w.stop()
assert seen, "no watch event"
v1.delete_namespaced_config_map("py", ns)
ver = client.VersionApi().get_code()
print("python ok", ver.git_version)
"#;
    let mut c = host.command(&host.bins().python);
    c.arg("-c")
        .arg(script)
        .arg(host.kubeconfig())
        .arg(ns.name());
    let out = run(c, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("python ok v1.37.2"), "{stdout}");
}

#[test]
fn helm_installs_a_chart() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("smoke-helm");
    let tmp = std::env::temp_dir().join(nestkube_e2e::unique_name("nestkube-helm"));
    let chart = tmp.join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: smoke\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | default \"hi\" | quote }}\n",
    )
    .unwrap();
    let helm = |args: &[&str]| {
        let mut c = host.command(&host.bins().helm);
        // Keep helm's cache/config/data inside our temp dir, not $HOME.
        c.env("HELM_CACHE_HOME", tmp.join("cache"))
            .env("HELM_CONFIG_HOME", tmp.join("config"))
            .env("HELM_DATA_HOME", tmp.join("data"))
            .args(args);
        let out = run(c, None);
        assert!(
            out.status.success(),
            "helm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let chart_path = chart.to_str().unwrap();
    helm(&[
        "install",
        "smoke",
        chart_path,
        "-n",
        ns.name(),
        "--set",
        "greeting=hello",
        "--wait",
    ]);
    let cm = host.get_json(&["configmap", "smoke-cm", "-n", ns.name()]);
    assert_eq!(cm["data"]["greeting"], "hello");
    helm(&["uninstall", "smoke", "-n", ns.name(), "--wait"]);
    let _ = std::fs::remove_dir_all(&tmp);
}
