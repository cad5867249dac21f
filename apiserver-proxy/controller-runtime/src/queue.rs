//! The runtime's last stage: a work queue of keys (upstream's `workqueue`)
//! running a reconcile per key, cluster-aware by keying on
//! `(cluster, namespace, name)`-like keys.
//!
//! A key is reconciled by at most one task at a time; enqueueing it while it
//! runs marks it dirty and it runs once more afterwards (changes are
//! coalesced, never lost). Failures retry with exponential backoff
//! ([`WorkQueue::retry_waiting`] ends every such wait at once, e.g. when
//! the API they failed against answers again); a reconcile may also ask to
//! run again after a delay. Tasks exist only while
//! a key is pending, so an idle queue costs no task and no timer. At most
//! [`MAX_CONCURRENT`] reconciles of one queue run at once.
//!
//! This module knows nothing about objects: it never reads or writes storage.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

/// Concurrent reconciles per queue.
pub const MAX_CONCURRENT: usize = 32;
/// First retry delay after a failure (unless the queue says otherwise).
pub const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest retry delay (unless the queue says otherwise).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a reconcile asks for next.
pub type Outcome<E> = Result<Option<Duration>, E>;
type Reconcile<K, E> = dyn Fn(K) -> Pin<Box<dyn Future<Output = Outcome<E>> + Send>> + Send + Sync;

/// The state of one active key.
#[derive(Default)]
struct Slot {
    /// Enqueued again while running.
    dirty: bool,
    /// Set while it waits to retry after a failure: ends that wait.
    retry: Option<Arc<Notify>>,
}

/// A queue of keys reconciled by one function.
pub struct WorkQueue<K, E> {
    name: &'static str,
    /// Keys pending, running or waiting to retry.
    active: Mutex<HashMap<K, Slot>>,
    permits: Semaphore,
    /// First and longest retry delay after a failure.
    retry: (Duration, Duration),
    reconcile: Box<Reconcile<K, E>>,
}

impl<K, E> WorkQueue<K, E>
where
    K: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static,
    E: Display + Send + 'static,
{
    /// A queue named `name` (for logs) running `reconcile` for each key.
    pub fn new<F, Fut>(name: &'static str, reconcile: F) -> Arc<Self>
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome<E>> + Send + 'static,
    {
        Self::with_retry(name, MIN_BACKOFF, MAX_BACKOFF, reconcile)
    }

    /// [`WorkQueue::new`], retrying failures after `min`, doubling up to `max`.
    pub fn with_retry<F, Fut>(
        name: &'static str,
        min: Duration,
        max: Duration,
        reconcile: F,
    ) -> Arc<Self>
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome<E>> + Send + 'static,
    {
        Arc::new(Self {
            name,
            active: Mutex::new(HashMap::new()),
            permits: Semaphore::new(MAX_CONCURRENT),
            retry: (min, max),
            reconcile: Box::new(move |k| Box::pin(reconcile(k))),
        })
    }

    /// Schedules `key`; coalesces with a pending or running reconcile of it.
    pub fn enqueue(self: &Arc<Self>, key: K) {
        {
            let Ok(mut active) = self.active.lock() else {
                return;
            };
            if let Some(slot) = active.get_mut(&key) {
                slot.dirty = true;
                return;
            }
            active.insert(key.clone(), Slot::default());
        }
        let queue = self.clone();
        tokio::spawn(async move { queue.work(key).await });
    }

    /// Schedules `key` after `delay` (one sleeping task until then).
    pub fn enqueue_after(self: &Arc<Self>, key: K, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.enqueue(key);
        });
    }

    /// Retries now every key waiting to retry after a failure (what they
    /// failed on is fixed, e.g. the API they call answers again); their
    /// backoff keeps growing. An enqueue alone never cuts that wait short:
    /// a failing reconcile whose own writes enqueue it would loop.
    pub fn retry_waiting(&self) {
        let Ok(active) = self.active.lock() else {
            return;
        };
        for retry in active.values().filter_map(|s| s.retry.as_ref()) {
            // A stored permit if the worker is not waiting yet.
            retry.notify_one();
        }
    }

    /// Number of keys pending or running.
    pub fn len(&self) -> usize {
        self.active.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn work(self: Arc<Self>, key: K) {
        let (min_backoff, max_backoff) = self.retry;
        let mut backoff = min_backoff;
        loop {
            let outcome = {
                let _permit = self.permits.acquire().await;
                (self.reconcile)(key.clone()).await
            };
            let again = match &outcome {
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(queue = self.name, key = ?key, error = %e, "reconcile failed; retrying");
                    Some(backoff)
                }
            };
            if let Some(delay) = again {
                let wake = Arc::new(Notify::new());
                if let Ok(mut active) = self.active.lock()
                    && let Some(slot) = active.get_mut(&key)
                {
                    slot.retry = Some(wake.clone());
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wake.notified() => {}
                }
                backoff = (backoff * 2).min(max_backoff);
                if let Ok(mut active) = self.active.lock()
                    && let Some(slot) = active.get_mut(&key)
                {
                    *slot = Slot::default();
                }
                continue;
            }
            let Ok(mut active) = self.active.lock() else {
                return;
            };
            if active.get(&key).is_some_and(|s| s.dirty) {
                active.insert(key.clone(), Slot::default());
                backoff = min_backoff;
                continue;
            }
            active.remove(&key);
            drop(active);
            if let Ok(Some(delay)) = outcome {
                self.enqueue_after(key, delay);
            }
            return;
        }
    }
}

/// Growing requeue delays per key, for a reconcile that polls until
/// something its watch does not show is done (e.g. a namespace's content
/// being gone): it returns `Ok(Some(backoff.next(&key)))` while waiting and
/// [`Backoff::reset`]s the key when done. Holds an entry only while a key
/// waits.
pub struct Backoff<K> {
    min: Duration,
    max: Duration,
    next: Mutex<HashMap<K, Duration>>,
}

impl<K: Clone + Eq + Hash> Backoff<K> {
    /// Delays from `min`, doubling, up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before `key`'s next attempt; the one after is twice as long.
    pub fn next(&self, key: &K) -> Duration {
        let Ok(mut next) = self.next.lock() else {
            return self.max;
        };
        let d = next.entry(key.clone()).or_insert(self.min);
        let now = *d;
        *d = (now * 2).min(self.max);
        now
    }

    /// Forgets `key` (it is done).
    pub fn reset(&self, key: &K) {
        if let Ok(mut next) = self.next.lock() {
            next.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn coalesces_and_retries() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let q = WorkQueue::new("test", move |_k: u32| {
            let r = r.clone();
            async move {
                // Fails once, then succeeds.
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err("first")
                } else {
                    Ok(None)
                }
            }
        });
        q.enqueue(1);
        q.enqueue(1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !q.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(q.is_empty());
        assert!(runs.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn retry_waiting_ends_the_wait() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = fail.clone();
        let q = WorkQueue::new("test", move |_k: u32| {
            let (tx, f) = (tx.clone(), f.clone());
            async move {
                let _ = tx.send(());
                if f.load(Ordering::SeqCst) {
                    Err("down")
                } else {
                    Ok(None)
                }
            }
        });
        q.enqueue(1);
        // Seven failures: the next retry is 3.2 s away.
        for _ in 0..7 {
            rx.recv().await.expect("a run");
        }
        fail.store(false, Ordering::SeqCst);
        while q.active.lock().unwrap()[&1].retry.is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        q.retry_waiting();
        tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .expect("retried before its backoff ended")
            .expect("a run");
        while !q.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(300));
        let got: Vec<_> = (0..4).map(|_| b.next(&1).as_millis()).collect();
        assert_eq!(got, [100, 200, 300, 300]);
        assert_eq!(b.next(&2), Duration::from_millis(100));
        b.reset(&1);
        assert_eq!(b.next(&1), Duration::from_millis(100));
    }
}
