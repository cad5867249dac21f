//! Measures what the schema crate costs: compiling, sharing a schema among
//! many virtual clusters (resident memory per cluster), and the per-object
//! work (prune, default, validate) of a real CRD (VirtualCluster).
//!
//! `cargo run -p nestkube-schema --all-features --example schema-bench`

use std::sync::Arc;
use std::time::Instant;

use nestkube_schema::{Schema, SchemaCache};
use serde_json::{Value, json};

/// Resident set size in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

fn main() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tenant-crds/crd/virtualcluster.yaml"
    ))
    .expect("the VirtualCluster CRD");
    let doc = text
        .split("\n---")
        .find(|d| d.contains("kind: CustomResourceDefinition"))
        .expect("a CRD document");
    let crd: Value = serde_yaml::from_str(doc).expect("YAML");
    let base = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    println!("schema JSON: {} bytes", base.to_string().len());

    let t = Instant::now();
    let compiled = Schema::compile(&base, "s").expect("compiles");
    println!("compile: {:?}", t.elapsed());
    drop(compiled);

    // 30 distinct CRD schemas (the description differs), then 1000 clusters
    // holding all 30 each.
    let schemas: Vec<Value> = (0..30)
        .map(|i| {
            let mut s = base.clone();
            s["description"] = json!(format!("CRD number {i}"));
            s
        })
        .collect();
    let cache = SchemaCache::global();
    let before = rss_kib();
    let t = Instant::now();
    let first: Vec<Arc<Schema>> = schemas
        .iter()
        .map(|s| cache.get_or_compile(s, "s").unwrap())
        .collect();
    let after_compile = rss_kib();
    println!(
        "30 distinct schemas: {:?}, {} KiB resident",
        t.elapsed(),
        after_compile.saturating_sub(before)
    );
    let t = Instant::now();
    let clusters: Vec<Vec<Arc<Schema>>> = (0..1000)
        .map(|_| {
            schemas
                .iter()
                .map(|s| cache.get_or_compile(s, "s").unwrap())
                .collect()
        })
        .collect();
    let after_clusters = rss_kib();
    println!(
        "1000 clusters x 30 look-ups: {:?}, {} KiB resident in all, {:.2} KiB per cluster",
        t.elapsed(),
        after_clusters.saturating_sub(after_compile),
        after_clusters.saturating_sub(after_compile) as f64 / 1000.0
    );
    assert!(clusters.iter().all(|c| Arc::ptr_eq(&c[0], &first[0])));

    let s = &first[0];
    let obj = json!({"apiVersion": "tenancy.nestkube.io/v1alpha1", "kind": "VirtualCluster",
        "metadata": {"name": "a", "namespace": "n"}, "spec": {}, "extra": 1});
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let mut o = obj.clone();
        s.prune(&mut o);
        s.apply_defaults(&mut o);
        let errs = s.validate(&o, None);
        assert!(errs.is_empty(), "{errs:?}");
    }
    println!(
        "prune + default + validate: {:?} per object",
        t.elapsed() / n
    );
}
