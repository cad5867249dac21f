//! What the syncer knows of each parent's reachability ([`Health`]): the
//! watch task probes a parent whose watch failed, or that a reconcile could
//! not reach ([`Health::suspect`]), every [`PROBE_EVERY`]; while a probe
//! finds it unreachable its reconciles wait without trying
//! ([`Health::is_down`]), and at most [`PER_PARENT`] of them run against it
//! at once.
//!
//! This module never talks to a parent except to probe it (its version).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use super::ParentKey;
use crate::Syncer;

/// Most reconciles of one parent running at once: half of what the queue
/// runs, so the clusters of other parents always get the rest.
pub(crate) const PER_PARENT: usize = nestkube_apiserver::controllers::queue::MAX_CONCURRENT / 2;

/// What the syncer knows of one parent's reachability, shared by its watch
/// task (which probes it) and the reconciles against it (which report
/// failures to reach it, and fail at once while it is down).
pub(crate) struct Health {
    /// A probe found it unreachable, and none answered since.
    pub(super) down: AtomicBool,
    /// A reconcile could not reach it: probe it.
    pub(super) suspect: Notify,
    /// Reconciles against it running now (at most [`PER_PARENT`]).
    pub(crate) permits: Arc<Semaphore>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            down: AtomicBool::new(false),
            suspect: Notify::new(),
            permits: Arc::new(Semaphore::new(PER_PARENT)),
        }
    }
}

impl Health {
    /// Whether the parent is known unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Asks the parent's watch task to probe it.
    pub(crate) fn suspect(&self) {
        self.suspect.notify_one();
    }
}

/// Clears [`Health::down`] when the watch task that sets it ends (no stale
/// verdict fails the reconciles of a parent nobody probes).
pub(super) struct Probing(pub(super) Arc<Health>);

impl Drop for Probing {
    fn drop(&mut self) {
        self.0.down.store(false, Ordering::Relaxed);
    }
}

/// How often a parent whose watch failed is probed until it answers.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one probe (a parent that accepts connections but
/// never answers is unreachable too).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the parent's watches are known to work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// Nothing failed since the last answer.
    Up,
    /// A watch failed: probing.
    Suspect,
    /// A probe failed (since then): resync when it answers.
    Down(Instant),
}

/// Whether `client`'s API answers within [`PROBE_TIMEOUT`].
pub(super) async fn answers(client: &kube::Client) -> bool {
    tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version())
        .await
        .is_ok_and(|r| r.is_ok())
}

impl Syncer {
    /// The reachability of `parent` (shared by its watch task and its
    /// reconciles).
    pub(crate) fn health(&self, parent: &ParentKey) -> Arc<Health> {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.entry(parent.clone()).or_default().clone()
    }
}
