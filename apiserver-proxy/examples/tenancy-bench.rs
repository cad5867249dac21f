//! Tenancy benchmark: how fast a VirtualCluster becomes Ready (top-level,
//! and nested one and two levels below one), and what an idle virtual
//! cluster costs. Drives an in-process server over TLS with kube-rs like
//! any client (nested ones through their parent's kubeconfig Secret);
//! rewrites its section of docs/benchmarks.md.
//!
//! Run: `cargo run --release -p nestkube-apiserver --example tenancy-bench`
//! (`-- <latency samples> <idle clusters>`, default 200 and 1000).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::{Client, config::Kubeconfig};
use nestkube_tenant_crds::{VirtualCluster, VirtualClusterSpec};
use tokio::sync::mpsc;

use common::{percentile, rss_bytes};

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = after_comm
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the comm.
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    Duration::from_millis(ticks * 10)
}

/// Sends the name of every VirtualCluster that becomes Ready.
fn ready_events(api: Api<VirtualCluster>) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = api
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch")
            .boxed();
        while let Some(event) = stream.try_next().await.expect("watch ok") {
            if let WatchEvent::Added(vc) | WatchEvent::Modified(vc) = event
                && vc.status.as_ref().is_some_and(|s| s.is_ready())
                && tx.send(vc.metadata.name.unwrap_or_default()).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Waits until every VirtualCluster named in `pending` was reported Ready
/// on `rx` (from [`ready_events`]).
async fn wait_ready(rx: &mut mpsc::UnboundedReceiver<String>, pending: &mut HashSet<String>) {
    while !pending.is_empty() {
        let name = rx.recv().await.expect("watch ended");
        pending.remove(&name);
    }
}

fn vc(name: &str) -> VirtualCluster {
    VirtualCluster::new(name, VirtualClusterSpec::default())
}

/// A client of VirtualCluster `default/name` of `parent`'s cluster, from
/// its kubeconfig Secret, once it is Ready.
async fn client_of(parent: &Client, name: &str) -> Client {
    let api: Api<VirtualCluster> = Api::namespaced(parent.clone(), "default");
    let mut ready = ready_events(api.clone());
    api.create(&PostParams::default(), &vc(name))
        .await
        .expect("create");
    wait_ready(&mut ready, &mut HashSet::from([name.to_string()])).await;
    let secrets: Api<Secret> = Api::namespaced(parent.clone(), "default");
    let secret = secrets
        .get(&format!("{name}-kubeconfig"))
        .await
        .expect("kubeconfig Secret");
    let doc = secret.data.expect("data")["value"].0.clone();
    let kubeconfig =
        Kubeconfig::from_yaml(std::str::from_utf8(&doc).expect("utf-8")).expect("kubeconfig");
    common::client_for(kubeconfig).await
}

/// Create -> Ready of `samples` VirtualClusters created one at a time in
/// `parent`'s cluster, sorted.
async fn create_to_ready(parent: &Client, prefix: &str, samples: usize) -> Vec<Duration> {
    let api: Api<VirtualCluster> = Api::namespaced(parent.clone(), "default");
    let mut ready = ready_events(api.clone());
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let name = format!("{prefix}-{i}");
        let t = Instant::now();
        api.create(&PostParams::default(), &vc(&name))
            .await
            .expect("create");
        wait_ready(&mut ready, &mut HashSet::from([name])).await;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    latencies
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let idle: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);

    let (server, client, _dir) = common::server().await;
    let api: Api<VirtualCluster> = Api::namespaced(client.clone(), "default");
    let mut ready = ready_events(api.clone());

    // Create -> Ready, one at a time: top-level, then inside `nest`
    // (2 levels: nest:n-i) and inside `nest:deep` (3 levels: nest:deep:d-i).
    let latencies = create_to_ready(&client, "lat", samples).await;
    let nested_samples = (samples / 2).max(1);
    let nest = client_of(&client, "nest").await;
    let nested = create_to_ready(&nest, "n", nested_samples).await;
    let deep = client_of(&nest, "deep").await;
    let deeper = create_to_ready(&deep, "d", nested_samples).await;

    // Memory per idle virtual cluster: create `idle` more (8 at a time), let
    // them settle, compare RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_bytes();
    let t = Instant::now();
    let mut pending: HashSet<String> = (0..idle).map(|i| format!("idle-{i}")).collect();
    futures::stream::iter(pending.clone())
        .for_each_concurrent(8, |name| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &vc(&name))
                    .await
                    .expect("create");
            }
        })
        .await;
    wait_ready(&mut ready, &mut pending).await;
    let provision_rate = idle as f64 / t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_bytes();
    let per_cluster = rss_after.saturating_sub(rss_before) / idle.max(1) as u64;

    // CPU while idle with every cluster served.
    let cpu_before = cpu_time();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = cpu_time().saturating_sub(cpu_before);
    let clusters = server.api.clusters.paths().len();

    let mut section = String::new();
    section.push_str("## Tenancy (VirtualCluster provisioning, kube-rs over TLS on loopback)\n\n");
    section.push_str(&format!(
        "`cargo run --release -p nestkube-apiserver --example tenancy-bench`; measured on {} cores (shared with concurrent builds), default storage backend (durable commits).\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    ));
    section.push_str("| measure | value |\n|---|---|\n");
    section.push_str(&format!(
        "| create → Ready p50 ({samples} VirtualClusters, one at a time) | {} ms |\n",
        ms(percentile(&latencies, 0.5))
    ));
    section.push_str(&format!(
        "| create → Ready p99 | {} ms |\n",
        ms(percentile(&latencies, 0.99))
    ));
    section.push_str(&format!(
        "| create → Ready max | {} ms |\n",
        ms(latencies.last().copied().unwrap_or_default())
    ));
    section.push_str(&format!(
        "| nested (2 levels, `nest:n-i`) create → Ready p50 / p99 ({nested_samples}, one at a time) | {} / {} ms |\n",
        ms(percentile(&nested, 0.5)),
        ms(percentile(&nested, 0.99))
    ));
    section.push_str(&format!(
        "| nested (3 levels, `nest:deep:d-i`) create → Ready p50 / p99 ({nested_samples}, one at a time) | {} / {} ms |\n",
        ms(percentile(&deeper, 0.5)),
        ms(percentile(&deeper, 0.99))
    ));
    section.push_str(&format!(
        "| provisioning throughput (8 concurrent clients, {idle} VirtualClusters) | {provision_rate:.0} /s |\n"
    ));
    section.push_str(&format!(
        "| RSS growth per idle virtual cluster ({idle} created) | {:.1} KiB |\n",
        per_cluster as f64 / 1024.0
    ));
    section.push_str(&format!(
        "| process CPU over 5 s idle with {clusters} clusters served | {} ms |\n",
        idle_cpu.as_millis()
    ));
    section.push_str("\nCreate → Ready is measured from the create request to the watch event showing `Ready=True`: the controller claims the path, adds its finalizer, creates the cluster (client CA, record, 4 namespaces), issues the admin certificate, writes the kubeconfig Secret and the status, each a durable commit; a nested one also inherits its parent's policy at admission and is judged against it (`PolicyCompliant`), with its Secret in the parent virtual cluster. RSS growth includes each cluster's objects in the storage engine's caches and the allocator's slack. Target: create → Ready p99 < 50 ms.\n");
    print!("{section}");
    common::write_section("tenancy-bench", &section);
}
