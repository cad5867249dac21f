//! ResourceQuota (the controller's `status.used`, admission's 403) and
//! LimitRange (defaults, bounds) against a real server. Every wait is on a
//! condition with a timeout.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, PersistentVolumeClaim, Pod, ResourceQuota,
};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use crate::common::{Fixture, wait_for};

const WAIT: Duration = Duration::from_secs(10);

async fn server() -> (Fixture, Client) {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    (f, client)
}

fn pod(name: &str, resources: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"containers": [{"name": "web", "image": "nginx", "resources": resources}]}}))
    .unwrap()
}

/// The error status and message of a refused request.
fn refused<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(e)) => (e.code, e.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Waits until the quota's `status.used` has the amounts in `used`.
async fn expect_used(quotas: &Api<ResourceQuota>, name: &str, used: Value) {
    wait_for(&format!("{name} used {used}"), WAIT, || async {
        let q = quotas.get(name).await.ok()?;
        let st = serde_json::to_value(q.status?).ok()?;
        let want = used.as_object()?;
        want.iter().all(|(k, v)| st["used"][k] == *v).then_some(())
    })
    .await;
}

#[tokio::test]
async fn quota_counts_usage_and_refuses_what_exceeds_it() {
    let (_f, client) = server().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let q: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "q"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi",
            "count/configmaps": "10"}}}))
    .unwrap();
    quotas
        .create(&PostParams::default(), &q)
        .await
        .expect("create quota");
    let res = json!({"requests": {"cpu": "400m"}, "limits": {"memory": "256Mi"}});
    for name in ["a", "b"] {
        pods.create(&PostParams::default(), &pod(name, res.clone()))
            .await
            .expect("create pod within quota");
    }
    expect_used(
        &quotas,
        "q",
        json!({"pods": "2", "requests.cpu": "800m", "limits.memory": "512Mi"}),
    )
    .await;
    let q = quotas.get("q").await.unwrap();
    assert_eq!(
        serde_json::to_value(&q.status.as_ref().unwrap().hard).unwrap(),
        json!({"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi", "count/configmaps": "10"})
    );
    let (code, message) = refused(
        pods.create(&PostParams::default(), &pod("c", json!({})))
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    // Room for a pod again, but not for its cpu.
    pods.delete("b", &DeleteParams::default())
        .await
        .expect("delete pod");
    let (code, message) = refused(
        pods.create(
            &PostParams::default(),
            &pod("c", json!({"requests": {"cpu": "700m"}})),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"c\" is forbidden: exceeded quota: q, requested: requests.cpu=700m, used: requests.cpu=400m, limited: requests.cpu=1"
    );
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let configmaps = wait_for("the ConfigMap counted", WAIT, || async {
        let n = cms.list(&Default::default()).await.ok()?.items.len();
        let st = quotas.get("q").await.ok()?.status?;
        (st.used?.get("count/configmaps")?.0 == n.to_string()).then_some(n)
    })
    .await;
    assert!(configmaps >= 1);
    expect_used(
        &quotas,
        "q",
        json!({"pods": "1", "requests.cpu": "400m", "limits.memory": "256Mi"}),
    )
    .await;
}

#[tokio::test]
async fn limit_range_defaults_and_bounds_containers() {
    let (_f, client) = server().await;
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let lr: LimitRange = serde_json::from_value(json!({"metadata": {"name": "limits"},
        "spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "250m"},
            "max": {"cpu": "1"}},
            {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}}]}}))
    .unwrap();
    ranges
        .create(&PostParams::default(), &lr)
        .await
        .expect("create limit range");
    let created = pods
        .create(&PostParams::default(), &pod("plain", json!({})))
        .await
        .expect("create pod");
    let r = serde_json::to_value(created.spec.unwrap().containers[0].resources.clone()).unwrap();
    assert_eq!(
        r,
        json!({"limits": {"cpu": "500m", "memory": "128Mi"},
            "requests": {"cpu": "250m", "memory": "128Mi"}})
    );
    assert_eq!(
        created.metadata.annotations.unwrap()["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web"
    );
    let (code, message) = refused(
        pods.create(
            &PostParams::default(),
            &pod("big", json!({"limits": {"cpu": "2"}})),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}))
    .unwrap();
    let (code, message) = refused(claims.create(&PostParams::default(), &claim).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "persistentvolumeclaims \"data\" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
    );
}

#[tokio::test]
async fn scoped_quota_counts_only_pods_in_its_scope() {
    let (_f, client) = server().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let q: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "be"},
        "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}}))
    .unwrap();
    quotas
        .create(&PostParams::default(), &q)
        .await
        .expect("create quota");
    pods.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .expect("first best-effort pod");
    let (code, message) = refused(
        pods.create(&PostParams::default(), &pod("b", json!({})))
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"b\" is forbidden: exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1"
    );
    // Out of the scope: not counted, not refused.
    pods.create(
        &PostParams::default(),
        &pod("c", json!({"requests": {"cpu": "100m"}})),
    )
    .await
    .expect("a burstable pod");
    expect_used(&quotas, "be", json!({"pods": "1"})).await;
}
