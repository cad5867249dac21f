//! Fair scheduling between tenants (`server::flowcontrol`), on by default,
//! against a real server made small through its options (2 seats, a queue
//! of 1 per tenant) so that every step is decided by state, not by time:
//! a flooding cluster's request past its full queue gets 429 with
//! `Retry-After`, while another cluster's request waits its turn and is
//! served before the flooder's queued one; watches, health checks, the
//! root cluster's operator and a body still arriving hold no seat.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, WatchParams};
use nestkube_apiserver::auth::{Identity, UserInfo};
use nestkube_apiserver::server::ServeOptions;
use nestkube_apiserver::server::flowcontrol::Config;
use nestkube_apiserver::tenancy::limits::Limits;

use crate::common::{Fixture, client_no_retry, wait_for};

const WAIT: Duration = Duration::from_secs(20);

/// Sends a create into cluster `path` in process whose body never ends
/// until the returned sender is dropped: a slow upload.
fn slow_upload(
    f: &Fixture,
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
        cluster: f.running.api.clusters.get(path).expect("cluster"),
        user: UserInfo {
            name: "uploader".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        },
    };
    let api = Arc::clone(&f.running.api);
    let task = tokio::spawn(async move { api.handle(req, &identity).await.status().as_u16() });
    (tx, task)
}

/// Status, `Retry-After` and body of a GET of `path`.
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

/// An admin client of cluster `path` (not exempt: a tenant's admin).
async fn tenant_admin(f: &Fixture, path: &str) -> Client {
    let cert = f.issue(path, "tenant-admin", &["system:masters"]);
    client_no_retry(f.kubeconfig(Some(path), &cert)).await
}

// One thread: after a seat is freed, the test sees whom the scheduler
// gave it before any request runs on.
#[tokio::test]
async fn a_flooding_cluster_is_refused_while_another_is_served_in_turn() {
    let f = Fixture::start_with(ServeOptions {
        flow_control: Config {
            seats: 2,
            per_tenant: 0,
            queue_length: 1,
            queue_wait: Duration::from_secs(600),
        },
        ..Default::default()
    })
    .await;
    f.create_cluster("flood").await;
    f.create_cluster("calm").await;
    let fc = f.running.api.flow_control.clone();
    let flood = tenant_admin(&f, "flood").await;
    let calm = tenant_admin(&f, "calm").await;
    let root = f.root_client().await;
    assert_eq!(get_raw(&calm, "/api/v1/namespaces").await.0, 200);
    assert_eq!(fc.in_use(), 0);

    // A request takes its seat once its body is in: a slow upload (past
    // the cluster's limits filter, which counts it in flight) holds none.
    let cluster = f.running.api.clusters.get("flood").unwrap();
    cluster.limits.set(Limits {
        max_concurrent_requests: Some(100),
        ..Limits::default()
    });
    let (upload, uploading) = slow_upload(&f, "flood");
    wait_for("the upload in flight", WAIT, || async {
        (cluster.limits.in_flight() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fc.in_use(), 0, "a body still arriving holds no seat");
    cluster.limits.set(Limits::default());

    // The flooder holds both seats (taken as its requests take them) and
    // queues one more request: its queue is full.
    let seat1 = fc.acquire("flood", "tenant-admin").await.unwrap();
    let _seat2 = fc.acquire("flood", "tenant-admin").await.unwrap();
    let queued = {
        let flood = flood.clone();
        tokio::spawn(async move { get_raw(&flood, "/api/v1/namespaces").await.0 })
    };
    wait_for("the flooder's request to queue", WAIT, || async {
        (fc.queued("flood") == 1).then_some(())
    })
    .await;

    // Its next request is refused at once, as upstream's APF refuses.
    let (status, retry_after, body) = get_raw(&flood, "/api/v1/namespaces").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], "TooManyRequests", "{body}");
    assert_eq!(body["code"], 429, "{body}");
    assert_eq!(body["details"]["retryAfterSeconds"], 1, "{body}");

    // Held no seat: watches (of both tenants), health checks, the
    // operator (the root cluster's system:masters).
    let mut watches = Vec::new();
    for client in [&flood, &calm] {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        watches.push(
            cms.watch(&WatchParams::default(), "0")
                .await
                .expect("a watch while every seat is taken")
                .boxed(),
        );
    }
    assert_eq!(get_raw(&flood, "/healthz").await.0, 200);
    assert_eq!(get_raw(&flood, "/readyz").await.0, 200);
    assert_eq!(get_raw(&root, "/api/v1/namespaces").await.0, 200);
    assert_eq!(fc.in_use(), 2);

    // The other tenant's request is not refused: it queues in its own
    // queue ...
    let calm_request = {
        let calm = calm.clone();
        tokio::spawn(async move { get_raw(&calm, "/api/v1/namespaces").await.0 })
    };
    wait_for("the calm tenant's request to queue", WAIT, || async {
        (fc.queued("calm") == 1).then_some(())
    })
    .await;
    // ... and takes the next free seat, ahead of the flooder's older one.
    drop(seat1);
    assert_eq!(
        (fc.queued("calm"), fc.queued("flood")),
        (0, 1),
        "the seat went to the tenant holding none"
    );
    assert_eq!(calm_request.await.unwrap(), 200);
    drop(_seat2);
    assert_eq!(queued.await.unwrap(), 200, "the flooder's queued request");
    assert_eq!(get_raw(&flood, "/api/v1/namespaces").await.0, 200);
    drop((watches, upload));
    assert!(uploading.await.unwrap() >= 400, "an empty body");
    wait_for("every seat free", WAIT, || async {
        (fc.in_use() == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_scheduling_is_on_by_default() {
    let f = Fixture::start().await;
    let fc = &f.running.api.flow_control;
    assert!(fc.enabled());
    assert_eq!(fc.seats(), Config::default_seats());
    assert_eq!(fc.per_tenant(), Config::default_per_tenant(fc.seats()));
    assert!(fc.per_tenant() < fc.seats(), "seats stay free for others");
}
