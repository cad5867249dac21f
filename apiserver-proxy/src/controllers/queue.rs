//! A work queue of keys (upstream's `workqueue`), cluster-aware by keying on
//! `(cluster, namespace, name)`-like keys.
//!
//! A key is reconciled by at most one task at a time; enqueueing it while it
//! runs marks it dirty and it runs once more afterwards (changes are
//! coalesced, never lost). Failures retry with exponential backoff; a
//! reconcile may also ask to run again after a delay. Tasks exist only while
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

use tokio::sync::Semaphore;

/// Concurrent reconciles per queue.
pub const MAX_CONCURRENT: usize = 32;
/// First retry delay after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a reconcile asks for next.
pub type Outcome<E> = Result<Option<Duration>, E>;
type Reconcile<K, E> = dyn Fn(K) -> Pin<Box<dyn Future<Output = Outcome<E>> + Send>> + Send + Sync;

/// A queue of keys reconciled by one function.
pub struct WorkQueue<K, E> {
    name: &'static str,
    /// Keys pending or running -> whether they changed while running.
    active: Mutex<HashMap<K, bool>>,
    permits: Semaphore,
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
        Arc::new(Self {
            name,
            active: Mutex::new(HashMap::new()),
            permits: Semaphore::new(MAX_CONCURRENT),
            reconcile: Box::new(move |k| Box::pin(reconcile(k))),
        })
    }

    /// Schedules `key`; coalesces with a pending or running reconcile of it.
    pub fn enqueue(self: &Arc<Self>, key: K) {
        {
            let Ok(mut active) = self.active.lock() else {
                return;
            };
            if let Some(dirty) = active.get_mut(&key) {
                *dirty = true;
                return;
            }
            active.insert(key.clone(), false);
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

    /// Number of keys pending or running.
    pub fn len(&self) -> usize {
        self.active.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn work(self: Arc<Self>, key: K) {
        let mut backoff = MIN_BACKOFF;
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
                tokio::time::sleep(delay).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if let Ok(mut active) = self.active.lock()
                    && let Some(dirty) = active.get_mut(&key)
                {
                    *dirty = false;
                }
                continue;
            }
            let Ok(mut active) = self.active.lock() else {
                return;
            };
            if active.get(&key) == Some(&true) {
                active.insert(key.clone(), false);
                backoff = MIN_BACKOFF;
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
}
