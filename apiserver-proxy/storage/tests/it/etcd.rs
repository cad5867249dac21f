//! What only the etcd backend has: several handles (replicas) on one etcd see each other's
//! writes and watches, installations with distinct key prefixes are isolated, the compactor
//! bounds history, and `--storage-backend etcd` opens it. The shared conformance suite runs in
//! `storage.rs` (module `etcd`).
//!
//! Needs the etcd binary named by `NESTKUBE_E2E_ETCD` or else by `e2e/setup --print-env`; without
//! one these tests fail, unless `NESTKUBE_E2E=0`, where they print SKIPPED and pass.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nestkube_storage::{
    Backend, EtcdConfig, EtcdStorage, ListOptions, Storage, StorageConfig, StorageError, WatchEvent,
};

use crate::common::{T, b, local_etcd, next};

async fn store(config: EtcdConfig) -> Arc<dyn Storage> {
    Arc::new(
        EtcdStorage::connect(config, StorageConfig::default())
            .await
            .expect("connect"),
    )
}

/// Two replicas over one etcd: a write through one is seen by a watch and reads on the other,
/// and compare-and-swap holds across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_etcd() {
    let Some(etcd) = local_etcd().await else {
        return;
    };
    let a = store(etcd.config("/nestkube")).await;
    let b_ = store(etcd.config("/nestkube")).await;
    let from = b_.current_revision().await.unwrap();
    let mut w = b_.watch("/", from).await.unwrap();
    let kv = a
        .create("/root/core/configmaps/default/x", b("1"))
        .await
        .unwrap();
    match next(&mut w).await {
        WatchEvent::Put { kv: seen, prev } => {
            assert_eq!(seen, kv);
            assert!(prev.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b_.get(&kv.key).await.unwrap(), Some(kv.clone()));
    // Both replicas race an update from the same revision: exactly one wins.
    let (ra, rb) = tokio::join!(
        a.update(&kv.key, b("a"), kv.mod_revision),
        b_.update(&kv.key, b("b"), kv.mod_revision)
    );
    let wins = [ra.is_ok(), rb.is_ok()];
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(matches!(loser, Err(StorageError::Conflict { .. })));
    // The watcher on b sees the winning update with its previous value.
    match next(&mut w).await {
        WatchEvent::Put { kv: seen, prev } => {
            assert_eq!(prev.unwrap().mod_revision, kv.mod_revision);
            assert_eq!(a.get(&kv.key).await.unwrap(), Some(seen));
        }
        other => panic!("{other:?}"),
    }
    // Progress on b covers the write made through a.
    let rev = a.delete(&kv.key, 0).await.unwrap().1;
    assert!(matches!(next(&mut w).await, WatchEvent::Delete { revision, .. } if revision == rev));
    w.request_progress();
    assert_eq!(next(&mut w).await, WatchEvent::Progress { revision: rev });
}

/// Installations with different prefixes on one etcd never see each other's keys.
#[tokio::test]
async fn prefixes_isolate_installations() {
    let Some(etcd) = local_etcd().await else {
        return;
    };
    let one = store(etcd.config("/nestkube")).await;
    let two = store(etcd.config("/nestkube-b/")).await;
    let mut w2 = two
        .watch("/", two.current_revision().await.unwrap())
        .await
        .unwrap();
    one.create("/c/a", b("1")).await.unwrap();
    two.create("/c/a", b("2")).await.unwrap();
    assert_eq!(one.get("/c/a").await.unwrap().unwrap().value, b("1"));
    assert_eq!(two.get("/c/a").await.unwrap().unwrap().value, b("2"));
    let list = one.list("/", ListOptions::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    // The first event two's watch sees is its own write.
    match next(&mut w2).await {
        WatchEvent::Put { kv, .. } => assert_eq!((kv.key.as_str(), kv.value), ("/c/a", b("2"))),
        other => panic!("{other:?}"),
    }
    assert_eq!(one.delete_prefix("/").await.unwrap(), 1);
    assert!(two.get("/c/a").await.unwrap().is_some());
}

/// The background compactor keeps at least one interval of history and compacts older history.
#[tokio::test]
async fn compactor_bounds_history() {
    let Some(etcd) = local_etcd().await else {
        return;
    };
    let config = EtcdConfig {
        compaction_interval: Some(Duration::from_millis(200)),
        ..etcd.config("/nestkube")
    };
    let s = store(config).await;
    let first = s.create("/h/a", b("1")).await.unwrap().mod_revision;
    s.create("/h/b", b("1")).await.unwrap();
    // Poll (bounded) until a watch from before the first write is Gone.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match s.watch("/h/", first - 1).await {
            Err(StorageError::Compacted { compacted, .. }) => {
                assert!(compacted >= first);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never compacted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Values survive compaction.
    assert_eq!(s.get("/h/a").await.unwrap().unwrap().value, b("1"));
}

/// `--storage-backend etcd` parses to the etcd backend, which opens without a directory.
#[tokio::test]
async fn backend_flag_opens_etcd() {
    let Some(etcd) = local_etcd().await else {
        return;
    };
    let backend: Backend = "etcd".parse().unwrap();
    assert_eq!(backend.as_str(), "etcd");
    let backend = backend.with_etcd_config(etcd.config("/flag"));
    let s = backend.open("unused").unwrap();
    let kv = s.create("/x", b("1")).await.unwrap();
    assert_eq!(s.get("/x").await.unwrap(), Some(kv));
    // Wrong endpoints surface as backend errors on use, not as panics.
    let bad = Backend::Etcd(EtcdConfig {
        endpoints: vec!["http://127.0.0.1:1".into()],
        ..EtcdConfig::default()
    });
    let s = bad.open("unused").unwrap();
    let res = tokio::time::timeout(T, s.get("/x"))
        .await
        .expect("fails in time");
    assert!(matches!(res, Err(StorageError::Backend(_))), "{res:?}");
}

/// Responses above gRPC's 4 MiB default: a list of a large prefix, and one watch batch carrying
/// the previous values of a large `delete_prefix`.
#[tokio::test]
async fn large_lists_and_watch_batches() {
    let Some(etcd) = local_etcd().await else {
        return;
    };
    let s = store(etcd.config("/nestkube")).await;
    let big = Bytes::from(vec![7u8; 1 << 20]);
    for i in 0..6 {
        s.create(&format!("/big/{i}"), big.clone()).await.unwrap();
    }
    let list = s.list("/big/", ListOptions::default()).await.unwrap();
    assert_eq!(list.items.len(), 6);
    let mut w = s.watch("/big/", list.revision).await.unwrap();
    assert_eq!(s.delete_prefix("/big/").await.unwrap(), 6);
    for _ in 0..6 {
        match next(&mut w).await {
            WatchEvent::Delete { prev, .. } => assert_eq!(prev.value.len(), 1 << 20),
            other => panic!("{other:?}"),
        }
    }
}
