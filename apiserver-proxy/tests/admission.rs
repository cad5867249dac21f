//! Admission against a real server: the RuntimeClass policy, Pod Security
//! admission, the host-escape guard, ServiceAccount admission and the
//! VirtualCluster policy inheritance, each through the API with kube-rs
//! (allowed, refused with 403 and nothing stored, defaulted), and the
//! ReplicaSet controller's `ReplicaFailure` condition when admission refuses
//! its pods. Virtual clusters are made the way tenants make them, with a
//! VirtualCluster object; every wait is on a condition with a timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

mod common;
use common::Fixture;

const WAIT: Duration = Duration::from_secs(10);

/// Polls `check` until it returns `Some`, or panics after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An admin client of cluster `path`.
async fn admin(f: &Fixture, path: &str) -> Client {
    f.user_client(path, "test-admin", &["system:masters"]).await
}

fn virtual_clusters(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("tenancy.nestkube.io", "v1alpha1", "VirtualCluster");
    Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk))
}

/// The child path of VirtualCluster `name` in `parent`.
fn child(parent: &str, name: &str) -> String {
    if parent == "root" {
        name.to_string()
    } else {
        format!("{parent}:{name}")
    }
}

/// Creates VirtualCluster `name` in namespace `default` of `parent` with
/// `spec`, waits until its cluster is served with that policy, and returns
/// an admin client of it.
async fn virtual_cluster(f: &Fixture, parent: &str, name: &str, spec: Value) -> Client {
    let client = admin(f, parent).await;
    let vc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap();
    let created = virtual_clusters(&client)
        .create(&PostParams::default(), &vc)
        .await
        .expect("create VirtualCluster");
    let path = child(parent, name);
    let stored_spec = created.data["spec"].clone();
    wait_for("the child cluster with its policy", WAIT, || async {
        let cluster = f.running.api.clusters.get(&path)?;
        let placement = cluster.placement()?;
        (serde_json::to_value(&placement.spec).ok()? == stored_spec).then_some(())
    })
    .await;
    wait_for("the child's default namespace", WAIT, || async {
        let c = admin(f, &path).await;
        Api::<Namespace>::all(c).get("default").await.ok()
    })
    .await;
    admin(f, &path).await
}

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "nginx"}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// The error of a refused request: (code, reason, message).
fn refusal<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts a 403 Forbidden whose message contains every one of `parts`,
/// and that `name` was not stored.
async fn assert_forbidden<T: std::fmt::Debug>(
    r: Result<T, kube::Error>,
    pods: &Api<Pod>,
    name: &str,
    parts: &[&str],
) -> String {
    let (code, reason, message) = refusal(r);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{message}");
    for p in parts {
        assert!(message.contains(p), "{message:?} lacks {p:?}");
    }
    assert!(
        pods.get_opt(name).await.unwrap().is_none(),
        "a refused pod is not stored"
    );
    message
}

/// Waits for ReplicaSet `name`'s ReplicaFailure condition (status True,
/// reason FailedCreate); returns its message.
async fn replica_failure(rss: &Api<ReplicaSet>, name: &str) -> String {
    let cond = wait_for("the ReplicaFailure condition", WAIT, || async {
        let rs = serde_json::to_value(rss.get(name).await.ok()?).ok()?;
        rs["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure")
            .cloned()
    })
    .await;
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "FailedCreate");
    cond["message"].as_str().unwrap_or_default().to_string()
}

fn runtime_class(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.runtime_class_name.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_class_policy() {
    let f = Fixture::start().await;
    let c = virtual_cluster(
        &f,
        "root",
        "rc",
        json!({"isolation": {"runtimeClassName": "kata",
            "allowedRuntimeClassNames": ["kata", "gvisor"], "podSecurity": "privileged"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let pp = PostParams::default();

    // Defaulted at create, visible in the stored pod.
    let p = pods.create(&pp, &pod("plain", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&p), Some("kata"));
    let p = pods.get("plain").await.unwrap();
    assert_eq!(runtime_class(&p), Some("kata"));
    // Another allowed class is kept.
    let p = pods
        .create(&pp, &pod("g", json!({"runtimeClassName": "gvisor"})))
        .await
        .unwrap();
    assert_eq!(runtime_class(&p), Some("gvisor"));
    // A class outside the allowed set: 403, nothing stored.
    let r = pods
        .create(&pp, &pod("bad", json!({"runtimeClassName": "runc"})))
        .await;
    let msg = assert_forbidden(
        r,
        &pods,
        "bad",
        &["pods \"bad\" is forbidden: ", "\"runc\"", "kata, gvisor"],
    )
    .await;
    assert!(msg.contains("spec.runtimeClassName"), "{msg}");
    // Dry run is refused alike.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let r = pods
        .create(&dry, &pod("bad", json!({"runtimeClassName": "runc"})))
        .await;
    assert_forbidden(r, &pods, "bad", &["\"runc\""]).await;

    // A namespace narrows (its default and its allowed list).
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "narrow",
        "annotations": {"runtime.nestkube.io/allowed-classes": "gvisor",
                        "runtime.nestkube.io/default-class": "gvisor"}}}))
    .unwrap();
    namespaces.create(&pp, &ns).await.unwrap();
    let narrow: Api<Pod> = Api::namespaced(c.clone(), "narrow");
    let p = narrow.create(&pp, &pod("plain", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&p), Some("gvisor"));
    let r = narrow
        .create(&pp, &pod("k", json!({"runtimeClassName": "kata"})))
        .await;
    assert_forbidden(
        r,
        &narrow,
        "k",
        &["\"kata\"", "namespace \"narrow\"", "allowed: gvisor"],
    )
    .await;

    // ... but never widens: a namespace naming a class the cluster does not
    // allow is refused.
    let wide: Namespace = serde_json::from_value(json!({"metadata": {"name": "wide",
        "annotations": {"runtime.nestkube.io/allowed-classes": "kata, runc"}}}))
    .unwrap();
    let (code, _, msg) = refusal(namespaces.create(&pp, &wide).await);
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains("namespaces \"wide\" is forbidden") && msg.contains("\"runc\""),
        "{msg}"
    );

    // Templates are not judged; the ReplicaSet's pods are, and the refusal
    // shows in its ReplicaFailure condition.
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"runtimeClassName": "runc", "containers": [{"name": "c", "image": "nginx"}]}}}}))
    .unwrap();
    rss.create(&pp, &rs)
        .await
        .expect("templates are not judged");
    let m = replica_failure(&rss, "web").await;
    assert!(
        m.starts_with("pods \"web-\" is forbidden: ") && m.contains("\"runc\""),
        "{m}"
    );

    // The root cluster has no policy.
    let root: Api<Pod> = Api::namespaced(f.root_client().await, "default");
    let p = root
        .create(&pp, &pod("any", json!({"runtimeClassName": "runc"})))
        .await
        .unwrap();
    assert_eq!(runtime_class(&p), Some("runc"));
    let p = root.create(&pp, &pod("none", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&p), None);
}
