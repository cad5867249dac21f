//! The cross-tenant matrix: every served resource and subresource, every
//! verb, with one tenant's credential aimed at another tenant's cluster, at
//! its own nested child, and through odd paths. Each answer is a 401 (or a
//! 404 for a path no cluster serves) that reveals nothing: no object, no
//! cluster name, and the same answer whether the target exists or not.

use serde_json::{Value, json};

use crate::common::{self, Fixture};

/// The name of the other tenant's object.
const MARKER: &str = "b-marker-7c1f";
/// The other tenant's data: no response may contain it.
const DATA: &str = "b-data-91ad";

/// `(method, path suffix, body)` of every verb on `resource` in namespace
/// `default` (or cluster-scoped), and of each of its subresources.
fn requests(
    r: &nestkube_apiserver::registry::catalog::ResourceInfo,
) -> Vec<(&'static str, String, Option<Value>)> {
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let collection = if r.namespaced {
        format!("{base}/namespaces/default/{}", r.resource)
    } else {
        format!("{base}/{}", r.resource)
    };
    let item = format!("{collection}/{MARKER}");
    let body = json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": MARKER}});
    let mut out = vec![
        ("GET", collection.clone(), None),
        ("GET", format!("{collection}?watch=true"), None),
        ("POST", collection.clone(), Some(body.clone())),
        ("DELETE", collection.clone(), None),
        ("GET", item.clone(), None),
        ("PUT", item.clone(), Some(body.clone())),
        (
            "PATCH",
            item.clone(),
            Some(json!({"metadata": {"labels": {"x": "y"}}})),
        ),
        ("DELETE", item.clone(), None),
    ];
    for sub in &r.subresources {
        out.push(("GET", format!("{item}/{}", sub.name), None));
        out.push(("POST", format!("{item}/{}", sub.name), Some(body.clone())));
        out.push(("PUT", format!("{item}/{}", sub.name), Some(body.clone())));
    }
    out
}

/// Asserts an answer that tells nothing: 401 (or 404 where `not_found_ok`),
/// as a Status naming no cluster and carrying no object.
fn assert_blind(what: &str, status: u16, body: &Value, not_found_ok: bool) {
    assert!(
        status == 401 || (not_found_ok && status == 404),
        "{what}: {status} {body}"
    );
    let text = body.to_string();
    for secret in [MARKER, DATA, "tenant-a", "tenant-b", "child"] {
        assert!(!text.contains(secret), "{what}: reveals {secret:?}: {text}");
    }
}

/// Writes tenant B's ConfigMap: name [`MARKER`], data [`DATA`].
async fn write_marker(f: &Fixture) {
    let b = f
        .user_client("tenant-b", "b-admin", &["system:masters"])
        .await;
    let (status, body) = common::send(
        &b,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": MARKER}, "data": {"k": DATA}})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn no_credential_crosses_a_cluster_boundary_for_any_resource_or_verb() {
    let f = Fixture::start().await;
    for c in ["tenant-a", "tenant-b", "tenant-a:child"] {
        f.create_cluster(c).await;
    }
    write_marker(&f).await;

    // Bare-address clients presenting each credential, so the test chooses
    // the whole path.
    let a_cert = f.issue("tenant-a", "a-admin", &["system:masters"]);
    let child_cert = f.issue("tenant-a:child", "c-admin", &["system:masters"]);
    let a = f.client(None, &a_cert).await;
    let child = f.client(None, &child_cert).await;

    let catalog = f.running.api.catalog.clone();
    let mut checked = 0;
    for r in catalog.resources() {
        for (method, suffix, body) in requests(r) {
            // A at B, at a cluster that does not exist, and at its own child;
            // the child at its parent.
            let mut answers = Vec::new();
            for (who, client, cluster) in [
                ("a", &a, "tenant-b"),
                ("a", &a, "nonexistent"),
                ("a", &a, "tenant-a:child"),
                ("child", &child, "tenant-a"),
            ] {
                let path = format!("/clusters/{cluster}{suffix}");
                let (status, resp) = common::send(client, method, &path, body.clone(), &[]).await;
                assert_blind(&format!("{who} {method} {path}"), status, &resp, false);
                answers.push((status, resp));
                checked += 1;
            }
            assert_eq!(
                answers[0], answers[1],
                "{method} {suffix}: an existing cluster answers unlike a missing one"
            );
        }
    }
    assert!(checked > 1000, "only {checked} requests checked");
}

#[tokio::test]
async fn odd_paths_never_reach_another_cluster() {
    let f = Fixture::start().await;
    for c in ["tenant-a", "tenant-b"] {
        f.create_cluster(c).await;
    }
    write_marker(&f).await;
    let a = f
        .client(None, &f.issue("tenant-a", "a-admin", &["system:masters"]))
        .await;
    let cms = "api/v1/namespaces/default/configmaps";
    for path in [
        format!("/clusters/tenant-a/../tenant-b/{cms}"),
        format!("/clusters/tenant-a/%2E%2E/tenant-b/{cms}"),
        format!("/clusters/tenant-a%2F..%2Ftenant-b/{cms}"),
        format!("/clusters/tenant-a/clusters/tenant-b/{cms}"),
        format!("/clusters/tenant-b%00/{cms}"),
        format!("/clusters/TENANT-B/{cms}"),
        format!("/clusters/tenant-b:/{cms}"),
        format!("/clusters/:tenant-b/{cms}"),
        format!("/clusters/tenant-a:..:tenant-b/{cms}"),
        format!("/clusters/tenant-%62/{cms}"),
        format!("//clusters/tenant-b/{cms}"),
        format!("/clusters//tenant-b/{cms}"),
        format!("/clusters/tenant-b/{cms}/{MARKER}"),
        format!("/{cms}/..%2F..%2F..%2Fclusters%2Ftenant-b%2F{cms}"),
        format!("/api/v1/namespaces/..%2F..%2Fclusters%2Ftenant-b/configmaps/{MARKER}"),
    ] {
        let (status, body) = common::send(&a, "GET", &path, None, &[]).await;
        let text = body.to_string();
        assert!(
            !text.contains(DATA),
            "GET {path}: {status} reveals the other tenant's object: {text}"
        );
        assert!(
            !text.contains("tenant-b"),
            "GET {path}: {status} names the other tenant: {text}"
        );
    }
}
