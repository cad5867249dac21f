//! API benchmark: latency and throughput of a real server on loopback, driven
//! by kube-rs over TLS like any client. Rewrites its section of
//! docs/benchmarks.md.
//!
//! Run: `cargo run --release -p nestkube-apiserver --example api-bench`
//!
//! `-- admission`: instead, admission latency of dry-run creates with no
//! admission policy and with a ValidatingAdmissionPolicy of 5 validations
//! (its own section of docs/benchmarks.md).

mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

use common::{percentile, timed};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"},
    }))
    .expect("configmap")
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

struct Row {
    what: &'static str,
    n: usize,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("admission") {
        return admission().await;
    }
    let (_server, client, _dir) = common::server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut rows = Vec::new();

    let (p50, p99) = timed(1000, |i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &cm(&format!("c{i}")))
                .await
                .expect("create");
        }
    })
    .await;
    rows.push(Row {
        what: "create (sequential)",
        n: 1000,
        p50,
        p99,
    });

    let (p50, p99) = timed(5000, |i| {
        let api = api.clone();
        async move {
            api.get(&format!("c{}", i % 1000)).await.expect("get");
        }
    })
    .await;
    rows.push(Row {
        what: "get",
        n: 5000,
        p50,
        p99,
    });

    let (p50, p99) = timed(1000, |i| {
        let api = api.clone();
        async move {
            let mut o = api.get(&format!("c{i}")).await.expect("get");
            o.data = Some([("k".to_string(), "updated".to_string())].into());
            api.replace(&format!("c{i}"), &PostParams::default(), &o)
                .await
                .expect("update");
        }
    })
    .await;
    rows.push(Row {
        what: "get + update",
        n: 1000,
        p50,
        p99,
    });

    let (p50, p99) = timed(50, |_| {
        let api = api.clone();
        async move {
            let l = api.list(&ListParams::default()).await.expect("list");
            assert!(l.items.len() >= 1000);
        }
    })
    .await;
    rows.push(Row {
        what: "list 1,000 objects",
        n: 50,
        p50,
        p99,
    });

    // Watch delivery: time from a create's response to the event at a watcher.
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
    for i in 0..500 {
        let t = Instant::now();
        api.create(&PostParams::default(), &cm(&format!("w{i}")))
            .await
            .expect("create");
        let sent = t.elapsed();
        loop {
            match stream.try_next().await.expect("watch ok") {
                Some(WatchEvent::Added(o))
                    if o.metadata.name.as_deref() == Some(&format!("w{i}")) =>
                {
                    break;
                }
                Some(_) => continue,
                None => panic!("watch ended"),
            }
        }
        samples.push(t.elapsed().saturating_sub(sent));
    }
    samples.sort();
    rows.push(Row {
        what: "watch delivery (after create returns)",
        n: 500,
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
    });

    // Throughput: 16 concurrent clients creating durably.
    let total = 8000;
    let t = Instant::now();
    futures::stream::iter(0..total)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &cm(&format!("t{i}")))
                    .await
                    .expect("create");
            }
        })
        .await;
    let throughput = total as f64 / t.elapsed().as_secs_f64();

    let mut section = String::new();
    section.push_str("## API (kube-rs over TLS on loopback, embedded storage)\n\n");
    section.push_str(&format!(
        "Measured {} on {} cores.\n\n",
        chrono_like_now(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    ));
    section.push_str("| operation | samples | p50 (ms) | p99 (ms) |\n|---|---|---|---|\n");
    for r in &rows {
        section.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what,
            r.n,
            ms(r.p50),
            ms(r.p99)
        ));
    }
    section.push_str(&format!(
        "\nDurable creates with 16 concurrent clients: **{throughput:.0} creates/s** ({total} objects).\n\nTargets: get p99 < 1 ms; >= 5,000 durable creates/s.\n"
    ));
    print!("{section}");
    common::write_section("api-bench", &section);
}

fn chrono_like_now() -> String {
    format!("on {}", chrono::Utc::now().format("%Y-%m-%d"))
}

/// Dry-run creates of ConfigMaps (admission and validation, no storage
/// write) without a policy, then with a 5-validation
/// ValidatingAdmissionPolicy bound to ConfigMaps.
async fn admission() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let (_server, client, _dir) = common::server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let n = 2000;
    let run = |api: Api<ConfigMap>, dry: PostParams| async move {
        // Warm up (connections, the policy's first compile).
        for i in 0..50 {
            api.create(&dry, &cm(&format!("warm{i}")))
                .await
                .expect("create");
        }
        timed(n, |i| {
            let (api, dry) = (api.clone(), dry.clone());
            async move {
                api.create(&dry, &cm(&format!("a{i}")))
                    .await
                    .expect("create");
            }
        })
        .await
    };
    let without = run(api.clone(), dry.clone()).await;
    let gvk = |k: &str| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            k,
        ))
    };
    let policies: Api<DynamicObject> =
        Api::all_with(client.clone(), &gvk("ValidatingAdmissionPolicy"));
    let bindings: Api<DynamicObject> =
        Api::all_with(client.clone(), &gvk("ValidatingAdmissionPolicyBinding"));
    let policy: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "bench"},
        "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]},
          "validations": [
            {"expression": "object.metadata.name.size() < 64"},
            {"expression": "!has(object.data) || object.data.size() <= 16"},
            {"expression": "!has(object.data) || object.data.all(k, k.matches('^[a-z]+$'))"},
            {"expression": "request.userInfo.username != 'nobody'"},
            {"expression": "!has(object.metadata.labels) || !('forbidden' in object.metadata.labels)",
             "messageExpression": "'label forbidden on ' + object.metadata.name"}]}}))
    .expect("policy");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    let binding: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "bench"},
        "spec": {"policyName": "bench", "validationActions": ["Deny"]}}))
    .expect("binding");
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    let with = run(api, dry).await;
    let mut section = String::new();
    section.push_str("## Admission policies (dry-run creates, kube-rs over TLS on loopback)\n\n");
    section.push_str(&format!(
        "Measured {} on {} cores; `cargo run --release -p nestkube-apiserver --example api-bench -- admission`.\n\n",
        chrono_like_now(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    ));
    section.push_str(
        "| ConfigMap create (dryRun) | samples | p50 (ms) | p99 (ms) |\n|---|---|---|---|\n",
    );
    for (what, (p50, p99)) in [
        ("no admission policy", without),
        ("ValidatingAdmissionPolicy, 5 validations", with),
    ] {
        section.push_str(&format!("| {what} | {n} | {} | {} |\n", ms(p50), ms(p99)));
    }
    section.push_str("\nNot yet compared with the e2e host's kube-apiserver.\n");
    print!("{section}");
    common::write_section("admission-policy-bench", &section);
}
