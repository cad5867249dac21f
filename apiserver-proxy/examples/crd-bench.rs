//! CRD benchmark: custom resources next to ConfigMaps in the same run
//! (create, get, list, watch delivery), CRD create → Established → first
//! custom resource accepted, and what the same third-party CRDs installed
//! in many virtual clusters cost: RSS growth per cluster and the time to
//! serve them all again from storage (what a restart does for CRDs).
//! Rewrites its section of docs/benchmarks.md.
//!
//! Run: `cargo run --release -p nestkube-apiserver --example crd-bench`
//! (`-- <clusters>`, default 200). The CRD sets come from `e2e/setup crds`
//! (Gateway API experimental, cert-manager, prometheus-operator).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams, WatchEvent,
    WatchParams,
};
use nestkube_apiserver::registry::apiextensions::definition::Definition;
use nestkube_apiserver::registry::apiextensions::served::Installed;
use nestkube_apiserver::registry::catalog::Catalog;
use nestkube_apiserver::registry::store::{Target, WriteOptions};
use serde_json::{Value, json};

use common::{percentile, rss_bytes, timed};

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

const WIDGET_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.bench.example.com"},
  "spec": {"group": "bench.example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "kind": "Widget"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "data": {"type": "object", "additionalProperties": {"type": "string"}}}}}}]}}"#;

/// Create, get, list (500 objects) and watch delivery for one API.
async fn measure(
    api: &Api<DynamicObject>,
    make: impl Fn(&str) -> DynamicObject,
) -> Vec<(Duration, Duration)> {
    let mut out = Vec::new();
    out.push(
        timed(500, |i| {
            let o = make(&format!("o{i}"));
            async move {
                api.create(&PostParams::default(), &o)
                    .await
                    .expect("create");
            }
        })
        .await,
    );
    out.push(
        timed(2000, |i| async move {
            api.get(&format!("o{}", i % 500)).await.expect("get");
        })
        .await,
    );
    out.push(
        timed(40, |_| async move {
            let l = api.list(&ListParams::default()).await.expect("list");
            assert!(l.items.len() >= 500);
        })
        .await,
    );
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut samples = Vec::new();
    for i in 0..200 {
        let name = format!("w{i}");
        let t = Instant::now();
        api.create(&PostParams::default(), &make(&name))
            .await
            .expect("create");
        let sent = t.elapsed();
        loop {
            match stream.try_next().await.expect("watch ok") {
                Some(WatchEvent::Added(o)) if o.metadata.name.as_deref() == Some(&name) => break,
                Some(_) => continue,
                None => panic!("watch ended"),
            }
        }
        samples.push(t.elapsed().saturating_sub(sent));
    }
    samples.sort();
    out.push((percentile(&samples, 0.5), percentile(&samples, 0.99)));
    out
}

fn object(api_version: &str, kind: &str, name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": api_version, "kind": kind, "metadata": {"name": name},
        "data": {"k": "v", "payload": "x".repeat(256)},
    }))
    .expect("object")
}

/// The CRD documents of the sets `e2e/setup crds` prepared.
fn third_party_crds() -> Vec<Value> {
    let dir = std::env::var("NESTKUBE_E2E_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let setup = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e/setup");
            let out = std::process::Command::new(setup)
                .arg("--print-env")
                .output()
                .expect("e2e/setup --print-env");
            let env = String::from_utf8_lossy(&out.stdout).to_string();
            let line = env
                .lines()
                .find_map(|l| l.strip_prefix("NESTKUBE_E2E_CRDS="))
                .expect("run e2e/setup crds first");
            PathBuf::from(line)
        });
    let mut crds = Vec::new();
    for set in [
        "gateway-api-experimental",
        "cert-manager",
        "prometheus-operator",
    ] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(set))
            .expect("CRD set")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read");
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: Value = serde::Deserialize::deserialize(doc).expect("yaml");
                if v["kind"] == "CustomResourceDefinition" {
                    crds.push(v);
                }
            }
        }
    }
    crds
}

#[tokio::main]
async fn main() {
    let clusters: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // 0. What the served overlay costs a cluster, measured before anything
    // else churns the allocator: the third-party CRDs' definitions (shared,
    // built once), then 10,000 clusters' overlays holding all of them.
    let sets = third_party_crds();
    let definitions: Vec<(String, Arc<Definition>)> = sets
        .iter()
        .map(|crd| {
            let mut crd = crd.clone();
            nestkube_apiserver::registry::kinds::strategy_for(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
            )
            .default(&mut crd);
            let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
            (name, Definition::shared(&crd["spec"]).expect("definition"))
        })
        .collect();
    const OVERLAY_CLUSTERS: usize = 10_000;
    let overlay = Catalog::builtin().expect("catalog");
    let rss_before = rss_bytes();
    for c in 0..OVERLAY_CLUSTERS {
        let path = format!("overlay-{c}");
        for (name, d) in &definitions {
            overlay
                .custom
                .install(&path, name, Installed::new(d.clone(), false));
        }
    }
    let overlay_per_cluster =
        rss_bytes().saturating_sub(rss_before) as f64 / OVERLAY_CLUSTERS as f64;
    drop(overlay);

    let (server, client, _dir) = common::server().await;

    // 1. A custom resource next to a ConfigMap.
    let crd: Value = serde_json::from_str(WIDGET_CRD).unwrap();
    let crds_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let widgets_res = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bench.example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widgets_res);
    crds_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .expect("crd");
    while widgets.list(&ListParams::default().limit(1)).await.is_err() {
        tokio::task::yield_now().await;
    }
    let cm_res = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    let cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &cm_res);
    let cm_rows = measure(&cms, |n| object("v1", "ConfigMap", n)).await;
    let cr_rows = measure(&widgets, |n| object("bench.example.com/v1", "Widget", n)).await;

    // 2. CRD create -> Established -> first custom resource accepted.
    let mut samples = Vec::new();
    for i in 0..50 {
        let group = format!("g{i}.bench.example.com");
        let mut crd: Value = serde_json::from_str(WIDGET_CRD).unwrap();
        crd["metadata"]["name"] = json!(format!("widgets.{group}"));
        crd["spec"]["group"] = json!(group);
        let res = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&group, "v1", "Widget"),
            "widgets",
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &res);
        let t = Instant::now();
        crds_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(crd).unwrap(),
            )
            .await
            .expect("crd");
        let obj = object(&format!("{group}/v1"), "Widget", "first");
        while api.create(&PostParams::default(), &obj).await.is_err() {
            tokio::task::yield_now().await;
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let (est50, est99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));

    // 3. The same third-party CRDs in `clusters` virtual clusters.
    let api = &server.api;
    let crd_info = api
        .catalog
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("crds")
        .clone();
    for c in 0..clusters {
        let path = format!("crd-bench-{c}");
        api.clusters
            .create(&api.store, &api.catalog, &path)
            .await
            .expect("cluster");
    }
    let rss0 = rss_bytes();
    let t = Instant::now();
    for c in 0..clusters {
        let path = format!("crd-bench-{c}");
        let target = Target {
            cluster: &path,
            resource: &crd_info,
            namespace: None,
        };
        for crd in &sets {
            api.store
                .create(&target, crd.clone(), WriteOptions::default())
                .await
                .expect("create crd");
        }
    }
    let served = |catalog: &Catalog| {
        (0..clusters)
            .filter(|c| {
                catalog
                    .custom
                    .cluster(&format!("crd-bench-{c}"))
                    .is_some_and(|x| x.installed.len() == sets.len())
            })
            .count()
    };
    while served(&api.catalog) < clusters {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let install = t.elapsed();
    let rss1 = rss_bytes();
    // What a restart does for CRDs: another fresh overlay fills from storage.
    let reloaded = Arc::new(Catalog::builtin().expect("catalog"));
    let t = Instant::now();
    let task = nestkube_apiserver::controllers::customresourcedefinition::serve(
        &api.store,
        reloaded.clone(),
    );
    while served(&reloaded) < clusters {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reload = t.elapsed();
    task.abort();

    let mut section = String::new();
    section.push_str("## Custom resources (kube-rs over TLS on loopback, embedded storage)\n\n");
    section.push_str(&format!(
        "`cargo run --release -p nestkube-apiserver --example crd-bench -- {clusters}`, measured on {} on {} cores (shared with concurrent builds). A custom resource and a ConfigMap of the same size (~300 B of data), in the same run, same server:\n\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    ));
    section.push_str("| operation | ConfigMap p50 / p99 (ms) | custom resource p50 / p99 (ms) | CR / ConfigMap (p50) |\n|---|---|---|---|\n");
    for (what, (cm, cr)) in [
        "create (500, sequential)",
        "get (2,000)",
        "list 500 objects (40)",
        "watch delivery after create (200)",
    ]
    .iter()
    .zip(cm_rows.iter().zip(&cr_rows))
    {
        section.push_str(&format!(
            "| {what} | {} / {} | {} / {} | {:.2}× |\n",
            ms(cm.0),
            ms(cm.1),
            ms(cr.0),
            ms(cr.1),
            cr.0.as_secs_f64() / cm.0.as_secs_f64().max(1e-9)
        ));
    }
    section.push_str(&format!(
        "\nCRD create → Established → first custom resource accepted (50 CRDs, each a new group): p50 {} ms, p99 {} ms (target < 50 ms).\n\n",
        ms(est50),
        ms(est99)
    ));
    section.push_str(&format!(
        "The same {} third-party CRDs (Gateway API experimental, cert-manager, prometheus-operator, unmodified; {:.1} MiB of JSON) installed in each of {clusters} virtual clusters:\n\n| measure | value |\n|---|---|\n| served overlay per cluster (RSS growth of 10,000 clusters' overlays, each serving all of them; definitions shared per distinct CRD) | {:.1} KiB |\n| whole process RSS growth per cluster while installing | {:.1} KiB |\n| install rate (in-process creates, each a durable commit, then Established) | {:.0} CRDs/s |\n| serving all {} again from storage, as a restart does | {:.2} s |\n\nThe whole-process growth is dominated by the storage engine: its watch history keeps at least the last 10,000 events with their values (and the previous ones), and CRDs are large; the overlay is what CRDs cost each cluster in the server. Target: < 200 KiB per cluster for the CRDs.\n",
        sets.len(),
        sets.iter().map(|c| c.to_string().len()).sum::<usize>() as f64 / 1048576.0,
        overlay_per_cluster / 1024.0,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0 / clusters as f64,
        (clusters * sets.len()) as f64 / install.as_secs_f64(),
        clusters * sets.len(),
        reload.as_secs_f64(),
    ));
    print!("{section}");
    common::write_section("crd-bench", &section);
}
