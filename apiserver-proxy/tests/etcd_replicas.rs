//! Two nestkube API servers over one etcd (`--storage-backend etcd`), sharing the PKI: a write
//! through one is listed, watched and compare-and-swapped through the other, with one
//! `resourceVersion` space; only the first holds the controllers' lease. Starts a throwaway etcd from the binary `e2e/setup` builds; without
//! it the test fails, unless `NESTKUBE_E2E=0`, where it prints SKIPPED and passes.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::Kubeconfig;
use nestkube_apiserver::server::{RunningServer, ServeConfig, start};
use nestkube_storage::lease::CONTROLLERS_LEASE;
use nestkube_storage::{Backend, LocalEtcd, Storage};

mod common;

const T: Duration = Duration::from_secs(20);

async fn replica(dir: &Path, etcd: &LocalEtcd) -> (RunningServer, Client) {
    let running = start(ServeConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        backend: Backend::Etcd(etcd.config("/nestkube")),
    })
    .await
    .expect("start replica");
    let kubeconfig = Kubeconfig::read_from(&running.root_kubeconfig).expect("root kubeconfig");
    let client = common::client_for(kubeconfig).await;
    (running, client)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": value},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_one_etcd() {
    if LocalEtcd::binary().is_err() && std::env::var("NESTKUBE_E2E").as_deref() == Ok("0") {
        println!("SKIPPED: no etcd binary (NESTKUBE_E2E_ETCD) and NESTKUBE_E2E=0");
        return;
    }
    let etcd = LocalEtcd::start()
        .await
        .unwrap_or_else(|e| panic!("this test needs etcd: {e}"));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, client_a) = replica(da.path(), &etcd).await;
    // Replicas share the PKI (as they would share a mounted secret).
    copy_dir(&da.path().join("pki"), &db.path().join("pki"));
    let (_b, client_b) = replica(db.path(), &etcd).await;
    let on_a: Api<ConfigMap> = Api::namespaced(client_a, "default");
    let on_b: Api<ConfigMap> = Api::namespaced(client_b, "default");

    // A watch on B from its list's resourceVersion sees a create made through A.
    let rv = on_b
        .list(&ListParams::default())
        .await
        .expect("list on b")
        .metadata
        .resource_version
        .expect("list rv");
    let mut watch = on_b
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .expect("watch on b")
        .boxed();
    let created = on_a
        .create(&PostParams::default(), &cm("shared", "1"))
        .await
        .expect("create on a");
    let seen = tokio::time::timeout(T, async {
        while let Some(ev) = watch.next().await {
            if let WatchEvent::Added(o) = ev.expect("watch event")
                && o.metadata.name.as_deref() == Some("shared")
            {
                return o;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("event in time");
    assert_eq!(
        seen.metadata.resource_version,
        created.metadata.resource_version
    );

    // B reads it, updates it; A's stale copy then conflicts.
    let mut got = on_b.get("shared").await.expect("get on b");
    got.data = Some([("k".to_string(), "2".to_string())].into());
    on_b.replace("shared", &PostParams::default(), &got)
        .await
        .expect("update on b");
    let mut stale = created;
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    match on_a.replace("shared", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(on_a.get("shared").await.unwrap().data.unwrap()["k"], "2");

    // Controllers run on one replica: the first one took the controllers' lease.
    let storage = nestkube_storage::EtcdStorage::new(
        etcd.config("/nestkube"),
        nestkube_storage::StorageConfig::default(),
    );
    let lease = tokio::time::timeout(T, async {
        loop {
            if let Some(kv) = storage.get(CONTROLLERS_LEASE).await.expect("read lease") {
                return kv;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a replica takes the controllers' lease");
    let holder = String::from_utf8_lossy(&lease.value).to_string();
    assert!(
        holder.contains(&a.local_addr.to_string()),
        "lease held by {holder}, not the first replica {}",
        a.local_addr
    );
}
