//! kube-rs against a real server on 127.0.0.1: watch semantics (bookmarks,
//! 410 Gone then relist, sendInitialEvents) and optimistic concurrency.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;

use crate::common::{Fixture, cm};

/// A server and its root admin client.
async fn server() -> (Fixture, Client) {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    (f, client)
}

#[tokio::test]
async fn stale_update_is_a_conflict() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &cm("occ", "1"))
        .await
        .expect("create");
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("occ", &PostParams::default(), &first)
        .await
        .expect("first update");
    let mut stale = created;
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = api
        .replace("occ", &PostParams::default(), &stale)
        .await
        .expect_err("stale update");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(api.get("occ").await.unwrap().data.unwrap()["k"], "2");
}

#[tokio::test]
async fn watch_from_resource_version_is_ordered_and_complete() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    // The root CA publisher writes kube-root-ca.crt here at start: let it
    // finish so the watch below sees only this test's writes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api
        .get_opt("kube-root-ca.crt")
        .await
        .expect("get")
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "kube-root-ca.crt");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("w{i}"), "v"))
            .await
            .expect("create");
    }
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"k": "changed"}})),
    )
    .await
    .expect("patch");
    api.delete("w2", &DeleteParams::default())
        .await
        .expect("delete");
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("timely")
        .expect("ok")
    {
        match ev {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            _ => {}
        }
        if seen.len() == 7 {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "ADDED w0",
            "ADDED w1",
            "ADDED w2",
            "ADDED w3",
            "ADDED w4",
            "MODIFIED w1",
            "DELETED w2"
        ]
    );
}

#[tokio::test]
async fn watch_bookmarks_and_initial_events() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("pre", "v"))
        .await
        .expect("create");
    let params = WatchParams::streaming_lists().timeout(10);
    let mut stream = api.watch(&params, "").await.expect("watch").boxed();
    let mut added = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("timely")
            .expect("ok");
        match ev.expect("event") {
            WatchEvent::Added(o) => added.push(o.metadata.name.unwrap()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true"),
                    "first bookmark ends the initial events"
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The root CA publisher's ConfigMap may be there too.
    added.retain(|n| n != "kube-root-ca.crt");
    assert_eq!(added, ["pre"]);
}

#[tokio::test]
async fn too_old_resource_version_is_gone_and_watcher_relists() {
    let (server, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("g{i}"), "v"))
            .await
            .expect("create");
    }
    let current = server
        .running
        .api
        .store
        .storage()
        .current_revision()
        .await
        .expect("rev");
    server
        .running
        .api
        .store
        .storage()
        .compact(current)
        .await
        .expect("compact");
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), "1")
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("timely")
    {
        Ok(Some(WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // The runtime watcher recovers by relisting.
    let names: Vec<String> = watcher(api.clone(), watcher::Config::default())
        .take(5)
        .filter_map(|ev| async move {
            match ev {
                Ok(watcher::Event::InitApply(o)) => o.metadata.name,
                _ => None,
            }
        })
        .take(3)
        .collect()
        .await;
    assert_eq!(names.len(), 3);
}

#[tokio::test]
async fn default_namespaces_exist_and_unknown_namespace_is_not_found() {
    let (_server, client) = server().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.iter().any(|n| n == ns), "{names:?}");
    }
    let api: Api<ConfigMap> = Api::namespaced(client, "nope");
    match api.create(&PostParams::default(), &cm("x", "y")).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("{other:?}"),
    }
}
