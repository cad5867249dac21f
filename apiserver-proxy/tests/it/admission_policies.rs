//! ValidatingAdmissionPolicies against a real server: deny and warn, params
//! from a ConfigMap and from a custom resource, a binding's
//! namespaceSelector, failurePolicy, and clusters (siblings and a nested
//! one) never judged by each other's policies.

use std::time::Duration;

use http_body_util::BodyExt;
use kube::Client;
use serde_json::{Value, json};

use crate::common::{Fixture, admin, send, wait_for};

const WAIT: Duration = Duration::from_secs(10);
const AR: &str = "/apis/admissionregistration.k8s.io/v1";

/// POSTs `body` to `path`; returns status, JSON body and `Warning` texts.
async fn post(client: &Client, path: &str, body: Value) -> (u16, Value, Vec<String>) {
    let req = http::Request::post(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let resp = client.send(req).await.expect("send");
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let text = v.strip_prefix("299 - \"").and_then(|t| t.strip_suffix('"'));
            text.unwrap_or(v)
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        })
        .collect();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, warnings)
}

async fn create(client: &Client, path: &str, body: Value) {
    let (code, answer, _) = post(client, path, body).await;
    assert_eq!(code, 201, "{path}: {answer}");
}

/// A policy and its binding.
async fn policy(client: &Client, name: &str, spec: Value, binding_spec: Value) {
    create(
        client,
        &format!("{AR}/validatingadmissionpolicies"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name}, "spec": spec}),
    )
    .await;
    let mut b = binding_spec;
    b["policyName"] = name.into();
    create(
        client,
        &format!("{AR}/validatingadmissionpolicybindings"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": format!("{name}-binding")}, "spec": b}),
    )
    .await;
}

fn rules(group: &str, resource: &str) -> Value {
    json!({"resourceRules": [{"apiGroups": [group], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"], "resources": [resource]}]})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

fn cm(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_deny_warn_and_stay_in_their_cluster() {
    let f = Fixture::start().await;
    for path in ["vap-a", "vap-b", "vap-a:inner"] {
        f.create_cluster(path).await;
    }
    let a = admin(&f, "vap-a").await;
    let b = admin(&f, "vap-b").await;
    let inner = admin(&f, "vap-a:inner").await;
    for c in [&a, &b, &inner] {
        create(
            c,
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "strict", "labels": {"enforce": "yes"}}}),
        )
        .await;
    }

    // Deny, scoped by the binding's namespaceSelector.
    policy(
        &a,
        "max-replicas",
        json!({"matchConstraints": rules("apps", "deployments"),
            "validations": [{"expression": "object.spec.replicas <= 5", "message": "too many replicas"}]}),
        json!({"validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"enforce": "yes"}}}}),
    )
    .await;
    let strict_deployments = "/apis/apps/v1/namespaces/strict/deployments";
    let (code, body, _) = post(&a, strict_deployments, deployment("d", 10)).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["message"],
        "deployments.apps \"d\" is forbidden: ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: too many replicas"
    );
    create(&a, strict_deployments, deployment("small", 2)).await;
    // Outside the selected namespaces, and in every other cluster, nothing applies.
    create(
        &a,
        "/apis/apps/v1/namespaces/default/deployments",
        deployment("d", 10),
    )
    .await;
    create(&b, strict_deployments, deployment("d", 10)).await;
    create(&inner, strict_deployments, deployment("d", 10)).await;

    // Warn, with a reason and a messageExpression.
    policy(
        &a,
        "team-label",
        json!({"matchConstraints": rules("", "configmaps"),
            "validations": [{"expression": "has(object.metadata.labels) && 'team' in object.metadata.labels",
                "messageExpression": "'configmap ' + object.metadata.name + ' has no team'", "reason": "Forbidden"}]}),
        json!({"validationActions": ["Warn"]}),
    )
    .await;
    let (code, _, warnings) = post(
        &a,
        "/api/v1/namespaces/default/configmaps",
        cm("w", json!({}), json!({})),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        vec![
            "Validation failed for ValidatingAdmissionPolicy 'team-label' with binding 'team-label-binding': configmap w has no team"
        ]
    );
    let (_, _, warnings) = post(
        &b,
        "/api/v1/namespaces/default/configmaps",
        cm("w", json!({}), json!({})),
    )
    .await;
    assert!(warnings.is_empty(), "{warnings:?}");

    // Params from a ConfigMap, Deny when missing; reason Forbidden is 403.
    policy(
        &a,
        "secret-keys",
        json!({"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConstraints": rules("", "secrets"),
            "validations": [{"expression": "!has(object.data) || size(object.data) <= int(params.data.maxKeys)",
                "messageExpression": "'at most ' + params.data.maxKeys + ' keys'", "reason": "Forbidden"}]}),
        json!({"validationActions": ["Deny"],
            "paramRef": {"name": "limits", "namespace": "default", "parameterNotFoundAction": "Deny"}}),
    )
    .await;
    let secret = |keys: usize| {
        let data: serde_json::Map<String, Value> = (0..keys)
            .map(|i| (format!("k{i}"), json!("dg==")))
            .collect();
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{keys}")}, "data": data})
    };
    let secrets = "/api/v1/namespaces/default/secrets";
    let (code, body, _) = post(&a, secrets, secret(1)).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "secrets \"s1\" is forbidden: ValidatingAdmissionPolicy 'secret-keys' with binding 'secret-keys-binding' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
    );
    create(
        &a,
        "/api/v1/namespaces/default/configmaps",
        cm("limits", json!({"team": "x"}), json!({"maxKeys": "2"})),
    )
    .await;
    create(&a, secrets, secret(2)).await;
    let (code, body, _) = post(&a, secrets, secret(3)).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (403, Some("Forbidden")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("denied request: at most 2 keys"),
        "{body}"
    );

    // failurePolicy: an expression that fails denies under Fail, not under Ignore.
    for (name, fp) in [("fails", "Fail"), ("ignores", "Ignore")] {
        policy(
            &a,
            name,
            json!({"failurePolicy": fp, "matchConstraints": rules("", "configmaps"),
                "validations": [{"expression": "object.data.missing == 'x'"}]}),
            json!({"validationActions": ["Deny"],
                "matchResources": {"objectSelector": {"matchLabels": {"fp": name}}}}),
        )
        .await;
    }
    let labels = |fp: &str| json!({"team": "x", "fp": fp});
    let (code, body, _) = post(
        &a,
        "/api/v1/namespaces/default/configmaps",
        cm("f", labels("fails"), json!({"k": "v"})),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "configmaps \"f\" is forbidden: ValidatingAdmissionPolicy 'fails' with binding 'fails-binding' denied request: expression 'object.data.missing == 'x'' resulted in error: no such key: missing"
    );
    create(
        &a,
        "/api/v1/namespaces/default/configmaps",
        cm("i", labels("ignores"), json!({"k": "v"})),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_may_be_custom_resources_of_the_cluster() {
    let f = Fixture::start().await;
    f.create_cluster("vap-cr").await;
    let c = admin(&f, "vap-cr").await;
    create(&c, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "limits.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "limits", "singular": "limit", "kind": "Limit", "listKind": "LimitList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"max": {"type": "integer"}}}}}}}]}})).await;
    wait_for("the Limit resource", WAIT, || async {
        let (code, _) = send(&c, "GET", "/apis/example.com/v1/limits", None, &[]).await;
        (code == 200).then_some(())
    })
    .await;
    create(
        &c,
        "/apis/example.com/v1/limits",
        json!({"apiVersion": "example.com/v1", "kind": "Limit",
        "metadata": {"name": "global", "labels": {"use": "yes"}}, "spec": {"max": 1}}),
    )
    .await;
    policy(
        &c,
        "cm-size",
        json!({"paramKind": {"apiVersion": "example.com/v1", "kind": "Limit"},
            "matchConstraints": rules("", "configmaps"),
            "variables": [{"name": "size", "expression": "has(object.data) ? size(object.data) : 0"}],
            "validations": [{"expression": "variables.size <= params.spec.max",
                "messageExpression": "'limit ' + params.metadata.name + ' allows ' + string(params.spec.max)"}]}),
        json!({"validationActions": ["Deny"], "paramRef": {"selector": {"matchLabels": {"use": "yes"}}, "parameterNotFoundAction": "Deny"}}),
    )
    .await;
    let cms = "/api/v1/namespaces/default/configmaps";
    create(&c, cms, cm("one", json!({}), json!({"a": "1"}))).await;
    let (code, body, _) = post(&c, cms, cm("two", json!({}), json!({"a": "1", "b": "2"}))).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "configmaps \"two\" is forbidden: ValidatingAdmissionPolicy 'cm-size' with binding 'cm-size-binding' denied request: limit global allows 1"
    );
    // A paramKind the cluster does not serve is a configuration error (failurePolicy Fail).
    policy(
        &c,
        "unknown-kind",
        json!({"paramKind": {"apiVersion": "example.com/v1", "kind": "Nope"},
            "matchConstraints": rules("", "secrets"),
            "validations": [{"expression": "true"}]}),
        json!({"validationActions": ["Deny"], "paramRef": {"name": "x", "parameterNotFoundAction": "Deny"}}),
    )
    .await;
    let (code, body, _) = post(
        &c,
        "/api/v1/namespaces/default/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "secrets \"s\" is forbidden: ValidatingAdmissionPolicy 'unknown-kind' denied request: failed to configure policy: failed to find resource referenced by paramKind: 'example.com/v1, Kind=Nope'"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_policies_patch_in_their_cluster_only() {
    let f = Fixture::start().await;
    for path in ["map-a", "map-b"] {
        f.create_cluster(path).await;
    }
    let a = admin(&f, "map-a").await;
    let b = admin(&f, "map-b").await;
    let create_policy = |name: &'static str, spec: Value| {
        let a = a.clone();
        async move {
            create(
                &a,
                &format!("{AR}/mutatingadmissionpolicies"),
                json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
                "metadata": {"name": name}, "spec": spec}),
            )
            .await;
            create(&a, &format!("{AR}/mutatingadmissionpolicybindings"), json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
                "metadata": {"name": format!("{name}-binding")}, "spec": {"policyName": name}})).await;
        }
    };
    create_policy("label-and-annotate", json!({
        "matchConstraints": rules("", "configmaps"),
        "matchConditions": [{"name": "not-skipped", "expression": "!('skip' in object.metadata.labels)"}],
        "reinvocationPolicy": "Never",
        "mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'add', path: '/metadata/labels/' + jsonpatch.escapeKey('example.com/owner'), value: request.userInfo.username}]"}},
            {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                "Object{metadata: Object.metadata{annotations: {'mutated': 'yes'}}}"}},
        ]})).await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, body, _) = post(&a, cms, cm("m", json!({"x": "y"}), json!({}))).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["metadata"]["labels"],
        json!({"x": "y", "example.com/owner": "test-admin"})
    );
    assert_eq!(body["metadata"]["annotations"], json!({"mutated": "yes"}));
    let (code, body, _) = post(&a, cms, cm("skipped", json!({"skip": "1"}), json!({}))).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["metadata"]["labels"], json!({"skip": "1"}));
    let (code, body, _) = post(&b, cms, cm("m", json!({"x": "y"}), json!({}))).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["metadata"]["labels"], json!({"x": "y"}));

    // A mutation that fails refuses under failurePolicy Fail.
    create_policy(
        "broken",
        json!({
        "matchConstraints": rules("", "secrets"),
        "reinvocationPolicy": "Never",
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
            "[JSONPatch{op: 'test', path: '/data/k', value: 'nope'}]"}}]}),
    )
    .await;
    let (code, body, _) = post(&a, "/api/v1/namespaces/default/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}})).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (403, Some("Invalid")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().starts_with(
            "policy 'broken' with binding 'broken-binding' denied request: JSON Patch: "
        ),
        "{body}"
    );
}

#[tokio::test]
async fn configurations_that_cannot_work_are_refused_as_upstream() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let a = admin(&f, "team-a").await;
    let vap = |name: &str, spec: Value| {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name}, "spec": spec})
    };
    // An expression that does not compile.
    let (code, out, _) = post(
        &a,
        &format!("{AR}/validatingadmissionpolicies"),
        vap(
            "broken",
            json!({"matchConstraints": rules("", "configmaps"),
                "validations": [{"expression": "object.metadata.name =="}]}),
        ),
    )
    .await;
    assert_eq!(code, 422, "{out}");
    let message = out["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "ValidatingAdmissionPolicy.admissionregistration.k8s.io \"broken\" is invalid: spec.validations[0].expression: Invalid value: \"object.metadata.name ==\": compilation failed: "
        ),
        "{message}"
    );
    // Nothing to validate with, and no rules to type it.
    let (code, out, _) = post(
        &a,
        &format!("{AR}/validatingadmissionpolicies"),
        vap("empty", json!({"matchConstraints": {}})),
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert_eq!(
        out["message"],
        "ValidatingAdmissionPolicy.admissionregistration.k8s.io \"empty\" is invalid: [spec.matchConstraints.resourceRules: Required value, \
         spec.validations: Required value: validations or auditAnnotations must contain at least one item, \
         spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item]"
    );
    // A binding that both denies and warns.
    let (code, out, _) = post(
        &a,
        &format!("{AR}/validatingadmissionpolicybindings"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "both"}, "spec": {"policyName": "x", "validationActions": ["Deny", "Warn"]}}),
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("spec.validationActions: Invalid value: [\"Deny\",\"Warn\"]: must not contain both Deny and Warn"),
        "{out}"
    );
    // A webhook's matchConditions naming what its environment lacks.
    let (code, out, _) = post(
        &a,
        &format!("{AR}/validatingwebhookconfigurations"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "hook"}, "webhooks": [{"name": "a.example.com", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://hooks.example.com/x"},
                "matchConditions": [{"name": "p", "expression": "params.x == 1"}]}]}),
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains(
            "webhooks[0].matchConditions[0].expression: Invalid value: \"params.x == 1\": compilation failed: "
        ),
        "{out}"
    );
    // None of them was stored.
    for resource in [
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
        "validatingwebhookconfigurations",
    ] {
        let (code, out) = send(&a, "GET", &format!("{AR}/{resource}"), None, &[]).await;
        assert_eq!(code, 200);
        assert_eq!(out["items"], json!([]), "{resource}");
    }
}
