//! Syncer and workload benchmark (standalone: every virtual cluster's parent
//! is the root cluster, or its parent virtual cluster when nested): how long
//! a Deployment takes to have its pods, how long a virtual pod takes to have
//! its copy in the parent (down) and a parent status to reach the virtual
//! pod (up), at scale and per nesting level. Rewrites its section of
//! docs/benchmarks.md.
//!
//! It also counts the requests the syncer sends to the parent per pod
//! (create, status up, delete), from the syncer's own counters
//! ([`nestkube_syncer::Syncer::parent_requests`]).
//!
//! Run: `cargo run --release -p nestkube-syncer --all-features --example sync-bench`
//! (`-- <clusters> <pods per cluster>`, default 50 and 20 = 1,000 pods).
//! Clients are in-process (`ApiServer::client_for`: the API's semantics
//! without sockets), so the numbers are the control plane's own.

#[path = "../../apiserver-proxy/examples/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use nestkube_syncer::{ParentRequests, names};
use nestkube_tenant_crds::{VirtualCluster, VirtualClusterSpec};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// A condition over the pods of the cluster and of the parent.
type Done = Box<dyn Fn(&[Pod]) -> bool + Send>;

/// Arrival time of events, keyed by a string the caller derives per event.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Records when each pod of `api` first satisfies `key` (a key, or None).
fn record<F>(api: Api<Pod>, key: F) -> Arrivals
where
    F: Fn(&Pod) -> Option<String> + Send + 'static,
{
    let seen: Arrivals = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let mut stream = api
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch")
            .boxed();
        while let Ok(Some(event)) = stream.try_next().await {
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = event
                && let Some(k) = key(&p)
            {
                out.lock().unwrap().entry(k).or_insert_with(Instant::now);
            }
        }
    });
    seen
}

async fn wait_key(seen: &Arrivals, key: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = seen.lock().unwrap().get(key) {
            return *t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {key}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// `cluster/ns/name` of the virtual pod a parent copy stands for.
fn copy_key(p: &Pod) -> Option<String> {
    let a = p.metadata.annotations.as_ref()?;
    Some(format!(
        "{}/{}/{}",
        a.get(names::CLUSTER_ANNOTATION)?,
        a.get(names::NAMESPACE_ANNOTATION)?,
        a.get(names::NAME_ANNOTATION)?
    ))
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap()
}

/// Creates VirtualCluster `name` in the cluster `client` talks to and waits until it is served.
async fn virtual_cluster(
    api: &Arc<nestkube_apiserver::server::ApiServer>,
    parent: &str,
    name: &str,
) -> String {
    let vcs: Api<VirtualCluster> = Api::namespaced(api.client_for(parent), "default");
    vcs.create(
        &PostParams::default(),
        &VirtualCluster::new(name, VirtualClusterSpec::default()),
    )
    .await
    .expect("create vc");
    let path = if parent == "root" {
        name.to_string()
    } else {
        format!("{parent}:{name}")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while api
        .clusters
        .get(&path)
        .and_then(|c| c.placement())
        .is_none()
    {
        assert!(Instant::now() < deadline, "{path} not provisioned");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The default ServiceAccount lets pods be admitted.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(api.client_for(&path), "default");
    while sas.get_opt("default").await.expect("get sa").is_none() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    path
}

/// Marks a parent copy Running (plays the kubelet).
async fn run(parent: &Api<Pod>, name: &str) {
    let status = json!({"status": {"phase": "Running", "podIP": "10.0.0.1",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    parent
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch status");
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    // Counts do not depend on the build profile: `-- --requests-only` runs
    // just that part (fast in a debug build).
    let requests_only = args.next_if(|a| a == "--requests-only").is_some();
    let clusters: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    let per_cluster: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);

    let (server, _dir) = common::start_server().await;
    let api = server.api.clone();
    let syncer = nestkube_syncer::spawn(api.clone(), None);
    if requests_only {
        let per_pod = requests_per_pod(&api, &syncer, 200).await;
        print!("{per_pod}");
        common::write_section("sync-requests", &per_pod);
        return;
    }

    // Deployment created -> all its pods created (controllers, one cluster).
    let dep_cluster = virtual_cluster(&api, "root", "deploy-bench").await;
    let dep_client = api.client_for(&dep_cluster);
    let dep_pods = record(Api::namespaced(dep_client.clone(), "default"), |p| {
        let owner = p.metadata.owner_references.as_ref()?.first()?.name.clone();
        Some(format!(
            "{}#{}",
            owner.rsplit_once('-')?.0,
            p.metadata.name.as_ref()?
        ))
    });
    let deployments: Api<Deployment> = Api::namespaced(dep_client, "default");
    let mut deploy_lat = Vec::new();
    for i in 0..50 {
        let name = format!("d{i}");
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"d": name}},
                "template": {"metadata": {"labels": {"d": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }))
        .unwrap();
        let t = Instant::now();
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("deployment");
        let deadline = Instant::now() + Duration::from_secs(30);
        let done = loop {
            let times: Vec<Instant> = dep_pods
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{name}#")))
                .map(|(_, t)| *t)
                .collect();
            if times.len() >= 3 {
                break times.into_iter().max().unwrap();
            }
            assert!(Instant::now() < deadline, "deployment {name} pods");
            tokio::time::sleep(Duration::from_micros(300)).await;
        };
        deploy_lat.push(done - t);
    }
    deploy_lat.sort();

    // Down and up at scale: `clusters` virtual clusters x `per_cluster` pods.
    let root_pods: Api<Pod> = Api::all(api.client_for("root"));
    let copies = record(root_pods.clone(), copy_key);
    let mut paths = Vec::new();
    for c in 0..clusters {
        paths.push(virtual_cluster(&api, "root", &format!("t{c}")).await);
    }
    let running: Arrivals = Arc::default();
    for path in &paths {
        let seen = record(Api::namespaced(api.client_for(path), "default"), |p| {
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            running.then(|| p.metadata.name.clone()).flatten()
        });
        let running = running.clone();
        let path = path.clone();
        tokio::spawn(async move {
            loop {
                for (k, t) in seen.lock().unwrap().iter() {
                    running
                        .lock()
                        .unwrap()
                        .entry(format!("{path}/{k}"))
                        .or_insert(*t);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    let started = Instant::now();
    let mut down = Vec::new();
    let mut up = Vec::new();
    for i in 0..per_cluster {
        for path in &paths {
            let name = format!("p{i}");
            let pods: Api<Pod> = Api::namespaced(api.client_for(path), "default");
            let t = Instant::now();
            pods.create(&PostParams::default(), &pod(&name))
                .await
                .expect("pod");
            let copied = wait_key(&copies, &format!("{path}/default/{name}")).await;
            down.push(copied - t);
            let parent: Api<Pod> = Api::namespaced(api.client_for("root"), "default");
            let t = Instant::now();
            run(&parent, &names::host_name(path, "default", &name)).await;
            let seen = wait_key(&running, &format!("{path}/{name}")).await;
            up.push(seen.saturating_duration_since(t));
        }
    }
    let total = paths.len() * per_cluster;
    let elapsed = started.elapsed();
    down.sort();
    up.sort();

    // Per nesting level: a pod in `n1` (one hop) and in `n1:n2` (two hops to root).
    let n1 = virtual_cluster(&api, "root", "n1").await;
    let n2 = virtual_cluster(&api, &n1, "n2").await;
    let mut hop1 = Vec::new();
    let mut hop2 = Vec::new();
    for i in 0..50 {
        for (path, lat) in [(&n1, &mut hop1), (&n2, &mut hop2)] {
            let name = format!("h{i}");
            let pods: Api<Pod> = Api::namespaced(api.client_for(path), "default");
            let t = Instant::now();
            pods.create(&PostParams::default(), &pod(&name))
                .await
                .expect("pod");
            // The copy in root: for n1:n2 the copy of its copy in n1.
            let key = if path == &n1 {
                format!("{n1}/default/{name}")
            } else {
                format!("{n1}/default/{}", names::host_name(&n2, "default", &name))
            };
            lat.push(wait_key(&copies, &key).await - t);
        }
    }
    hop1.sort();
    hop2.sort();

    let per_pod = requests_per_pod(&api, &syncer, 200).await;

    let mut s = String::new();
    s.push_str("## Workloads and sync (standalone, in-process clients)\n\n");
    s.push_str(&format!(
        "`cargo run --release -p nestkube-syncer --example sync-bench`; measured on {} cores (shared with concurrent builds), default storage backend (durable commits). The parent of each virtual cluster is the root cluster (or its parent virtual cluster when nested); \"running\" is set on the parent copy through the API, as a kubelet would.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    ));
    s.push_str("| measure | p50 | p99 |\n|---|---|---|\n");
    let row = |what: &str, v: &[Duration]| {
        format!(
            "| {what} | {} ms | {} ms |\n",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99))
        )
    };
    s.push_str(&row(
        "Deployment (3 replicas) created → all 3 pods created (50 Deployments)",
        &deploy_lat,
    ));
    s.push_str(&row(
        &format!(
            "virtual pod created → copy in the parent ({total} pods over {} clusters)",
            paths.len()
        ),
        &down,
    ));
    s.push_str(&row(
        "parent copy Running → virtual pod Running (same pods)",
        &up,
    ));
    s.push_str(&row(
        "nested, one level (n1 → root): pod created → copy in root",
        &hop1,
    ));
    s.push_str(&row(
        "nested, two levels (n1:n2 → n1 → root): pod created → copy in root",
        &hop2,
    ));
    s.push_str(&format!(
        "\n{total} pods created and synced one after another in {:.1} s, while all of them stay synced. Each level of nesting adds one down-sync hop (the difference between the last two rows).\n",
        elapsed.as_secs_f64()
    ));
    print!("{s}{per_pod}");
    common::write_section("sync-bench", &s);
    common::write_section("sync-requests", &per_pod);
}

/// Waits until the syncer has sent no request to a parent for a while
/// (follow-up reconciles of a phase are counted in it); returns the count.
async fn quiet(syncer: &nestkube_syncer::Syncer) -> ParentRequests {
    let mut last = syncer.parent_requests();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = syncer.parent_requests();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Parent requests per pod while `n` pods of one cluster are created,
/// run and are deleted; the markdown rows.
async fn requests_per_pod(
    api: &Arc<nestkube_apiserver::server::ApiServer>,
    syncer: &nestkube_syncer::Syncer,
    n: usize,
) -> String {
    let path = virtual_cluster(api, "root", "requests").await;
    let vpods: Api<Pod> = Api::namespaced(api.client_for(&path), "default");
    let parent: Api<Pod> = Api::namespaced(api.client_for("root"), "default");
    let copy = |i: usize| names::host_name(&path, "default", &format!("r{i}"));
    let wait = |what: &'static str, done: Done| {
        let (vpods, parent) = (vpods.clone(), parent.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let v = vpods.list(&Default::default()).await.expect("list").items;
                let p = parent.list(&Default::default()).await.expect("list").items;
                if done(&[v, p].concat()) {
                    return;
                }
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let before = quiet(syncer).await;
    for i in 0..n {
        vpods
            .create(&PostParams::default(), &pod(&format!("r{i}")))
            .await
            .expect("pod");
    }
    let prefix = format!("{path}/");
    let count_copies = move |pods: &[Pod]| {
        pods.iter()
            .filter_map(copy_key)
            .filter(|k| k.starts_with(&prefix))
            .count()
    };
    let cc = count_copies.clone();
    wait("the copies", Box::new(move |pods| cc(pods) == n)).await;
    let created = quiet(syncer).await;
    for i in 0..n {
        run(&parent, &copy(i)).await;
    }
    let running = |pods: &[Pod]| {
        pods.iter()
            .filter(|p| {
                copy_key(p).is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .count()
    };
    wait(
        "the virtual pods Running",
        Box::new(move |pods| running(pods) == n),
    )
    .await;
    let up = quiet(syncer).await;
    for i in 0..n {
        vpods
            .delete(&format!("r{i}"), &Default::default())
            .await
            .expect("delete");
    }
    let cc = count_copies.clone();
    wait(
        "the pods and copies gone",
        Box::new(move |pods| cc(pods) == 0 && pods.iter().all(|p| copy_key(p).is_some())),
    )
    .await;
    let deleted = quiet(syncer).await;
    let rows = [
        (
            "create (virtual pod created → copy, its token Secret)",
            created.since(&before),
        ),
        (
            "status up (copy Running → virtual pod Running)",
            up.since(&created),
        ),
        (
            "delete (virtual pod deleted → copy and Secret gone)",
            deleted.since(&up),
        ),
    ];
    let per = |v: u64| format!("{:.2}", v as f64 / n as f64);
    let mut s = format!(
        "### Parent API requests per synced pod\n\n{n} pods of one cluster created, run (status set on the copies), deleted; requests the syncer sent to the parent (its own counters), per pod. Watches are shared by all pods and clusters of a parent: they do not grow with pods.\n\n| phase | total | GET | POST | PUT | PATCH | DELETE |\n|---|---|---|---|---|---|---|\n"
    );
    for (what, r) in rows {
        s.push_str(&format!(
            "| {what} | {} | {} | {} | {} | {} | {} |
",
            per(r.total()),
            per(r.get),
            per(r.create),
            per(r.update),
            per(r.patch),
            per(r.delete)
        ));
    }
    s.push_str("\nWhere they come from: only writes. The copy a pod's reconcile reads comes from the index the parent's pod watch keeps (whole pods), the token Secret of a new copy is written without a read and then remembered; a reconcile asks the parent only before that watch has listed (after a start), or to make sure a started pod's copy is really gone before deleting the virtual pod.\n");
    s
}
