//! Tenant isolation over the network: a real server on 127.0.0.1, kube-rs
//! clients with certificates issued by each cluster's client CA. A
//! credential is valid for exactly the cluster that issued it; data, lists
//! and watches of one cluster never show in another; errors never name
//! another cluster.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use nestkube_apiserver::auth::pki::{Ca, CertPair};
use nestkube_apiserver::tenancy::DEFAULT_NAMESPACES;

use crate::common::{self, Fixture};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A certificate for alice issued by `cluster`'s client CA.
fn alice_cert(f: &Fixture, cluster: &str) -> CertPair {
    f.issue(cluster, "alice", &["system:masters"])
}

/// Status code and body of a GET (relative to the client's URL).
async fn get_raw(client: &Client, path: &str) -> (u16, serde_json::Value) {
    common::send(client, "GET", path, None, &[]).await
}

/// Asserts a `metav1.Status` 401 that names no cluster.
fn assert_unauthorized((status, body): &(u16, serde_json::Value), what: &str) {
    assert_eq!(*status, 401, "{what}: {body}");
    assert_eq!(body["kind"], "Status", "{what}: {body}");
    assert_eq!(body["reason"], "Unauthorized", "{what}: {body}");
    assert_eq!(body["code"], 401, "{what}: {body}");
    let text = body.to_string();
    for name in ["team-a", "team-b", "root", "nonexistent"] {
        assert!(!text.contains(name), "{what}: body names {name}: {text}");
    }
}

/// Published in every namespace by the root CA publisher; not tenant data.
const ROOT_CA: &str = "kube-root-ca.crt";

/// Whether a list holds nothing but the root CA ConfigMap.
fn only_root_ca(items: &[ConfigMap]) -> bool {
    items
        .iter()
        .all(|c| c.metadata.name.as_deref() == Some(ROOT_CA))
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": "v"},
    }))
    .unwrap()
}

async fn namespaces(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    names
}

/// Next ADDED object name on a watch, skipping bookmarks.
async fn next_added(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> String {
    loop {
        let event = tokio::time::timeout(TIMEOUT, stream.try_next())
            .await
            .expect("timely event")
            .expect("watch")
            .expect("stream open");
        match event {
            WatchEvent::Added(o) if o.metadata.name.as_deref() != Some(ROOT_CA) => {
                return o.metadata.name.unwrap();
            }
            WatchEvent::Added(_) => continue,
            WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[tokio::test]
async fn clusters_are_isolated() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    f.create_cluster("team-b").await;
    let a = f.client(Some("team-a"), &alice_cert(&f, "team-a")).await;
    let b = f.client(Some("team-b"), &alice_cert(&f, "team-b")).await;
    let root = f.root_client_at(None).await;

    let mut defaults: Vec<String> = DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect();
    defaults.sort();
    assert_eq!(namespaces(&a).await, defaults);
    assert_eq!(namespaces(&b).await, defaults);

    // Watches in team-b and root start before team-a writes.
    let b_cms: Api<ConfigMap> = Api::namespaced(b.clone(), "default");
    let root_cms: Api<ConfigMap> = Api::namespaced(root.clone(), "default");
    let mut b_watch = b_cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch b")
        .boxed();
    let mut root_watch = root_cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch root")
        .boxed();

    let a_cms: Api<ConfigMap> = Api::namespaced(a.clone(), "default");
    a_cms
        .create(&PostParams::default(), &cm("secret"))
        .await
        .expect("create in team-a");
    assert!(a_cms.get("secret").await.is_ok());

    for (name, api) in [("team-b", &b_cms), ("root", &root_cms)] {
        match api.get("secret").await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let list = api.list(&ListParams::default()).await.expect("list");
        assert!(only_root_ca(&list.items), "{name}: {:?}", list.items);
    }

    // A marker written after team-a's object is the first thing each watch
    // sees: team-a's write never reached them.
    b_cms
        .create(&PostParams::default(), &cm("marker-b"))
        .await
        .expect("marker b");
    root_cms
        .create(&PostParams::default(), &cm("marker-root"))
        .await
        .expect("marker root");
    assert_eq!(next_added(&mut b_watch).await, "marker-b");
    assert_eq!(next_added(&mut root_watch).await, "marker-root");
}

#[tokio::test]
async fn a_credential_is_valid_for_its_own_cluster_only() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    f.create_cluster("team-b").await;
    let a_cert = alice_cert(&f, "team-a");
    Api::<ConfigMap>::namespaced(f.client(Some("team-a"), &a_cert).await, "default")
        .create(&PostParams::default(), &cm("mine"))
        .await
        .expect("create in team-a");

    // Foreign and unknown clusters answer alike: no probing of names.
    let to_b = get_raw(
        &f.client(Some("team-b"), &a_cert).await,
        "/api/v1/namespaces",
    )
    .await;
    let to_none = get_raw(
        &f.client(Some("nonexistent"), &a_cert).await,
        "/api/v1/namespaces",
    )
    .await;
    assert_unauthorized(&to_b, "team-a cert on team-b");
    assert_unauthorized(&to_none, "team-a cert on nonexistent");
    assert_eq!(to_b, to_none);
    // Not even a foreign cluster's public paths.
    assert_unauthorized(
        &get_raw(&f.client(Some("team-b"), &a_cert).await, "/version").await,
        "team-a cert on team-b version",
    );

    // The bare path reaches the credential's own cluster.
    let bare = f.client(None, &a_cert).await;
    let names: Vec<String> = Api::<ConfigMap>::namespaced(bare, "default")
        .list(&ListParams::default())
        .await
        .expect("bare list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != ROOT_CA)
        .collect();
    assert_eq!(names, ["mine"]);

    // The root admin is root's only.
    assert_unauthorized(
        &get_raw(
            &f.root_client_at(Some("team-a")).await,
            "/api/v1/namespaces",
        )
        .await,
        "root admin on team-a",
    );
    let (status, _) = get_raw(&f.root_client_at(Some("root")).await, "/api/v1/namespaces").await;
    assert_eq!(status, 200);
    let (status, _) = get_raw(&f.root_client_at(None).await, "/api/v1/namespaces").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn foreign_certificates_never_authenticate() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    // A random CA, and one that copies team-a's CA name: both rejected.
    for ca_name in ["evil-ca", "nestkube-client-ca:team-a", "nestkube-ca"] {
        let forged = Ca::generate(ca_name)
            .unwrap()
            .issue_client("alice", &["system:masters"])
            .unwrap();
        for cluster in [Some("team-a"), None] {
            let client = f.client(cluster, &forged).await;
            assert_unauthorized(
                &get_raw(&client, "/api/v1/namespaces").await,
                &format!("{ca_name} on {cluster:?}"),
            );
            // An invalid certificate does not fall back to anonymous.
            assert_unauthorized(
                &get_raw(&client, "/version").await,
                &format!("{ca_name} on {cluster:?} version"),
            );
        }
    }
}

#[tokio::test]
async fn anonymous_reaches_public_paths_only() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let anon = f.anonymous(Some("team-a"));
    let (status, body) = get_raw(&anon, "/version").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["gitVersion"].is_string(), "{body}");
    assert_unauthorized(
        &get_raw(&anon, "/api/v1/namespaces").await,
        "anonymous namespaces",
    );
    // Public endpoints are answered alike for any name: anonymous callers
    // cannot probe which clusters exist either.
    let (status, unknown) = get_raw(&f.anonymous(Some("nonexistent")), "/version").await;
    assert_eq!((status, &unknown), (200, &body));
    assert_unauthorized(
        &get_raw(&f.anonymous(Some("nonexistent")), "/api/v1/namespaces").await,
        "anonymous namespaces of unknown cluster",
    );
    let bare = f.anonymous(None);
    assert_eq!(get_raw(&bare, "/version").await.0, 200);
    assert_unauthorized(&get_raw(&bare, "/api").await, "anonymous bare api");
}

#[tokio::test]
async fn a_removed_cluster_takes_its_credentials_and_data() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let cert = alice_cert(&f, "team-a");
    let client = f.client(Some("team-a"), &cert).await;
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm("doomed"))
        .await
        .expect("create");
    let storage = f.running.api.store.storage().clone();
    assert!(
        !storage
            .list("/team-a/", Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    f.running
        .api
        .clusters
        .remove("team-a")
        .await
        .expect("remove");
    // The same client (its pooled connection predates the removal) and a new one.
    assert_unauthorized(
        &get_raw(&client, "/api/v1/namespaces").await,
        "removed, old connection",
    );
    assert_unauthorized(
        &get_raw(&f.client(None, &cert).await, "/api/v1/namespaces").await,
        "removed, new connection",
    );
    assert!(
        storage
            .list("/team-a/", Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Re-created under the same name, it has a new CA: the old cert stays out.
    f.create_cluster("team-a").await;
    assert_unauthorized(
        &get_raw(&f.client(Some("team-a"), &cert).await, "/api/v1/namespaces").await,
        "old cert on re-created cluster",
    );
    let fresh = f.client(Some("team-a"), &alice_cert(&f, "team-a")).await;
    assert!(only_root_ca(
        &Api::<ConfigMap>::namespaced(fresh, "default")
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
    ));
}
