//! Server-side apply and `metadata.managedFields` with real clients
//! (kubectl, kube-rs, raw HTTP) against a real server on 127.0.0.1:
//! create and update by apply, no-op re-apply, field removal, conflicts
//! with upstream's causes, `--force-conflicts`, managedFields on every
//! write, the upgrade from client-side apply, dry runs and `kubectl diff`.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::common::{self, Fixture, has_kubectl, kubectl, send_bytes};

const APPLY: &str = "application/apply-patch+yaml";

/// Runs kubectl off the runtime's threads.
async fn run(kc: &Path, args: &[&str]) -> (bool, String) {
    let kc = kc.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(&kc, &args)
    })
    .await
    .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn get_json(kc: &Path, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    let (ok, out) = run(kc, &args).await;
    assert!(ok, "{out}");
    serde_json::from_str(&out).expect("json")
}

/// The entry of `manager` (and `operation`), if any.
fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn kubectl_server_side_apply_create_update_noop_remove_conflict_force() {
    if !has_kubectl() {
        return;
    }
    let f = Fixture::start().await;
    let kc = f.running.root_kubeconfig.clone();
    let cm = |data: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\n  labels:\n    app: web\ndata:\n{data}"
        )
    };
    let file = write(f.dir(), "cm.yaml", &cm("  a: \"1\"\n  b: \"2\"\n"));
    let file = file.to_str().unwrap();

    // Create by apply.
    let (ok, out) = run(&kc, &["apply", "--server-side", "-f", file]).await;
    assert!(ok && out.contains("serverside-applied"), "{out}");
    let obj = get_json(&kc, &["configmap", "ssa", "-n", "default"]).await;
    let e = entry(&obj, "kubectl", "Apply").expect("an Apply entry of kubectl");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e["time"].is_string());
    assert_eq!(
        e["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
    );

    // Re-applying the same configuration changes nothing.
    let (ok, out) = run(&kc, &["apply", "--server-side", "-f", file]).await;
    assert!(ok, "{out}");
    let again = get_json(&kc, &["configmap", "ssa", "-n", "default"]).await;
    assert_eq!(rv(&again), rv(&obj));

    // A field left out of the configuration is removed.
    std::fs::write(file, cm("  a: \"1\"\n")).unwrap();
    let (ok, out) = run(&kc, &["apply", "--server-side", "-f", file]).await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "ssa", "-n", "default"]).await;
    assert_eq!(obj["data"], json!({"a": "1"}));
    assert_eq!(
        entry(&obj, "kubectl", "Apply").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
    );

    // Another manager changing kubectl's field conflicts.
    let other = write(f.dir(), "other.yaml", &cm("  a: \"changed\"\n"));
    let other = other.to_str().unwrap();
    let (ok, out) = run(
        &kc,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            other,
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.a"),
        "{out}"
    );
    // ... and --force-conflicts takes the field.
    let (ok, out) = run(
        &kc,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "other",
            "-f",
            other,
        ],
    )
    .await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "ssa", "-n", "default"]).await;
    assert_eq!(obj["data"]["a"], "changed");
    assert_eq!(
        entry(&obj, "kubectl", "Apply").unwrap()["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:app": {}}}})
    );
    assert_eq!(
        entry(&obj, "other", "Apply").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
    );
}

#[tokio::test]
async fn conflicts_answer_409_with_upstream_causes() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    let path = "/api/v1/namespaces/default/configmaps/c?fieldManager=one";
    let body = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  x: \"{v}\"\n  y: \"{v}\"\n")
            .into_bytes()
    };
    let (code, obj) = send_bytes(&client, "PATCH", path, APPLY, body("1"), common::TIMEOUT).await;
    assert_eq!(code, 201, "{obj}");
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?fieldManager=two",
        APPLY,
        body("2"),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 2 conflicts: conflicts with \"one\":\n- .data.x\n- .data.y"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([
            {"reason": "FieldManagerConflict", "message": "conflict with \"one\"", "field": ".data.x"},
            {"reason": "FieldManagerConflict", "message": "conflict with \"one\"", "field": ".data.y"},
        ])
    );
    // An updater conflicts under its API version.
    let (code, obj) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?fieldManager=editor",
        "application/merge-patch+json",
        br#"{"data":{"z":"3"}}"#.to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?fieldManager=one",
        APPLY,
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  x: \"1\"\n  y: \"1\"\n  z: \"4\"\n"
            .to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.z"
    );
    // fieldManager is required; force only for apply.
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c",
        APPLY,
        body("1"),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?force=true",
        "application/merge-patch+json",
        b"{}".to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    // fieldManager is at most 128 bytes, on every write.
    let long = "m".repeat(129);
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        &format!("/api/v1/namespaces/default/configmaps/c?fieldManager={long}"),
        "application/merge-patch+json",
        b"{}".to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"
    );
    // managedFields may not be applied.
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?fieldManager=one",
        APPLY,
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  managedFields: []\n".to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (400, Some("metadata.managedFields must be nil"))
    );
}

#[tokio::test]
async fn managed_fields_on_every_write() {
    if !has_kubectl() {
        return;
    }
    let f = Fixture::start().await;
    let kc = f.running.root_kubeconfig.clone();
    let (ok, out) = run(
        &kc,
        &[
            "create",
            "configmap",
            "w",
            "-n",
            "default",
            "--from-literal=k=v",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "w", "-n", "default"]).await;
    let e = entry(&obj, "kubectl-create", "Update").expect("kubectl-create");
    assert_eq!(e["fieldsV1"], json!({"f:data": {".": {}, "f:k": {}}}));
    assert_eq!(e["apiVersion"], "v1");

    let (ok, out) = run(&kc, &["label", "configmap", "w", "-n", "default", "x=y"]).await;
    assert!(ok, "{out}");
    let (ok, out) = run(
        &kc,
        &[
            "patch",
            "configmap",
            "w",
            "-n",
            "default",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"k":"v2"}}"#,
        ],
    )
    .await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "w", "-n", "default"]).await;
    assert_eq!(
        entry(&obj, "kubectl-label", "Update").unwrap()["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
    );
    assert_eq!(
        entry(&obj, "kubectl-patch", "Update").unwrap()["fieldsV1"],
        json!({"f:data": {"f:k": {}}})
    );
    // kubectl-create lost the field kubectl-patch changed.
    assert_eq!(
        entry(&obj, "kubectl-create", "Update").unwrap()["fieldsV1"],
        json!({"f:data": {}})
    );

    // A deployment: list items by key, the status subresource's writer.
    let dep = write(
        f.dir(),
        "dep.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n        ports:\n        - containerPort: 80\n",
    );
    let (ok, out) = run(
        &kc,
        &["apply", "--server-side", "-f", dep.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["deployment", "web", "-n", "default"]).await;
    let fields = &entry(&obj, "kubectl", "Apply").unwrap()["fieldsV1"];
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {},
               "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}})
    );
    assert_eq!(fields["f:spec"]["f:selector"], json!({}));
    // Scale through the scale subresource: its own entry.
    let (ok, out) = run(
        &kc,
        &[
            "scale",
            "deployment",
            "web",
            "-n",
            "default",
            "--replicas=2",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["deployment", "web", "-n", "default"]).await;
    let scale = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "scale")
        .expect("a scale entry");
    assert_eq!(scale["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(
        entry(&obj, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"].get("f:replicas"),
        None,
        "kubectl's apply lost .spec.replicas to the scale"
    );

    // An empty list clears managedFields; later updates keep them cleared.
    let client = f.root_client().await;
    let (code, obj) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/w",
        "application/merge-patch+json",
        br#"{"metadata":{"managedFields":[]}}"#.to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert!(obj["metadata"].get("managedFields").is_none(), "{obj}");
    let (ok, out) = run(&kc, &["label", "configmap", "w", "-n", "default", "z=1"]).await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "w", "-n", "default"]).await;
    assert!(obj["metadata"].get("managedFields").is_none(), "{obj}");
    // The first apply gives what the object holds to "before-first-apply".
    let cfg = write(
        f.dir(),
        "w.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\n  namespace: default\ndata:\n  num: \"1\"\n",
    );
    let (ok, out) = run(
        &kc,
        &["apply", "--server-side", "-f", cfg.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "w", "-n", "default"]).await;
    assert!(
        entry(&obj, "before-first-apply", "Update").is_some(),
        "{obj}"
    );
    assert_eq!(obj["data"], json!({"k": "v2", "num": "1"}));
}

#[tokio::test]
async fn client_side_apply_upgrades_to_server_side_and_back() {
    if !has_kubectl() {
        return;
    }
    let f = Fixture::start().await;
    let kc = f.running.root_kubeconfig.clone();
    let text = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: csa\n  namespace: default\ndata:\n  a: \"{v}\"\n"
        )
    };
    let file = write(f.dir(), "csa.yaml", &text("1"));
    let file = file.to_str().unwrap();
    let (ok, out) = run(&kc, &["apply", "-f", file]).await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "csa", "-n", "default"]).await;
    assert!(
        entry(&obj, "kubectl-client-side-apply", "Update").is_some(),
        "{obj}"
    );

    // Server-side apply of a changed value takes the fields over (no conflict).
    std::fs::write(file, text("2")).unwrap();
    let (ok, out) = run(&kc, &["apply", "--server-side", "-f", file]).await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "csa", "-n", "default"]).await;
    assert_eq!(obj["data"]["a"], "2");
    assert_eq!(
        entry(&obj, "kubectl", "Apply").unwrap()["fieldsV1"]["f:data"],
        json!({"f:a": {}})
    );
    let last = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("the annotation is kept in step");
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["data"]["a"], "2");

    // And a later client-side apply still works.
    std::fs::write(file, text("3")).unwrap();
    let (ok, out) = run(&kc, &["apply", "-f", file]).await;
    assert!(ok, "{out}");
    let obj = get_json(&kc, &["configmap", "csa", "-n", "default"]).await;
    assert_eq!(obj["data"]["a"], "3");
}

#[tokio::test]
async fn dry_run_and_diff() {
    if !has_kubectl() {
        return;
    }
    let f = Fixture::start().await;
    let kc = f.running.root_kubeconfig.clone();
    let text = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n  namespace: default\ndata:\n  a: \"{v}\"\n"
        )
    };
    let file = write(f.dir(), "d.yaml", &text("1"));
    let file = file.to_str().unwrap();
    let (ok, out) = run(
        &kc,
        &["apply", "--server-side", "--dry-run=server", "-f", file],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(&kc, &["get", "configmap", "d", "-n", "default"]).await;
    assert!(!ok && out.contains("NotFound"), "{out}");
    let (ok, out) = run(&kc, &["apply", "--server-side", "-f", file]).await;
    assert!(ok, "{out}");
    let before = get_json(&kc, &["configmap", "d", "-n", "default"]).await;
    std::fs::write(file, text("2")).unwrap();
    let (ok, out) = run(&kc, &["diff", "--server-side", "-f", file]).await;
    assert!(!ok, "kubectl diff exits 1 on a difference: {out}");
    assert!(
        out.contains("-  a: \"1\"") && out.contains("+  a: \"2\""),
        "{out}"
    );
    let after = get_json(&kc, &["configmap", "d", "-n", "default"]).await;
    assert_eq!(rv(&after), rv(&before));
    assert_eq!(after["data"]["a"], "1");
}

#[tokio::test]
async fn kube_rs_patch_apply() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
    );
    let svc = |port: u16, manager_value: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"who": manager_value}},
               "spec": {"ports": [{"port": port, "name": "p"}], "selector": {"app": "s"}}})
    };
    let pp = PatchParams::apply("rs-one");
    let created = api
        .patch("s", &pp, &Patch::Apply(svc(80, "one")))
        .await
        .unwrap();
    let mf = &created.metadata.managed_fields.as_ref().unwrap()[0];
    assert_eq!(mf.manager.as_deref(), Some("rs-one"));
    assert_eq!(mf.operation.as_deref(), Some("Apply"));
    // Ports merge by (port, protocol) with protocol's default.
    let two = api
        .patch(
            "s",
            &PatchParams::apply("rs-two"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                  "spec": {"ports": [{"port": 81, "name": "q"}]}}),
            ),
        )
        .await
        .unwrap();
    let ports: Vec<i64> = two.data["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, vec![80, 81]);
    let err = api
        .patch(
            "s",
            &PatchParams::apply("rs-two"),
            &Patch::Apply(svc(80, "two")),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(e) => assert_eq!((e.code, e.reason.as_str()), (409, "Conflict")),
        other => panic!("expected a conflict, got {other}"),
    }
    let forced = api
        .patch(
            "s",
            &PatchParams::apply("rs-two").force(),
            &Patch::Apply(svc(80, "two")),
        )
        .await
        .unwrap();
    assert_eq!(forced.metadata.labels.unwrap()["who"], "two");
    // rs-one still owns its port (rs-two applies it too now) and the selector.
    let one = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("rs-one"))
        .unwrap();
    let fields = serde_json::to_value(one.fields_v1.unwrap()).unwrap();
    assert!(fields["f:spec"]["f:selector"].is_object(), "{fields}");
    assert!(fields["f:metadata"].get("f:labels").is_none(), "{fields}");
}

#[tokio::test]
async fn status_subresource_apply_owns_status_only() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    let base = "/api/v1/namespaces/default/services/st";
    let svc = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: st\nspec:\n  ports:\n  - port: 80\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: 10.9.9.9\n".to_vec();
    let (code, obj) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}?fieldManager=author"),
        APPLY,
        svc,
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    // status through the main resource is neither stored nor owned.
    assert!(
        obj["status"]["loadBalancer"].get("ingress").is_none(),
        "{obj}"
    );
    let author = entry(&obj, "author", "Apply").unwrap();
    assert!(author["fieldsV1"].get("f:status").is_none(), "{author}");

    let status = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: st\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: 10.1.1.1\n".to_vec();
    let (code, obj) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}/status?fieldManager=lb"),
        APPLY,
        status,
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(
        obj["status"]["loadBalancer"]["ingress"][0]["ip"],
        "10.1.1.1"
    );
    let lb = entry(&obj, "lb", "Apply").expect("the status applier's entry");
    assert_eq!(lb["subresource"], "status");
    assert_eq!(
        lb["fieldsV1"],
        json!({"f:status": {"f:loadBalancer": {"f:ingress": {}}}})
    );
    // The author's entry is untouched.
    assert_eq!(
        entry(&obj, "author", "Apply").unwrap()["fieldsV1"],
        author["fieldsV1"]
    );
    // Apply through /status of a missing object is 404, not a create.
    let (code, _) = send_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/services/missing/status?fieldManager=lb",
        APPLY,
        b"apiVersion: v1\nkind: Service\nmetadata:\n  name: missing\n".to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn scale_subresource_apply_maps_replicas_ownership_to_the_object() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    let base = "/apis/apps/v1/namespaces/default/deployments/web";
    let deployment = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: c\n        image: nginx\n".to_vec();
    let (code, obj) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}?fieldManager=author"),
        APPLY,
        deployment.clone(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    let scale = |n: u32| {
        format!("apiVersion: autoscaling/v1\nkind: Scale\nmetadata:\n  name: web\nspec:\n  replicas: {n}\n")
            .into_bytes()
    };
    // The author owns the replicas: an apply through scale conflicts.
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}/scale?fieldManager=hpa"),
        APPLY,
        scale(3),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"author\": .spec.replicas"
    );
    // Forced: the Scale answers, the object holds the replicas and the
    // applier's entry (subresource scale, the object's apiVersion).
    let (code, out) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}/scale?fieldManager=hpa&force=true"),
        APPLY,
        scale(3),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        (out["kind"].as_str(), &out["spec"]["replicas"]),
        (Some("Scale"), &json!(3))
    );
    let (_, obj) = common::send(&client, "GET", base, None, &[]).await;
    assert_eq!(obj["spec"]["replicas"], 3);
    let hpa = entry(&obj, "hpa", "Apply").expect("the scale applier's entry");
    assert_eq!(hpa["subresource"], "scale");
    assert_eq!(hpa["apiVersion"], "apps/v1");
    assert_eq!(hpa["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let author = entry(&obj, "author", "Apply").unwrap();
    assert!(
        author["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{author}"
    );
    assert!(
        author["fieldsV1"]["f:spec"].get("f:template").is_some(),
        "{author}"
    );
    // The author's next apply conflicts with the scale applier.
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}?fieldManager=author"),
        APPLY,
        deployment,
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"hpa\" with subresource \"scale\": .spec.replicas"
    );
    // A plain update through scale takes the replicas from the applier.
    let (code, out) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}/scale?fieldManager=scaler"),
        "application/merge-patch+json",
        br#"{"spec":{"replicas":4}}"#.to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let (_, obj) = common::send(&client, "GET", base, None, &[]).await;
    assert!(entry(&obj, "hpa", "Apply").is_none(), "{obj}");
    let scaler = entry(&obj, "scaler", "Update").expect("the scale updater's entry");
    assert_eq!(
        (
            &scaler["subresource"],
            &scaler["apiVersion"],
            &scaler["fieldsV1"]
        ),
        (
            &json!("scale"),
            &json!("apps/v1"),
            &json!({"f:spec": {"f:replicas": {}}})
        )
    );
    // The configuration must be a Scale; a missing object is 404.
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        &format!("{base}/scale?fieldManager=hpa"),
        APPLY,
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n".to_vec(),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (400, Some("invalid object type: apps/v1, Kind=Deployment"))
    );
    let (code, _) = send_bytes(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/missing/scale?fieldManager=hpa",
        APPLY,
        scale(1),
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 404);
}

/// A delete that only marks the object (finalizers pending) is no write of
/// a field manager, as upstream's delete handler runs none: the entries
/// stay exactly as they were, the `orphan` finalizer it adds owned by
/// nobody.
#[tokio::test]
async fn delete_marking_the_object_records_no_managed_fields() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    let path = "/api/v1/namespaces/default/configmaps/held";
    let cm = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers:\n  - example.com/hold\ndata:\n  a: \"1\"\n".to_vec();
    let (code, before) = send_bytes(
        &client,
        "PATCH",
        &format!("{path}?fieldManager=author"),
        APPLY,
        cm,
        common::TIMEOUT,
    )
    .await;
    assert_eq!(code, 201, "{before}");
    let (code, marked) = common::send(
        &client,
        "DELETE",
        &format!("{path}?propagationPolicy=Orphan"),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200, "{marked}");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["example.com/hold", "orphan"])
    );
    assert_eq!(
        marked["metadata"]["managedFields"],
        before["metadata"]["managedFields"]
    );
    let (_, stored) = common::send(&client, "GET", path, None, &[]).await;
    assert_eq!(
        stored["metadata"]["managedFields"],
        before["metadata"]["managedFields"]
    );
}
