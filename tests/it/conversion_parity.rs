//! CRD conversion webhook parity with the real kube-apiserver (the e2e
//! host, v1.37.2): the same CRD converted by the same webhook
//! (`nestkube_e2e::webhook::WebhookServer`'s `CronTab`, v1 `spec.cronSpec`
//! <-> v2 `spec.schedule`) must read and write alike at both versions, and
//! fail alike when the webhook is unreachable or renames the object.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::support::{Server, kubectl_with_stdin, wait_for};
use nestkube_e2e::HostCluster;
use nestkube_e2e::webhook::WebhookServer;
use serde_json::{Value, json};

fn crd(group: &str, url: &str, ca_bundle: &str) -> Value {
    let schema = json!({"openAPIV3Schema": {"type": "object",
        "x-kubernetes-preserve-unknown-fields": true}});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("crontabs.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
            "conversion": {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {"url": url, "caBundle": ca_bundle}}},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema},
                {"name": "v2", "served": true, "storage": false, "schema": schema},
            ],
        },
    })
}

/// What may differ between two servers: identities, times, versions,
/// managers; a storage revision in a message.
fn normalized(mut v: Value) -> Value {
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
            "generation",
        ] {
            m.remove(k);
        }
    }
    v
}

fn without_revision(message: &str) -> String {
    match message.find("revision=") {
        Some(i) => {
            let rest = &message[i + "revision=".len()..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            format!("{}revision=N{}", &message[..i], &rest[digits..])
        }
        None => message.to_string(),
    }
}

#[test]
fn conversion_webhooks_match_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook = runtime
        .block_on(WebhookServer::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &["localhost"],
        ))
        .expect("webhook server");
    let server = Server::start();
    let bin = host.bins().kubectl.to_string_lossy().into_owned();
    let group = format!("p{}.conversion.example.com", std::process::id());
    let targets = [
        ("upstream", host.kubeconfig()),
        ("nestkube", server.kubeconfig.clone()),
    ];
    let kubectl = |kc: &Path, args: &[&str], input: &str| kubectl_with_stdin(&bin, kc, args, input);
    let v1 = format!("crontabs.v1.{group}");
    let v2 = format!("crontabs.v2.{group}");
    let mut failures = Vec::new();

    for (who, kc) in &targets {
        let definition = crd(&group, &hook.url("/convert"), &hook.ca_bundle()).to_string();
        let (ok, _, err) = kubectl(kc, &["create", "-f", "-"], &definition);
        assert!(ok, "{who}: {err}");
        let served = wait_for(Duration::from_secs(30), || {
            kubectl(kc, &["get", &v2, "-n", "default"], "").0
        });
        assert!(served, "{who}: v2 not served");
    }

    // Reads and writes at both versions.
    let a = json!({"apiVersion": format!("{group}/v1"), "kind": "CronTab",
        "metadata": {"name": "a", "namespace": "default"}, "spec": {"cronSpec": "* * * * *"}});
    let b = json!({"apiVersion": format!("{group}/v2"), "kind": "CronTab",
        "metadata": {"name": "b", "namespace": "default"}, "spec": {"schedule": "0 0 * * *"}});
    let mut seen = Vec::new();
    for (_, kc) in &targets {
        let mut answers = Vec::new();
        for obj in [&a, &b] {
            let (_, v, err) = kubectl(kc, &["create", "-o", "json", "-f", "-"], &obj.to_string());
            answers.push((normalized(v), err));
        }
        for (resource, name) in [(&v2, "a"), (&v1, "b"), (&v2, "b")] {
            let (_, v, err) = kubectl(
                kc,
                &["get", resource, name, "-n", "default", "-o", "json"],
                "",
            );
            answers.push((normalized(v), err));
        }
        let (_, v, err) = kubectl(
            kc,
            &[
                "patch",
                &v2,
                "a",
                "-n",
                "default",
                "--type=merge",
                "-p",
                r#"{"spec":{"schedule":"1 1 * * *"}}"#,
                "-o",
                "json",
            ],
            "",
        );
        answers.push((normalized(v), err));
        seen.push(answers);
    }
    for (i, (up, nk)) in seen[0].iter().zip(&seen[1]).enumerate() {
        if up != nk {
            failures.push(format!(
                "read/write {i}:\n  upstream: {up:?}\n  nestkube: {nk:?}"
            ));
        }
    }

    // Failures: an unreachable webhook, a webhook renaming the object.
    for (url, expect) in [
        (
            "https://127.0.0.1:1/convert".to_string(),
            "connection refused",
        ),
        (hook.url("/convert-rename"), "must have the same name"),
    ] {
        let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": {"url": url}}}}})
            .to_string();
        let mut answers = Vec::new();
        for (who, kc) in &targets {
            let (ok, _, err) = kubectl(
                kc,
                &[
                    "patch",
                    "crd",
                    &format!("crontabs.{group}"),
                    "--type=merge",
                    "-p",
                    &patch,
                ],
                "",
            );
            assert!(ok, "{who}: {err}");
            let mut get = String::new();
            let failed = wait_for(Duration::from_secs(30), || {
                let (ok, _, err) = kubectl(kc, &["get", &v2, "a", "-n", "default"], "");
                get = err;
                !ok && get.contains(expect)
            });
            assert!(failed, "{who}: {get}");
            let c = json!({"apiVersion": format!("{group}/v2"), "kind": "CronTab",
                "metadata": {"name": "c", "namespace": "default"}, "spec": {"schedule": "x"}});
            let (_, _, create) = kubectl(kc, &["create", "-f", "-"], &c.to_string());
            answers.push((without_revision(&get), without_revision(&create)));
        }
        if answers[0] != answers[1] {
            failures.push(format!(
                "{expect}:\n  upstream: {:?}\n  nestkube: {:?}",
                answers[0], answers[1]
            ));
        }
    }

    let (_, _, _) = kubectl(
        &targets[0].1,
        &[
            "delete",
            "crd",
            &format!("crontabs.{group}"),
            "--wait=false",
        ],
        "",
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
