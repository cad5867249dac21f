//! Two tenants on the REAL e2e host, as their users see it: nestkube runs
//! in host mode (`nestkube serve --host-kubeconfig`), the host's operator
//! applies two VirtualClusters, and each tenant uses real kubectl with its
//! kubeconfig (from the Secret on the host) through nestkube's TLS
//! listener.
//!
//! - Tenant A's pods default to RuntimeClass `runc`; tenant B may only use
//!   `kata` (its default). Each applies a Deployment of 2 replicas: the
//!   pods run on the host under the right class (B's with the kata
//!   overhead set by the host's RuntimeClass admission, on the kata node),
//!   are Running in each virtual cluster, `kubectl logs` (and `exec`) reach the host
//!   pod, and `kubectl describe` shows the host scheduler's Event about the
//!   virtual pod.
//! - B asking for `runc`, and a hostPath pod in either, are refused (403)
//!   and nothing reaches the host.
//! - nestkube is killed while A's Deployment scales up and restarted on the
//!   same data directory: everything converges, one host pod per virtual
//!   pod, no orphans.
//! - Deleting the Deployments empties the host of their pods.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{self, Kubectl, Server, tenant_kubectl};
use nestkube_e2e::{HostCluster, wait_for};
use serde_json::Value;

/// Label every VirtualCluster of this test carries (its value unique), so
/// only this test's nestkube provisions them.
const TEST_LABEL: &str = "e2e.nestkube.io/test";
/// Longest wait for one condition on the host.
const WAIT: Duration = Duration::from_secs(90);

/// Installs the VirtualCluster CRD on the host (another test process may
/// be installing it too) and waits until it is served.
fn install_crd(host: &HostCluster) {
    let crd = Path::new(env!("CARGO_MANIFEST_DIR")).join(nestkube_tenant_crds::CRD_YAML_PATH);
    host.apply_crd(&crd, "virtualclusters.tenancy.nestkube.io");
}

/// `nestkube serve` in host mode on `data`, provisioning the host's
/// VirtualClusters labelled `TEST_LABEL=label`, on a fixed address (so the
/// tenants' kubeconfigs still reach it after a restart); killed on drop.
fn nestkube(host: &HostCluster, data: &Path, label: &str) -> Server {
    let selector = format!("{TEST_LABEL}={label}");
    let kubeconfig = host.kubeconfig();
    let flags: [&OsStr; 4] = [
        "--host-kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
        "--host-selector".as_ref(),
        selector.as_ref(),
    ];
    Server::start_at(data, support::free_address(), &flags)
}

/// One tenant: its VirtualCluster on the host and its kubectl.
struct Tenant {
    /// The VirtualCluster's name.
    name: String,
    /// Host namespace of the VirtualCluster (and of its pods' copies).
    ns: String,
    /// The VirtualCluster's uid (label of every host object of it).
    uid: String,
    kubectl: Kubectl,
}

impl Tenant {
    /// Applies VirtualCluster `name` in host namespace `ns` with
    /// `isolation` (YAML flow mapping), waits until it is Ready.
    fn create(
        host: &HostCluster,
        dir: &Path,
        ns: &str,
        name: &str,
        label: &str,
        isolation: &str,
    ) -> Self {
        host.apply(&format!(
            "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    {TEST_LABEL}: {label}\nspec:\n  isolation: {isolation}\n"
        ));
        let vc = wait_for(&format!("VirtualCluster {name} Ready"), WAIT, || {
            let out = host.kubectl(&["get", "vc", name, "-n", ns, "-o", "json"]);
            let vc: Value = serde_json::from_slice(&out.stdout).ok()?;
            (vc["status"]["phase"] == "Ready").then_some(vc)
        });
        let admin = Kubectl {
            bin: host.bins().kubectl.clone(),
            kubeconfig: host.kubeconfig(),
        };
        let kubectl = tenant_kubectl(&admin, dir, ns, name);
        // The default ServiceAccount admits pods.
        wait_for("the default ServiceAccount", WAIT, || {
            kubectl
                .output(&["get", "serviceaccount", "default"])
                .status
                .success()
                .then_some(())
        });
        Self {
            name: name.to_string(),
            ns: ns.to_string(),
            uid: vc["metadata"]["uid"].as_str().unwrap().to_string(),
            kubectl,
        }
    }

    /// The tenant's pods (JSON list items) in `default`.
    fn pods(&self) -> Vec<Value> {
        let out = self.kubectl.ok(&["get", "pods", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("pod list");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The host pods of this tenant.
    fn host_pods(&self, host: &HostCluster) -> Vec<Value> {
        let list = host.get_json(&[
            "pods",
            "-n",
            &self.ns,
            "-l",
            &format!("tenancy.nestkube.io/vc-uid={}", self.uid),
        ]);
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the tenant has exactly `n` pods of Deployment `web`, all
    /// Running, each with exactly one Running host pod and no other host
    /// pod of the tenant; returns (virtual pods, host pods).
    fn converged(&self, host: &HostCluster, n: usize) -> (Vec<Value>, Vec<Value>) {
        wait_for(
            &format!("{n} Running pods, one host pod each"),
            WAIT,
            || {
                let pods = self.pods();
                let running: BTreeSet<String> = pods
                    .iter()
                    .filter(|p| {
                        p["status"]["phase"] == "Running"
                            && p["metadata"]["deletionTimestamp"].is_null()
                    })
                    .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                    .collect();
                if pods.len() != n || running.len() != n {
                    return None;
                }
                let host_pods = self.host_pods(host);
                let copies: Vec<String> = host_pods
                    .iter()
                    .filter(|h| h["status"]["phase"] == "Running")
                    .map(|h| {
                        h["metadata"]["annotations"]["tenancy.nestkube.io/name"]
                            .as_str()
                            .unwrap_or("")
                            .to_string()
                    })
                    .collect();
                let unique: BTreeSet<String> = copies.iter().cloned().collect();
                (host_pods.len() == n && copies.len() == n && unique == running)
                    .then_some((pods, host_pods))
            },
        )
    }
}

/// Polls `f` until it returns `Ok`, or panics after [`WAIT`] showing the
/// last `Err` (what was seen instead).
fn wait_showing<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let seen = match f() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last seen:\n{seen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: main\n        image: nginx\n"
    )
}

fn pod_with(name: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec_extra}  containers:\n  - name: main\n    image: nginx\n"
    )
}

/// `kubectl apply -f -` that must be refused; returns stderr.
fn refused(k: &Kubectl, manifest: &str) -> String {
    use std::io::Write;
    let mut child = k
        .command(&["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "accepted: {manifest}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn two_tenants_run_under_their_runtime_classes() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    install_crd(host);
    let label = nestkube_e2e::unique_name("tenants");
    let ns_a = host.namespace("tenant-a");
    let ns_b = host.namespace("tenant-b");
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = nestkube(host, &data, &label);

    let a = Tenant::create(
        host,
        dir.path(),
        ns_a.name(),
        &nestkube_e2e::unique_name("a"),
        &label,
        "{runtimeClassName: runc}",
    );
    let b = Tenant::create(
        host,
        dir.path(),
        ns_b.name(),
        &nestkube_e2e::unique_name("b"),
        &label,
        "{runtimeClassName: kata, allowedRuntimeClassNames: [kata]}",
    );

    // Each tenant applies a Deployment; its pods run on the host.
    for t in [&a, &b] {
        t.kubectl.ok_stdin(&["apply", "-f", "-"], &deployment(2));
    }
    let (a_pods, a_host) = a.converged(host, 2);
    let (b_pods, b_host) = b.converged(host, 2);
    for (pods, host_pods, class) in [(&a_pods, &a_host, "runc"), (&b_pods, &b_host, "kata")] {
        for p in pods {
            assert_eq!(p["spec"]["runtimeClassName"], class, "{p}");
        }
        for h in host_pods {
            assert_eq!(h["spec"]["runtimeClassName"], class, "{h}");
        }
    }
    for h in &b_host {
        // The host's RuntimeClass admission set the kata overhead and
        // scheduling: the pod runs on the kata node.
        assert_eq!(h["spec"]["overhead"]["cpu"], "250m", "{h}");
        assert_eq!(h["spec"]["overhead"]["memory"], "160Mi", "{h}");
        assert_eq!(h["spec"]["nodeName"], "node-1", "{h}");
    }
    for h in &a_host {
        assert!(h["spec"]["overhead"].is_null(), "{h}");
        assert_ne!(h["spec"]["nodeName"], "node-1", "{h}");
    }

    // Logs and Events through each virtual API.
    for (t, pods) in [(&a, &a_pods), (&b, &b_pods)] {
        let name = pods[0]["metadata"]["name"].as_str().unwrap();
        let logs = t.kubectl.ok(&["logs", name]);
        assert!(logs.contains("hello from kwok"), "{logs}");
        let out = t.kubectl.ok(&[
            "exec",
            name,
            "--",
            "sh",
            "-c",
            "echo exec-$NESTKUBE_E2E_EXEC",
        ]);
        assert_eq!(out.trim(), "exec-kwok");
        let node = pods[0]["spec"]["nodeName"].as_str().unwrap();
        let assigned = format!("Successfully assigned default/{name} to {node}");
        let describe = wait_showing("the Scheduled event in describe", || {
            let d = t.kubectl.ok(&["describe", "pod", name]);
            if d.contains(&assigned) {
                return Ok(d);
            }
            Err(d + &t.kubectl.ok(&["get", "events", "-o", "wide"]))
        });
        assert!(describe.contains("Scheduled"), "{describe}");
        assert!(
            !describe.contains(&t.ns),
            "host namespace shown: {describe}"
        );
        let events = t.kubectl.ok(&["get", "events", "-o", "wide"]);
        assert!(events.contains(&format!("pod/{name}")), "{events}");
        assert!(!events.contains("-x-"), "a host name shown: {events}");
    }

    // Refused: B asking for runc, a hostPath pod in either. Nothing reaches the host.
    let err = refused(
        &b.kubectl,
        &pod_with("bad-class", "  runtimeClassName: runc\n"),
    );
    assert!(err.contains("(Forbidden)"), "{err}");
    assert!(
        err.contains("runc") && err.contains("allowed: ") && err.contains("kata"),
        "{err}"
    );
    let host_path = "  volumes:\n  - name: root\n    hostPath: {path: /}\n";
    for t in [&a, &b] {
        let err = refused(&t.kubectl, &pod_with("escape", host_path));
        assert!(
            err.contains("(Forbidden)") && err.contains("hostPath"),
            "{err}"
        );
    }
    for t in [&a, &b] {
        assert!(
            t.pods()
                .iter()
                .all(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-"))
        );
        let names: Vec<Value> = t
            .host_pods(host)
            .iter()
            .map(|h| h["metadata"]["annotations"]["tenancy.nestkube.io/name"].clone())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n.as_str().is_some_and(|n| n.starts_with("web-"))),
            "{names:?}"
        );
    }

    // Killed while A's Deployment scales up (right after the scale is
    // accepted: the ReplicaSet and the syncer are at work), restarted on
    // the same data.
    let first = a_pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    a.kubectl
        .ok(&["scale", "deployment", "web", "--replicas=5"]);
    server.kill();
    eprintln!(
        "killed with {} of A's 5 pods on the host",
        a.host_pods(host).len()
    );
    server.restart();
    let (a_pods, _) = a.converged(host, 5);
    // The restarted syncer rewrote the same Events: no duplicates.
    let scheduled = a.kubectl.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={first},reason=Scheduled"),
        "-o",
        "name",
    ]);
    assert_eq!(scheduled.lines().count(), 1, "{scheduled}");
    assert!(
        a_pods
            .iter()
            .all(|p| p["spec"]["runtimeClassName"] == "runc")
    );
    b.converged(host, 2);

    // Scaled down and deleted: the host pods go with them.
    a.kubectl
        .ok(&["scale", "deployment", "web", "--replicas=1"]);
    a.converged(host, 1);
    for t in [&a, &b] {
        t.kubectl.ok(&["delete", "deployment", "web"]);
    }
    wait_for("no pod of either tenant anywhere", WAIT, || {
        [&a, &b]
            .iter()
            .all(|t| t.pods().is_empty() && t.host_pods(host).is_empty())
            .then_some(())
    });

    for t in [&a, &b] {
        host.kubectl_ok(&["delete", "vc", &t.name, "-n", &t.ns, "--timeout=60s"]);
    }
    drop(server);
}
