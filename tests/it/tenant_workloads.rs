//! What a tenant does with its virtual cluster, with the real tools against
//! a running `nestkube serve` (standalone): `helm install` of the chart that
//! `helm create` makes reaches `deployed`, upgrades and uninstalls cleanly
//! (with Helm 3, and with Helm 4, which applies server-side);
//! deleting a namespace that holds 1,000 objects empties and removes it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{Kubectl, Server, tenant_kubectl, wait_for};

fn root(server: &Server) -> Kubectl {
    Kubectl {
        bin: PathBuf::from("kubectl"),
        kubeconfig: server.kubeconfig.clone(),
    }
}

/// A VirtualCluster `name` in the root cluster, Ready, and kubectl for it.
fn tenant(server: &Server, name: &str) -> Kubectl {
    let root = root(server);
    root.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\n  namespace: default\nspec: {{}}\n"
        ),
    );
    root.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("vc/{name}"),
        "--timeout=30s",
    ]);
    tenant_kubectl(&root, &server.data_dir, "default", name)
}

/// helm 3 (built by e2e/setup); `None` with a SKIPPED line when e2e is off.
fn helm_binary() -> Option<PathBuf> {
    e2e_binary(|b| b.helm)
}

/// One binary e2e/setup built; `None` with a SKIPPED line when e2e is off.
fn e2e_binary(pick: impl FnOnce(nestkube_e2e::Binaries) -> PathBuf) -> Option<PathBuf> {
    if nestkube_e2e::e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0 (helm is built by e2e/setup)");
        return None;
    }
    Some(pick(
        nestkube_e2e::Binaries::locate().expect("e2e binaries (run e2e/setup)"),
    ))
}

fn helm(bin: &PathBuf, kubeconfig: &PathBuf, args: &[&str]) -> String {
    let home = kubeconfig.parent().unwrap().join("helm-home");
    let out = Command::new(bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn helm_create_chart_installs_upgrades_and_uninstalls_in_a_virtual_cluster() {
    let Some(helm_bin) = helm_binary() else {
        return;
    };
    let server = Server::start();
    let tenant = tenant(&server, "helm-tenant");
    let kubeconfig = tenant.kubeconfig.clone();
    let work = tempfile::tempdir().unwrap();
    let chart = work.path().join("demo");
    let out = Command::new(&helm_bin)
        .arg("create")
        .arg(&chart)
        .output()
        .unwrap();
    assert!(out.status.success(), "helm create: {out:?}");
    let chart = chart.to_str().unwrap();

    tenant.ok(&["create", "namespace", "apps"]);
    helm(
        &helm_bin,
        &kubeconfig,
        &["install", "demo", chart, "-n", "apps"],
    );
    let status: serde_json::Value = serde_json::from_str(&helm(
        &helm_bin,
        &kubeconfig,
        &["status", "demo", "-n", "apps", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    // What the chart made, and what the controllers made of it.
    for object in ["deployment/demo", "service/demo", "serviceaccount/demo"] {
        tenant.ok(&["get", object, "-n", "apps"]);
    }
    wait_for(Duration::from_secs(20), || {
        tenant
            .ok(&[
                "get",
                "pods",
                "-n",
                "apps",
                "-l",
                "app.kubernetes.io/instance=demo",
                "-o",
                "name",
            ])
            .lines()
            .count()
            == 1
    });
    let svc_ip = tenant.ok(&[
        "get",
        "service",
        "demo",
        "-n",
        "apps",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert!(!svc_ip.is_empty() && svc_ip != "None", "{svc_ip}");

    helm(
        &helm_bin,
        &kubeconfig,
        &[
            "upgrade",
            "demo",
            chart,
            "-n",
            "apps",
            "--set",
            "replicaCount=3",
        ],
    );
    assert_eq!(
        tenant.ok(&[
            "get",
            "deployment",
            "demo",
            "-n",
            "apps",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            tenant
                .ok(&[
                    "get",
                    "pods",
                    "-n",
                    "apps",
                    "-l",
                    "app.kubernetes.io/instance=demo",
                    "-o",
                    "name",
                ])
                .lines()
                .count()
                == 3
        }),
        "3 pods after the upgrade"
    );
    let history = helm(&helm_bin, &kubeconfig, &["history", "demo", "-n", "apps"]);
    assert_eq!(history.lines().count(), 3, "{history}");

    helm(
        &helm_bin,
        &kubeconfig,
        &["uninstall", "demo", "-n", "apps", "--wait"],
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            tenant
                .ok(&[
                    "get",
                    "deployments,replicasets,pods,services,secrets",
                    "-n",
                    "apps",
                    "-o",
                    "name",
                ])
                .lines()
                .all(|l| !l.contains("demo"))
        }),
        "everything of the release gone"
    );
}

#[test]
fn deleting_a_namespace_with_a_thousand_objects_empties_and_removes_it() {
    let server = Server::start();
    let tenant = tenant(&server, "bulk-tenant");
    tenant.ok(&["create", "namespace", "bulk"]);
    let items: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            let kind = if i % 2 == 0 { "ConfigMap" } else { "Secret" };
            serde_json::json!({"apiVersion": "v1", "kind": kind,
                "metadata": {"name": format!("o-{i}"), "namespace": "bulk"},
                "data": {"k": "dg=="}})
        })
        .collect();
    // A stream of JSON objects (a `kind: List` would make kubectl fetch the
    // protobuf OpenAPI v2 document to validate it, which is not served yet).
    let stream: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    let file = server.data_dir.join("bulk.json");
    std::fs::write(&file, stream.join("\n")).unwrap();
    tenant.ok(&["create", "-f", file.to_str().unwrap()]);
    let count = |kind: &str| {
        tenant
            .ok(&["get", kind, "-n", "bulk", "-o", "name"])
            .lines()
            .filter(|l| l.contains("/o-"))
            .count()
    };
    assert_eq!(count("configmaps") + count("secrets"), 1000);

    tenant.ok(&["delete", "namespace", "bulk", "--timeout=120s"]);
    let out = tenant.output(&["get", "namespace", "bulk"]);
    assert!(!out.status.success(), "namespace still there");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    // A namespace of the same name starts empty.
    tenant.ok(&["create", "namespace", "bulk"]);
    assert_eq!(count("configmaps") + count("secrets"), 0);
}

/// Plays the kubelet for every pod copy the syncer put in the root cluster:
/// Running and Ready (the syncer brings that status up to the virtual pods).
fn kubelet(root: &Kubectl) {
    const READY: &str = r#"{"status":{"phase":"Running","podIP":"10.0.0.9","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"web","ready":true,"started":true,"restartCount":0,"image":"nginx","imageID":"","state":{"running":{}}}]}}"#;
    let pending = root.ok(&[
        "get",
        "pods",
        "-n",
        "default",
        "-l",
        "tenancy.nestkube.io/managed-by=nestkube",
        "-o",
        r#"jsonpath={range .items[?(@.status.phase!="Running")]}{.metadata.name} {end}"#,
    ]);
    for name in pending.split_whitespace() {
        // A copy may be gone meanwhile (a rollout deleted its pod): ignore.
        let _ = root.output(&[
            "patch",
            "pod",
            name,
            "-n",
            "default",
            "--subresource=status",
            "--type=merge",
            "-p",
            READY,
        ]);
    }
}

/// `kubectl rollout status` succeeds while the kubelet keeps pods running.
fn rolled_out(root: &Kubectl, tenant: &Kubectl, deployment: &str) {
    let ok = wait_for(Duration::from_secs(90), || {
        kubelet(root);
        tenant
            .output(&["rollout", "status", deployment, "--timeout=2s"])
            .status
            .success()
    });
    assert!(ok, "kubectl rollout status {deployment} never completed");
}

fn names(k: &Kubectl, what: &str) -> Vec<String> {
    k.ok(&["get", what, "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn deployment_rollout_undo_and_cascading_deletes_with_kubectl() {
    let server = Server::start();
    let root = root(&server);
    let tenant = tenant(&server, "wl");
    let deployment = |name: &str, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"
        )
    };
    tenant.ok_stdin(&["apply", "-f", "-"], &deployment("web", "nginx:1.0"));
    rolled_out(&root, &tenant, "deploy/web");
    assert_eq!(names(&tenant, "replicasets").len(), 1);
    assert_eq!(names(&tenant, "pods").len(), 3);

    // An image change rolls out to a second ReplicaSet.
    tenant.ok(&["set", "image", "deploy/web", "web=nginx:2.0"]);
    rolled_out(&root, &tenant, "deploy/web");
    assert_eq!(names(&tenant, "replicasets").len(), 2);
    let images = tenant.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert!(
        wait_for(Duration::from_secs(30), || {
            kubelet(&root);
            tenant
                .ok(&[
                    "get",
                    "pods",
                    "-l",
                    "app=web",
                    "-o",
                    "jsonpath={.items[*].spec.containers[0].image}",
                ])
                .split_whitespace()
                .all(|i| i == "nginx:2.0")
        }),
        "old pods left: {images}"
    );
    let history = tenant.ok(&["rollout", "history", "deploy/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Undo restores the first template.
    tenant.ok(&["rollout", "undo", "deploy/web"]);
    rolled_out(&root, &tenant, "deploy/web");
    assert_eq!(
        tenant.ok(&[
            "get",
            "deploy/web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.0"
    );

    // --cascade=orphan keeps the ReplicaSets and pods, without an owner.
    tenant.ok(&["delete", "deploy/web", "--cascade=orphan"]);
    let rs = names(&tenant, "replicasets");
    assert_eq!(rs.len(), 2, "{rs:?}");
    let owners = tenant.ok(&[
        "get",
        "replicasets",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences}",
    ]);
    assert!(owners.trim().is_empty(), "{owners}");
    // --cascade=foreground: the pods go before their ReplicaSet.
    for r in &rs {
        tenant.ok(&["delete", r, "--cascade=foreground", "--timeout=60s"]);
    }
    assert!(
        wait_for(Duration::from_secs(30), || names(&tenant, "pods")
            .is_empty()),
        "pods left after foreground deletes"
    );
    // --cascade=background (the default): everything of the Deployment goes.
    tenant.ok_stdin(&["apply", "-f", "-"], &deployment("api", "nginx:1.0"));
    rolled_out(&root, &tenant, "deploy/api");
    tenant.ok(&["delete", "deploy/api", "--cascade=background"]);
    assert!(
        wait_for(Duration::from_secs(30), || {
            names(&tenant, "replicasets").is_empty() && names(&tenant, "pods").is_empty()
        }),
        "ReplicaSets or pods left after a background delete"
    );
    // ... and their copies in the parent.
    assert!(
        wait_for(Duration::from_secs(30), || root
            .ok(&[
                "get",
                "pods",
                "-n",
                "default",
                "-l",
                "tenancy.nestkube.io/managed-by=nestkube",
                "-o",
                "name"
            ])
            .trim()
            .is_empty()),
        "copies left in the parent"
    );
}

/// The managedFields entry of `manager` with `operation` on an object.
fn managed_entry(obj: &serde_json::Value, manager: &str, operation: &str) -> serde_json::Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .cloned()
        .unwrap_or_else(|| panic!("no {operation} entry of {manager}: {obj}"))
}

#[test]
fn helm4_installs_upgrades_and_uninstalls_by_server_side_apply() {
    let Some(helm_bin) = e2e_binary(|b| b.helm4) else {
        return;
    };
    let server = Server::start();
    let tenant = tenant(&server, "helm4-tenant");
    let kubeconfig = tenant.kubeconfig.clone();
    let work = tempfile::tempdir().unwrap();
    let chart = work.path().join("demo");
    let out = Command::new(&helm_bin)
        .arg("create")
        .arg(&chart)
        .output()
        .unwrap();
    assert!(out.status.success(), "helm create: {out:?}");
    let chart = chart.to_str().unwrap();
    tenant.ok(&["create", "namespace", "apps4"]);
    let get = |what: &str| -> serde_json::Value {
        serde_json::from_str(&tenant.ok(&[
            "get",
            what,
            "-n",
            "apps4",
            "-o",
            "json",
            "--show-managed-fields",
        ]))
        .unwrap()
    };

    helm(
        &helm_bin,
        &kubeconfig,
        &["install", "demo", chart, "-n", "apps4"],
    );
    let status: serde_json::Value = serde_json::from_str(&helm(
        &helm_bin,
        &kubeconfig,
        &["status", "demo", "-n", "apps4", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    // Every object of the chart is applied by the manager "helm".
    for object in ["deployment/demo", "service/demo", "serviceaccount/demo"] {
        let obj = get(object);
        let e = managed_entry(&obj, "helm", "Apply");
        assert!(
            e["fieldsV1"]["f:metadata"]["f:labels"].is_object(),
            "{object}: {e}"
        );
    }
    let deployment = get("deployment/demo");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let applied = managed_entry(&deployment, "helm", "Apply");
    assert!(
        applied["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{applied}"
    );

    helm(
        &helm_bin,
        &kubeconfig,
        &[
            "upgrade",
            "demo",
            chart,
            "-n",
            "apps4",
            "--set",
            "replicaCount=3",
        ],
    );
    let deployment = get("deployment/demo");
    assert_eq!(deployment["spec"]["replicas"], 3);
    // Still one applier, owning the new value.
    let appliers: Vec<_> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "Apply")
        .collect();
    assert_eq!(appliers.len(), 1, "{appliers:?}");
    assert_eq!(appliers[0]["manager"], "helm");
    assert!(
        wait_for(Duration::from_secs(20), || {
            tenant
                .ok(&[
                    "get",
                    "pods",
                    "-n",
                    "apps4",
                    "-l",
                    "app.kubernetes.io/instance=demo",
                    "-o",
                    "name",
                ])
                .lines()
                .count()
                == 3
        }),
        "3 pods after the upgrade"
    );
    let history = helm(&helm_bin, &kubeconfig, &["history", "demo", "-n", "apps4"]);
    assert_eq!(history.lines().count(), 3, "{history}");

    helm(
        &helm_bin,
        &kubeconfig,
        &["uninstall", "demo", "-n", "apps4", "--wait"],
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            tenant
                .ok(&[
                    "get",
                    "deployments,replicasets,pods,services,secrets",
                    "-n",
                    "apps4",
                    "-o",
                    "name",
                ])
                .lines()
                .all(|l| !l.contains("demo"))
        }),
        "everything of the release gone"
    );
}
