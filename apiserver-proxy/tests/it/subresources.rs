//! Subresources served by rows of the REST table, over the network with a
//! real client: `pods/binding` answers as upstream's `BindingREST`; the
//! `proxy` subresources where nothing runs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Fixture, send, wait_for};

const TIMEOUT: Duration = Duration::from_secs(20);

fn binding(name: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
           "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
}

#[tokio::test]
async fn pods_binding_assigns_a_node_once() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    // The default ServiceAccount may not exist yet: admission waits for it.
    wait_for("the pod is created", TIMEOUT, || async {
        let (code, _) = send(&client, "POST", pods, Some(pod.clone()), &[]).await;
        (code == 201).then_some(())
    })
    .await;

    // Names must agree (400); a bad target is upstream's plain 500.
    let (code, out) = send(
        &client,
        "POST",
        &format!("{pods}/p/binding"),
        Some(binding("q", "n1")),
        &[],
    )
    .await;
    assert_eq!(code, 400, "{out}");
    assert_eq!(
        out["message"],
        "name in URL does not match name in Binding object"
    );
    let mut bad = binding("p", "");
    bad["target"]["kind"] = json!("Pod");
    let (code, out) = send(
        &client,
        "POST",
        &format!("{pods}/p/binding"),
        Some(bad),
        &[],
    )
    .await;
    assert_eq!(code, 500, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("target.kind"),
        "{out}"
    );
    assert!(
        out["message"].as_str().unwrap().contains("target.name"),
        "{out}"
    );

    // A wrong uid is a failed precondition on the pod.
    let mut stale = binding("p", "n1");
    stale["metadata"]["uid"] = json!("not-the-pod");
    let (code, out) = send(
        &client,
        "POST",
        &format!("{pods}/p/binding"),
        Some(stale),
        &[],
    )
    .await;
    assert_eq!(code, 409, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition"),
        "{out}"
    );

    let mut first = binding("p", "n1");
    first["metadata"]["annotations"] = json!({"scheduler.example/decision": "x"});
    let (code, out) = send(
        &client,
        "POST",
        &format!("{pods}/p/binding"),
        Some(first),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    assert_eq!(out["kind"], "Status");
    assert_eq!(out["status"], "Success");
    let (_, got) = send(&client, "GET", &format!("{pods}/p"), None, &[]).await;
    assert_eq!(got["spec"]["nodeName"], "n1", "{got}");
    assert_eq!(
        got["metadata"]["annotations"]["scheduler.example/decision"],
        "x"
    );
    let scheduled = got["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .expect("a PodScheduled condition");
    assert_eq!(scheduled["status"], "True", "{got}");

    // Once bound, never again.
    let (code, out) = send(
        &client,
        "POST",
        &format!("{pods}/p/binding"),
        Some(binding("p", "n2")),
        &[],
    )
    .await;
    assert_eq!(code, 409, "{out}");
    assert_eq!(out["reason"], "Conflict");
    assert_eq!(
        out["message"],
        "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\""
    );
    let (_, got) = send(&client, "GET", &format!("{pods}/p"), None, &[]).await;
    assert_eq!(got["spec"]["nodeName"], "n1");

    // Only create is served.
    let (code, _) = send(&client, "GET", &format!("{pods}/p/binding"), None, &[]).await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn proxy_subresources_answer_as_upstream_where_nothing_runs() {
    let f = Fixture::start().await;
    // No retries: 503 is the answer under test.
    let client = f.root_client_no_retry().await;
    // An object the cluster does not have: 404.
    let (code, out) = send(
        &client,
        "GET",
        "/api/v1/namespaces/default/services/https:nothing:443/proxy/healthz",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 404, "{out}");
    // A Service with nothing to run it behind (the root cluster has no parent).
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                     "spec": {"ports": [{"port": 443}]}});
    let (code, out) = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/services",
        Some(svc),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let (code, out) = send(
        &client,
        "GET",
        "/api/v1/namespaces/default/services/https:web:443/proxy/a/b?x=1",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 503, "{out}");
    assert_eq!(out["message"], "no endpoints available for service \"web\"");
    assert_eq!(out["reason"], "ServiceUnavailable");
}
