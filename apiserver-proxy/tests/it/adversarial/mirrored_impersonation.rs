//! The read-only guard of mirrored RuntimeClasses cannot be talked past by
//! claiming the syncer's identity: a tenant admin impersonating the
//! in-process user (or holding a certificate in its name, which the
//! tenant's own CA can issue) still gets 403, while the syncer's in-process
//! client keeps the mirror.

use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use nestkube_apiserver::server::inprocess::SYSTEM_USER;
use serde_json::json;

use super::vcs::{refusal, virtual_cluster};
use crate::common::{Fixture, admin};

fn rc(name: &str) -> RuntimeClass {
    serde_json::from_value(json!({"metadata": {"name": name}, "handler": name})).unwrap()
}

/// `method path` with the impersonation headers of the in-process user
/// and, if any, a JSON `body` of `content_type`, sent by `client`: the
/// status code.
async fn as_syncer(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<(&str, serde_json::Value)>,
) -> u16 {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Impersonate-User", SYSTEM_USER)
        .header("Impersonate-Group", "system:masters");
    let bytes = match body {
        Some((content_type, body)) => {
            req = req.header("content-type", content_type);
            serde_json::to_vec(&body).unwrap()
        }
        None => Vec::new(),
    };
    let req = req.body(kube::client::Body::from(bytes)).unwrap();
    client.send(req).await.expect("send").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonating_the_syncer_cannot_write_mirrored_runtime_classes() {
    let f = Fixture::start().await;
    virtual_cluster(&f, "root", "ro", json!({})).await;
    let syncer: Api<RuntimeClass> = Api::all(f.running.api.client_for("ro"));
    syncer
        .create(&PostParams::default(), &rc("kata"))
        .await
        .expect("the in-process client keeps the mirror");

    // The tenant's admin may impersonate anyone in its cluster...
    let tenant = admin(&f, "ro").await;
    let path = "/apis/node.k8s.io/v1/runtimeclasses";
    let whoami = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("Impersonate-User", SYSTEM_USER)
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1",
                "kind": "SelfSubjectReview"}))
            .unwrap(),
        )
        .unwrap();
    let review: serde_json::Value = tenant.request(whoami).await.expect("whoami");
    assert_eq!(
        review["status"]["userInfo"]["username"], SYSTEM_USER,
        "impersonation took effect"
    );
    // ... but not write the mirror as the syncer.
    assert_eq!(
        as_syncer(
            &tenant,
            "PATCH",
            &format!("{path}/kata"),
            Some((
                "application/merge-patch+json",
                json!({"metadata": {"labels": {"owned": "tenant"}}})
            ))
        )
        .await,
        403
    );
    assert_eq!(
        as_syncer(&tenant, "DELETE", &format!("{path}/kata"), None).await,
        403
    );
    assert_eq!(
        as_syncer(
            &tenant,
            "POST",
            path,
            Some((
                "application/json",
                serde_json::to_value(rc("evil")).unwrap()
            ))
        )
        .await,
        403
    );

    // Nor with a certificate naming the in-process user.
    let forged = f.user_client("ro", SYSTEM_USER, &["system:masters"]).await;
    let forged: Api<RuntimeClass> = Api::all(forged);
    let (code, _, m) = refusal(
        forged
            .patch(
                "kata",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"owned": "tenant"}}})),
            )
            .await,
    );
    assert_eq!(code, 403, "{m}");
    assert!(
        m.contains("mirrored from its parent cluster and read-only"),
        "{m}"
    );

    // Untouched; the syncer still writes it.
    let kata = syncer.get("kata").await.unwrap();
    assert!(kata.metadata.labels.unwrap_or_default().is_empty());
    assert!(syncer.get_opt("evil").await.unwrap().is_none());
    syncer
        .patch(
            "kata",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"synced": "yes"}}})),
        )
        .await
        .expect("in-process writes");
}
