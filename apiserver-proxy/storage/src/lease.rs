//! Leader election over a [`Storage`]: of several replicas sharing one store (etcd), at most one
//! holds the lease at a time, so singletons (the controllers) run once.
//!
//! The lease is one record (default key `/_leases/controllers`; `/_` keys are internal and never
//! seen by controllers) naming its holder. The holder renews it by compare-and-swap on its
//! `mod_revision` every [`LeaseConfig::renew_every`]. A candidate takes it over only after it has
//! watched the record's revision stay unchanged for a whole [`LeaseConfig::duration`] on its own
//! monotonic clock — no wall clocks are compared across machines (kube's leader election does
//! the same). The holder gives up (reports [`Leadership::Lost`]) as soon as a renewal conflicts,
//! or when it has not renewed for `duration - renew_every` measured from the moment it *sent* its
//! last successful renewal, which is before any candidate can have started counting, so a new
//! leader is never elected while the old one still believes it leads.
//!
//! It owns one task per [`LeaderElection`]. It must never write the lease without a revision
//! precondition (except creating it when absent), and never report leadership it cannot prove.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Revision, Storage, StorageError};

/// The key of the controllers' lease.
pub const CONTROLLERS_LEASE: &str = "/_leases/controllers";

/// How a replica competes for a lease.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The lease record's key.
    pub key: String,
    /// This replica's identity, unique among replicas (e.g. host name + process id + random).
    pub holder: String,
    /// A lease not renewed for this long may be taken over (kube: 15 s).
    pub duration: Duration,
    /// How often the holder renews; must be well below `duration` (kube: 2 s).
    pub renew_every: Duration,
    /// How often a candidate checks the lease (kube: 2 s).
    pub retry_every: Duration,
}

impl LeaseConfig {
    /// The controllers' lease for `holder` with kube-controller-manager's timings.
    pub fn controllers(holder: impl Into<String>) -> Self {
        LeaseConfig {
            key: CONTROLLERS_LEASE.to_string(),
            holder: holder.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// What a replica knows about its leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Not (yet) the leader.
    Candidate,
    /// The leader, at the lease record's revision `revision`.
    Leader {
        /// The lease's `mod_revision` after the last renewal.
        revision: Revision,
    },
    /// Was the leader and lost it; the election is over for this replica (restart to compete
    /// again), because whatever ran as leader may still be running.
    Lost,
}

/// One replica's participation in an election; dropping it stops competing (a held lease then
/// expires after its duration).
pub struct LeaderElection {
    rx: watch::Receiver<Leadership>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderElection {
    /// Starts competing for the lease in `storage` (on the current tokio runtime).
    pub fn start(storage: Arc<dyn Storage>, config: LeaseConfig) -> Self {
        let (tx, rx) = watch::channel(Leadership::Candidate);
        let task = tokio::spawn(run(storage, config, tx));
        LeaderElection { rx, task }
    }

    /// The current state.
    pub fn state(&self) -> Leadership {
        *self.rx.borrow()
    }

    /// Waits until this replica leads; `false` if the election ended first.
    pub async fn acquired(&mut self) -> bool {
        matches!(
            self.rx
                .wait_for(|s| !matches!(s, Leadership::Candidate))
                .await
                .map(|s| *s),
            Ok(Leadership::Leader { .. })
        )
    }

    /// Waits until leadership, once held, is lost (or the election ended).
    pub async fn lost(&mut self) {
        let _ = self.rx.wait_for(|s| *s == Leadership::Lost).await;
    }
}

impl Drop for LeaderElection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(config: &LeaseConfig) -> Bytes {
    Bytes::from(format!(
        "{{\"holder\":{:?},\"durationSeconds\":{}}}",
        config.holder,
        config.duration.as_secs_f64()
    ))
}

async fn run(storage: Arc<dyn Storage>, config: LeaseConfig, tx: watch::Sender<Leadership>) {
    let value = record(&config);
    // The revision a candidate saw and since when (its own clock).
    let mut observed: Option<(Revision, Instant)> = None;
    // Candidate: try to acquire.
    let (mut revision, mut renewed_at) = loop {
        let sent = Instant::now();
        let attempt = match storage.get(&config.key).await {
            Ok(None) => storage.create(&config.key, value.clone()).await.map(Some),
            Ok(Some(kv)) => match observed {
                Some((rev, since))
                    if rev == kv.mod_revision && since.elapsed() >= config.duration =>
                {
                    storage
                        .update(&config.key, value.clone(), kv.mod_revision)
                        .await
                        .map(Some)
                }
                Some((rev, _)) if rev == kv.mod_revision => Ok(None),
                _ => {
                    observed = Some((kv.mod_revision, Instant::now()));
                    Ok(None)
                }
            },
            Err(e) => Err(e),
        };
        match attempt {
            Ok(Some(kv)) => break (kv.mod_revision, sent),
            Ok(None) => {}
            Err(StorageError::AlreadyExists { .. } | StorageError::Conflict { .. }) => {
                observed = None;
            }
            Err(e) => tracing::warn!(key = %config.key, error = %e, "leader election: read failed"),
        }
        tokio::time::sleep(config.retry_every).await;
    };
    tracing::info!(key = %config.key, holder = %config.holder, "became leader");
    let _ = tx.send(Leadership::Leader { revision });
    // Leader: renew until a renewal conflicts or the lease may have expired.
    let give_up_after = config.duration.saturating_sub(config.renew_every);
    let mut next = renewed_at + config.renew_every;
    loop {
        let deadline = renewed_at + give_up_after;
        tokio::time::sleep_until(next.min(deadline)).await;
        if Instant::now() >= deadline {
            break;
        }
        let sent = Instant::now();
        let renewal = tokio::time::timeout_at(
            deadline,
            storage.update(&config.key, value.clone(), revision),
        )
        .await;
        match renewal {
            Ok(Ok(kv)) => {
                revision = kv.mod_revision;
                renewed_at = sent;
                next = sent + config.renew_every;
                let _ = tx.send(Leadership::Leader { revision });
            }
            Ok(Err(StorageError::Conflict { .. } | StorageError::NotFound { .. })) => break,
            Ok(Err(e)) => {
                tracing::warn!(key = %config.key, error = %e, "lease renewal failed; retrying");
                next = Instant::now() + config.renew_every / 4;
            }
            Err(_) => break,
        }
    }
    tracing::error!(key = %config.key, holder = %config.holder, "lost leadership");
    let _ = tx.send(Leadership::Lost);
}
