//! Admission webhook parity with the real kube-apiserver (the e2e host,
//! v1.37.2): the same webhook configurations, calling the same HTTPS
//! webhook server on 127.0.0.1, on both; then the same table of requests
//! (all `dryRun=All`, so it can be replayed) must be allowed or refused
//! alike, with the same codes, reasons, messages, `Warning` headers and
//! mutations.
//!
//! The host is shared with other tests: every webhook selects only the
//! namespace labelled `parity-wh: "yes"` that this test creates.

use std::time::Duration;

use kube::Client;
use nestkube_e2e::HostCluster;
use nestkube_e2e::webhook::WebhookServer;
use serde_json::{Value, json};

use crate::support::{Answer, Server, api_client, call};

/// The test's namespace (one per run: a namespace of an earlier run may
/// still be terminating on the shared host).
fn ns() -> String {
    format!("parity-wh-{}", std::process::id())
}
const AR: &str = "/apis/admissionregistration.k8s.io/v1";

/// One webhook of the configurations: (name, path, extra fields). A
/// webhook matches ConfigMaps of [`ns`] labelled `case=<its case>`.
fn webhooks(server: &WebhookServer) -> (Vec<Value>, Vec<Value>) {
    let hook = |name: &str, case: &str, path: &str, extra: Value| {
        let mut w = json!({
            "name": format!("{name}.parity.example.com"),
            "clientConfig": {"url": server.url(path), "caBundle": server.ca_bundle()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"parity-wh": "yes"}},
            "objectSelector": {"matchLabels": {"case": case}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2,
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            w[k] = v.clone();
        }
        w
    };
    let down = json!({"url": "https://127.0.0.1:1/x", "caBundle": server.ca_bundle()});
    let validating = vec![
        hook("deny", "deny", "/deny", json!({})),
        hook("warn", "warn", "/warn", json!({})),
        hook("down", "down", "/x", json!({"clientConfig": down})),
        hook(
            "ignored",
            "ignored",
            "/x",
            json!({"clientConfig": down, "failurePolicy": "Ignore"}),
        ),
        hook("slow", "slow", "/slow", json!({"timeoutSeconds": 1})),
        hook("baduid", "bad-uid", "/bad-uid", json!({})),
        hook(
            "sideeffects",
            "dry",
            "/allow",
            json!({"sideEffects": "NoneOnDryRun"}),
        ),
        hook(
            "conditions",
            "conditions",
            "/deny",
            json!({"matchConditions": [{"name": "mc-only",
                "expression": "object.metadata.name.startsWith('mc-')"}]}),
        ),
    ];
    let mutating = vec![hook("label", "label", "/label", json!({}))];
    (validating, mutating)
}

fn configmap(name: &str, case: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"case": case}}, "data": {"a": "b"}})
}

/// The table: (label, body), each a dry-run create in [`ns`].
fn requests() -> Vec<(&'static str, Value)> {
    vec![
        ("refused", configmap("a", "deny")),
        ("warned", configmap("a", "warn")),
        ("unreachable, Fail", configmap("a", "down")),
        ("unreachable, Ignore", configmap("a", "ignored")),
        ("timed out", configmap("a", "slow")),
        ("answer for another request", configmap("a", "bad-uid")),
        ("no side effects on a dry run", configmap("a", "dry")),
        ("matchConditions true", configmap("mc-a", "conditions")),
        ("matchConditions false", configmap("a", "conditions")),
        ("mutated", configmap("a", "label")),
        ("no webhook", configmap("a", "none")),
    ]
}

async fn set_up(client: &Client, server: &WebhookServer) {
    let (code, ..) = status(
        call(
            client,
            "POST",
            "/api/v1/namespaces",
            Some(&json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns(), "labels": {"parity-wh": "yes"}}})),
        )
        .await,
    );
    assert!(code == 201 || code == 409, "namespace: {code}");
    tear_down_configurations(client).await;
    let (validating, mutating) = webhooks(server);
    for (kind, resource, hooks) in [
        (
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            validating,
        ),
        (
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            mutating,
        ),
    ] {
        let answer = call(
            client,
            "POST",
            &format!("{AR}/{resource}"),
            Some(
                &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                "metadata": {"name": "parity-wh"}, "webhooks": hooks}),
            ),
        )
        .await;
        assert_eq!(answer.code, 201, "{kind}: {}", answer.message);
    }
}

async fn tear_down_configurations(client: &Client) {
    for resource in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ] {
        let _ = call(
            client,
            "DELETE",
            &format!("{AR}/{resource}/parity-wh"),
            None,
        )
        .await;
    }
}

/// What is compared: code, reason, message (a request's uid, which differs
/// between the servers, elided), warnings, and the labels of the object
/// a successful create returned.
type Compared = (u16, String, String, Vec<String>, Value);

fn status(a: Answer) -> Compared {
    let message = match a.message.split_once("expected response.uid=\"") {
        Some((before, after)) => {
            let rest = after.split_once('"').map_or("", |(_, r)| r);
            format!("{before}expected response.uid=\"<uid>\"{rest}")
        }
        None => a.message,
    };
    let labels = if a.code < 300 {
        a.body["metadata"]["labels"].clone()
    } else {
        Value::Null
    };
    (a.code, a.reason, message, a.warnings, labels)
}

/// Replays the table until it gives the same answers twice in a row with
/// every webhook in force (the host picks configurations up from its
/// informers), or a minute passes.
async fn answers(client: &Client) -> Vec<Compared> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let path = format!("/api/v1/namespaces/{}/configmaps?dryRun=All", ns());
    let mut last = Vec::new();
    loop {
        let mut now = Vec::new();
        for (_, body) in requests() {
            now.push(status(call(client, "POST", &path, Some(&body)).await));
        }
        let in_force = now[0].0 == 403 && now[9].4["webhook"] == "added";
        if (in_force && now == last) || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn admission_webhooks_match_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let webhook = WebhookServer::start("127.0.0.1:0".parse().unwrap(), &["localhost"])
            .await
            .expect("webhook server");
        let upstream = api_client(&host.kubeconfig()).await;
        let nestkube = api_client(&server.kubeconfig).await;
        set_up(&upstream, &webhook).await;
        set_up(&nestkube, &webhook).await;
        let expected = answers(&upstream).await;
        let got = answers(&nestkube).await;
        tear_down_configurations(&upstream).await;
        let _ = call(
            &upstream,
            "DELETE",
            &format!("/api/v1/namespaces/{}", ns()),
            None,
        )
        .await;
        let mut diffs = Vec::new();
        for (((label, _), e), g) in requests().iter().zip(&expected).zip(&got) {
            if e != g {
                diffs.push(format!(
                    "{label}:\n  kube-apiserver: {e:?}\n  nestkube:       {g:?}"
                ));
            }
        }
        assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
        // The table means something: five refusals, a warning, a mutation.
        assert_eq!(
            expected.iter().filter(|a| a.0 >= 400).count(),
            5,
            "{expected:?}"
        );
        assert_eq!(expected[1].3.len(), 1, "{expected:?}");
        assert_eq!(expected[9].4["webhook"], "added", "{expected:?}");
    });
}
