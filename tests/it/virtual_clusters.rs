//! VirtualClusters end to end against a running `nestkube serve`: kubectl
//! applies the example, the controller provisions a cluster within
//! milliseconds, its kubeconfig Secret works and sees only its own cluster,
//! and deleting it leaves nothing behind. The `nestkube vc` subcommands
//! drive the same API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Kubectl, Server, keys_under, tenant_kubectl, wait_for};

fn kubectl(kubeconfig: &Path) -> Kubectl {
    Kubectl {
        bin: PathBuf::from("kubectl"),
        kubeconfig: kubeconfig.to_path_buf(),
    }
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tenant-crds/examples/virtualcluster.yaml")
}

#[test]
fn virtual_cluster_lifecycle_with_kubectl() {
    let mut server = Server::start();
    let root = kubectl(&server.kubeconfig);
    root.ok(&["apply", "-f", example().to_str().unwrap()]);
    let started = Instant::now();
    root.ok(&[
        "wait",
        "--for=condition=Ready",
        "vc/team-a",
        "--timeout=10s",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "Ready took {:?}",
        started.elapsed()
    );
    // Re-applying the same manifest is a no-op.
    assert!(
        root.ok(&["apply", "-f", example().to_str().unwrap()])
            .contains("unchanged")
    );

    // Printer columns, as the CRD declares them.
    let table = root.ok(&["get", "vc"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "PHASE", "RUNTIME", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["team-a", "True", "Ready", "kata"], "{table}");
    let wide = root.ok(&["get", "vc", "-o", "wide"]);
    assert!(
        wide.contains("ENDPOINT") && wide.contains("/clusters/team-a"),
        "{wide}"
    );
    let explain = root.ok(&["explain", "vc.spec.isolation"]);
    assert!(explain.contains("runtimeClassName"), "{explain}");

    // The kubeconfig Secret: key `value`, owned by the VirtualCluster.
    let secret = root.ok(&["get", "secret", "team-a-kubeconfig", "-o", "json"]);
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    assert_eq!(secret["type"], "Opaque");
    assert!(secret["data"]["value"].is_string());
    assert_eq!(
        secret["metadata"]["labels"]["tenancy.nestkube.io/virtual-cluster"],
        "team-a"
    );
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "VirtualCluster"
    );

    // The tenant sees its own, fresh cluster; its objects stay there.
    let tenant = tenant_kubectl(&root, &server.data_dir, "default", "team-a");
    let namespaces = tenant.ok(&["get", "ns", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
    tenant.ok(&["create", "configmap", "only-in-team-a"]);
    tenant.ok(&["get", "configmap", "only-in-team-a"]);
    root.fails(&["get", "configmap", "only-in-team-a"]);
    assert!(!root.ok(&["get", "cm", "-A"]).contains("only-in-team-a"));

    // An invalid spec is refused at admission, naming the field.
    let invalid = "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata: {name: bad}\nspec:\n  isolation: {runtimeClassName: runc, allowedRuntimeClassNames: [kata]}\n";
    let path = server.data_dir.join("invalid.yaml");
    std::fs::write(&path, invalid).unwrap();
    let err = root.fails(&["apply", "-f", path.to_str().unwrap()]);
    assert!(
        err.contains("is invalid") && err.contains("spec.isolation.runtimeClassName"),
        "{err}"
    );

    // A second VirtualCluster wanting the same path waits: NameTaken.
    root.ok(&["create", "namespace", "other"]);
    root.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata: {name: team-a, namespace: other}\nspec: {}\n",
    );
    assert!(wait_for(Duration::from_secs(5), || {
        root.ok(&[
            "get",
            "vc",
            "-n",
            "other",
            "team-a",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].reason}"#,
        ]) == "NameTaken"
    }));
    tenant.ok(&["get", "configmap", "only-in-team-a"]);
    root.ok(&["delete", "vc", "-n", "other", "team-a"]);
    tenant.ok(&["get", "configmap", "only-in-team-a"]);

    // Deleting tears everything down.
    root.ok(&["delete", "vc", "team-a", "--timeout=10s"]);
    root.fails(&["get", "secret", "team-a-kubeconfig"]);
    let err = tenant.fails(&["get", "ns"]);
    assert!(
        err.contains("Unauthorized") || err.contains("tls") || err.contains("certificate"),
        "{err}"
    );
    server.kill();
    assert_eq!(
        keys_under(&server.data_dir, "/team-a/"),
        Vec::<String>::new()
    );
    assert_eq!(
        keys_under(&server.data_dir, "/_clusters/team-a"),
        Vec::<String>::new()
    );
}

#[test]
fn virtual_cluster_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path());
    let root = kubectl(&server.kubeconfig);
    root.ok(&["apply", "-f", example().to_str().unwrap()]);
    root.ok(&[
        "wait",
        "--for=condition=Ready",
        "vc/team-a",
        "--timeout=10s",
    ]);
    let tenant = tenant_kubectl(&root, &server.data_dir, "default", "team-a");
    tenant.ok(&["create", "configmap", "kept"]);
    server.kill();
    // A new port: the controller re-issues the kubeconfig for the new endpoint.
    let server = Server::start_in(dir.path());
    let root = kubectl(&server.kubeconfig);
    assert!(wait_for(Duration::from_secs(10), || {
        let tenant = tenant_kubectl(&root, &server.data_dir, "default", "team-a");
        tenant
            .output(&["get", "configmap", "kept"])
            .status
            .success()
    }));
}

fn nestkube_vc(server: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nestkube"))
        .arg("vc")
        .args(args)
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run nestkube vc");
    assert!(
        out.status.success(),
        "nestkube vc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nestkube_vc_subcommands() {
    let server = Server::start();
    let created = nestkube_vc(&server, &["create", "demo", "--runtime-class", "kata"]);
    assert!(created.contains("/clusters/demo"), "{created}");
    let list = nestkube_vc(&server, &["list"]);
    assert!(list.contains("demo") && list.contains("True"), "{list}");
    let yaml = nestkube_vc(&server, &["get", "demo"]);
    assert!(yaml.contains("runtimeClassName: kata"), "{yaml}");
    let config = nestkube_vc(&server, &["kubeconfig", "demo"]);
    let path = server.data_dir.join("demo.kubeconfig");
    std::fs::write(&path, config).unwrap();
    let tenant = kubectl(&path);
    assert!(
        tenant
            .ok(&["get", "ns", "-o", "name"])
            .contains("namespace/kube-node-lease")
    );
    nestkube_vc(&server, &["delete", "demo"]);
    assert!(!nestkube_vc(&server, &["list"]).contains("demo"));
    tenant.fails(&["get", "ns"]);
}

/// The kubeconfig (from its Secret in `parent`) of VirtualCluster `name`
/// whose cluster path is `path`, as a kubectl.
fn nested_kubectl(parent: &Kubectl, dir: &Path, name: &str, path: &str) -> Kubectl {
    let config = parent.ok(&[
        "get",
        "secret",
        &format!("{name}-kubeconfig"),
        "-o",
        r#"go-template={{index .data "value" | base64decode}}"#,
    ]);
    assert!(config.contains(&format!("/clusters/{path}\n")), "{config}");
    let file = dir.join(format!("{}.kubeconfig", path.replace(':', "_")));
    std::fs::write(&file, config).expect("write kubeconfig");
    kubectl(&file)
}

/// A VirtualCluster `name` with an empty spec (inheriting its parent's).
fn empty_vc(name: &str) -> String {
    format!(
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\nspec: {{}}\n"
    )
}

#[test]
fn nesting_depth_is_set_by_the_server_flag() {
    let server = Server::start_with(&["--max-nesting-depth".as_ref(), "2".as_ref()]);
    let dir = tempfile::tempdir().unwrap();
    let root = kubectl(&server.kubeconfig);
    root.ok_stdin(&["apply", "-f", "-"], &empty_vc("a"));
    root.ok(&["wait", "--for=condition=Ready", "vc/a", "--timeout=20s"]);
    let a = nested_kubectl(&root, dir.path(), "a", "a");
    a.ok_stdin(&["apply", "-f", "-"], &empty_vc("b"));
    a.ok(&["wait", "--for=condition=Ready", "vc/b", "--timeout=20s"]);
    let b = nested_kubectl(&a, dir.path(), "b", "a:b");
    let manifest = dir.path().join("c.yaml");
    std::fs::write(&manifest, empty_vc("c")).unwrap();
    let err = b.fails(&["create", "-f", manifest.to_str().unwrap()]);
    assert!(
        err.contains("is forbidden")
            && err.contains(
                "its cluster \"a:b:c\" would be nested 3 levels deep, more than the maximum of 2"
            ),
        "{err}"
    );
    assert!(b.ok(&["get", "vc", "-o", "name"]).trim().is_empty());
}
