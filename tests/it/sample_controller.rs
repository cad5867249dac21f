//! A real operator against virtual clusters: upstream's
//! `k8s.io/sample-controller` (client-go informers, listers, a work queue,
//! an event recorder; built by `e2e/setup sample-controller`) runs as a
//! process with a virtual cluster's kubeconfig. Its CRD and example Foo are
//! applied unmodified from its module: the operator creates the Deployment
//! owned by the Foo, and once the Deployment reports available replicas it
//! writes them to the Foo's status subresource.
//!
//! The virtual clusters' parent is the server's root cluster, which has no
//! kubelet: the test reports the syncer's copies of the Deployment's pods
//! Running and Ready there, as the parent's kubelet would; the syncer brings
//! that status up and the Deployment's availability comes from nestkube's
//! own ReplicaSet and Deployment controllers.
//!
//! A second virtual cluster, with its own instance of the operator, sees
//! nothing of the first, and its Foo is reconciled by its own instance
//! only: it stays without a Deployment until that instance starts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, Kubectl, Server, wait_for};

const WAIT: Duration = Duration::from_secs(60);

/// A sample-controller process, killed on drop; its log goes to a file.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn start(bin: &Path, kubeconfig: &Path, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("operator log");
        let child = Command::new(bin)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("-v=4")
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start sample-controller");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kubectl for `server`'s root cluster, the parent of the virtual clusters.
fn root(server: &Server) -> Kubectl {
    Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    }
}

/// A Ready VirtualCluster `name` with the default spec and kubectl for it.
fn virtual_cluster(server: &Server, name: &str) -> Kubectl {
    support::virtual_cluster(server, name, "{}")
}

fn get_json(k: &Kubectl, args: &[&str]) -> Option<Value> {
    let mut full = vec!["get"];
    full.extend(args);
    full.extend(["-o", "json"]);
    let out = k.output(&full);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("JSON"))
}

/// Applies sample-controller's CRD (with the status subresource, which its
/// `UpdateStatus` needs) and waits until it is established.
fn install_crd(k: &Kubectl, artifacts: &Path) {
    let crd = artifacts.join("crd-status-subresource.yaml");
    k.ok(&["apply", "-f", crd.to_str().unwrap()]);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/foos.samplecontroller.k8s.io",
        "--timeout=30s",
    ]);
}

/// Waits for the Deployment `name` the operator creates for Foo `owner`, and
/// checks that Foo controls it.
fn wait_owned_deployment(k: &Kubectl, owner: &str, name: &str, log: &dyn Fn() -> String) -> Value {
    let foo_uid = get_json(k, &["foo", owner]).expect("the Foo")["metadata"]["uid"].clone();
    let mut deployment = None;
    assert!(
        wait_for(WAIT, || {
            deployment = get_json(k, &["deployment", name]);
            deployment.is_some()
        }),
        "no Deployment {name} for Foo {owner}; operator log:\n{}",
        log()
    );
    let deployment = deployment.unwrap();
    let reference = &deployment["metadata"]["ownerReferences"][0];
    assert_eq!(reference["apiVersion"], "samplecontroller.k8s.io/v1alpha1");
    assert_eq!(reference["kind"], "Foo");
    assert_eq!(reference["name"], owner);
    assert_eq!(reference["uid"], foo_uid);
    assert_eq!(reference["controller"], true);
    deployment
}

/// Reports every pod of Foo `owner`'s Deployment (labelled `controller=<owner>`) in virtual cluster `k` Running
/// and Ready, as the kubelet of the parent's node would: on the pods'
/// copies the syncer made in the parent (`root`), whose status the syncer
/// brings back up (a tenant's own status writes are the syncer's to undo).
fn run_pods(root: &Kubectl, k: &Kubectl, owner: &str, replicas: usize) {
    let mut pods = Vec::new();
    assert!(
        wait_for(WAIT, || {
            pods = get_json(k, &["pods", "-l", &format!("controller={owner}")])
                .and_then(|l| l["items"].as_array().cloned())
                .unwrap_or_default();
            pods.len() == replicas
        }),
        "pods of {owner}: {pods:?}"
    );
    let now = "2026-01-01T00:00:00Z";
    let status = serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": [{"name": "nginx", "image": "nginx:latest", "imageID": "",
            "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": now}}}],
    }});
    for pod in &pods {
        let virtual_name = pod["metadata"]["name"].as_str().unwrap();
        let selector = format!("tenancy.nestkube.io/name={virtual_name}");
        let mut copy = None;
        assert!(
            wait_for(WAIT, || {
                copy = get_json(root, &["pods", "-A", "-l", &selector])
                    .and_then(|l| l["items"].as_array()?.first().cloned());
                copy.is_some()
            }),
            "no copy of pod {virtual_name} in the parent"
        );
        let copy = copy.unwrap();
        root.ok(&[
            "patch",
            "pod",
            "-n",
            copy["metadata"]["namespace"].as_str().unwrap(),
            copy["metadata"]["name"].as_str().unwrap(),
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
    }
}

fn available_replicas(k: &Kubectl, owner: &str) -> Option<i64> {
    get_json(k, &["foo", owner])?["status"]["availableReplicas"].as_i64()
}

#[test]
fn sample_controller_reconciles_foos_in_each_virtual_cluster_apart() {
    if nestkube_e2e::e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0 (sample-controller is built by e2e/setup)");
        return;
    }
    let bin = nestkube_e2e::artifact("NESTKUBE_E2E_SAMPLE_CONTROLLER")
        .expect("sample-controller (run e2e/setup sample-controller)");
    let artifacts = nestkube_e2e::artifact("NESTKUBE_E2E_SAMPLE_CONTROLLER_ARTIFACTS")
        .expect("sample-controller's artifacts (run e2e/setup sample-controller)");
    let server = Server::start();
    let parent = root(&server);
    let a = virtual_cluster(&server, "operator-a");
    let b = virtual_cluster(&server, "operator-b");
    for k in [&a, &b] {
        install_crd(k, &artifacts);
    }

    // Cluster A: the operator, then its example Foo, unmodified.
    let op_a = Operator::start(&bin, &a.kubeconfig, server.data_dir.join("operator-a.log"));
    let example = artifacts.join("example-foo.yaml");
    a.ok(&["apply", "-f", example.to_str().unwrap()]);
    let deployment = wait_owned_deployment(&a, "example-foo", "example-foo", &|| op_a.log());
    assert_eq!(deployment["spec"]["replicas"], 1);
    run_pods(&parent, &a, "example-foo", 1);
    assert!(
        wait_for(WAIT, || available_replicas(&a, "example-foo") == Some(1)),
        "Foo status: {:?}; Deployment status: {:?}; operator log:\n{}",
        get_json(&a, &["foo", "example-foo"]).map(|f| f["status"].clone()),
        get_json(&a, &["deployment", "example-foo"]).map(|d| d["status"].clone()),
        op_a.log()
    );

    // Scaling the Foo scales its Deployment; the status follows again.
    a.ok(&[
        "patch",
        "foo",
        "example-foo",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    assert!(wait_for(WAIT, || get_json(
        &a,
        &["deployment", "example-foo"]
    )
    .is_some_and(|d| d["spec"]["replicas"] == 2)));
    run_pods(&parent, &a, "example-foo", 2);
    assert!(
        wait_for(WAIT, || available_replicas(&a, "example-foo") == Some(2)),
        "operator log:\n{}",
        op_a.log()
    );

    // Cluster B sees nothing of A: no Foo, no Deployment, no pods.
    for kind in ["foos", "deployments", "pods"] {
        let out = b.ok(&["get", kind, "-A", "-o", "name"]);
        assert!(out.trim().is_empty(), "{kind} of A visible in B: {out}");
    }
    // B's own Foo: A's operator never sees it, so it stays without a
    // Deployment until B's operator runs.
    b.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: samplecontroller.k8s.io/v1alpha1\nkind: Foo\nmetadata: {name: foo-b}\nspec: {deploymentName: deploy-b, replicas: 1}\n",
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(get_json(&b, &["deployment", "deploy-b"]).is_none());
    assert!(
        !op_a.log().contains("foo-b"),
        "A's operator saw B's Foo:\n{}",
        op_a.log()
    );
    let op_b = Operator::start(&bin, &b.kubeconfig, server.data_dir.join("operator-b.log"));
    wait_owned_deployment(&b, "foo-b", "deploy-b", &|| op_b.log());
    run_pods(&parent, &b, "foo-b", 1);
    assert!(
        wait_for(WAIT, || available_replicas(&b, "foo-b") == Some(1)),
        "operator log:\n{}",
        op_b.log()
    );
    // Each operator synced only its own cluster's Foo; A's objects are untouched.
    assert!(op_b.log().contains("Successfully synced"), "{}", op_b.log());
    assert!(!op_b.log().contains("example-foo"), "{}", op_b.log());
    assert!(!op_a.log().contains("foo-b"), "{}", op_a.log());
    assert!(get_json(&a, &["deployment", "deploy-b"]).is_none());
    assert!(get_json(&a, &["foo", "foo-b"]).is_none());
    assert_eq!(available_replicas(&a, "example-foo"), Some(2));

    // Deleting A's Foo deletes its Deployment (garbage collection by the
    // owner reference the operator set).
    a.ok(&["delete", "foo", "example-foo"]);
    assert!(
        wait_for(WAIT, || get_json(&a, &["deployment", "example-foo"])
            .is_none()),
        "the Deployment outlived its Foo"
    );
    assert!(get_json(&b, &["deployment", "deploy-b"]).is_some());
}
