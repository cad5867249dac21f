//! A VirtualCluster's `spec.limits` enforced on its child cluster, against a
//! real server: `maxObjects` (403 on the create past it, again allowed after
//! a delete or a raised limit), `requestsPerSecond` (429 with `Retry-After`
//! under a burst; a cluster without limits is unaffected) and
//! `maxConcurrentRequests` (429 while N requests are in flight; watches do
//! not count). Limits are set through the VirtualCluster, as a tenant
//! operator would; every wait is on a condition with a timeout.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::{Client, config::Kubeconfig};
use nestkube_apiserver::auth::{Identity, UserInfo};
use nestkube_apiserver::server::RunningServer;
use nestkube_apiserver::tenancy::DEFAULT_NAMESPACES;
use nestkube_apiserver::tenancy::limits::{self, Limits};

use crate::common::{self, client_no_retry, virtual_clusters, wait_for};

const WAIT: Duration = Duration::from_secs(20);

async fn server() -> (RunningServer, Client, tempfile::TempDir) {
    let (running, _, dir) = common::server().await;
    let kubeconfig = Kubeconfig::read_from(&running.root_kubeconfig).expect("kubeconfig");
    let client = client_no_retry(kubeconfig).await;
    (running, client, dir)
}

/// An admin client of cluster `path` (a certificate its client CA issued).
async fn cluster_client(running: &RunningServer, path: &str) -> Client {
    client_no_retry(common::cluster_admin_kubeconfig(running, path)).await
}

/// Creates VirtualCluster `name` in the root cluster with `limits`, waits
/// until it is Ready and its child carries the limits; returns a client of
/// the child.
async fn virtual_cluster(
    running: &RunningServer,
    root: &Client,
    name: &str,
    limits: serde_json::Value,
) -> Client {
    let vc: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"limits": limits},
    }))
    .unwrap();
    virtual_clusters(root, "default")
        .create(&PostParams::default(), &vc)
        .await
        .expect("create VirtualCluster");
    let api = virtual_clusters(root, "default");
    wait_for("the VirtualCluster to be Ready", WAIT, || async {
        let vc = api.get(name).await.ok()?;
        (vc.data["status"]["phase"] == "Ready").then_some(())
    })
    .await;
    let expected: Limits = serde_json::from_value::<nestkube_tenant_crds::LimitsSpec>(limits)
        .map(|s| Limits::from(&s))
        .expect("limits");
    wait_for("the child to carry the limits", WAIT, || async {
        let cluster = running.api.clusters.get(name)?;
        (cluster.limits.get() == expected).then_some(())
    })
    .await;
    cluster_client(running, name).await
}

/// Changes the VirtualCluster's limits and waits until the child has them.
async fn set_limits(running: &RunningServer, root: &Client, name: &str, limits: serde_json::Value) {
    let patch = serde_json::json!({"spec": {"limits": limits}});
    virtual_clusters(root, "default")
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch VirtualCluster");
    let expected: Limits = serde_json::from_value::<nestkube_tenant_crds::LimitsSpec>(limits)
        .map(|s| Limits::from(&s))
        .expect("limits");
    wait_for("the new limits", WAIT, || async {
        let cluster = running.api.clusters.get(name)?;
        (cluster.limits.get() == expected).then_some(())
    })
    .await;
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .unwrap()
}

/// Status code, `Retry-After` and body of a GET through `client`.
async fn get_raw(client: &Client, path: &str) -> (u16, Option<String>, serde_json::Value) {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    let resp = client.send(req.map(Into::into)).await.expect("send");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, retry_after, value)
}

fn assert_too_many_requests(
    (status, retry_after, body): &(u16, Option<String>, serde_json::Value),
) {
    assert_eq!(*status, 429, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], "TooManyRequests", "{body}");
    assert_eq!(body["code"], 429, "{body}");
    assert_eq!(
        body["message"], "Too many requests, please try again later.",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_objects_refuses_creates_past_the_limit() {
    let (running, root, _dir) = server().await;
    let tenant = virtual_cluster(
        &running,
        &root,
        "small",
        serde_json::json!({"maxObjects": 1000}),
    )
    .await;
    // Let the controllers finish what they create in every namespace, then
    // leave room for exactly two more objects.
    for ns in DEFAULT_NAMESPACES {
        let sas: Api<ServiceAccount> = Api::namespaced(tenant.clone(), ns);
        let cms: Api<ConfigMap> = Api::namespaced(tenant.clone(), ns);
        wait_for("the namespace defaults", WAIT, || async {
            sas.get_opt("default").await.ok()??;
            cms.get_opt("kube-root-ca.crt").await.ok()??;
            Some(())
        })
        .await;
    }
    let storage = running.api.store.storage();
    let used = limits::count_objects(storage, "small").await.unwrap();
    assert!(used >= 4, "{used}");
    set_limits(
        &running,
        &root,
        "small",
        serde_json::json!({"maxObjects": used + 2}),
    )
    .await;

    let cms: Api<ConfigMap> = Api::namespaced(tenant.clone(), "default");
    let pp = PostParams::default();
    cms.create(&pp, &cm("one")).await.expect("first create");
    cms.create(&pp, &cm("two")).await.expect("second create");
    let err = cms
        .create(&pp, &cm("three"))
        .await
        .expect_err("over the limit");
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert_eq!(status.reason, "Forbidden", "{status:?}");
    assert!(
        status
            .message
            .contains("exceeded virtual cluster limit: maxObjects")
            && status
                .message
                .contains(&format!("limited: objects={}", used + 2))
            && status
                .message
                .starts_with("configmaps \"three\" is forbidden"),
        "{}",
        status.message
    );
    // The other kinds count too; the root cluster has no limit.
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "extra"}})).unwrap();
    assert!(
        Api::<Namespace>::all(tenant.clone())
            .create(&pp, &ns)
            .await
            .is_err()
    );
    Api::<ConfigMap>::namespaced(root.clone(), "default")
        .create(&pp, &cm("three"))
        .await
        .expect("the root cluster is not limited");

    // A delete frees a slot.
    cms.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    cms.create(&pp, &cm("three"))
        .await
        .expect("create after a delete");
    assert!(cms.create(&pp, &cm("four")).await.is_err());

    // Raising the limit in the VirtualCluster takes effect.
    set_limits(
        &running,
        &root,
        "small",
        serde_json::json!({"maxObjects": used + 3}),
    )
    .await;
    cms.create(&pp, &cm("four"))
        .await
        .expect("create after raising the limit");
    assert_eq!(
        limits::count_objects(storage, "small").await.unwrap(),
        used + 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rate_is_limited_per_cluster() {
    let (running, root, _dir) = server().await;
    let tenant = virtual_cluster(
        &running,
        &root,
        "slow",
        serde_json::json!({"requestsPerSecond": 1}),
    )
    .await;
    // A burst: the bucket holds 2 tokens and refills 1 per second, so 40
    // requests at once cannot all pass.
    let burst = futures::future::join_all(
        (0..40).map(|_| get_raw(&tenant, "/api/v1/namespaces/default/configmaps")),
    )
    .await;
    let ok = burst.iter().filter(|r| r.0 == 200).count();
    let throttled: Vec<_> = burst.iter().filter(|r| r.0 == 429).collect();
    assert!(ok >= 2, "the burst allowance: {ok}");
    assert!(throttled.len() >= 20, "{} throttled", throttled.len());
    assert_eq!(ok + throttled.len(), 40);
    assert_too_many_requests(throttled[0]);

    // The root cluster (no limits) is unaffected, at the same moment.
    let root_burst = futures::future::join_all(
        (0..40).map(|_| get_raw(&root, "/api/v1/namespaces/default/configmaps")),
    )
    .await;
    assert!(root_burst.iter().all(|r| r.0 == 200));

    // Tokens come back with time.
    wait_for("a token", WAIT, || async {
        (get_raw(&tenant, "/api/v1/namespaces").await.0 == 200).then_some(())
    })
    .await;

    // Raising the rate takes effect at once.
    set_limits(
        &running,
        &root,
        "slow",
        serde_json::json!({"requestsPerSecond": 1000}),
    )
    .await;
    let burst = futures::future::join_all(
        (0..40).map(|_| get_raw(&tenant, "/api/v1/namespaces/default/configmaps")),
    )
    .await;
    assert!(burst.iter().all(|r| r.0 == 200));
}

/// Sends a create into cluster `path` in process whose body never ends
/// until the returned sender is dropped: a request held in flight.
fn hold_request(
    running: &RunningServer,
    path: &str,
) -> (
    futures::channel::mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    tokio::task::JoinHandle<u16>,
) {
    let (tx, rx) = futures::channel::mpsc::channel(1);
    let req = http::Request::post(format!(
        "/clusters/{path}/api/v1/namespaces/default/configmaps"
    ))
    .header("content-type", "application/json")
    .body(StreamBody::new(rx))
    .unwrap();
    let identity = Identity::Cluster {
        cluster: running.api.clusters.get(path).expect("cluster"),
        user: UserInfo {
            name: "test-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        },
    };
    let api = Arc::clone(&running.api);
    let task = tokio::spawn(async move { api.handle(req, &identity).await.status().as_u16() });
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_limited_and_watches_do_not_count() {
    let (running, root, _dir) = server().await;
    let tenant = virtual_cluster(
        &running,
        &root,
        "narrow",
        serde_json::json!({"maxConcurrentRequests": 2}),
    )
    .await;
    // Watches are long-running: any number of them, and requests still pass.
    let cms: Api<ConfigMap> = Api::namespaced(tenant.clone(), "default");
    let mut watches = Vec::new();
    for _ in 0..3 {
        watches.push(
            cms.watch(&WatchParams::default(), "0")
                .await
                .expect("watch")
                .boxed(),
        );
    }
    cms.list(&ListParams::default())
        .await
        .expect("list beside watches");

    // Two requests held in flight fill the cluster (one at a time: a held
    // request is itself refused if the slots are busy when it arrives).
    let cluster = running.api.clusters.get("narrow").unwrap();
    let mut held = Vec::new();
    for n in 1..=2 {
        let (tx, task) = hold_request(&running, "narrow");
        wait_for("a request in flight", WAIT, || async {
            assert!(!task.is_finished(), "the held request was answered");
            (cluster.limits.in_flight() == n).then_some(())
        })
        .await;
        held.push((tx, task));
    }
    assert_too_many_requests(&get_raw(&tenant, "/api/v1/namespaces").await);
    assert!(cluster.limits.admit(false).is_err());
    assert!(cluster.limits.admit(true).is_ok(), "a watch still passes");
    assert_eq!(
        get_raw(&root, "/api/v1/namespaces").await.0,
        200,
        "other clusters are unaffected"
    );

    // Raising the limit takes effect while they are held.
    set_limits(
        &running,
        &root,
        "narrow",
        serde_json::json!({"maxConcurrentRequests": 3}),
    )
    .await;
    assert_eq!(get_raw(&tenant, "/api/v1/namespaces").await.0, 200);
    set_limits(
        &running,
        &root,
        "narrow",
        serde_json::json!({"maxConcurrentRequests": 2}),
    )
    .await;
    assert_eq!(get_raw(&tenant, "/api/v1/namespaces").await.0, 429);

    // Ending them frees the slots.
    for (tx, task) in held {
        drop(tx);
        assert!(task.await.unwrap() >= 400, "an empty body");
    }
    assert_eq!(cluster.limits.in_flight(), 0);
    assert_eq!(get_raw(&tenant, "/api/v1/namespaces").await.0, 200);
    drop(watches);
}
