//! Admission webhooks over the network: a real HTTPS webhook server on
//! 127.0.0.1 (its certificate from a CA given as `caBundle`) called by a
//! running server for validating and mutating webhooks, with upstream's
//! answers for refusals, failures, timeouts, warnings and dry runs; the
//! `url` rules for tenants (refused at create unless their VirtualCluster
//! allows the address); and tenancy: one cluster's webhooks are never
//! called for another's requests.

use std::time::{Duration, Instant};

use nestkube_e2e::webhook::{DENY_MESSAGE, WebhookServer};
use serde_json::{Value, json};

use crate::admission::virtual_cluster;
use crate::common::{Fixture, admin, send, send_bytes};

async fn webhook_server() -> WebhookServer {
    WebhookServer::start("127.0.0.1:0".parse().unwrap(), &["localhost"])
        .await
        .expect("webhook server")
}

/// A configuration of `kind` with one webhook per `(name, url, extra)`,
/// matching pods and configmaps.
fn configuration(
    kind: &str,
    name: &str,
    server: &WebhookServer,
    hooks: &[(&str, &str, Value)],
) -> Value {
    let webhooks: Vec<Value> = hooks
        .iter()
        .map(|(hook, path, extra)| {
            let mut w = json!({
                "name": hook,
                "clientConfig": {"url": server.url(path), "caBundle": server.ca_bundle()},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "configmaps"]}],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            });
            for (k, v) in extra.as_object().into_iter().flatten() {
                w[k] = v.clone();
            }
            w
        })
        .collect();
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
           "metadata": {"name": name}, "webhooks": webhooks})
}

async fn install(client: &kube::Client, config: Value) {
    let resource = if config["kind"] == "MutatingWebhookConfiguration" {
        "mutatingwebhookconfigurations"
    } else {
        "validatingwebhookconfigurations"
    };
    let (code, out) = send(
        client,
        "POST",
        &format!("/apis/admissionregistration.k8s.io/v1/{resource}"),
        Some(config),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}})
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn validating_webhooks_refuse_warn_and_fail_as_upstream() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let a = admin(&f, "team-a").await;
    let server = webhook_server().await;
    let only = |label: &str| json!({"objectSelector": {"matchLabels": {"case": label}}});
    install(
        &a,
        configuration(
            "ValidatingWebhookConfiguration",
            "checks",
            &server,
            &[
                ("deny.example.com", "/deny", only("deny")),
                ("warn.example.com", "/warn", only("warn")),
                ("down.example.com", "/nowhere", json!({"objectSelector": {"matchLabels": {"case": "down"}},
                    "clientConfig": {"url": "https://127.0.0.1:1/x", "caBundle": server.ca_bundle()}})),
                ("ignored.example.com", "/nowhere", json!({"objectSelector": {"matchLabels": {"case": "ignored"}},
                    "failurePolicy": "Ignore",
                    "clientConfig": {"url": "https://127.0.0.1:1/x", "caBundle": server.ca_bundle()}})),
                ("slow.example.com", "/slow", json!({"objectSelector": {"matchLabels": {"case": "slow"}}, "timeoutSeconds": 1})),
                ("baduid.example.com", "/bad-uid", only("bad-uid")),
                ("conditions.example.com", "/deny", json!({"objectSelector": {"matchLabels": {"case": "conditions"}},
                    "matchConditions": [{"name": "mc-only", "expression": "object.metadata.name.startsWith('mc-')"}]})),
                ("sideeffects.example.com", "/allow", json!({"objectSelector": {"matchLabels": {"case": "dry"}}, "sideEffects": "NoneOnDryRun"})),
            ],
        ),
    )
    .await;
    let labelled = |name: &str, case: &str| {
        let mut cm = configmap(name);
        cm["metadata"]["labels"] = json!({"case": case});
        cm
    };

    // Refused: the webhook's own status, its message prefixed as upstream's.
    let (code, out) = send(&a, "POST", CONFIGMAPS, Some(labelled("bad", "deny")), &[]).await;
    assert_eq!(code, 403, "{out}");
    assert_eq!(out["reason"], "Forbidden");
    assert_eq!(
        out["message"],
        format!("admission webhook \"deny.example.com\" denied the request: {DENY_MESSAGE}")
    );
    // Unmatched requests never reach it.
    let (code, _) = send(&a, "POST", CONFIGMAPS, Some(configmap("plain")), &[]).await;
    assert_eq!(code, 201);
    assert_eq!(server.calls("/deny"), 1);

    // matchConditions decide too.
    let (code, out) = send(
        &a,
        "POST",
        CONFIGMAPS,
        Some(labelled("mc-x", "conditions")),
        &[],
    )
    .await;
    assert_eq!(code, 403, "{out}");
    let (code, out) = send(
        &a,
        "POST",
        CONFIGMAPS,
        Some(labelled("other", "conditions")),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    assert_eq!(server.calls("/deny"), 2);

    // Unreachable under Fail: 500 naming the webhook and the URL; under Ignore: allowed.
    let (code, out) = send(&a, "POST", CONFIGMAPS, Some(labelled("down", "down")), &[]).await;
    assert_eq!(code, 500, "{out}");
    let message = out["message"].as_str().unwrap();
    assert!(
        message.starts_with("Internal error occurred: failed calling webhook \"down.example.com\": failed to call webhook: Post \"https://127.0.0.1:1/x?timeout=2s\": "),
        "{message}"
    );
    let (code, out) = send(
        &a,
        "POST",
        CONFIGMAPS,
        Some(labelled("ignored", "ignored")),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");

    // A webhook slower than its timeout fails after timeoutSeconds.
    let started = Instant::now();
    let (code, out) = send(&a, "POST", CONFIGMAPS, Some(labelled("slow", "slow")), &[]).await;
    assert_eq!(code, 500, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .ends_with("context deadline exceeded"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // An answer for another request is a failed call.
    let (code, out) = send(
        &a,
        "POST",
        CONFIGMAPS,
        Some(labelled("uid", "bad-uid")),
        &[],
    )
    .await;
    assert_eq!(code, 500, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("expected response.uid="),
        "{out}"
    );

    // A webhook without side effects on dry runs is called for one.
    let (code, out) = send(
        &a,
        "POST",
        &format!("{CONFIGMAPS}?dryRun=All"),
        Some(labelled("dry", "dry")),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    assert_eq!(server.calls("/allow"), 1);
    // One with side effects cannot be configured in v1 (upstream's
    // validation); the admission chain still refuses dry runs for one
    // stored before (v1beta1).
    let mut with_side_effects = configuration(
        "ValidatingWebhookConfiguration",
        "side-effects",
        &server,
        &[("some.example.com", "/allow", json!({"sideEffects": "Some"}))],
    );
    with_side_effects["webhooks"][0]["timeoutSeconds"] = json!(31);
    let (code, out) = send(
        &a,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(with_side_effects),
        &[],
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert_eq!(
        out["message"],
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io \"side-effects\" is invalid: \
         [webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\", \
         webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds]"
    );

    // Warnings reach the client as Warning headers.
    let req = http::Request::post(CONFIGMAPS)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(
            serde_json::to_vec(&labelled("warned", "warn")).unwrap(),
        ))
        .unwrap();
    let resp = a.send(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    let warnings: Vec<_> = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("think twice")),
        "{warnings:?}"
    );

    // Deleting the configuration is never sent to a webhook: it always works.
    let (code, _) = send(
        &a,
        "DELETE",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/checks",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = send(&a, "POST", CONFIGMAPS, Some(labelled("bad2", "deny")), &[]).await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn mutating_webhooks_patch_and_selectors_apply() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let a = admin(&f, "team-a").await;
    let server = webhook_server().await;
    install(
        &a,
        configuration(
            "MutatingWebhookConfiguration",
            "labels",
            &server,
            &[(
                "label.example.com",
                "/label",
                json!({"namespaceSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}}),
            )],
        ),
    )
    .await;
    let (code, out) = send(&a, "POST", CONFIGMAPS, Some(configmap("patched")), &[]).await;
    assert_eq!(code, 201, "{out}");
    assert_eq!(out["metadata"]["labels"]["webhook"], "added", "{out}");
    // The patch is applied on updates too, and kept.
    let (code, out) = send(
        &a,
        "PATCH",
        &format!("{CONFIGMAPS}/patched"),
        Some(json!({"metadata": {"labels": {"webhook": null, "other": "x"}}})),
        &[("content-type", "application/merge-patch+json")],
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"webhook": "added", "other": "x"})
    );
    // A namespace the selector excludes is not sent.
    let (code, _) = send(
        &a,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "quiet", "labels": {"skip": "yes"}}})),
        &[],
    )
    .await;
    assert_eq!(code, 201);
    let calls = server.calls("/label");
    let (code, out) = send(
        &a,
        "POST",
        "/api/v1/namespaces/quiet/configmaps",
        Some(configmap("untouched")),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    assert!(out["metadata"]["labels"]["webhook"].is_null(), "{out}");
    assert_eq!(server.calls("/label"), calls);
}

#[tokio::test]
async fn a_clusters_webhooks_are_its_own_and_tenants_reach_only_allowed_addresses() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    f.create_cluster("team-b").await;
    let a = admin(&f, "team-a").await;
    let b = admin(&f, "team-b").await;
    let server = webhook_server().await;
    install(
        &a,
        configuration(
            "ValidatingWebhookConfiguration",
            "deny-all",
            &server,
            &[("deny.example.com", "/deny", json!({}))],
        ),
    )
    .await;
    let (code, _) = send(&a, "POST", CONFIGMAPS, Some(configmap("x")), &[]).await;
    assert_eq!(code, 403);
    // team-b's requests never reach team-a's webhook.
    let before = server.calls("/deny");
    let (code, _) = send(&b, "POST", CONFIGMAPS, Some(configmap("x")), &[]).await;
    assert_eq!(code, 201);
    assert_eq!(server.calls("/deny"), before);

    // A tenant (a VirtualCluster with the default policy) may not name
    // loopback, link-local or unlisted addresses.
    let tenant = virtual_cluster(&f, "root", "tenant", json!({})).await;
    for url in [
        server.url("/deny"),
        "https://169.254.169.254/latest".to_string(),
        "https://localhost:8443/x".to_string(),
        "https://203.0.113.9/x".to_string(),
    ] {
        let mut config = configuration(
            "ValidatingWebhookConfiguration",
            "escape",
            &server,
            &[("escape.example.com", "/x", json!({}))],
        );
        config["webhooks"][0]["clientConfig"]["url"] = json!(url);
        let (code, out) = send(
            &tenant,
            "POST",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            Some(config),
            &[],
        )
        .await;
        assert_eq!(code, 403, "{url}: {out}");
        assert!(
            out["message"]
                .as_str()
                .unwrap()
                .contains("webhooks[0].clientConfig.url"),
            "{out}"
        );
    }
    // An address its VirtualCluster allows is accepted (the call itself
    // then fails here: nothing listens there).
    let allowed = virtual_cluster(
        &f,
        "root",
        "allowed",
        json!({"network": {"allowedCIDRs": ["203.0.113.0/24"]}}),
    )
    .await;
    let mut config = configuration(
        "ValidatingWebhookConfiguration",
        "ok",
        &server,
        &[(
            "ok.example.com",
            "/x",
            json!({"failurePolicy": "Ignore", "timeoutSeconds": 1}),
        )],
    );
    config["webhooks"][0]["clientConfig"]["url"] = json!("https://203.0.113.9/x");
    let (code, out) = send(
        &allowed,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(config),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    // A Service webhook of a cluster with no parent to run it fails as a
    // Service without endpoints.
    let mut config = configuration(
        "ValidatingWebhookConfiguration",
        "svc",
        &server,
        &[("svc.example.com", "/x", json!({}))],
    );
    config["webhooks"][0]["clientConfig"] =
        json!({"service": {"namespace": "default", "name": "hook"}});
    install(&b, config).await;
    let (code, out) = send(&b, "POST", CONFIGMAPS, Some(configmap("y")), &[]).await;
    assert_eq!(code, 500, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("service"),
        "{out}"
    );
}

#[tokio::test]
async fn a_webhooks_connection_is_kept_alive_for_its_own_cluster_only() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    f.create_cluster("team-b").await;
    let a = admin(&f, "team-a").await;
    let b = admin(&f, "team-b").await;
    let server = webhook_server().await;
    for client in [&a, &b] {
        install(
            client,
            configuration(
                "ValidatingWebhookConfiguration",
                "allow",
                &server,
                &[("allow.example.com", "/allow", json!({}))],
            ),
        )
        .await;
    }
    for i in 0..10 {
        let (code, out) = send(
            &a,
            "POST",
            CONFIGMAPS,
            Some(configmap(&format!("a{i}"))),
            &[],
        )
        .await;
        assert_eq!(code, 201, "{out}");
    }
    assert_eq!(server.calls("/allow"), 10);
    // Ten calls one after another: one connection, as a Go client keeps.
    assert_eq!(server.connections(), 1);
    // Another cluster calling the same URL opens its own.
    let (code, _) = send(&b, "POST", CONFIGMAPS, Some(configmap("b")), &[]).await;
    assert_eq!(code, 201);
    assert_eq!(server.calls("/allow"), 11);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_webhook_that_never_answers_delays_only_its_own_tenant() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    f.create_cluster("team-b").await;
    let a = admin(&f, "team-a").await;
    let b = admin(&f, "team-b").await;
    let server = webhook_server().await;
    install(
        &a,
        configuration(
            "ValidatingWebhookConfiguration",
            "hang",
            &server,
            &[("hang.example.com", "/hang", json!({"timeoutSeconds": 10}))],
        ),
    )
    .await;
    install(
        &b,
        configuration(
            "ValidatingWebhookConfiguration",
            "allow",
            &server,
            &[("allow.example.com", "/allow", json!({}))],
        ),
    )
    .await;
    // A dozen of team-a's writes, all hung in its webhook (or waiting for
    // a seat behind its own hung writes: fair scheduling gives a tenant at
    // most half the server's seats).
    let hung: Vec<_> = (0..12)
        .map(|i| {
            let a = a.clone();
            // Longer than the usual bound: a write waiting for a seat behind
            // the first hung ones times out only on its own turn.
            let body = serde_json::to_vec(&configmap(&format!("a{i}"))).unwrap();
            tokio::spawn(async move {
                send_bytes(
                    &a,
                    "POST",
                    CONFIGMAPS,
                    "application/json",
                    body,
                    Duration::from_secs(60),
                )
                .await
            })
        })
        .collect();
    while server.calls("/hang") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile team-b's writes, through its own webhook, go on.
    let mut latencies = Vec::new();
    for i in 0..20 {
        let start = Instant::now();
        let (code, out) = send(
            &b,
            "POST",
            CONFIGMAPS,
            Some(configmap(&format!("b{i}"))),
            &[],
        )
        .await;
        latencies.push(start.elapsed());
        assert_eq!(code, 201, "{out}");
    }
    latencies.sort();
    eprintln!(
        "team-b's writes while team-a's webhook hangs: p50 {:?}, max {:?}",
        latencies[10], latencies[19]
    );
    assert!(
        hung.iter().all(|h| !h.is_finished()),
        "team-a's writes returned before their webhook's timeout"
    );
    // Never more than the per-cluster bound of calls in flight.
    assert!(server.calls("/hang") <= 32);
    // team-a's writes fail after `timeoutSeconds`, as upstream's; one that
    // waited for a seat longer than the queue bound is told to retry (429).
    let mut timed_out = 0;
    for h in hung {
        let (code, out) = h.await.unwrap();
        let message = out["message"].as_str().unwrap_or_default();
        match code {
            500 => {
                timed_out += 1;
                assert!(
                    message.starts_with(
                        "Internal error occurred: failed calling webhook \"hang.example.com\": failed to call webhook: Post \""
                    ) && message.ends_with("/hang?timeout=10s\": context deadline exceeded"),
                    "{message}"
                );
            }
            429 => assert_eq!(out["reason"], "TooManyRequests", "{out}"),
            other => panic!("{other}: {out}"),
        }
    }
    assert!(timed_out > 0);
}

#[tokio::test]
async fn a_nested_clusters_webhooks_are_called_for_it_and_never_for_its_parent() {
    let f = Fixture::start().await;
    f.create_cluster("a").await;
    f.create_cluster("a:b").await;
    let a = admin(&f, "a").await;
    let ab = admin(&f, "a:b").await;
    let server = webhook_server().await;
    install(
        &ab,
        configuration(
            "ValidatingWebhookConfiguration",
            "deny-all",
            &server,
            &[(
                "deny.example.com",
                "/deny",
                // Only the test's objects (the cluster's controllers write ConfigMaps too).
                json!({"objectSelector": {"matchLabels": {"case": "nested"}}}),
            )],
        ),
    )
    .await;
    let mut cm = configmap("x");
    cm["metadata"]["labels"] = json!({"case": "nested"});
    let (code, out) = send(&ab, "POST", CONFIGMAPS, Some(cm.clone()), &[]).await;
    assert_eq!(code, 403, "{out}");
    assert_eq!(server.calls("/deny"), 1);
    let (code, _) = send(&a, "POST", CONFIGMAPS, Some(cm), &[]).await;
    assert_eq!(code, 201);
    assert_eq!(server.calls("/deny"), 1);
}

#[tokio::test]
async fn connections_to_pods_and_services_are_admitted() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let a = admin(&f, "team-a").await;
    let server = webhook_server().await;
    let mut config = configuration(
        "ValidatingWebhookConfiguration",
        "no-exec",
        &server,
        &[("no-exec.example.com", "/deny", json!({}))],
    );
    config["webhooks"][0]["rules"] = json!([{"operations": ["CONNECT"], "apiGroups": [""],
        "apiVersions": ["v1"], "resources": ["pods/exec", "services/proxy"]}]);
    install(&a, config).await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    crate::common::wait_for("the pod is created", Duration::from_secs(20), || async {
        let (code, _) = send(
            &a,
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(pod.clone()),
            &[],
        )
        .await;
        (code == 201).then_some(())
    })
    .await;
    // Refused before anything is reached (a plain request would get 400).
    let (code, out) = send(
        &a,
        "POST",
        "/api/v1/namespaces/default/pods/p/exec?command=ls&stdout=true",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 403, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("no-exec.example.com"),
        "{out}"
    );
    // attach is not matched: the usual answer to a plain request.
    let (code, _) = send(
        &a,
        "POST",
        "/api/v1/namespaces/default/pods/p/attach?stdout=true",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 400);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                     "spec": {"ports": [{"port": 443}]}});
    let (code, _) = send(
        &a,
        "POST",
        "/api/v1/namespaces/default/services",
        Some(svc),
        &[],
    )
    .await;
    assert_eq!(code, 201);
    let (code, out) = send(
        &a,
        "GET",
        "/api/v1/namespaces/default/services/https:web:443/proxy/x",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 403, "{out}");
    assert_eq!(server.calls("/deny"), 2);
}
