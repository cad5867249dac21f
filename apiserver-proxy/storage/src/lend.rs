//! Lending a caller's concurrency slot while its write waits for the
//! durable commit: the wait costs no CPU, so whoever limits how much work
//! runs at once (the API server's fair scheduling) may give the slot to
//! another request meanwhile and count it again once the write is done.
//!
//! The slot's owner runs its request inside [`lending`]; the group-commit
//! write path wraps its wait for the committer in [`lent_during`]. Code
//! outside a [`lending`] scope (controllers, tests) lends nothing.

use std::future::Future;
use std::sync::Arc;

/// Who holds the slot of the request running on this task.
pub trait Lender: Send + Sync {
    /// The request stops using its slot (it waits on storage).
    fn lend(&self);
    /// The request uses its slot again; never waits (the write is done and
    /// its reply must not be held back).
    fn take_back(&self);
}

tokio::task_local! {
    static LENDER: Arc<dyn Lender>;
}

/// Runs `fut` with `lender` asked to lend its slot while `fut` waits for
/// durable commits.
pub async fn lending<F: Future>(lender: Arc<dyn Lender>, fut: F) -> F::Output {
    LENDER.scope(lender, fut).await
}

/// Awaits `fut` (a wait for the committer) with the task's slot lent, if
/// it has a [`Lender`].
pub(crate) async fn lent_during<F: Future>(fut: F) -> F::Output {
    /// Takes the slot back when the wait ends, or is dropped.
    struct Back(Option<Arc<dyn Lender>>);
    impl Drop for Back {
        fn drop(&mut self) {
            if let Some(lender) = &self.0 {
                lender.take_back();
            }
        }
    }
    let lender = LENDER.try_with(Arc::clone).ok();
    if let Some(l) = &lender {
        l.lend();
    }
    let _back = Back(lender);
    fut.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};

    #[derive(Default)]
    struct Count(AtomicI32);
    impl Lender for Count {
        fn lend(&self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
        fn take_back(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_slot_is_lent_only_during_the_wait_and_only_in_scope() {
        let count = Arc::new(Count::default());
        let seen = lending(count.clone(), async {
            lent_during(async { count.0.load(Ordering::SeqCst) }).await
        })
        .await;
        assert_eq!(seen, -1);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(lent_during(async { 7 }).await, 7, "no lender, no lending");
    }
}
