//! Admission benchmark: what a no-op validating webhook and a 5-rule
//! ValidatingAdmissionPolicy add to a write, on
//! nestkube and — in the same run, when `NESTKUBE_E2E_HOST_DIR` names a
//! running e2e host — on kube-apiserver with the same configuration. The
//! webhook is a real HTTPS server on 127.0.0.1 (`url`, its CA as
//! `caBundle`), reached by both servers the same way. Rewrites its section
//! of docs/benchmarks.md.
//!
//! Run: `cargo run --release -p nestkube-apiserver --example admission-bench`
//! (`-- <creates>`, default 400).

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::config::Kubeconfig;
use kube::core::{ApiResource, GroupVersionKind};
use nestkube_e2e::webhook::WebhookServer;

use common::timed;

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"},
    }))
    .expect("configmap")
}

/// ConfigMap creates in `ns`, p50/p99.
async fn creates(client: &Client, ns: &str, prefix: &str, n: usize) -> (Duration, Duration) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    timed(n, |i| {
        let api = api.clone();
        let name = format!("{prefix}-{i}");
        async move {
            api.create(&PostParams::default(), &cm(&name))
                .await
                .expect("create");
        }
    })
    .await
}

fn webhook_configurations(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
    );
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// Installs a no-op validating webhook for ConfigMaps of namespace `ns`.
async fn install_noop(client: &Client, name: &str, ns: &str, server: &WebhookServer) {
    let config: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "noop.bench.example.com",
            "clientConfig": {"url": server.url("/allow"), "caBundle": server.ca_bundle()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    }))
    .expect("configuration");
    webhook_configurations(client)
        .create(&PostParams::default(), &config)
        .await
        .expect("install webhook");
}

fn policy_objects(client: &Client, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// Installs a ValidatingAdmissionPolicy of five CEL rules that every
/// ConfigMap of the bench passes, bound (Deny) to namespace `ns`.
async fn install_policy(client: &Client, name: &str, ns: &str) {
    let policy: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]},
            "validations": [
                {"expression": "object.metadata.name.size() <= 63"},
                {"expression": "!has(object.data) || object.data.size() <= 16"},
                {"expression": "!has(object.data) || object.data.all(k, k.size() < 32)"},
                {"expression": "!has(object.metadata.labels) || !('forbidden' in object.metadata.labels)", "message": "no forbidden label"},
                {"expression": "object.metadata.namespace.startsWith('admission-bench-')", "messageExpression": "'namespace ' + object.metadata.namespace"},
            ],
        },
    }))
    .expect("policy");
    policy_objects(client, "ValidatingAdmissionPolicy")
        .create(&PostParams::default(), &policy)
        .await
        .expect("install policy");
    let binding: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
        },
    }))
    .expect("binding");
    policy_objects(client, "ValidatingAdmissionPolicyBinding")
        .create(&PostParams::default(), &binding)
        .await
        .expect("install binding");
}

/// (none, a no-op webhook, a 5-rule policy) on the server of `client`, in a
/// new namespace.
async fn measure(
    client: &Client,
    label: &str,
    server: &WebhookServer,
    n: usize,
) -> [(Duration, Duration); 3] {
    let ns = format!("admission-bench-{label}-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    // Warm up connections and caches.
    creates(client, &ns, "warm", 20).await;
    let without = creates(client, &ns, "plain", n).await;
    let config = format!("admission-bench-{label}-{}", std::process::id());
    install_noop(client, &config, &ns, server).await;
    // kube-apiserver picks configurations up from an informer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.calls("/allow");
    let with = creates(client, &ns, "hooked", n).await;
    assert!(
        server.calls("/allow") >= before + n,
        "the webhook was called"
    );
    let _ = webhook_configurations(client)
        .delete(&config, &DeleteParams::default())
        .await;
    install_policy(client, &config, &ns).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_policy = creates(client, &ns, "policed", n).await;
    for kind in [
        "ValidatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
    ] {
        let _ = policy_objects(client, kind)
            .delete(&config, &DeleteParams::default())
            .await;
    }
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    [without, with, with_policy]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(400);
    let webhook = WebhookServer::start("127.0.0.1:0".parse().unwrap(), &["localhost"])
        .await
        .expect("webhook server");
    let (_server, client, _dir) = common::server().await;
    let mut rows = vec![(
        "nestkube (redb)",
        measure(&client, "nestkube", &webhook, n).await,
    )];
    if let Ok(dir) = std::env::var("NESTKUBE_E2E_HOST_DIR") {
        let path = std::path::Path::new(&dir).join("admin.kubeconfig");
        match Kubeconfig::read_from(&path) {
            Ok(k) => {
                let host = common::client_for(k).await;
                rows.push((
                    "kube-apiserver 1.37 + etcd (e2e host)",
                    measure(&host, "host", &webhook, n).await,
                ));
            }
            Err(e) => eprintln!("no e2e host kubeconfig at {}: {e}", path.display()),
        }
    }
    let mut body = format!(
        "## Admission webhooks (kube-rs over TLS on loopback)\n\n\
         `cargo run --release -p nestkube-apiserver --example admission-bench` \
         (with `NESTKUBE_E2E_HOST_DIR` set for the kube-apiserver row). {n} sequential \
         ConfigMap creates: without admission configuration, with one no-op validating \
         webhook (a `url` webhook on 127.0.0.1, HTTPS with its own CA), and with a \
         ValidatingAdmissionPolicy of 5 CEL rules (Deny binding), same machine, same run.\n\n\
         | server | create p50 / p99, none (ms) | no-op webhook p50 / p99 (ms) | added at p50 (ms) | 5-rule policy p50 / p99 (ms) | added at p50 (ms) |\n|---|---|---|---|---|---|\n"
    );
    for (name, [(p50, p99), (wp50, wp99), (vp50, vp99)]) in &rows {
        body.push_str(&format!(
            "| {name} | {} / {} | {} / {} | {} | {} / {} | {} |\n",
            ms(*p50),
            ms(*p99),
            ms(*wp50),
            ms(*wp99),
            ms(wp50.saturating_sub(*p50)),
            ms(*vp50),
            ms(*vp99),
            ms(vp50.saturating_sub(*p50))
        ));
    }
    body.push('\n');
    print!("{body}");
    common::write_section("admission-bench", &body);
}
