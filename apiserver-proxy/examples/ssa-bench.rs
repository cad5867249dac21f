//! Server-side apply benchmark: apply of a Deployment (create, no-op
//! re-apply) and plain create/update, p50/p99 over TLS with kube-rs, on
//! nestkube and, given a kubeconfig, on another API server (the e2e host's
//! kube-apiserver) in the same run; and the in-process cost of the
//! `managedFields` step on a create and an update. Rewrites its section of
//! docs/benchmarks.md.
//!
//! Run: `cargo run --release -p nestkube-apiserver --example ssa-bench -- [N] [--kubeconfig FILE]`
//! (N requests per row, default 300; with the e2e host:
//! `--kubeconfig $NESTKUBE_E2E_HOST_DIR/admin.kubeconfig`).

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, config::Kubeconfig};
use nestkube_apiserver::registry::catalog::Catalog;
use nestkube_apiserver::registry::managed_fields::{self, Context};
use serde_json::{Value, json};

use common::{percentile, timed};

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// A Deployment as a chart or a kustomization would hold it, scaled to 0:
/// nestkube runs its controllers in-process while the e2e host's
/// kube-apiserver is measured alone (`--apiserver-only`), so pods would
/// charge nestkube's rows with the controllers' writes.
fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "tier": "web"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image,
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "resources": {"limits": {"cpu": "1", "memory": "128Mi"}}}]}}}
    })
}

/// The rows of one API server: (what, p50, p99).
async fn measure(client: Client, ns: &str, n: usize) -> Vec<(&'static str, Duration, Duration)> {
    let api: Api<Deployment> = Api::namespaced(client, ns);
    let pp = PatchParams::apply("ssa-bench").force();
    let mut rows = Vec::new();
    let d = |name: &str, image: &str| -> Deployment {
        serde_json::from_value(deployment(name, image)).unwrap()
    };
    let (p50, p99) = timed(n, |i| {
        let (api, o) = (api.clone(), d(&format!("ssa-bench-a{i}"), "nginx:1"));
        let pp = pp.clone();
        async move {
            api.patch(&format!("ssa-bench-a{i}"), &pp, &Patch::Apply(&o))
                .await
                .expect("apply (create)");
        }
    })
    .await;
    rows.push(("apply, creating", p50, p99));
    let (p50, p99) = timed(n, |i| {
        let (api, o) = (api.clone(), d(&format!("ssa-bench-a{i}"), "nginx:1"));
        let pp = pp.clone();
        async move {
            api.patch(&format!("ssa-bench-a{i}"), &pp, &Patch::Apply(&o))
                .await
                .expect("apply (no-op)");
        }
    })
    .await;
    rows.push(("apply, no-op re-apply", p50, p99));
    let (p50, p99) = timed(n, |i| {
        let (api, o) = (api.clone(), d(&format!("ssa-bench-a{i}"), "nginx:2"));
        let pp = pp.clone();
        async move {
            api.patch(&format!("ssa-bench-a{i}"), &pp, &Patch::Apply(&o))
                .await
                .expect("apply (change)");
        }
    })
    .await;
    rows.push(("apply, changing the image", p50, p99));
    let (p50, p99) = timed(n, |i| {
        let (api, o) = (api.clone(), d(&format!("ssa-bench-c{i}"), "nginx:1"));
        async move {
            api.create(&PostParams::default(), &o)
                .await
                .expect("create");
        }
    })
    .await;
    rows.push(("create (POST)", p50, p99));
    let (p50, p99) = timed(n, |i| {
        let api = api.clone();
        async move {
            let name = format!("ssa-bench-c{i}");
            let mut o = api.get(&name).await.expect("get");
            o.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
            api.replace(&name, &PostParams::default(), &o)
                .await
                .expect("update");
        }
    })
    .await;
    rows.push(("update (GET + PUT)", p50, p99));
    for prefix in ["ssa-bench-a", "ssa-bench-c"] {
        for i in 0..n {
            let _ = api
                .delete(&format!("{prefix}{i}"), &DeleteParams::default())
                .await;
        }
    }
    rows
}

/// p50/p99 of `n` runs of `f`, in process.
fn timed_sync(n: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

#[tokio::main]
async fn main() {
    let mut n = 300usize;
    let mut other: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--kubeconfig" => other = args.next().map(Into::into),
            s => n = s.parse().expect("N or --kubeconfig FILE"),
        }
    }
    let (server, client, _dir) = common::server().await;
    let ours = measure(client, "default", n).await;
    let theirs = match &other {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).expect("kubeconfig");
            Some(measure(common::client_for(kc).await, "default", n).await)
        }
        None => None,
    };

    // The managedFields step alone, in process: what every create and
    // update pays (an Update entry) and what an apply computes.
    let catalog = Catalog::builtin().expect("catalog");
    let r = catalog
        .get("apps", "v1", "deployments")
        .expect("deployments");
    let schema = server.api.store.field_schema().map(|s| &**s);
    let ctx = Context {
        schema,
        resource: r,
        subresource: None,
    };
    let base = deployment("m", "nginx:1");
    let mut created = base.clone();
    managed_fields::record_update(&ctx, None, &mut created, "bench");
    let (c50, c99) = timed_sync(n * 10, |_| {
        let mut o = base.clone();
        managed_fields::record_update(&ctx, None, &mut o, "bench");
    });
    let mut changed = created.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2".into();
    let (u50, u99) = timed_sync(n * 10, |_| {
        let mut o = changed.clone();
        managed_fields::record_update(&ctx, Some(&created), &mut o, "editor");
    });
    let applied = managed_fields::apply(&ctx, None, &base, "bench", true).expect("apply");
    let (a50, a99) = timed_sync(n * 10, |_| {
        managed_fields::apply(&ctx, Some(&applied), &base, "bench", true).expect("apply");
    });
    let (k50, k99) = timed_sync(n * 10, |_| {
        let _ = base.clone();
    });

    let date = chrono::Utc::now().format("%Y-%m-%d");
    let mut body = String::from("## Server-side apply (kube-rs over TLS on loopback)\n\n");
    body += &format!(
        "`cargo run{} -p nestkube-apiserver --example ssa-bench -- {n}{}`, measured on {date} on 2 cores (shared with concurrent builds), {} build. A Deployment of one container (labels, ports, env, limits) scaled to 0 (nestkube's in-process controllers still add a ReplicaSet per Deployment; the host runs kube-apiserver alone); {n} sequential requests per row, each on its own object.\n\n",
        if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        },
        if other.is_some() {
            " --kubeconfig $NESTKUBE_E2E_HOST_DIR/admin.kubeconfig"
        } else {
            ""
        },
        if cfg!(debug_assertions) {
            "a debug"
        } else {
            "a release"
        }
    );
    match &theirs {
        Some(theirs) => {
            body += "| request | nestkube p50 / p99 (ms) | kube-apiserver 1.37 (e2e host, etcd) p50 / p99 (ms) |\n|---|---|---|\n";
            for ((what, p50, p99), (_, t50, t99)) in ours.iter().zip(theirs) {
                body += &format!(
                    "| {what} | {} / {} | {} / {} |\n",
                    ms(*p50),
                    ms(*p99),
                    ms(*t50),
                    ms(*t99)
                );
            }
        }
        None => {
            body += "Only nestkube measured (no `--kubeconfig`): run with the e2e host's kubeconfig for the kube-apiserver column.\n\n";
            body += "| request | nestkube p50 / p99 (ms) |\n|---|---|\n";
            for (what, p50, p99) in &ours {
                body += &format!("| {what} | {} / {} |\n", ms(*p50), ms(*p99));
            }
        }
    }
    body += &format!(
        "\nThe `managedFields` step alone, in process ({} runs each, µs p50 / p99): Update entry of a create {} / {}; of an update changing the image {} / {}; a no-op apply (merge, compare, ownership) {} / {}; cloning the object, for scale, {} / {}. The update row above pays it once per request.\n",
        n * 10,
        us(c50),
        us(c99),
        us(u50),
        us(u99),
        us(a50),
        us(a99),
        us(k50),
        us(k99)
    );
    print!("{body}");
    common::write_section("ssa-bench", &body);
}
