//! Leader election over the storage: one leader among replicas, takeover only after the lease
//! expired unrenewed, and a holder whose lease was taken reports `Lost`. Runs over the in-memory
//! store and over a real etcd shared by two handles (skipped like `etcd.rs` without etcd when
//! `NESTKUBE_E2E=0`).

use std::sync::Arc;
use std::time::Duration;

use nestkube_storage::lease::{LeaderElection, Leadership, LeaseConfig};
use nestkube_storage::{EtcdStorage, LocalEtcd, MemoryStorage, Storage, StorageConfig};

use crate::common::local_etcd;

const T: Duration = Duration::from_secs(10);

fn config(holder: &str) -> LeaseConfig {
    LeaseConfig {
        holder: holder.to_string(),
        duration: Duration::from_millis(800),
        renew_every: Duration::from_millis(100),
        retry_every: Duration::from_millis(50),
        ..LeaseConfig::controllers(holder)
    }
}

fn leads(e: &LeaderElection) -> bool {
    matches!(e.state(), Leadership::Leader { .. })
}

/// Two replicas: exactly one leads, never both; when the leader stops, the other takes over.
async fn one_leader_then_takeover(a: Arc<dyn Storage>, b: Arc<dyn Storage>) {
    let mut ea = LeaderElection::start(a, config("a"));
    let mut eb = LeaderElection::start(b, config("b"));
    let first_is_a = tokio::time::timeout(T, async {
        tokio::select! {
            ok = ea.acquired() => { assert!(ok); true }
            ok = eb.acquired() => { assert!(ok); false }
        }
    })
    .await
    .expect("someone leads");
    // For a few renew periods, exactly one leads.
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < until {
        assert!(!(leads(&ea) && leads(&eb)), "two leaders");
        assert_eq!(leads(&ea), first_is_a);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The leader stops (crash): the other takes over, not before the lease expired.
    let (mut survivor, stopped) = if first_is_a { (eb, ea) } else { (ea, eb) };
    let stopped_at = tokio::time::Instant::now();
    drop(stopped);
    assert!(tokio::time::timeout(T, survivor.acquired()).await.unwrap());
    // The stopped leader may have renewed up to `renew_every` before it stopped, and the lease
    // runs from that renewal: the earliest legitimate takeover is `duration - renew_every` after
    // the stop.
    let cfg = config("a");
    assert!(
        stopped_at.elapsed() >= cfg.duration - cfg.renew_every,
        "took over after {:?}, before the lease duration",
        stopped_at.elapsed()
    );
}

/// A holder whose lease is overwritten behind its back reports `Lost` at its next renewal.
async fn stolen_lease_is_lost(s: Arc<dyn Storage>) {
    let mut e = LeaderElection::start(s.clone(), config("a"));
    assert!(tokio::time::timeout(T, e.acquired()).await.unwrap());
    let cfg = config("a");
    s.update(
        &cfg.key,
        bytes::Bytes::from_static(b"{\"holder\":\"thief\"}"),
        0,
    )
    .await
    .unwrap();
    tokio::time::timeout(T, e.lost())
        .await
        .expect("lost in time");
    assert_eq!(e.state(), Leadership::Lost);
}

#[tokio::test]
async fn memory_one_leader_then_takeover() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    one_leader_then_takeover(s.clone(), s).await;
}

#[tokio::test]
async fn memory_stolen_lease_is_lost() {
    stolen_lease_is_lost(Arc::new(MemoryStorage::new())).await;
}

async fn etcd_store(etcd: &LocalEtcd) -> Arc<dyn Storage> {
    Arc::new(
        EtcdStorage::connect(etcd.config("/nestkube"), StorageConfig::default())
            .await
            .expect("connect"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_replicas_elect_one_leader() {
    let Some(etcd) = local_etcd().await else {
        return;
    };
    one_leader_then_takeover(etcd_store(&etcd).await, etcd_store(&etcd).await).await;
}

#[tokio::test]
async fn etcd_stolen_lease_is_lost() {
    let Some(etcd) = local_etcd().await else {
        return;
    };
    stolen_lease_is_lost(etcd_store(&etcd).await).await;
}
