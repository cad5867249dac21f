//! A cluster path used again by another tenant: nothing opened for, or
//! written by, the earlier cluster at that path reaches the later one, and
//! the reverse. Open watches end with their cluster's instance; history from
//! before a cluster's creation is `410 Gone`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

use crate::common::Fixture;

const TIMEOUT: Duration = Duration::from_secs(20);

fn secret(name: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"owner": name},
    }))
    .unwrap()
}

/// Every event a watch yields until it ends (panics if it does not end).
async fn drain(
    stream: impl futures::Stream<Item = kube::Result<WatchEvent<Secret>>>,
    what: &str,
) -> Vec<String> {
    let events = tokio::time::timeout(TIMEOUT, async {
        stream
            .filter_map(|e| async move { e.ok() })
            .map(|e| match e {
                WatchEvent::Added(s) | WatchEvent::Modified(s) | WatchEvent::Deleted(s) => {
                    s.metadata.name.unwrap_or_default()
                }
                WatchEvent::Bookmark(_) => "<bookmark>".into(),
                WatchEvent::Error(e) => format!("<error {}>", e.code),
            })
            .collect::<Vec<_>>()
            .await
    })
    .await;
    events.unwrap_or_else(|_| panic!("{what}: the watch did not end"))
}

/// The resourceVersion of a list of `api` now.
async fn list_rv(api: &Api<Secret>) -> String {
    api.list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv")
}

#[tokio::test]
async fn a_reused_cluster_path_shares_no_watch_and_no_history() {
    let f = Fixture::start().await;
    f.create_cluster("reuse").await;
    let x_admin = f.user_client("reuse", "x-admin", &["system:masters"]).await;
    let x_secrets = Api::<Secret>::namespaced(x_admin, "default");
    let before_x = list_rv(&x_secrets).await;
    // Tenant X watches its Secrets (twice: with and without a timeout).
    let x_watch = x_secrets
        .watch(&WatchParams::default(), &before_x)
        .await
        .expect("watch");
    let x_watch_timeout = x_secrets
        .watch(&WatchParams::default().timeout(290), &before_x)
        .await
        .expect("watch");
    x_secrets
        .create(&PostParams::default(), &secret("x-secret"))
        .await
        .expect("create");

    // X's cluster goes; Y gets a cluster at the same path and writes a Secret.
    let api = &f.running.api;
    api.clusters.remove("reuse").await.expect("remove");
    f.create_cluster("reuse").await;
    let y_admin = f.user_client("reuse", "y-admin", &["system:masters"]).await;
    let y_secrets = Api::<Secret>::namespaced(y_admin, "default");
    y_secrets
        .create(&PostParams::default(), &secret("y-secret"))
        .await
        .expect("create");

    for (watch, what) in [
        (x_watch.boxed(), "X's watch"),
        (x_watch_timeout.boxed(), "X's watch with a timeout"),
    ] {
        let seen = drain(watch, what).await;
        assert!(
            !seen.iter().any(|n| n == "y-secret"),
            "{what} saw the next tenant's Secret: {seen:?}"
        );
    }

    // Y asks for history from before its cluster existed: 410, never X's data.
    let mut stream = y_secrets
        .watch(&WatchParams::default(), &before_x)
        .await
        .expect("watch")
        .boxed();
    let first = tokio::time::timeout(TIMEOUT, stream.try_next())
        .await
        .expect("timely")
        .expect("event");
    match first {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // A watch from Y's own history works.
    let now = list_rv(&y_secrets).await;
    let mut stream = y_secrets
        .watch(&WatchParams::default(), &now)
        .await
        .expect("watch")
        .boxed();
    y_secrets
        .create(&PostParams::default(), &secret("y-second"))
        .await
        .expect("create");
    let next = tokio::time::timeout(TIMEOUT, stream.try_next())
        .await
        .expect("timely")
        .expect("event");
    assert!(
        matches!(&next, Some(WatchEvent::Added(s)) if s.metadata.name.as_deref() == Some("y-second")),
        "{next:?}"
    );
}
