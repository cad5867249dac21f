//! ValidatingAdmissionPolicy parity with the real kube-apiserver (the e2e
//! host, v1.37.2): the same policies and bindings on both, then the same
//! table of requests (all `dryRun=All`, so the table can be replayed) must
//! be allowed or refused alike, with the same codes, reasons, messages and
//! `Warning` headers.
//!
//! The host is shared with other tests: every binding selects only the
//! namespace labelled `parity-vap: "yes"` that this test creates.

use std::time::Duration;

use kube::Client;
use nestkube_e2e::HostCluster;
use serde_json::{Value, json};

use crate::support::{Server, api_client as client};

/// (code, reason, message, warnings) of `method path` with `body`.
async fn call(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String, String, Vec<String>) {
    let a = crate::support::call(client, method, path, body).await;
    (a.code, a.reason, a.message, a.warnings)
}

const NS: &str = "parity-vap";
const OTHER_NS: &str = "parity-vap-other";
const AR: &str = "/apis/admissionregistration.k8s.io/v1";

fn rules(group: &str, resource: &str) -> Value {
    json!({"resourceRules": [{"apiGroups": [group], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"], "resources": [resource]}]})
}

/// (name, policy spec, binding spec without policyName).
fn policies() -> Vec<(&'static str, Value, Value)> {
    let only_ns = json!({"namespaceSelector": {"matchLabels": {"parity-vap": "yes"}}});
    let with = |extra: Value| {
        let mut m = only_ns.clone();
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    vec![
        (
            "parity-vap-replicas",
            json!({"matchConstraints": rules("apps", "deployments"),
            "variables": [{"name": "replicas", "expression": "object.spec.replicas"}],
            "validations": [
                {"expression": "variables.replicas <= 5", "message": "too many replicas"},
                {"expression": "object.metadata.name.startsWith('ok-') || variables.replicas < 3",
                 "messageExpression": "'name ' + object.metadata.name + ' needs the prefix ok-'", "reason": "Forbidden"},
            ]}),
            json!({"validationActions": ["Deny"], "matchResources": only_ns.clone()}),
        ),
        (
            "parity-vap-warn",
            json!({"matchConstraints": rules("", "configmaps"),
                "validations": [{"expression": "has(object.data) && size(object.data) > 0", "message": "empty configmap"}]}),
            json!({"validationActions": ["Warn"], "matchResources": with(json!({"objectSelector": {"matchLabels": {"warn": "yes"}}}))}),
        ),
        (
            "parity-vap-params",
            json!({"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": rules("", "secrets"),
                "validations": [{"expression": "!has(object.data) || size(object.data) <= int(params.data.max)",
                    "messageExpression": "'at most ' + params.data.max + ' keys'"}]}),
            json!({"validationActions": ["Deny"], "matchResources": only_ns.clone(),
                "paramRef": {"name": "parity-limits", "parameterNotFoundAction": "Deny"}}),
        ),
        (
            "parity-vap-error",
            json!({"failurePolicy": "Fail", "matchConstraints": rules("", "configmaps"),
                "validations": [{"expression": "object.data.missing == 'x'"}]}),
            json!({"validationActions": ["Deny"], "matchResources": with(json!({"objectSelector": {"matchLabels": {"fp": "fail"}}}))}),
        ),
    ]
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

fn configmap(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": data})
}

fn secret(name: &str, keys: usize) -> Value {
    let data: serde_json::Map<String, Value> = (0..keys)
        .map(|i| (format!("k{i}"), json!("dg==")))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data})
}

/// The table: (label, path, body).
fn requests() -> Vec<(&'static str, String, Value)> {
    let deployments = format!("/apis/apps/v1/namespaces/{NS}/deployments?dryRun=All");
    let configmaps = format!("/api/v1/namespaces/{NS}/configmaps?dryRun=All");
    let secrets = format!("/api/v1/namespaces/{NS}/secrets?dryRun=All");
    vec![
        (
            "too many replicas",
            deployments.clone(),
            deployment("big", 10),
        ),
        ("prefixed", deployments.clone(), deployment("ok-a", 4)),
        (
            "reason Forbidden, messageExpression",
            deployments.clone(),
            deployment("bad", 4),
        ),
        ("small", deployments.clone(), deployment("x", 2)),
        (
            "other namespace",
            format!("/apis/apps/v1/namespaces/{OTHER_NS}/deployments?dryRun=All"),
            deployment("big", 10),
        ),
        (
            "warned",
            configmaps.clone(),
            configmap("empty", json!({"warn": "yes"}), json!({})),
        ),
        (
            "not warned",
            configmaps.clone(),
            configmap("full", json!({"warn": "yes"}), json!({"a": "b"})),
        ),
        ("within params", secrets.clone(), secret("two", 2)),
        ("beyond params", secrets.clone(), secret("three", 3)),
        (
            "evaluation error",
            configmaps.clone(),
            configmap("fails", json!({"fp": "fail"}), json!({"a": "b"})),
        ),
    ]
}

async fn set_up(client: &Client) {
    for (ns, labels) in [(NS, json!({"parity-vap": "yes"})), (OTHER_NS, json!({}))] {
        let (code, ..) = call(
            client,
            "POST",
            "/api/v1/namespaces",
            Some(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": labels}})),
        )
        .await;
        assert!(code == 201 || code == 409, "namespace {ns}: {code}");
    }
    let limits = configmap("parity-limits", json!({}), json!({"max": "2"}));
    let (code, ..) = call(
        client,
        "POST",
        &format!("/api/v1/namespaces/{NS}/configmaps"),
        Some(&limits),
    )
    .await;
    assert!(code == 201 || code == 409, "params: {code}");
    for (name, spec, binding) in policies() {
        let _ = call(
            client,
            "DELETE",
            &format!("{AR}/validatingadmissionpolicybindings/{name}"),
            None,
        )
        .await;
        let _ = call(
            client,
            "DELETE",
            &format!("{AR}/validatingadmissionpolicies/{name}"),
            None,
        )
        .await;
        let (code, _, message, _) = call(
            client,
            "POST",
            &format!("{AR}/validatingadmissionpolicies"),
            Some(&json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name}, "spec": spec})),
        )
        .await;
        assert_eq!(code, 201, "{name}: {message}");
        let mut b = binding;
        b["policyName"] = name.into();
        let (code, _, message, _) = call(client, "POST", &format!("{AR}/validatingadmissionpolicybindings"), Some(&json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name}, "spec": b}))).await;
        assert_eq!(code, 201, "{name} binding: {message}");
    }
}

async fn tear_down(client: &Client) {
    for (name, ..) in policies() {
        let _ = call(
            client,
            "DELETE",
            &format!("{AR}/validatingadmissionpolicybindings/{name}"),
            None,
        )
        .await;
        let _ = call(
            client,
            "DELETE",
            &format!("{AR}/validatingadmissionpolicies/{name}"),
            None,
        )
        .await;
    }
    for ns in [NS, OTHER_NS] {
        let _ = call(client, "DELETE", &format!("/api/v1/namespaces/{ns}"), None).await;
    }
}

/// Replays the table until it gives the same answers twice in a row and
/// every policy is in force (the host's policies take effect once its
/// informers see them), or a minute passes.
async fn answers(client: &Client) -> Vec<(u16, String, String, Vec<String>)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    loop {
        let mut now = Vec::new();
        for (_, path, body) in requests() {
            now.push(call(client, "POST", &path, Some(&body)).await);
        }
        let in_force = now.iter().filter(|a| a.0 >= 400).count() == 4 && !now[5].3.is_empty();
        if (in_force && now == last) || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn admission_policies_match_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let upstream = client(&host.kubeconfig()).await;
        let nestkube = client(&server.kubeconfig).await;
        set_up(&upstream).await;
        set_up(&nestkube).await;
        let expected = answers(&upstream).await;
        let got = answers(&nestkube).await;
        tear_down(&upstream).await;
        let mut diffs = Vec::new();
        for (((label, ..), e), g) in requests().iter().zip(&expected).zip(&got) {
            if e != g {
                diffs.push(format!(
                    "{label}:\n  kube-apiserver: {e:?}\n  nestkube:       {g:?}"
                ));
            }
        }
        assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
        // The table means something: four refusals and one warning.
        assert_eq!(
            expected.iter().filter(|a| a.0 >= 400).count(),
            4,
            "{expected:?}"
        );
        assert_eq!(expected[0].0, 422);
        assert_eq!(expected[2].0, 403);
        assert_eq!(expected[5].3.len(), 1);
    });
}
