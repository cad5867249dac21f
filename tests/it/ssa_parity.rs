//! Server-side apply parity with the real kube-apiserver (the e2e host):
//! the same `kubectl apply --server-side` gives the same field ownership
//! (`fieldsV1` of the applier's entry), and the same conflicting apply
//! fails with the same message; after `--force-conflicts` every manager's
//! fields match. Times are ignored.

use crate::support::{Server, kubectl_with_stdin};
use nestkube_e2e::HostCluster;
use serde_json::Value;

/// Manifests applied with `--dry-run=server` on both.
const APPLIED: &[(&str, &str)] = &[
    (
        "configmap",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","labels":{"a":"b"},"annotations":{"x":"y"}},"data":{"k":"v"}}"#,
    ),
    (
        "deployment",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},"strategy":{"rollingUpdate":{"maxSurge":1}},
        "template":{"metadata":{"labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80},{"containerPort":53,"protocol":"UDP"}],
        "env":[{"name":"E","value":"1"}],"resources":{"limits":{"cpu":"1"}},
        "volumeMounts":[{"name":"v","mountPath":"/v"}]}],
        "volumes":[{"name":"v","emptyDir":{}}],"tolerations":[{"key":"k","operator":"Exists"}],
        "nodeSelector":{"n":"1"}}}}}"#,
    ),
    (
        "service",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},
        "spec":{"selector":{"a":"b"},"ports":[{"port":80,"targetPort":8080,"name":"http"},{"port":443,"name":"https"}]}}"#,
    ),
    (
        "job",
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","finalizers":["x.io/f"]},
        "spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox","args":["a","b"]}]}}}}"#,
    ),
    (
        "role",
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r"},
        "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#,
    ),
];

/// Manifests created (an `Update` by `kubectl-create`) with `--dry-run=server`.
const CREATED: &[(&str, &str)] = &[
    (
        "configmap",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","labels":{"a":"b"}},"data":{"k":"v"}}"#,
    ),
    (
        "service",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},
        "spec":{"selector":{"a":"b"},"ports":[{"port":80,"name":"http"}]}}"#,
    ),
    (
        "secret",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","annotations":{"x":"y"}},"data":{"a":"Yg=="},"type":"Opaque"}"#,
    ),
    (
        "deployment",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80}]}]}}}}"#,
    ),
];

/// Every entry without its time, by manager/operation/subresource.
fn entries(obj: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut e| {
            e.as_object_mut().map(|m| m.remove("time"));
            e
        })
        .collect();
    out.sort_by_key(|e| e.to_string());
    out
}

#[test]
fn server_side_apply_matches_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let bin = host.bins().kubectl.to_string_lossy().into_owned();
    let (up_kc, nk_kc) = (host.kubeconfig(), server.kubeconfig.clone());
    let mut failures = Vec::new();

    for (name, manifest) in APPLIED {
        let args = [
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            "default",
            "-o",
            "json",
            "--show-managed-fields",
            "-f",
            "-",
        ];
        let (ok_up, up, err_up) = kubectl_with_stdin(&bin, &up_kc, &args, manifest);
        assert!(ok_up, "upstream refused {name}: {err_up}");
        let (ok_nk, nk, err_nk) = kubectl_with_stdin(&bin, &nk_kc, &args, manifest);
        if !ok_nk {
            failures.push(format!("{name}: nestkube refused: {err_nk}"));
            continue;
        }
        assert!(!entries(&up).is_empty(), "upstream {name}: {up}");
        if entries(&up) != entries(&nk) {
            failures.push(format!(
                "{name}: managedFields differ:\n  upstream {}\n  nestkube {}",
                Value::from(entries(&up)),
                Value::from(entries(&nk))
            ));
        }
    }

    // Update entries (kubectl create): who owns what a create sets.
    for (name, manifest) in CREATED {
        let args = [
            "create",
            "--dry-run=server",
            "-n",
            "default",
            "-o",
            "json",
            "--show-managed-fields",
            "-f",
            "-",
        ];
        let (ok_up, up, err_up) = kubectl_with_stdin(&bin, &up_kc, &args, manifest);
        assert!(ok_up, "upstream refused {name}: {err_up}");
        let (ok_nk, nk, err_nk) = kubectl_with_stdin(&bin, &nk_kc, &args, manifest);
        if !ok_nk {
            failures.push(format!("{name}: nestkube refused: {err_nk}"));
            continue;
        }
        assert!(!entries(&up).is_empty(), "upstream {name}: {up}");
        if entries(&up) != entries(&nk) {
            failures.push(format!(
                "{name} (create): managedFields differ:\n  upstream {}\n  nestkube {}",
                Value::from(entries(&up)),
                Value::from(entries(&nk))
            ));
        }
    }

    // A conflict with an updater, then forced: the same message and owners.
    let cm = format!("ssa-parity-{}", std::process::id());
    for (who, kc) in [("upstream", &up_kc), ("nestkube", &nk_kc)] {
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            kc,
            &[
                "create",
                "configmap",
                &cm,
                "-n",
                "default",
                "--from-literal=a=1",
                "--from-literal=b=1",
            ],
            "",
        );
        assert!(ok, "{who}: {err}");
    }
    let applied = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{cm}"}},"data":{{"a":"2","c":"3"}}}}"#
    );
    let mut outcomes = Vec::new();
    for kc in [&up_kc, &nk_kc] {
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            kc,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "tool",
                "-n",
                "default",
                "-f",
                "-",
            ],
            &applied,
        );
        let (forced, obj, ferr) = kubectl_with_stdin(
            &bin,
            kc,
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                "tool",
                "-n",
                "default",
                "-o",
                "json",
                "--show-managed-fields",
                "-f",
                "-",
            ],
            &applied,
        );
        assert!(forced, "{ferr}");
        outcomes.push((
            ok,
            err.trim().to_string(),
            entries(&obj),
            obj["data"].clone(),
        ));
        let _ = kubectl_with_stdin(&bin, kc, &["delete", "configmap", &cm, "-n", "default"], "");
    }
    if outcomes[0] != outcomes[1] {
        failures.push(format!(
            "conflict and force differ:\n  upstream {:?}\n  nestkube {:?}",
            outcomes[0], outcomes[1]
        ));
    }
    assert!(
        failures.is_empty(),
        "differences from kube-apiserver:\n{}",
        failures.join("\n")
    );
}

/// The entries of the managers a test wrote with, the time replaced by
/// whether there is one (upstream's scale entries may have none).
fn entries_of(obj: &Value, managers: &[&str]) -> Vec<Value> {
    let mut out: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| managers.iter().any(|m| e["manager"] == *m))
        .map(|mut e| {
            let timed = e.get("time").is_some();
            e["time"] = timed.into();
            e
        })
        .collect();
    out.sort_by_key(|e| e.to_string());
    out
}

/// Apply through the `scale` subresource: the same conflict with the
/// object's applier, the same ownership after a forced apply and after a
/// `kubectl scale`, on the Deployment's entries.
#[test]
fn scale_subresource_apply_matches_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let bin = host.bins().kubectl.to_string_lossy().into_owned();
    let name = format!("ssa-scale-{}", std::process::id());
    let deployment = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"{name}"}},
        "spec":{{"replicas":2,"selector":{{"matchLabels":{{"a":"{name}"}}}},
        "template":{{"metadata":{{"labels":{{"a":"{name}"}}}},"spec":{{"containers":[{{"name":"c","image":"nginx"}}]}}}}}}}}"#
    );
    let scale = serde_json::json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                                   "metadata": {"name": name}, "spec": {"replicas": 3}});
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut outcomes = Vec::new();
    for kc in [host.kubeconfig(), server.kubeconfig.clone()] {
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            &kc,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "author",
                "-n",
                "default",
                "-f",
                "-",
            ],
            &deployment,
        );
        assert!(ok, "{err}");
        let (conflict, forced) = rt.block_on(async {
            let kubeconfig = kube::config::Kubeconfig::read_from(&kc).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .expect("config");
            let client = kube::Client::try_from(config).expect("client");
            let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                kube::Api::namespaced(client, "default");
            let patch = kube::api::Patch::Apply(&scale);
            let conflict = api
                .patch_scale(&name, &kube::api::PatchParams::apply("hpa"), &patch)
                .await
                .map_err(|e| e.to_string());
            let forced = api
                .patch_scale(&name, &kube::api::PatchParams::apply("hpa").force(), &patch)
                .await
                .map(|s| s.spec.and_then(|s| s.replicas))
                .map_err(|e| e.to_string());
            (conflict.map(|_| ()), forced)
        });
        let get = |what: &str| {
            let (ok, obj, err) = kubectl_with_stdin(
                &bin,
                &kc,
                &[
                    "get",
                    "deployment",
                    &name,
                    "-n",
                    "default",
                    "-o",
                    "json",
                    "--show-managed-fields",
                ],
                "",
            );
            assert!(ok, "{what}: {err}");
            entries_of(&obj, &["author", "hpa", "kubectl"])
        };
        let after_apply = get("after the scale apply");
        let (ok, _, err) = kubectl_with_stdin(
            &bin,
            &kc,
            &[
                "scale",
                "deployment",
                &name,
                "-n",
                "default",
                "--replicas=4",
            ],
            "",
        );
        assert!(ok, "{err}");
        let after_scale = get("after kubectl scale");
        outcomes.push((conflict, forced, after_apply, after_scale));
        let _ = kubectl_with_stdin(
            &bin,
            &kc,
            &["delete", "deployment", &name, "-n", "default"],
            "",
        );
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "scale apply differs (left upstream, right nestkube)"
    );
}

/// A delete that only sets deletionTimestamp (finalizers pending, and the
/// `orphan` finalizer the delete adds) records no managedFields on either.
#[test]
fn delete_with_finalizers_keeps_managed_fields_as_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let bin = host.bins().kubectl.to_string_lossy().into_owned();
    let name = format!("ssa-held-{}", std::process::id());
    let cm = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","finalizers":["example.com/hold"]}},"data":{{"a":"1"}}}}"#
    );
    let mut outcomes = Vec::new();
    for kc in [host.kubeconfig(), server.kubeconfig.clone()] {
        let run = |args: &[&str], input: &str| {
            let (ok, obj, err) = kubectl_with_stdin(&bin, &kc, args, input);
            assert!(ok, "{args:?}: {err}");
            obj
        };
        let get = [
            "get",
            "configmap",
            &name,
            "-n",
            "default",
            "-o",
            "json",
            "--show-managed-fields",
        ];
        run(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "author",
                "-n",
                "default",
                "-f",
                "-",
            ],
            &cm,
        );
        let before = run(&get, "");
        run(
            &[
                "delete",
                "configmap",
                &name,
                "-n",
                "default",
                "--cascade=orphan",
                "--wait=false",
            ],
            "",
        );
        let after = run(&get, "");
        assert!(
            after["metadata"]["deletionTimestamp"].is_string(),
            "{after}"
        );
        assert_eq!(
            before["metadata"]["managedFields"], after["metadata"]["managedFields"],
            "the delete changed managedFields"
        );
        outcomes.push((
            entries_of(&after, &["author"]),
            after["metadata"]["finalizers"].clone(),
        ));
        run(
            &[
                "patch",
                "configmap",
                &name,
                "-n",
                "default",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            "",
        );
    }
    assert_eq!(outcomes[0], outcomes[1], "left upstream, right nestkube");
}
