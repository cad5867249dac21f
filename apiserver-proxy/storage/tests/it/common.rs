//! What the storage test modules share: the watch-event wait, byte values,
//! and a fresh local etcd member. Never starts anything a test did not ask for.

use std::time::Duration;

use bytes::Bytes;
#[cfg(feature = "etcd")]
use nestkube_storage::LocalEtcd;
use nestkube_storage::{WatchEvent, WatchStream};

/// Longest wait for one watch event.
pub const T: Duration = Duration::from_secs(10);

/// `s` as bytes.
pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next event of `w`, which must come within [`T`] and not be an error.
pub async fn next(w: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(T, w.next())
        .await
        .expect("watch event in time")
        .expect("stream open")
        .expect("no error")
}

/// A fresh local etcd; `None` (skip) only when it is unavailable and `NESTKUBE_E2E=0`.
#[cfg(feature = "etcd")]
pub async fn local_etcd() -> Option<LocalEtcd> {
    LocalEtcd::start_for_test().await
}
