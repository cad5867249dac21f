//! VirtualClusters the way tenants make them, for the modules here: create
//! one with a spec, wait until its cluster is served with that policy, and
//! read refusals. Every wait is on a condition with a timeout.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::Value;

use crate::common::{Fixture, admin, child, vc, virtual_clusters, wait_for};

/// How long a condition may take to hold.
pub const WAIT: Duration = Duration::from_secs(10);

/// Creates VirtualCluster `name` in namespace `default` of `parent` with
/// `spec`, waits until its cluster is served with that policy and its
/// `default` namespace exists, and returns an admin client of it.
pub async fn virtual_cluster(f: &Fixture, parent: &str, name: &str, spec: Value) -> Client {
    let created = virtual_clusters(&admin(f, parent).await, "default")
        .create(&PostParams::default(), &vc("default", name, spec))
        .await
        .expect("create VirtualCluster");
    let path = child(parent, name);
    wait_for_policy(f, &path, &created.data["spec"]).await;
    wait_for("the child's default namespace", WAIT, || async {
        let c = admin(f, &path).await;
        Api::<k8s_openapi::api::core::v1::Namespace>::all(c)
            .get("default")
            .await
            .ok()
    })
    .await;
    admin(f, &path).await
}

/// Waits until the cluster at `path` is served with VirtualCluster spec `spec`.
pub async fn wait_for_policy(f: &Fixture, path: &str, spec: &Value) {
    wait_for("the cluster with its policy", WAIT, || async {
        let placement = f.running.api.clusters.get(path)?.placement()?;
        (serde_json::to_value(&placement.spec).ok()? == *spec).then_some(())
    })
    .await;
}

/// The (code, reason, message) of a refused request.
pub fn refusal<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The message of a 403 Forbidden, asserting it contains every one of `parts`.
pub fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>, parts: &[&str]) -> String {
    let (code, reason, message) = refusal(r);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{message}");
    for p in parts {
        assert!(message.contains(p), "{message:?} lacks {p:?}");
    }
    message
}
