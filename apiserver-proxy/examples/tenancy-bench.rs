//! Tenancy benchmark: how fast a VirtualCluster becomes Ready (top-level,
//! and nested one and two levels below one), and what an idle virtual
//! cluster costs. Drives an in-process server over TLS with kube-rs like
//! any client (nested ones through their parent's kubeconfig Secret);
//! rewrites its section of docs/benchmarks.md.
//!
//! Run: `cargo run --release -p nestkube-apiserver --example tenancy-bench`
//! (`-- <latency samples> <idle clusters>`, default 200 and 1000).
//!
//! `-- fairness [rounds] [seats] [seats per tenant]`: instead, fairness
//! between two virtual clusters with no limits configured (its own section
//! of docs/benchmarks.md): a quiet tenant's gets every 5 ms, alone and
//! beside a noisy neighbour of 64 concurrent clients creating ConfigMaps,
//! and the neighbour's throughput alone and beside the quiet tenant; on a
//! server with fair scheduling off (`--max-requests-inflight 0`, as before
//! it existed) and on one with the default (or the given) seats, in
//! interleaved rounds of 5 s phases so that both see the same machine. The
//! servers, the neighbour's clients and the quiet client each run on their
//! own runtime (threads); the neighbour's client threads at nice 10, as if
//! on other machines (on 2 cores they would otherwise take the cores from
//! the server and from the quiet client, measuring the bench rather than
//! the server).

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
    common::client_for(kubeconfig_of(parent, name).await).await
}

/// The admin kubeconfig of VirtualCluster `default/name` of `parent`'s
/// cluster (created here), once it is Ready.
async fn kubeconfig_of(parent: &Client, name: &str) -> Kubeconfig {
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
    Kubeconfig::from_yaml(std::str::from_utf8(&doc).expect("utf-8")).expect("kubeconfig")
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

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("fairness") {
        let mut number = || args.next().and_then(|s| s.parse().ok());
        let _mode = number();
        let rounds = number().unwrap_or(4);
        let (seats, per_tenant) = (number(), number());
        return fairness::run(rounds, seats, per_tenant);
    }
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(provisioning(args));
}

async fn provisioning(mut args: impl Iterator<Item = String>) {
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

/// The fairness bench (`-- fairness`): see the module docs.
mod fairness {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    use kube::config::Kubeconfig;
    use tokio::runtime::Runtime;

    use super::common::{self, percentile};

    /// Concurrent clients of the noisy neighbour.
    const NEIGHBOUR_CLIENTS: usize = 64;
    /// The quiet tenant's period between gets.
    const QUIET_PERIOD: Duration = Duration::from_millis(5);

    fn runtime(threads: usize, name: &str) -> Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// The neighbour's client threads, at nice 10 (see the module docs;
    /// `renice` on the thread's id: no libc binding needed).
    fn client_runtime(threads: usize) -> Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("neighbour")
            .on_thread_start(|| {
                let tid = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()));
                if let Some(tid) = tid {
                    let _ = std::process::Command::new("renice")
                        .args(["-n", "10", "-p", &tid])
                        .output();
                }
            })
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn cm(name: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v"},
        }))
        .expect("configmap")
    }

    fn is_throttled(e: &kube::Error) -> bool {
        matches!(e, kube::Error::Api(s) if s.code == 429)
    }

    /// What the quiet tenant saw: sorted latencies of its successful gets
    /// and how many were refused with 429.
    struct Quiet {
        latencies: Vec<Duration>,
        throttled: u64,
    }

    /// The quiet tenant for `duration` on its own thread and runtime: one
    /// get every 5 ms (after a warm-up).
    fn quiet(kubeconfig: Kubeconfig, duration: Duration) -> std::thread::JoinHandle<Quiet> {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = common::client_for(kubeconfig).await;
                let api: Api<ConfigMap> = Api::namespaced(client, "default");
                for _ in 0..100 {
                    api.get("probe").await.expect("warm-up get");
                }
                let mut tick = tokio::time::interval(QUIET_PERIOD);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let end = Instant::now() + duration;
                let mut out = Quiet {
                    latencies: Vec::new(),
                    throttled: 0,
                };
                while Instant::now() < end {
                    tick.tick().await;
                    let t = Instant::now();
                    match api.get("probe").await {
                        Ok(_) => out.latencies.push(t.elapsed()),
                        Err(e) if is_throttled(&e) => out.throttled += 1,
                        Err(e) => panic!("quiet get: {e}"),
                    }
                }
                out.latencies.sort();
                out
            })
        })
    }

    /// What the neighbour did: creates per second and 429s.
    struct Neighbour {
        per_second: f64,
        throttled: u64,
    }

    /// The noisy neighbour for `duration`: 64 clients (own connections, as
    /// 64 client-go clients), each creating ConfigMaps back to back; a 429
    /// is retried after `Retry-After` (1 s), as client-go does.
    async fn neighbour(clients: &[kube::Client], tag: &str, duration: Duration) -> Neighbour {
        let created = Arc::new(AtomicU64::new(0));
        let throttled = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let end = start + duration;
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
                let (created, throttled, tag) =
                    (created.clone(), throttled.clone(), tag.to_string());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < end {
                        n += 1;
                        match api
                            .create(&PostParams::default(), &cm(&format!("{tag}-{i}-{n}")))
                            .await
                        {
                            Ok(_) => {
                                created.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if is_throttled(&e) => {
                                throttled.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Err(e) => panic!("neighbour create: {e}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client task");
        }
        Neighbour {
            per_second: created.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
            throttled: throttled.load(Ordering::Relaxed),
        }
    }

    fn ms(d: Duration) -> String {
        format!("{:.2}", d.as_secs_f64() * 1000.0)
    }

    /// One server under test: its tenants' kubeconfigs and the
    /// neighbour's clients (on the clients' runtime).
    struct Setup {
        label: String,
        quiet: Kubeconfig,
        clients: Vec<kube::Client>,
        /// Kept for as long as the server runs.
        _server: (nestkube_apiserver::server::RunningServer, tempfile::TempDir),
    }

    fn setup(
        server_rt: &Runtime,
        load_rt: &Runtime,
        options: nestkube_apiserver::server::ServeOptions,
        label: String,
    ) -> Setup {
        let (server, root, dir) = server_rt.block_on(common::server_with(options));
        let (noisy, quiet) = server_rt.block_on(async {
            let noisy = super::kubeconfig_of(&root, "noisy").await;
            let quiet = super::kubeconfig_of(&root, "quiet").await;
            let client = common::client_for(quiet.clone()).await;
            Api::<ConfigMap>::namespaced(client, "default")
                .create(&PostParams::default(), &cm("probe"))
                .await
                .expect("probe");
            (noisy, quiet)
        });
        let clients = load_rt.block_on(async {
            let mut clients = Vec::new();
            for _ in 0..NEIGHBOUR_CLIENTS {
                clients.push(common::client_for(noisy.clone()).await);
            }
            // Warm-up: every client's connection and the server's caches.
            neighbour(&clients, "warm", Duration::from_secs(1)).await;
            clients
        });
        Setup {
            label,
            quiet,
            clients,
            _server: (server, dir),
        }
    }

    /// What one server saw over every round.
    #[derive(Default)]
    struct Totals {
        quiet_alone: Vec<Duration>,
        quiet_beside: Vec<Duration>,
        quiet_throttled: u64,
        created_alone: f64,
        created_beside: f64,
        neighbour_throttled: u64,
        rounds: usize,
    }

    /// Each phase of a round.
    const PHASE: Duration = Duration::from_secs(5);

    /// Runs the bench: `rounds` rounds, each over a server with fair
    /// scheduling off and one with `seats` and `per_tenant` (`None`: the
    /// defaults).
    pub fn run(rounds: usize, seats: Option<usize>, per_tenant: Option<usize>) {
        use nestkube_apiserver::server::{ServeOptions, flowcontrol::Config};
        let server_rt = runtime(2, "server");
        let load_rt = client_runtime(2);
        let mut off = ServeOptions::default();
        off.flow_control.seats = 0;
        let mut on = ServeOptions::default();
        if let Some(seats) = seats {
            on.flow_control.seats = seats;
            on.flow_control.per_tenant = Config::default_per_tenant(seats);
        }
        if let Some(per_tenant) = per_tenant {
            on.flow_control.per_tenant = per_tenant;
        }
        let on_label = format!(
            "on: {} seats, {} per tenant{}",
            on.flow_control.seats,
            on.flow_control.per_tenant,
            if seats.is_none() && per_tenant.is_none() {
                " (the defaults)"
            } else {
                ""
            }
        );
        let setups = [
            setup(&server_rt, &load_rt, off, "off (as before)".to_string()),
            setup(&server_rt, &load_rt, on, on_label),
        ];
        let mut totals: Vec<Totals> = setups.iter().map(|_| Totals::default()).collect();
        for round in 0..rounds {
            for (s, t) in setups.iter().zip(totals.iter_mut()) {
                let alone = quiet(s.quiet.clone(), PHASE).join().expect("quiet");
                let n = load_rt.block_on(neighbour(&s.clients, &format!("a{round}"), PHASE));
                let beside = quiet(s.quiet.clone(), PHASE);
                let m = load_rt.block_on(neighbour(&s.clients, &format!("b{round}"), PHASE));
                let beside = beside.join().expect("quiet");
                t.quiet_alone.extend(alone.latencies);
                t.quiet_beside.extend(beside.latencies);
                t.quiet_throttled += alone.throttled + beside.throttled;
                t.created_alone += n.per_second;
                t.created_beside += m.per_second;
                t.neighbour_throttled += n.throttled + m.throttled;
                t.rounds += 1;
            }
        }

        let mut section = String::new();
        section.push_str("## Fairness between virtual clusters (no limits configured)\n\n");
        let args = match (seats, per_tenant) {
            (None, None) => String::new(),
            (Some(s), None) => format!(" {s}"),
            (s, Some(p)) => format!(" {} {p}", s.unwrap_or(Config::default_seats())),
        };
        section.push_str(&format!(
            "`cargo run --release -p nestkube-apiserver --example tenancy-bench -- fairness {rounds}{args}`, measured on {} on {} cores (shared with the bench's clients and concurrent builds). Two VirtualClusters with no `spec.limits`: a quiet tenant getting one ConfigMap every 5 ms, and a noisy neighbour of {NEIGHBOUR_CLIENTS} concurrent kube-rs clients creating ConfigMaps (durably). Two servers, fair scheduling off and on; {rounds} interleaved rounds of three {} s phases on each (quiet alone, neighbour alone, both); latencies pooled over the rounds, throughput averaged. The servers, the neighbour's clients (nice 10, as if on other machines) and the quiet client run on separate runtimes (threads).\n\n",
            chrono::Utc::now().format("%Y-%m-%d"),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            PHASE.as_secs(),
        ));
        section.push_str("| fair scheduling | quiet get p50 alone / beside (ms) | quiet get p99 alone / beside (ms) | p99 ratio | neighbour creates/s alone / beside | throughput kept | 429s (quiet, neighbour) |\n|---|---|---|---|---|---|---|\n");
        for (s, t) in setups.iter().zip(totals.iter_mut()) {
            t.quiet_alone.sort();
            t.quiet_beside.sort();
            let p = |v: &[Duration], at| percentile(v, at);
            let rounds = t.rounds.max(1) as f64;
            let (alone, beside) = (t.created_alone / rounds, t.created_beside / rounds);
            let p99 = (p(&t.quiet_alone, 0.99), p(&t.quiet_beside, 0.99));
            section.push_str(&format!(
                "| {} | {} / {} | {} / {} | {:.2}× | {alone:.0} / {beside:.0} | {:.0} % | {}, {} |\n",
                s.label,
                ms(p(&t.quiet_alone, 0.5)),
                ms(p(&t.quiet_beside, 0.5)),
                ms(p99.0),
                ms(p99.1),
                p99.1.as_secs_f64() / p99.0.as_secs_f64().max(f64::MIN_POSITIVE),
                100.0 * beside / alone.max(f64::MIN_POSITIVE),
                t.quiet_throttled,
                t.neighbour_throttled,
            ));
        }
        section.push_str("\nTargets: the quiet tenant's get p99 beside the neighbour ≤ 1.5× its p99 alone; the neighbour keeps ≥ 80 % of its throughput alone. kube-rs retries a 429 after its `Retry-After` (counted above when it still reaches the bench).\n");
        print!("{section}");
        common::write_section("fairness-bench", &section);
        drop(setups);
        drop(load_rt);
        drop(server_rt);
    }
}
