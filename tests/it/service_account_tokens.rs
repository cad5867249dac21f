//! `kubectl create token` against a running `nestkube serve`: the token it
//! prints authenticates as the service account (also after a restart), and
//! a garbage token is refused.

use std::path::Path;

use crate::support::{Kubectl, Server};

/// A kubeconfig that authenticates with `token` only (no client certificate).
fn token_kubeconfig(dir: &Path, server: &str, token: &str) -> std::path::PathBuf {
    let path = dir.join("token.kubeconfig");
    let ca = dir.join("pki/ca.crt");
    let doc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        ca = ca.display()
    );
    std::fs::write(&path, doc).expect("write kubeconfig");
    path
}

#[test]
fn kubectl_create_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_in(tmp.path());
    let admin = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    // The default service account may come from a controller; create it if not.
    let _ = admin.output(&["create", "serviceaccount", "default", "-n", "default"]);
    // Harmless without RBAC; needed with it.
    let _ = admin.output(&[
        "create",
        "clusterrolebinding",
        "sa-default-admin",
        "--clusterrole=cluster-admin",
        "--serviceaccount=default:default",
    ]);
    let token = admin
        .ok(&["create", "token", "default", "-n", "default"])
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    admin.fails(&["create", "token", "nobody", "-n", "default"]);
    admin.fails(&[
        "create",
        "token",
        "default",
        "-n",
        "default",
        "--duration=1m",
    ]);
    let short = admin.ok(&[
        "create",
        "token",
        "default",
        "-n",
        "default",
        "--duration=10m",
    ]);
    assert_eq!(short.trim().split('.').count(), 3);

    let server_url = admin
        .ok(&[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .trim()
        .to_string();
    let as_sa = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: token_kubeconfig(tmp.path(), &server_url, &token),
    };
    let out = as_sa.ok(&["get", "namespaces", "-o", "name"]);
    assert!(out.contains("namespace/default"), "{out}");
    let who = as_sa.ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who.trim(), "system:serviceaccount:default:default");
    let garbage = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: token_kubeconfig(tmp.path(), &server_url, "not-a-token"),
    };
    let err = garbage.fails(&["get", "namespaces"]);
    assert!(err.contains("Unauthorized") || err.contains("401"), "{err}");

    // The root cluster's signing key is kept in the data directory.
    server.kill();
    let server = Server::start_in(tmp.path());
    let admin = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    let server_url = admin
        .ok(&[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .trim()
        .to_string();
    let as_sa = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: token_kubeconfig(tmp.path(), &server_url, &token),
    };
    let out = as_sa.ok(&["get", "namespaces", "-o", "name"]);
    assert!(out.contains("namespace/default"), "{out}");
}
