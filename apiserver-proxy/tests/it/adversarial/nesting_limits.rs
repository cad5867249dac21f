//! Input nesting limits hold through every way a document reaches the
//! server, against a real server on 127.0.0.1: a JSON patch that nests the
//! object 48 000 levels deep (it aborted the whole process: every
//! recursion over the result overflowed a worker's stack) and a YAML alias
//! bomb are refused with a client error, and the server goes on answering.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Fixture, send, send_bytes};

/// `{"x": {"x": ... {}}}`, `levels` + 1 containers deep.
fn chain(levels: usize) -> Value {
    let mut v = json!({});
    for _ in 0..levels {
        v = json!({ "x": v });
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_depth_bomb_is_refused_and_the_server_stays_up() {
    let fx = Fixture::start().await;
    let client = fx.root_client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, _) = send(
        &client,
        "POST",
        cms,
        Some(json!({"metadata": {"name": "deep"}, "data": {"a": "1"}})),
        &[],
    )
    .await;
    assert_eq!(code, 201);
    // Nest `metadata.managedFields[0].fieldsV1` (free-form JSON kept on
    // every kind) 48 000 levels deep with 800 small operations.
    let deep_path = "/x".repeat(120);
    let base = "/metadata/managedFields/0/fieldsV1";
    let mut ops = vec![
        json!({"op": "add", "path": "/metadata/managedFields", "value": [
            {"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"a": {}}}
        ]}),
    ];
    for i in 0..400 {
        let (from, to) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        ops.push(json!({"op": "add", "path": format!("{base}/{to}"), "value": chain(120)}));
        ops.push(json!({"op": "move", "from": format!("{base}/{from}"), "path": format!("{base}/{to}{deep_path}/x")}));
    }
    let body = serde_json::to_vec(&ops).unwrap();
    let (code, status) = send_bytes(
        &client,
        "PATCH",
        &format!("{cms}/deep"),
        "application/json-patch+json",
        body,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    // Still serving, and the object is as it was.
    let (code, cm) = send(&client, "GET", &format!("{cms}/deep"), None, &[]).await;
    assert_eq!(code, 200);
    assert_eq!(cm["data"]["a"], "1");
    let (code, _) = send(&client, "GET", cms, None, &[]).await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_alias_bomb_is_refused() {
    let fx = Fixture::start().await;
    let client = fx.root_client().await;
    let mut doc = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx: &a [");
    doc.push_str(&"0,".repeat(100_000));
    doc.push_str("]\ndata: [");
    doc.push_str(&"*a,".repeat(60));
    doc.push_str("]\n");
    let (code, status) = send_bytes(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/yaml",
        doc.into_bytes(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("aliasing"),
        "{status}"
    );
}
