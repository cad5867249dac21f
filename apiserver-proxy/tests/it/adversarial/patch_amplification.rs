//! Patch amplification: a small PATCH body must not make the server build a
//! large or deeply nested document, whatever the patch type. JSON patch
//! `copy` is held to upstream's accumulated copy limit (3 MiB, 422 with
//! evanphx's message); every patch type to a patched object no larger than a
//! request body may be (413) and no deeper than the decoder reads (422).
//! The refused patch leaves the object as it was.

use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

use super::memory;
use crate::common::{Fixture, send, send_bytes};

/// PATCHes `path` with `body` of `content_type`.
async fn patch(client: &Client, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    send_bytes(
        client,
        "PATCH",
        path,
        content_type,
        body,
        Duration::from_secs(60),
    )
    .await
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
/// Leases: a kind without size validation of its own.
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

/// A server with `team-a` and a `system:masters` client of it.
async fn team_a() -> (Fixture, Client) {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let admin = f.user_client("team-a", "admin", &["system:masters"]).await;
    (f, admin)
}

/// Creates `object` in `collection`; returns it as stored.
async fn create(client: &Client, collection: &str, object: Value) -> Value {
    let (status, body) = send(client, "POST", collection, Some(object), &[]).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Creates the ConfigMap `name` with `data`; returns it as stored.
async fn configmap(client: &Client, name: &str, data: Value) -> Value {
    create(
        client,
        CONFIGMAPS,
        json!({"metadata": {"name": name}, "data": data}),
    )
    .await
}

async fn get(client: &Client, path: &str) -> Value {
    let (status, body) = send(client, "GET", path, None, &[]).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The reported attack: add a 1 KB array, then copy it into itself 30
/// times (2.5 KB of body; unchecked, 2^30 KB).
fn copy_bomb() -> Vec<u8> {
    let mut ops = vec![json!({"op": "add", "path": "/bomb", "value": vec!["x".repeat(30); 32]})];
    ops.extend((0..30).map(|_| json!({"op": "copy", "from": "/bomb", "path": "/bomb/-"})));
    serde_json::to_vec(&ops).unwrap()
}

#[tokio::test]
async fn json_patch_copies_past_the_limit_are_refused_as_upstream() {
    let (_f, admin) = team_a().await;
    let before = configmap(&admin, "target", json!({"k": "v"})).await;
    let target = format!("{CONFIGMAPS}/target");
    let body = copy_bomb();
    assert!(body.len() < 3 * 1024, "{} bytes", body.len());
    let (status, status_body) = memory::bounded(
        "JSON patch copy bomb",
        patch(&admin, &target, "application/json-patch+json", body),
    )
    .await;
    assert_eq!(status, 422, "{status_body}");
    assert_eq!(status_body["kind"], "Status");
    assert_eq!(status_body["reason"], "Invalid");
    assert_eq!(
        status_body["message"],
        "the server rejected our request due to an error in our request"
    );
    let cause = status_body["details"]["causes"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        cause.starts_with("Unable to complete the copy, the accumulated size increase of copy is ")
            && cause.ends_with(", exceeding the limit 3145728"),
        "{status_body}"
    );
    assert_eq!(get(&admin, &target).await, before);
}

#[tokio::test]
async fn no_patch_type_may_grow_an_object_past_a_request_body() {
    let (_f, admin) = team_a().await;
    // 2 MiB stored, 2 MiB more patched in: each body is within the 3 MiB
    // request limit, the result is not.
    let big = "x".repeat(2 * 1024 * 1024);
    let before = create(
        &admin,
        LEASES,
        json!({"metadata": {"name": "big"}, "spec": {"holderIdentity": big}}),
    )
    .await;
    let lease = format!("{LEASES}/big");
    let more = json!({"spec": {"preferredHolder": big}});
    let bodies = [
        (
            "application/merge-patch+json",
            serde_json::to_vec(&more).unwrap(),
        ),
        (
            "application/strategic-merge-patch+json",
            serde_json::to_vec(&more).unwrap(),
        ),
        (
            "application/json-patch+json",
            serde_json::to_vec(
                &json!([{"op": "add", "path": "/spec/preferredHolder", "value": big}]),
            )
            .unwrap(),
        ),
    ];
    for (content_type, body) in bodies {
        let (status, status_body) = patch(&admin, &lease, content_type, body).await;
        assert_eq!(status, 413, "{content_type}: {status_body}");
        assert_eq!(
            status_body["reason"], "RequestEntityTooLarge",
            "{content_type}"
        );
        assert_eq!(
            status_body["message"],
            "Request entity too large: the patched object is larger than the limit of 3145728 bytes",
            "{content_type}"
        );
        assert_eq!(get(&admin, &lease).await, before, "{content_type}");
    }
    // Within the limit, a patch still applies.
    let (status, patched) = patch(
        &admin,
        &lease,
        "application/merge-patch+json",
        br#"{"spec":{"preferredHolder":"small"}}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["spec"]["preferredHolder"], "small");
}

/// Moves a 100-deep chain under another: 200 deep from a body that is not.
fn nesting_bomb() -> Vec<u8> {
    let mut chain = json!(1);
    for _ in 0..100 {
        chain = json!({"a": chain});
    }
    let under = format!("/y{}/x", "/a".repeat(99));
    serde_json::to_vec(&json!([
        {"op": "add", "path": "/x", "value": chain},
        {"op": "add", "path": "/y", "value": chain},
        {"op": "move", "from": "/x", "path": under},
    ]))
    .unwrap()
}

#[tokio::test]
async fn json_patch_cannot_nest_past_what_the_decoder_reads() {
    let (_f, admin) = team_a().await;
    let before = configmap(&admin, "deep", json!({"k": "v"})).await;
    let deep = format!("{CONFIGMAPS}/deep");
    let (status, status_body) =
        patch(&admin, &deep, "application/json-patch+json", nesting_bomb()).await;
    assert_eq!(status, 422, "{status_body}");
    assert_eq!(status_body["reason"], "Invalid");
    assert!(
        status_body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("exceeded max depth"),
        "{status_body}"
    );
    assert_eq!(get(&admin, &deep).await, before);
}
