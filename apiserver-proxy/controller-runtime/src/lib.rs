//! The controller runtime every controller of this crate runs on (upstream's
//! controller-runtime / kube-runtime shape): three stages, the first and
//! the last in their own modules.
//!
//! 1. [`watch`]: one storage watch over every cluster, delivered as
//!    [`Change`]s (list, synced, then puts and deletes; resumed without
//!    loss, relisted after compaction). Like kube-runtime's `watcher`.
//! 2. A mapper, per controller: a cheap synchronous function from a
//!    [`Change`] to the keys it calls for (zero, one or several; it may keep
//!    an index, as a reflector would, e.g. Service selectors or the owner
//!    graph). It runs on the watch loop, so it never does I/O. A controller
//!    may hold a relist's keys until the relist is complete
//!    ([`Controller::hold_initial_until_synced`]).
//! 3. [`queue`]: the [`WorkQueue`] of keys running the controller's
//!    [`Reconciler`]: a key runs once at a time, changes are coalesced,
//!    failures back off (per controller: [`Controller::with_retry`]), a
//!    reconcile may ask to run again after a delay (growing per key with a
//!    [`Backoff`] when it polls).
//!
//! [`Controller`] wires the three; [`spawn_controller`] is the common case.
//! Sources other than the storage watch (a timer, a watch of the host
//! cluster) feed the same queue through [`Controller::queue`].
//! [`ControllerContext`] is what controllers get from the server.
//!
//! This module owns no object semantics: it never reads or writes objects
//! itself, and it never holds an `ApiServer`.

// The layers below, under the names the runtime uses.
use nestkube_api::error;
use nestkube_registry as registry;
use nestkube_tenancy as tenancy;

use std::sync::Arc;

pub mod queue;
pub mod watch;

pub use queue::{Backoff, Outcome, WorkQueue};
pub use watch::{Change, ObjectKey, contains};

use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::store::Store;
use crate::tenancy::Clusters;

/// What controllers read of the server: built once when the controllers
/// start, shared by all of them.
#[derive(Clone)]
pub struct ControllerContext {
    /// The store every cluster's objects are in.
    pub store: Store,
    /// The served resources.
    pub catalog: Arc<Catalog>,
    /// The served clusters (provisioning creates and removes them).
    pub clusters: Arc<Clusters>,
}

/// A controller's reconcile of one key of its queue.
#[async_trait::async_trait]
pub trait Reconciler<K: Send + 'static, E = ApiError>: Send + Sync + 'static {
    /// Brings the world in line for `key`; may ask to run again later.
    async fn reconcile(&self, key: K) -> Outcome<E>;
}

/// A controller being assembled: its queue, running its [`Reconciler`],
/// exists; its sources are attached next.
pub struct Controller<K, E = ApiError> {
    name: &'static str,
    queue: Arc<WorkQueue<K, E>>,
    hold_initial: bool,
}

impl<K, E> Controller<K, E>
where
    K: Clone + Eq + std::hash::Hash + Send + Sync + std::fmt::Debug + 'static,
    E: std::fmt::Display + Send + 'static,
{
    /// A controller named `name` (queue and logs) running `reconciler`.
    pub fn new<R: Reconciler<K, E>>(name: &'static str, reconciler: Arc<R>) -> Self {
        Self::with_retry(name, reconciler, queue::MIN_BACKOFF, queue::MAX_BACKOFF)
    }

    /// [`Controller::new`], retrying failures after `min`, doubling up to
    /// `max`.
    pub fn with_retry<R: Reconciler<K, E>>(
        name: &'static str,
        reconciler: Arc<R>,
        min: std::time::Duration,
        max: std::time::Duration,
    ) -> Self {
        let queue = WorkQueue::with_retry(name, min, max, move |key: K| {
            let r = reconciler.clone();
            async move { r.reconcile(key).await }
        });
        Self {
            name,
            queue,
            hold_initial: false,
        }
    }

    /// The queue, for sources other than the storage watch.
    pub fn queue(&self) -> Arc<WorkQueue<K, E>> {
        self.queue.clone()
    }

    /// Keys of a (re)list's [`Change::Initial`]s wait for its
    /// [`Change::Synced`], so the mapper's index is complete before any of
    /// them is reconciled.
    pub fn hold_initial_until_synced(mut self) -> Self {
        self.hold_initial = true;
        self
    }

    /// Runs the storage watch of `store` through `mapper` into the queue
    /// until the process ends. `mapper` sees every change, including
    /// [`Change::Listing`] and [`Change::Synced`].
    pub fn watch<I>(
        self,
        store: &Store,
        mut mapper: impl FnMut(&Change<'_>) -> I + Send + 'static,
    ) -> tokio::task::JoinHandle<()>
    where
        I: IntoIterator<Item = K>,
    {
        let Self {
            name,
            queue,
            hold_initial,
        } = self;
        let mut held: Option<Vec<K>> = None;
        tokio::spawn(watch::run(store.clone(), name, move |change| {
            if hold_initial && matches!(change, Change::Listing) {
                held = Some(Vec::new());
            }
            let initial = matches!(change, Change::Initial(_));
            for key in mapper(&change) {
                match held.as_mut() {
                    Some(h) if initial => h.push(key),
                    _ => queue.enqueue(key),
                }
            }
            if matches!(change, Change::Synced) {
                for key in held.take().unwrap_or_default() {
                    queue.enqueue(key);
                }
            }
        }))
    }
}

/// Starts `controller` named `name` on the storage watch of `store`, fed
/// through `mapper` (see [`Controller::watch`]).
pub fn spawn_controller<K, C, I>(
    store: &Store,
    name: &'static str,
    controller: Arc<C>,
    mapper: impl FnMut(&Change<'_>) -> I + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: Clone + Eq + std::hash::Hash + Send + Sync + std::fmt::Debug + 'static,
    C: Reconciler<K>,
    I: IntoIterator<Item = K>,
{
    Controller::new(name, controller).watch(store, mapper)
}
