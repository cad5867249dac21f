//! Behaviour of every backend through the `Storage` trait: revisions, CAS, list pages, watch
//! replay, compaction, slow watchers, progress, delete_prefix and restarts.
//!
//! The same tests run against a real etcd (module `etcd`), one fresh local member per test, from
//! the binary named by `NESTKUBE_E2E_ETCD` or else by `e2e/setup --print-env`. Without one the
//! etcd tests fail, unless `NESTKUBE_E2E=0`, where they print SKIPPED and pass. Revisions are asserted
//! relative to the store's revision when the test starts (0 for embedded stores, 1 for a fresh
//! etcd).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
#[cfg(feature = "etcd")]
use nestkube_storage::{EtcdStorage, LocalEtcd};
use nestkube_storage::{
    ListOptions, MemoryStorage, RedbStorage, SledStorage, Storage, StorageConfig, StorageError,
    WatchEvent,
};
use tempfile::TempDir;

#[cfg(feature = "etcd")]
use crate::common::local_etcd;
use crate::common::{T, b, next};

/// Where a test's store lives: a directory, and for etcd a local etcd member.
struct Env {
    dir: TempDir,
    #[cfg(feature = "etcd")]
    etcd: Option<LocalEtcd>,
}

/// Opens a store of one backend; opening again gives a fresh handle on the same data.
trait Harness {
    /// The backend keeps data across handles.
    const DURABLE: bool;
    /// Watch history is the server's (etcd): it survives reopening and is trimmed only by
    /// compaction, not by `StorageConfig::history_*`.
    const SERVER_HISTORY: bool = false;
    /// The environment of one test; `None` = skipped.
    async fn env() -> Option<Env> {
        Some(Env {
            dir: TempDir::new().unwrap(),
            #[cfg(feature = "etcd")]
            etcd: None,
        })
    }
    async fn open(env: &Env, config: StorageConfig) -> Arc<dyn Storage>;
}

struct Mem;
impl Harness for Mem {
    async fn open(_: &Env, config: StorageConfig) -> Arc<dyn Storage> {
        Arc::new(MemoryStorage::with_config(config))
    }
    const DURABLE: bool = false;
}
struct Sled;
impl Harness for Sled {
    async fn open(env: &Env, config: StorageConfig) -> Arc<dyn Storage> {
        // sled's background flusher can hold the directory's file lock for a
        // moment after the previous handle is dropped: retry a reopen briefly.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match SledStorage::open_with(env.dir.path(), config.clone()) {
                Ok(s) => return Arc::new(s),
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("open sled: {e}"),
            }
        }
    }
    const DURABLE: bool = true;
}
struct Redb;
impl Harness for Redb {
    async fn open(env: &Env, config: StorageConfig) -> Arc<dyn Storage> {
        Arc::new(RedbStorage::open_with(env.dir.path(), config).expect("open redb"))
    }
    const DURABLE: bool = true;
}
#[cfg(feature = "etcd")]
struct Etcd;
#[cfg(feature = "etcd")]
impl Harness for Etcd {
    const DURABLE: bool = true;
    const SERVER_HISTORY: bool = true;
    async fn env() -> Option<Env> {
        Some(Env {
            dir: TempDir::new().unwrap(),
            etcd: Some(local_etcd().await?),
        })
    }
    async fn open(env: &Env, config: StorageConfig) -> Arc<dyn Storage> {
        let etcd = env.etcd.as_ref().expect("etcd env");
        Arc::new(
            EtcdStorage::connect(etcd.config("/conformance"), config)
                .await
                .expect("connect to etcd"),
        )
    }
}

macro_rules! env_or_skip {
    ($h:ty) => {
        match <$h>::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

fn put_key(ev: &WatchEvent) -> (&str, u64, bool) {
    match ev {
        WatchEvent::Put { kv, prev } => (kv.key.as_str(), kv.mod_revision, prev.is_none()),
        other => panic!("expected put, got {other:?}"),
    }
}

async fn crud_and_cas<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    if !H::SERVER_HISTORY {
        assert_eq!(r, 0, "a fresh embedded store is at revision 0");
    }
    let a = s.create("/c/a", b("1")).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (r + 1, r + 1));
    assert!(matches!(
        s.create("/c/a", b("x")).await,
        Err(StorageError::AlreadyExists { .. })
    ));
    let a2 = s.update("/c/a", b("2"), r + 1).await.unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (r + 1, r + 2));
    match s.update("/c/a", b("3"), r + 1).await {
        Err(StorageError::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (r + 1, r + 2)),
        other => panic!("expected conflict, got {other:?}"),
    }
    // Unconditional update.
    let a3 = s.update("/c/a", b("3"), 0).await.unwrap();
    assert_eq!((a3.create_revision, a3.mod_revision), (r + 1, r + 3));
    assert!(matches!(
        s.update("/c/missing", b("x"), 0).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete("/c/a", r + 2).await,
        Err(StorageError::Conflict { .. })
    ));
    let (prev, rev) = s.delete("/c/a", r + 3).await.unwrap();
    assert_eq!((prev.value, prev.mod_revision, rev), (b("3"), r + 3, r + 4));
    assert_eq!(s.get("/c/a").await.unwrap(), None);
    assert!(matches!(
        s.delete("/c/a", 0).await,
        Err(StorageError::NotFound { .. })
    ));
    // Recreate: new create_revision.
    let a4 = s.create("/c/a", b("4")).await.unwrap();
    assert_eq!((a4.create_revision, a4.mod_revision), (r + 5, r + 5));
    assert_eq!(s.get("/c/a").await.unwrap(), Some(a4));
    // Failed writes consume no revision.
    assert_eq!(s.current_revision().await.unwrap(), r + 5);
}

async fn list_pages<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    for i in 0..25 {
        s.create(&format!("/c/pods/{i:03}"), b("v")).await.unwrap();
    }
    s.create("/c/pod", b("outside")).await.unwrap();
    s.create("/c/podsz", b("outside")).await.unwrap();
    s.create("/d/pods/x", b("outside")).await.unwrap();
    let all = s.list("/c/pods/", ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 25);
    assert_eq!(all.remaining, 0);
    assert_eq!(all.revision, r + 28);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list(
                "/c/pods/",
                ListOptions {
                    start_after: after.clone(),
                    limit: Some(10),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.remaining as usize, 25 - seen.len() - page.items.len());
        seen.extend(page.items.iter().map(|kv| kv.key.clone()));
        if page.remaining == 0 {
            break;
        }
        after = page.items.last().map(|kv| kv.key.clone());
    }
    let expected: Vec<String> = (0..25).map(|i| format!("/c/pods/{i:03}")).collect();
    assert_eq!(seen, expected);
    // start_after before the prefix starts at the prefix.
    let page = s
        .list(
            "/c/pods/",
            ListOptions {
                start_after: Some("/a".into()),
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items[0].key, "/c/pods/000");
}

async fn watch_replay_and_live<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    for i in 0..10 {
        s.create(&format!("/w/{i}"), b("v")).await.unwrap();
        s.create(&format!("/other/{i}"), b("v")).await.unwrap();
    }
    // Revisions: /w/i at r+2i+1. Replay from r+10 => /w/5.. (revisions r+11, ..., r+19).
    let mut w = s.watch("/w/", r + 10).await.unwrap();
    for i in 5..10 {
        let ev = next(&mut w).await;
        assert_eq!(
            put_key(&ev),
            (format!("/w/{i}").as_str(), r + 2 * i + 1, true)
        );
    }
    let u = s.update("/w/3", b("new"), 0).await.unwrap();
    s.create("/other/x", b("v")).await.unwrap();
    s.delete("/w/4", 0).await.unwrap();
    match next(&mut w).await {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(kv, u);
            assert_eq!(prev.unwrap().mod_revision, r + 7);
        }
        other => panic!("{other:?}"),
    }
    match next(&mut w).await {
        WatchEvent::Delete { prev, revision } => {
            assert_eq!(prev.key, "/w/4");
            assert_eq!(prev.mod_revision, r + 9);
            assert_eq!(revision, r + 23);
        }
        other => panic!("{other:?}"),
    }
    // Watch from now: only new events.
    let now = s.current_revision().await.unwrap();
    let mut w2 = s.watch("/w/", now).await.unwrap();
    s.create("/w/new", b("v")).await.unwrap();
    assert_eq!(put_key(&next(&mut w2).await).0, "/w/new");
    assert_eq!(put_key(&next(&mut w).await).0, "/w/new");
}

async fn compacted<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    for i in 0..10 {
        s.create(&format!("/k/{i}"), b("v")).await.unwrap();
    }
    s.watch("/k/", r).await.unwrap();
    s.compact(r + 5).await.unwrap();
    match s.watch("/k/", r + 4).await {
        Err(StorageError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (r + 4, r + 5)),
        other => panic!("expected compacted, got {other:?}"),
    }
    let mut w = s.watch("/k/", r + 5).await.unwrap();
    assert_eq!(next(&mut w).await.revision(), r + 6);
    // Values are untouched by compaction.
    assert_eq!(
        s.list("/k/", ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        10
    );
}

async fn history_window<H: Harness>() {
    if H::SERVER_HISTORY {
        // etcd's history is trimmed only by compaction (see `compacted`).
        return;
    }
    let env = env_or_skip!(H);
    let config = StorageConfig {
        history_min_age: Duration::ZERO,
        history_min_events: 5,
        ..StorageConfig::default()
    };
    let s = H::open(&env, config).await;
    for i in 0..20 {
        s.create(&format!("/h/{i}"), b("v")).await.unwrap();
    }
    // Only the last 5 events are kept: revisions 16..=20.
    assert!(matches!(
        s.watch("/h/", 14).await,
        Err(StorageError::Compacted { compacted: 15, .. })
    ));
    let mut w = s.watch("/h/", 15).await.unwrap();
    assert_eq!(next(&mut w).await.revision(), 16);
}

async fn slow_watcher<H: Harness>() {
    let env = env_or_skip!(H);
    let config = StorageConfig {
        watch_buffer: 8,
        ..StorageConfig::default()
    };
    let s = H::open(&env, config).await;
    let r = s.current_revision().await.unwrap();
    let mut slow = s.watch("/s/", r).await.unwrap();
    let mut fast = s.watch("/s/", r).await.unwrap();
    // Writers are never stalled by the slow watcher; the fast one sees every event.
    tokio::time::timeout(T, async {
        for i in 0..50 {
            let kv = s.create(&format!("/s/{i:02}"), b("v")).await.unwrap();
            assert_eq!(next(&mut fast).await.revision(), kv.mod_revision);
        }
    })
    .await
    .expect("writers not blocked by a slow watcher");
    assert_eq!(s.current_revision().await.unwrap(), r + 50);
    // The slow one gets exactly what fit, in order, then the error, then the end.
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(T, slow.next()).await.unwrap() {
            Some(Ok(ev)) => got.push(ev.revision()),
            Some(Err(StorageError::WatcherTooSlow)) => break,
            other => panic!("expected WatcherTooSlow, got {other:?}"),
        }
    }
    assert_eq!(got, (r + 1..=r + 8).collect::<Vec<_>>());
    assert!(slow.next().await.is_none());
}

async fn progress<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    s.create("/elsewhere", b("v")).await.unwrap();
    let mut w = s.watch("/p/", r + 1).await.unwrap();
    w.request_progress();
    assert_eq!(next(&mut w).await, WatchEvent::Progress { revision: r + 1 });
    // Pending events are delivered before the progress answer.
    for i in 0..3 {
        s.create(&format!("/p/{i}"), b("v")).await.unwrap();
    }
    s.create("/elsewhere2", b("v")).await.unwrap();
    w.request_progress();
    let mut revs = Vec::new();
    loop {
        match next(&mut w).await {
            WatchEvent::Progress { revision } => {
                assert_eq!(revision, r + 5);
                break;
            }
            ev => revs.push(ev.revision()),
        }
    }
    assert_eq!(revs, vec![r + 2, r + 3, r + 4]);
    // Progress on a replaying stream waits for the replay.
    let mut w = s.watch("/p/", r).await.unwrap();
    w.request_progress();
    let mut evs = Vec::new();
    for _ in 0..4 {
        evs.push(next(&mut w).await);
    }
    assert_eq!(evs[3], WatchEvent::Progress { revision: r + 5 });
}

async fn progress_after_cancelled_next<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    s.create("/x", b("v")).await.unwrap();
    let w = Arc::new(tokio::sync::Mutex::new(
        s.watch("/p/", r + 1).await.unwrap(),
    ));
    // The API server's pattern: select between next() and a bookmark tick; the tick cancels the
    // parked next(), requests progress, and polls again.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let w2 = w.clone();
    let task = tokio::spawn(async move {
        let mut guard = w2.lock().await;
        tokio::select! {
            ev = guard.next() => ev,
            _ = rx.recv() => {
                guard.request_progress();
                guard.next().await
            }
        }
    });
    tx.send(()).await.unwrap();
    let ev = tokio::time::timeout(T, task).await.unwrap().unwrap();
    assert_eq!(
        ev.unwrap().unwrap(),
        WatchEvent::Progress { revision: r + 1 }
    );
}

async fn delete_prefix<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    for i in 0..5 {
        s.create(&format!("/team-a/pods/{i}"), b("v"))
            .await
            .unwrap();
        s.create(&format!("/team-b/pods/{i}"), b("v"))
            .await
            .unwrap();
    }
    let mut w = s.watch("/team-a/", r + 10).await.unwrap();
    assert_eq!(s.delete_prefix("/team-a/").await.unwrap(), 5);
    let mut deleted = Vec::new();
    for _ in 0..5 {
        match next(&mut w).await {
            WatchEvent::Delete { prev, revision } => {
                assert_eq!(revision, r + 11);
                deleted.push(prev.key);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(deleted.len(), 5);
    assert!(
        s.list("/team-a/", ListOptions::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        s.list("/team-b/", ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    assert_eq!(s.delete_prefix("/team-a/").await.unwrap(), 0);
    assert_eq!(s.current_revision().await.unwrap(), r + 11);
}

async fn concurrent_writers<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    let r = s.current_revision().await.unwrap();
    let mut w = s.watch("/cw/", r).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..20 {
                let key = format!("/cw/{t}/{i}");
                revs.push(s.create(&key, b(&key)).await.unwrap().mod_revision);
                // Contended CAS on one shared key: exactly one writer wins per revision.
                loop {
                    let cur = s.get("/cw/shared").await.unwrap();
                    let res = match cur {
                        None => s.create("/cw/shared", b("0")).await.map(|_| ()),
                        Some(kv) => s
                            .update("/cw/shared", b("n"), kv.mod_revision)
                            .await
                            .map(|_| ()),
                    };
                    match res {
                        Ok(()) => break,
                        Err(StorageError::Conflict { .. } | StorageError::AlreadyExists { .. }) => {
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 320);
    let last = s.current_revision().await.unwrap();
    assert_eq!(last, r + 640);
    let mut prev = r;
    for _ in 0..640 {
        let rev = next(&mut w).await.revision();
        assert_eq!(rev, prev + 1, "watch delivers every revision in order");
        prev = rev;
    }
    assert!(s.get("/cw/shared").await.unwrap().is_some());
}

async fn restart_keeps_revisions<H: Harness>() {
    if !H::DURABLE {
        return;
    }
    let env = env_or_skip!(H);
    let r;
    {
        let s = H::open(&env, StorageConfig::default()).await;
        r = s.current_revision().await.unwrap();
        for i in 0..10 {
            s.create(&format!("/r/{i}"), b(&format!("v{i}")))
                .await
                .unwrap();
        }
        s.delete("/r/9", 0).await.unwrap();
        assert_eq!(s.current_revision().await.unwrap(), r + 11);
    }
    let s = H::open(&env, StorageConfig::default()).await;
    assert_eq!(s.current_revision().await.unwrap(), r + 11);
    let kv = s.get("/r/3").await.unwrap().unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision),
        (b("v3"), r + 4, r + 4)
    );
    assert_eq!(s.get("/r/9").await.unwrap(), None);
    if H::SERVER_HISTORY {
        // The server's history survives: a watch from before the reopen replays it.
        let mut w = s.watch("/r/", r + 5).await.unwrap();
        assert_eq!(next(&mut w).await.revision(), r + 6);
    } else {
        // History did not survive: watching from before the restart is Gone.
        assert!(matches!(
            s.watch("/r/", r + 5).await,
            Err(StorageError::Compacted { compacted, .. }) if compacted == r + 11
        ));
    }
    let mut w = s.watch("/r/", r + 11).await.unwrap();
    // The revision after a trailing delete is not reused.
    assert_eq!(
        s.create("/r/new", b("x")).await.unwrap().mod_revision,
        r + 12
    );
    assert_eq!(next(&mut w).await.revision(), r + 12);
}

async fn large_values_survive_restart<H: Harness>() {
    if !H::DURABLE {
        return;
    }
    let env = env_or_skip!(H);
    let big = Bytes::from(
        (0..1_500_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    {
        let s = H::open(&env, StorageConfig::default()).await;
        s.create("/big/a", big.clone()).await.unwrap();
    }
    let s = H::open(&env, StorageConfig::default()).await;
    assert_eq!(s.get("/big/a").await.unwrap().unwrap().value, big);
}

async fn dropped_watchers_unregister<H: Harness>() {
    let s = MemoryStorage::new();
    let _ = H::DURABLE;
    let w1 = s.watch("/a/", 0).await.unwrap();
    let w2 = s.watch("/a/", 0).await.unwrap();
    let w3 = s.watch("/b/c/", 0).await.unwrap();
    assert_eq!(s.hub().watcher_count(), 3);
    drop(w1);
    drop(w3);
    assert_eq!(s.hub().watcher_count(), 1);
    drop(w2);
    assert_eq!(s.hub().watcher_count(), 0);
}

/// Racing creates of one key: every loser's `AlreadyExists` is answered only once the winner's
/// write is visible, so a read right after it finds the key (create-if-absent, then read).
async fn already_exists_sees_the_winner<H: Harness>() {
    let env = env_or_skip!(H);
    let s = H::open(&env, StorageConfig::default()).await;
    for round in 0..20 {
        let key = format!("/race/{round}");
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (s, key) = (s.clone(), key.clone());
                tokio::spawn(async move {
                    match s.create(&key, b(&i.to_string())).await {
                        Ok(kv) => Some(kv),
                        Err(StorageError::AlreadyExists { .. }) => {
                            assert!(s.get(&key).await.unwrap().is_some(), "{key} not visible");
                            None
                        }
                        Err(e) => panic!("create {key}: {e}"),
                    }
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(winners, 1, "{key}");
    }
}

macro_rules! backend_tests {
    ($module:ident, $h:ty) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn crud_and_cas() {
                super::crud_and_cas::<$h>().await
            }
            #[tokio::test]
            async fn list_pages() {
                super::list_pages::<$h>().await
            }
            #[tokio::test]
            async fn watch_replay_and_live() {
                super::watch_replay_and_live::<$h>().await
            }
            #[tokio::test]
            async fn compacted() {
                super::compacted::<$h>().await
            }
            #[tokio::test]
            async fn history_window() {
                super::history_window::<$h>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_watcher() {
                super::slow_watcher::<$h>().await
            }
            #[tokio::test]
            async fn progress() {
                super::progress::<$h>().await
            }
            #[tokio::test]
            async fn progress_after_cancelled_next() {
                super::progress_after_cancelled_next::<$h>().await
            }
            #[tokio::test]
            async fn delete_prefix() {
                super::delete_prefix::<$h>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writers() {
                super::concurrent_writers::<$h>().await
            }
            #[tokio::test]
            async fn restart_keeps_revisions() {
                super::restart_keeps_revisions::<$h>().await
            }
            #[tokio::test]
            async fn large_values_survive_restart() {
                super::large_values_survive_restart::<$h>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn already_exists_sees_the_winner() {
                super::already_exists_sees_the_winner::<$h>().await
            }
            #[tokio::test]
            async fn dropped_watchers_unregister() {
                super::dropped_watchers_unregister::<$h>().await
            }
        }
    };
}

backend_tests!(memory, Mem);
backend_tests!(sled, Sled);
backend_tests!(redb, Redb);
#[cfg(feature = "etcd")]
backend_tests!(etcd, Etcd);
