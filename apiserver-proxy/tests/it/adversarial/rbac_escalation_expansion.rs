//! RBAC escalation check expansion: writing a Role is checked against the
//! rules the writer holds without expanding the Role's lists into their
//! cartesian product. A 4 KB Role of 200 groups × 200 resources × 200 verbs
//! (eight million combinations) is refused quickly, in bounded memory, with
//! a short message; one of 60 × 60 × 60 that the writer holds is allowed.

use std::time::{Duration, Instant};

use kube::Client;
use serde_json::{Value, json};

use super::memory;
use crate::common::{Fixture, send};

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

/// Longest refusal message accepted (the header plus the capped list).
const MAX_MESSAGE: usize = 8 * 1024;

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A rule of `n` groups, resources and verbs (`<prefix>g0`, `<prefix>r0`, ...).
fn cube(prefix: &str, n: usize) -> Value {
    json!({"apiGroups": names(&format!("{prefix}g"), n),
           "resources": names(&format!("{prefix}r"), n),
           "verbs": names(&format!("{prefix}v"), n)})
}

fn role(name: &str, rule: Value) -> Value {
    json!({"metadata": {"name": name}, "rules": [rule]})
}

async fn post(client: &Client, path: &str, body: Value) -> (u16, Value) {
    send(client, "POST", path, Some(body), &[]).await
}

/// A server with `team-a` where alice may create Roles in `default` and
/// holds the 60 × 60 × 60 cube there; her client.
async fn alice_holding_a_cube() -> (Fixture, Client) {
    alice_holding(cube("", 60)).await
}

/// A server with `team-a` where alice may create Roles in `default` and
/// holds `rule` there; her client.
async fn alice_holding(rule: Value) -> (Fixture, Client) {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let admin = f.user_client("team-a", "admin", &["system:masters"]).await;
    let created = |(status, body): (u16, Value)| assert_eq!(status, 201, "{body}");
    created(
        post(
            &admin,
            &format!("{RBAC}/clusterroles"),
            json!({"metadata": {"name": "cube"}, "rules": [rule]}),
        )
        .await,
    );
    created(post(&admin, &format!("{RBAC}/namespaces/default/roles"), role(
        "role-writer",
        json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create", "list"]}),
    )).await);
    for (binding, kind, role) in [
        ("alice-cube", "ClusterRole", "cube"),
        ("alice-writer", "Role", "role-writer"),
    ] {
        created(post(&admin, &format!("{RBAC}/namespaces/default/rolebindings"), json!({
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
        })).await);
    }
    let alice = f.user_client("team-a", "alice", &[]).await;
    // Policy reaches the authorizer through a watch; bindings in order.
    let roles = format!("{RBAC}/namespaces/default/roles");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = send(&alice, "GET", &roles, None, &[]).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "alice never allowed: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (f, alice)
}

fn assert_refused(status: u16, body: &Value, name: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            r#"roles.rbac.authorization.k8s.io "{name}" is forbidden: user "alice" (groups="#
        )) && message.contains(") is attempting to grant RBAC permissions not currently held:\n{"),
        "{message}"
    );
    assert!(message.len() <= MAX_MESSAGE, "{} bytes", message.len());
}

#[tokio::test]
async fn a_huge_role_is_refused_in_bounded_time_memory_and_message() {
    let (_f, alice) = alice_holding_a_cube().await;
    let roles = format!("{RBAC}/namespaces/default/roles");
    let body = role("cube-200", cube("", 200));
    assert!(serde_json::to_vec(&body).unwrap().len() < 5 * 1024);
    let (status, refused) = memory::bounded("200x200x200 Role", post(&alice, &roles, body)).await;
    assert_refused(status, &refused, "cube-200");
    let message = refused["message"].as_str().unwrap_or_default();
    eprintln!("200x200x200 refusal, {} bytes:\n{message}", message.len());
    // 60 of each not held: the message that was 15 MB.
    let (status, refused) = memory::bounded(
        "60x60x60 Role not held",
        post(&alice, &roles, role("other-60", cube("other-", 60))),
    )
    .await;
    assert_refused(status, &refused, "other-60");
    eprintln!(
        "60x60x60 refusal: {} bytes",
        refused["message"].as_str().unwrap_or_default().len()
    );
    // Neither was written.
    for name in ["cube-200", "other-60"] {
        let (status, _) = send(&alice, "GET", &format!("{roles}/{name}"), None, &[]).await;
        assert_ne!(status, 200, "{name} was created");
    }
}

#[tokio::test]
async fn a_huge_role_the_writer_holds_is_allowed() {
    let (_f, alice) = alice_holding_a_cube().await;
    let roles = format!("{RBAC}/namespaces/default/roles");
    let (status, body) = memory::bounded(
        "60x60x60 Role held",
        post(&alice, &roles, role("cube-60", cube("", 60))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Split differently from how it is held: still covered.
    let split = json!({"metadata": {"name": "cube-60-split"},
        "rules": (0..60).map(|i| json!({"apiGroups": [format!("g{i}")], "resources": names("r", 60), "verbs": names("v", 60)})).collect::<Vec<_>>()});
    let (status, body) = post(&alice, &roles, split).await;
    assert_eq!(status, 201, "{body}");
    // One verb more than held, in one group: refused, naming just that.
    let mut one_more = cube("", 60);
    one_more["apiGroups"] = json!(["g7"]);
    one_more["verbs"] = json!(["v0", "v60"]);
    let (status, body) = post(&alice, &roles, role("one-more", one_more)).await;
    assert_refused(status, &body, "one-more");
    // Sixty missing (group, resource, verb) tuples: upstream's lines.
    let message = body["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().skip(1).collect();
    assert_eq!(lines.len(), 60, "{message}");
    assert_eq!(
        lines[0],
        r#"{APIGroups:["g7"], Resources:["r0"], Verbs:["v60"]}"#
    );
    assert_eq!(
        lines[59],
        r#"{APIGroups:["g7"], Resources:["r9"], Verbs:["v60"]}"#
    );
}

#[tokio::test]
async fn names_held_do_not_grant_every_name() {
    // Upstream: a rule without resourceNames is covered only by rules
    // without resourceNames (the old check let one name grant them all).
    let (_f, alice) = alice_holding(
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]}),
    )
    .await;
    let roles = format!("{RBAC}/namespaces/default/roles");
    let every = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]});
    let (status, body) = post(&alice, &roles, role("every-secret", every)).await;
    assert_refused(status, &body, "every-secret");
    assert!(
        body["message"].as_str().unwrap().ends_with(
            "not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"
        ),
        "{body}"
    );
    let one = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]});
    let (status, body) = post(&alice, &roles, role("one-secret", one)).await;
    assert_eq!(status, 201, "{body}");
}
