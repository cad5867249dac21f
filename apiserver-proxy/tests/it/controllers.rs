//! Controllers against a real server: ServiceAccounts and the root CA
//! ConfigMap in every namespace of every cluster, the garbage collector and
//! the ReplicaSet controller. Every wait is on a condition with a timeout.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nestkube_apiserver::server::RunningServer;

use crate::common::{Fixture, wait_for};

/// A server and its root admin client.
async fn server() -> (Fixture, Client) {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    (f, client)
}

/// An admin client of cluster `path` (a certificate its client CA issued).
async fn cluster_client(f: &Fixture, path: &str) -> Client {
    f.user_client(path, "test-admin", &["system:masters"]).await
}

const WAIT: Duration = Duration::from_secs(10);

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

/// The namespace gets `default` and `kube-root-ca.crt`; returns the latency.
async fn expect_defaults(client: &Client, ns: &str, ca_pem: &str) -> Duration {
    let start = Instant::now();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    wait_for("default ServiceAccount", WAIT, || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = wait_for("kube-root-ca.crt", WAIT, || async {
        cms.get_opt("kube-root-ca.crt").await.ok().flatten()
    })
    .await;
    assert_eq!(cm.data.unwrap()["ca.crt"], ca_pem);
    start.elapsed()
}

#[tokio::test]
async fn every_namespace_gets_default_service_account_and_root_ca() {
    let (f, client) = server().await;
    let ca = f.server_ca_pem();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        expect_defaults(&client, ns, &ca).await;
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    let created = Instant::now();
    nss.create(&PostParams::default(), &namespace("team"))
        .await
        .expect("create namespace");
    expect_defaults(&client, "team", &ca).await;
    eprintln!(
        "namespace create -> default SA + root CA: {:?}",
        created.elapsed()
    );

    // Deleted: re-created. Tampered: repaired.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    let old_uid = sas.get("default").await.unwrap().metadata.uid;
    sas.delete("default", &DeleteParams::default())
        .await
        .expect("delete sa");
    wait_for("re-created ServiceAccount", WAIT, || async {
        sas.get_opt("default")
            .await
            .ok()
            .flatten()
            .filter(|s| s.metadata.uid != old_uid)
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let mut cm = cms.get("kube-root-ca.crt").await.unwrap();
    cm.data = Some([("ca.crt".to_string(), "bogus".to_string())].into());
    cms.replace("kube-root-ca.crt", &PostParams::default(), &cm)
        .await
        .expect("tamper");
    wait_for("repaired root CA", WAIT, || async {
        cms.get("kube-root-ca.crt")
            .await
            .ok()
            .filter(|c| c.data.as_ref().is_some_and(|d| d["ca.crt"] == ca))
    })
    .await;
    cms.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .expect("delete cm");
    expect_defaults(&client, "team", &ca).await;
}

#[tokio::test]
async fn child_cluster_namespaces_get_service_accounts_within_milliseconds() {
    let (f, _client) = server().await;
    let ca = f.server_ca_pem();
    let created = Instant::now();
    f.create_cluster("t1").await;
    let client = cluster_client(&f, "t1").await;
    let mut worst = Duration::ZERO;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        worst = worst.max(expect_defaults(&client, ns, &ca).await);
    }
    eprintln!(
        "child cluster create -> default SAs in its 4 namespaces: {:?}",
        created.elapsed()
    );
    assert!(created.elapsed() < Duration::from_secs(5));
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&PostParams::default(), &namespace("apps"))
        .await
        .expect("create namespace in t1");
    expect_defaults(&client, "apps", &ca).await;
}

fn owned_cm(name: &str, owner: Option<&ConfigMap>, finalizer: Option<&str>) -> ConfigMap {
    let mut v = serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}});
    if let Some(o) = owner {
        v["metadata"]["ownerReferences"] = serde_json::json!([{
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": o.metadata.name, "uid": o.metadata.uid,
            "blockOwnerDeletion": true,
        }]);
    }
    if let Some(f) = finalizer {
        v["metadata"]["finalizers"] = serde_json::json!([f]);
    }
    serde_json::from_value(v).unwrap()
}

async fn gone(api: &Api<ConfigMap>, name: &str) {
    wait_for(&format!("{name} to be deleted"), WAIT, || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn garbage_collector_background_foreground_orphan() {
    let (_f, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // Background: the dependent goes after the owner.
    let owner = api.create(&pp, &owned_cm("bg", None, None)).await.unwrap();
    api.create(&pp, &owned_cm("bg-child", Some(&owner), None))
        .await
        .unwrap();
    api.delete("bg", &DeleteParams::background()).await.unwrap();
    gone(&api, "bg-child").await;

    // Foreground: the owner waits for its blocking dependent.
    let owner = api.create(&pp, &owned_cm("fg", None, None)).await.unwrap();
    api.create(
        &pp,
        &owned_cm("fg-child", Some(&owner), Some("test.nestkube.io/hold")),
    )
    .await
    .unwrap();
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    wait_for("fg-child deleting", WAIT, || async {
        api.get("fg-child")
            .await
            .ok()
            .filter(|c| c.metadata.deletion_timestamp.is_some())
    })
    .await;
    let waiting = api.get("fg").await.expect("owner still there");
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    api.patch(
        "fg-child",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    gone(&api, "fg-child").await;
    gone(&api, "fg").await;

    // Orphan: the dependent stays, without the reference.
    let owner = api.create(&pp, &owned_cm("or", None, None)).await.unwrap();
    api.create(&pp, &owned_cm("or-child", Some(&owner), None))
        .await
        .unwrap();
    api.delete("or", &DeleteParams::orphan()).await.unwrap();
    gone(&api, "or").await;
    let child = api.get("or-child").await.expect("orphan survives");
    assert!(
        child
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn owners_never_reach_across_clusters() {
    let (f, root) = server().await;
    f.create_cluster("t1").await;
    let t1 = cluster_client(&f, "t1").await;
    let pp = PostParams::default();
    let root_api: Api<ConfigMap> = Api::namespaced(root, "default");
    let t1_api: Api<ConfigMap> = Api::namespaced(t1, "default");
    let root_owner = root_api
        .create(&pp, &owned_cm("owner", None, None))
        .await
        .unwrap();
    let t1_owner = t1_api
        .create(&pp, &owned_cm("owner", None, None))
        .await
        .unwrap();
    t1_api
        .create(&pp, &owned_cm("child", Some(&t1_owner), None))
        .await
        .unwrap();
    // A root object naming t1's owner (same name, t1's uid) is dangling in
    // root: collected, while t1's objects are untouched.
    root_api
        .create(&pp, &owned_cm("child", Some(&t1_owner), None))
        .await
        .unwrap();
    gone(&root_api, "child").await;
    root_api
        .create(&pp, &owned_cm("child2", Some(&root_owner), None))
        .await
        .unwrap();
    root_api
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    gone(&root_api, "child2").await;
    assert!(t1_api.get_opt("owner").await.unwrap().is_some());
    let child = t1_api.get("child").await.expect("t1 child survives");
    assert_eq!(child.metadata.owner_references.unwrap().len(), 1);
}

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .unwrap()
}

/// Pods controlled by `rs` (by uid).
async fn owned_pods(pods: &Api<Pod>, rs: &ReplicaSet) -> Vec<Pod> {
    pods.list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.controller == Some(true) && Some(&r.uid) == rs.metadata.uid.as_ref())
        })
        .collect()
}

/// A server, and the root admin's ReplicaSets and pods in `default`.
async fn replicasets_and_pods() -> (Fixture, Api<ReplicaSet>, Api<Pod>) {
    let (f, client) = server().await;
    let rss = Api::namespaced(client.clone(), "default");
    let pods = Api::namespaced(client, "default");
    (f, rss, pods)
}

async fn wait_pods(pods: &Api<Pod>, rs: &ReplicaSet, n: usize) -> Vec<Pod> {
    wait_for(&format!("{n} pods"), WAIT, || async {
        let owned = owned_pods(pods, rs).await;
        (owned.len() == n).then_some(owned)
    })
    .await
}

#[tokio::test]
async fn replicaset_creates_scales_adopts_and_reports_status() {
    let (_f, rss, pods) = replicasets_and_pods().await;
    let pp = PostParams::default();

    let start = Instant::now();
    let rs = rss
        .create(&pp, &replicaset("web", 3))
        .await
        .expect("create rs");
    let created = wait_pods(&pods, &rs, 3).await;
    eprintln!("ReplicaSet create -> 3 pods: {:?}", start.elapsed());
    for p in &created {
        assert!(p.metadata.name.as_ref().unwrap().starts_with("web-"));
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("ReplicaSet", "web"));
        assert_eq!(r.block_owner_deletion, Some(true));
    }
    wait_for("status replicas=3", WAIT, || async {
        let s = rss.get("web").await.ok()?.status?;
        (s.replicas == 3 && s.observed_generation == Some(1)).then_some(())
    })
    .await;

    // Play kubelet: one pod reports Ready.
    let name = created[0].metadata.name.clone().unwrap();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    pods.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
    )
    .await
    .expect("pod status");
    wait_for("readyReplicas=1", WAIT, || async {
        let s = rss.get("web").await.ok()?.status?;
        (s.ready_replicas == Some(1) && s.available_replicas == Some(1)).then_some(())
    })
    .await;

    // Scale down to 1: the ready pod is kept.
    let start = Instant::now();
    rss.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
    )
    .await
    .expect("scale");
    let left = wait_pods(&pods, &rs, 1).await;
    eprintln!("ReplicaSet scale 3 -> 1: {:?}", start.elapsed());
    assert_eq!(left[0].metadata.name.as_ref(), Some(&name));
    wait_for("status replicas=1", WAIT, || async {
        let s = rss.get("web").await.ok()?.status?;
        (s.replicas == 1 && s.observed_generation == Some(2)).then_some(())
    })
    .await;

    // Deleting the ReplicaSet (background) deletes its pods.
    rss.delete("web", &DeleteParams::background())
        .await
        .expect("delete rs");
    wait_for("pods collected", WAIT, || async {
        let left = pods.list(&ListParams::default()).await.ok()?.items;
        left.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn replicaset_adopts_a_matching_orphan() {
    let (_f, rss, pods) = replicasets_and_pods().await;
    let pp = PostParams::default();
    let stray: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stray", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    pods.create(&pp, &stray).await.expect("stray");
    let rs = rss
        .create(&pp, &replicaset("adopt", 1))
        .await
        .expect("create rs");
    let owned = wait_pods(&pods, &rs, 1).await;
    assert_eq!(owned[0].metadata.name.as_deref(), Some("stray"));
    wait_for("status replicas=1", WAIT, || async {
        let s = rss.get("adopt").await.ok()?.status?;
        (s.replicas == 1).then_some(())
    })
    .await;
    let all = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), 1, "no pod created besides the adopted one");
}

#[tokio::test]
async fn replicaset_foreground_and_orphan_deletion() {
    let (_f, rss, pods) = replicasets_and_pods().await;
    let pp = PostParams::default();

    let rs = rss.create(&pp, &replicaset("fg", 2)).await.unwrap();
    wait_pods(&pods, &rs, 2).await;
    rss.delete("fg", &DeleteParams::foreground()).await.unwrap();
    wait_for("fg gone", WAIT, || async {
        matches!(rss.get_opt("fg").await, Ok(None)).then_some(())
    })
    .await;
    assert!(owned_pods(&pods, &rs).await.is_empty());

    let rs = rss.create(&pp, &replicaset("or", 2)).await.unwrap();
    let before = wait_pods(&pods, &rs, 2).await;
    rss.delete("or", &DeleteParams::orphan()).await.unwrap();
    wait_for("or gone", WAIT, || async {
        matches!(rss.get_opt("or").await, Ok(None)).then_some(())
    })
    .await;
    for p in before {
        let p = pods
            .get(p.metadata.name.as_deref().unwrap())
            .await
            .expect("orphan survives");
        assert!(p.metadata.owner_references.unwrap_or_default().is_empty());
    }
}

/// Plays kubelet for `ns`: every pod is reported Running and Ready.
fn fake_kubelet(client: Client, ns: &str) -> tokio::task::JoinHandle<()> {
    let pods: Api<Pod> = Api::namespaced(client, ns);
    tokio::spawn(async move {
        loop {
            for p in pods
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
            {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready || p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
                let _ = pods
                    .patch_status(
                        p.metadata.name.as_deref().unwrap(),
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({"status": {"phase": "Running",
                            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

fn deployment(name: &str, image: &str, strategy: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "strategy": {"type": strategy},
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}}},
    }))
    .unwrap()
}

/// Waits until the rollout is complete as `kubectl rollout status` decides.
async fn rolled_out(api: &Api<Deployment>, name: &str) -> Deployment {
    wait_for("rollout complete", WAIT, || async {
        let d = api.get(name).await.ok()?;
        let s = d.status.clone()?;
        let want = d.spec.replicas.unwrap_or(1);
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(want)
            && s.replicas == Some(want)
            && s.available_replicas == Some(want)
            && s.conditions.iter().flatten().any(|c| {
                c.type_.as_deref() == Some("Progressing")
                    && c.reason.as_deref() == Some("NewReplicaSetAvailable")
            });
        done.then_some(d)
    })
    .await
}

async fn owned_replicasets(rss: &Api<ReplicaSet>, d: &Deployment) -> Vec<ReplicaSet> {
    rss.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(&o.uid) == d.metadata.uid.as_ref())
        })
        .collect()
}

#[tokio::test]
async fn deployment_rolls_out_and_updates() {
    let (_f, client) = server().await;
    let _kubelet = fake_kubelet(client.clone(), "default");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    for strategy in ["RollingUpdate", "Recreate"] {
        let name = strategy.to_lowercase();
        let start = Instant::now();
        deploys
            .create(
                &PostParams::default(),
                &deployment(&name, "nginx:1", strategy),
            )
            .await
            .expect("create deployment");
        let d = rolled_out(&deploys, &name).await;
        eprintln!(
            "{strategy}: Deployment create -> rolled out (pods ready): {:?}",
            start.elapsed()
        );
        let first = owned_replicasets(&rss, &d).await;
        assert_eq!(first.len(), 1);
        let hash = first[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
        assert_eq!(
            first[0].metadata.name.as_deref(),
            Some(format!("{name}-{hash}").as_str())
        );
        assert_eq!(
            first[0].metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
            "1"
        );
        assert_eq!(
            d.metadata.generation,
            Some(1),
            "status writes keep generation"
        );

        deploys
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(serde_json::json!({"spec": {"template": {"spec": {
                    "containers": [{"name": "c", "image": "nginx:2"}]}}}})),
            )
            .await
            .expect("update image");
        let start = Instant::now();
        let d = rolled_out(&deploys, &name).await;
        assert_eq!(d.metadata.generation, Some(2));
        eprintln!(
            "{strategy}: image update -> rolled out: {:?}",
            start.elapsed()
        );
        let all = owned_replicasets(&rss, &d).await;
        assert_eq!(all.len(), 2);
        for rs in all {
            let replicas = rs.spec.replicas.unwrap();
            let revision =
                rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"]
                    .clone();
            if rs.metadata.name == first[0].metadata.name {
                assert_eq!(replicas, 0, "old ReplicaSet scaled down");
                assert_eq!(revision, "1");
            } else {
                assert_eq!(replicas, 2);
                assert_eq!(revision, "2");
            }
        }
    }
}

/// Whether `ns` of `cluster` has its default ServiceAccount (read through
/// the store: no client connection, no task).
async fn has_default_sa(running: &RunningServer, cluster: &str, ns: &str) -> bool {
    let sas = running
        .api
        .catalog
        .get("", "v1", "serviceaccounts")
        .expect("served");
    let t = nestkube_apiserver::registry::store::Target {
        cluster,
        resource: sas,
        namespace: Some(ns),
    };
    running.api.store.get(&t, "default").await.is_ok()
}

/// Waits until at most `limit` tasks are alive; returns how many are.
async fn settle(metrics: &tokio::runtime::RuntimeMetrics, limit: usize) -> usize {
    wait_for("controller tasks to end", WAIT, || async {
        let alive = metrics.num_alive_tasks();
        (alive <= limit).then_some(alive)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clusters_cost_no_controller_task() {
    let (f, _client) = server().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    // Settle: the root cluster's namespaces are reconciled.
    wait_for("root settled", WAIT, || async {
        has_default_sa(&f.running, "root", "kube-node-lease")
            .await
            .then_some(())
    })
    .await;
    let baseline = settle(&metrics, usize::MAX).await;
    let start = Instant::now();
    const N: usize = 100;
    for i in 0..N {
        f.create_cluster(&format!("idle{i}")).await;
    }
    for i in 0..N {
        let c = format!("idle{i}");
        wait_for("SAs in every cluster", WAIT, || async {
            has_default_sa(&f.running, &c, "kube-node-lease")
                .await
                .then_some(())
        })
        .await;
    }
    eprintln!(
        "{N} clusters created -> default SAs everywhere: {:?}",
        start.elapsed()
    );
    // Once reconciled, the clusters hold no task: back to the baseline.
    let after = settle(&metrics, baseline + 2).await;
    eprintln!("alive tasks: {baseline} before, {after} after {N} idle clusters");
}

#[tokio::test]
async fn deleting_a_namespace_wins_over_controllers() {
    let (f, client) = server().await;
    let ca = f.server_ca_pem();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&PostParams::default(), &namespace("doomed"))
        .await
        .expect("create namespace");
    expect_defaults(&client, "doomed", &ca).await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "doomed");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    let rs = rss
        .create(&PostParams::default(), &replicaset("web", 3))
        .await
        .expect("create rs");
    wait_pods(&pods, &rs, 3).await;
    nss.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete namespace");
    // Neither the ServiceAccount controller nor the ReplicaSet controller
    // keeps the namespace alive.
    wait_for("namespace gone", WAIT, || async {
        matches!(nss.get_opt("doomed").await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deployment_foreground_deletion_cascades_through_replicasets() {
    let (_f, client) = server().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let d = deploys
        .create(
            &PostParams::default(),
            &deployment("chain", "nginx", "RollingUpdate"),
        )
        .await
        .expect("create deployment");
    wait_for("2 pods", WAIT, || async {
        let n = pods.list(&ListParams::default()).await.ok()?.items.len();
        (n == 2).then_some(())
    })
    .await;
    assert_eq!(owned_replicasets(&rss, &d).await.len(), 1);
    deploys
        .delete("chain", &DeleteParams::foreground())
        .await
        .expect("delete");
    wait_for("everything gone", WAIT, || async {
        let gone = deploys.get_opt("chain").await.ok()?.is_none()
            && rss
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
            && pods
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty();
        gone.then_some(())
    })
    .await;
}
