//! The watch dispatcher: in-memory event history and fan-out of events to watchers by key prefix.
//!
//! [`WatchHub`] owns the history window (every event with a revision above `compacted`, kept for
//! at least [`StorageConfig::history_min_age`] and [`StorageConfig::history_min_events`]) and the
//! set of live watchers, indexed by prefix. The write path calls [`WatchHub::publish`] once per
//! durable batch, in revision order; the hub replays history to new watchers and pushes live events
//! into each matching watcher's bounded buffer without ever waiting.
//!
//! [`WatchStream`] is also the stream type of remote backends (etcd): there a task owned by the
//! stream pushes the remote watch's events through a [`Feeder`] into the same kind of bounded
//! buffer, with the same too-slow rule.
//!
//! It must never block a publisher on a watcher (a full buffer ends that watcher with
//! [`StorageError::WatcherTooSlow`] instead), never skip, repeat or reorder an event for a watcher,
//! and never run on a timer: an idle hub uses no CPU (history is trimmed when events arrive).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use crate::{Revision, StorageConfig, StorageError, WatchEvent};

/// History and watchers of one store. Shared by the write path (publisher) and every stream.
pub struct WatchHub {
    state: Mutex<HubState>,
    /// Highest revision whose events have all been pushed to watchers (read lock-free by streams
    /// answering progress requests).
    published: AtomicU64,
    config: StorageConfig,
}

struct HistoryEntry {
    event: Arc<WatchEvent>,
    at: Instant,
}

struct HubState {
    /// Events with revision in `(compacted, published]`, in revision order.
    history: VecDeque<HistoryEntry>,
    compacted: Revision,
    published: Revision,
    /// Watchers by exact prefix.
    watchers: HashMap<String, Vec<Watcher>>,
    /// Distinct prefix lengths in `watchers` -> number of prefixes of that length, so matching a
    /// key costs one hash lookup per distinct length, not one check per watcher.
    prefix_lens: BTreeMap<usize, usize>,
    next_id: u64,
    closed: bool,
}

struct Watcher {
    id: u64,
    from: Revision,
    tx: mpsc::Sender<Arc<WatchEvent>>,
    shared: Arc<WatcherShared>,
}

/// State shared between a stream and its hub entry.
#[derive(Default)]
struct WatcherShared {
    /// Set (under the hub lock, before `published` moves) when the buffer overflowed.
    overflowed: AtomicBool,
    progress_requested: AtomicBool,
    progress_notify: Notify,
}

impl WatchHub {
    /// A hub whose history starts empty at `revision` (everything at or below it is compacted).
    pub fn new(revision: Revision, config: StorageConfig) -> Arc<Self> {
        Arc::new(WatchHub {
            state: Mutex::new(HubState {
                history: VecDeque::new(),
                compacted: revision,
                published: revision,
                watchers: HashMap::new(),
                prefix_lens: BTreeMap::new(),
                next_id: 0,
                closed: false,
            }),
            published: AtomicU64::new(revision),
            config,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than losing the store, so recover the guard rather than propagate.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest revision published to watchers.
    pub fn published(&self) -> Revision {
        self.published.load(Ordering::Acquire)
    }

    /// The compacted revision: history is held for revisions above it.
    pub fn compacted(&self) -> Revision {
        self.lock().compacted
    }

    /// Number of live watchers (for tests and metrics).
    pub fn watcher_count(&self) -> usize {
        self.lock().watchers.values().map(Vec::len).sum()
    }

    /// Number of events held in history (for tests and metrics).
    pub fn history_len(&self) -> usize {
        self.lock().history.len()
    }

    /// Appends the events of one durable batch (all with revisions `<= revision`, ascending) and
    /// pushes them to matching watchers; then `revision` is the published revision.
    pub fn publish(&self, events: Vec<WatchEvent>, revision: Revision) {
        let now = Instant::now();
        let mut st = self.lock();
        let mut dead: Vec<(String, u64)> = Vec::new();
        for event in events {
            let event = Arc::new(event);
            let rev = event.revision();
            if let Some(key) = event.key() {
                let HubState {
                    watchers,
                    prefix_lens,
                    ..
                } = &mut *st;
                for &len in prefix_lens.keys() {
                    if len > key.len() {
                        break;
                    }
                    if !key.is_char_boundary(len) {
                        continue;
                    }
                    let Some(list) = watchers.get(&key[..len]) else {
                        continue;
                    };
                    for w in list {
                        if rev <= w.from {
                            continue;
                        }
                        match w.tx.try_send(event.clone()) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                w.shared.overflowed.store(true, Ordering::Release);
                                tracing::warn!(
                                    prefix = &key[..len],
                                    capacity = self.config.watch_buffer,
                                    "watcher too slow, ending its stream"
                                );
                                dead.push((key[..len].to_string(), w.id));
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                dead.push((key[..len].to_string(), w.id));
                            }
                        }
                    }
                }
                for (prefix, id) in dead.drain(..) {
                    st.remove_watcher(&prefix, id);
                }
            }
            st.history.push_back(HistoryEntry { event, at: now });
        }
        if revision > st.published {
            st.published = revision;
            self.published.store(revision, Ordering::Release);
        }
        self.trim(&mut st, now);
    }

    fn trim(&self, st: &mut HubState, now: Instant) {
        let min_age = self.config.history_min_age;
        let min_events = self.config.history_min_events;
        loop {
            let over_cap = self
                .config
                .history_max_events
                .is_some_and(|max| st.history.len() > max);
            let old_enough = st.history.len() > min_events
                && st
                    .history
                    .front()
                    .is_some_and(|e| now.duration_since(e.at) >= min_age);
            if !(over_cap || old_enough) {
                break;
            }
            let Some(front) = st.history.pop_front() else {
                break;
            };
            st.drop_through(front.event.revision());
        }
    }

    /// Drops history at or below `revision` (clamped to the published revision).
    pub fn compact(&self, revision: Revision) {
        let mut st = self.lock();
        let target = revision.min(st.published);
        if target <= st.compacted {
            return;
        }
        while st
            .history
            .front()
            .is_some_and(|e| e.event.revision() <= target)
        {
            st.history.pop_front();
        }
        st.compacted = target;
    }

    /// Ends every stream (the store is shutting down); later watches fail.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.watchers.clear();
        st.prefix_lens.clear();
    }

    /// Starts a watch on `prefix` for events with revision `> from`: history first, then live.
    pub fn watch(
        self: &Arc<Self>,
        prefix: &str,
        from: Revision,
    ) -> Result<WatchStream, StorageError> {
        let mut st = self.lock();
        if st.closed {
            return Err(StorageError::Backend("store is closed".into()));
        }
        if from < st.compacted {
            return Err(StorageError::Compacted {
                requested: from,
                compacted: st.compacted,
            });
        }
        let start = st.history.partition_point(|e| e.event.revision() <= from);
        let backlog: VecDeque<Arc<WatchEvent>> = st
            .history
            .range(start..)
            .filter(|e| e.event.key().is_some_and(|k| k.starts_with(prefix)))
            .map(|e| e.event.clone())
            .collect();
        let (tx, rx) = mpsc::channel(self.config.watch_buffer.max(1));
        let shared = Arc::new(WatcherShared::default());
        let id = st.next_id;
        st.next_id += 1;
        let list = st.watchers.entry(prefix.to_string()).or_default();
        let new_prefix = list.is_empty();
        list.push(Watcher {
            id,
            from,
            tx,
            shared: shared.clone(),
        });
        if new_prefix {
            *st.prefix_lens.entry(prefix.len()).or_default() += 1;
        }
        Ok(WatchStream::from_hub(HubStream {
            backlog,
            peeked: None,
            rx,
            shared,
            hub: Arc::downgrade(self),
            id,
            prefix: prefix.to_string(),
            from,
            last_yielded: from,
            progress_target: None,
            finished: false,
        }))
    }
}

impl HubState {
    fn remove_watcher(&mut self, prefix: &str, id: u64) {
        let Some(list) = self.watchers.get_mut(prefix) else {
            return;
        };
        list.retain(|w| w.id != id);
        if list.is_empty() {
            self.watchers.remove(prefix);
            if let Some(n) = self.prefix_lens.get_mut(&prefix.len()) {
                *n -= 1;
                if *n == 0 {
                    self.prefix_lens.remove(&prefix.len());
                }
            }
        }
    }

    /// After popping an event at `rev`, also pop the rest of its revision group so history
    /// never holds half a revision.
    fn drop_through(&mut self, rev: Revision) {
        while self
            .history
            .front()
            .is_some_and(|e| e.event.revision() <= rev)
        {
            self.history.pop_front();
        }
        self.compacted = self.compacted.max(rev);
    }
}

/// A stream of [`WatchEvent`]s for one prefix, from [`crate::Storage::watch`].
///
/// Dropping it unregisters the watcher (embedded backends) or cancels the remote watch (etcd).
pub struct WatchStream {
    inner: StreamInner,
}

enum StreamInner {
    Hub(HubStream),
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    // only the etcd backend feeds remote streams
    Remote(RemoteStream),
}

/// A stream fed by an embedded store's [`WatchHub`].
struct HubStream {
    /// Replayed history, yielded before anything from `rx`.
    backlog: VecDeque<Arc<WatchEvent>>,
    /// An event taken from `rx` to decide a progress answer, yielded next.
    peeked: Option<Arc<WatchEvent>>,
    rx: mpsc::Receiver<Arc<WatchEvent>>,
    shared: Arc<WatcherShared>,
    hub: Weak<WatchHub>,
    id: u64,
    prefix: String,
    from: Revision,
    last_yielded: Revision,
    /// A progress answer waiting for every event at or below it to be yielded.
    progress_target: Option<Revision>,
    finished: bool,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            StreamInner::Hub(h) => f
                .debug_struct("WatchStream")
                .field("prefix", &h.prefix)
                .field("from", &h.from)
                .field("last_yielded", &h.last_yielded)
                .finish_non_exhaustive(),
            StreamInner::Remote(r) => f
                .debug_struct("WatchStream")
                .field("prefix", &r.prefix)
                .field("remote", &true)
                .finish_non_exhaustive(),
        }
    }
}

impl WatchStream {
    fn from_hub(hub: HubStream) -> Self {
        WatchStream {
            inner: StreamInner::Hub(hub),
        }
    }

    /// A stream fed by a task (a remote store's watch): `spawn` gets the [`Feeder`] to push
    /// events into (at most `buffer` unread) and the receiver of progress requests, and returns
    /// the task, which is aborted when the stream is dropped.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))] // only the etcd backend feeds remote streams
    pub(crate) fn remote(
        prefix: &str,
        buffer: usize,
        spawn: impl FnOnce(Feeder, mpsc::UnboundedReceiver<()>) -> tokio::task::JoinHandle<()>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let (progress, progress_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(RemoteShared::default());
        let task = spawn(
            Feeder {
                tx,
                shared: shared.clone(),
            },
            progress_rx,
        );
        WatchStream {
            inner: StreamInner::Remote(RemoteStream {
                rx,
                shared,
                progress,
                prefix: prefix.to_string(),
                task,
                finished: false,
            }),
        }
    }

    /// The next event; `None` once the store closed the stream. After an
    /// `Err(StorageError::WatcherTooSlow)` the stream yields `None`.
    ///
    /// Cancel-safe: dropping the future (e.g. in `tokio::select!` against a bookmark timer that
    /// then calls [`WatchStream::request_progress`]) loses no event.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, StorageError>> {
        match &mut self.inner {
            StreamInner::Hub(h) => h.next().await,
            StreamInner::Remote(r) => r.next().await,
        }
    }

    /// Asks for a [`WatchEvent::Progress`]: the stream soon yields `Progress { revision }` with
    /// `revision` >= every event already yielded and no event `<= revision` still pending
    /// (etcd's RequestProgress). Used for watch bookmarks.
    pub fn request_progress(&self) {
        match &self.inner {
            StreamInner::Hub(h) => h.request_progress(),
            StreamInner::Remote(r) => {
                // The feeder is gone only when the stream is ending anyway.
                let _ = r.progress.send(());
            }
        }
    }

    /// The prefix this stream watches.
    pub fn prefix(&self) -> &str {
        match &self.inner {
            StreamInner::Hub(h) => &h.prefix,
            StreamInner::Remote(r) => &r.prefix,
        }
    }
}

/// State shared by a [`RemoteStream`] and its [`Feeder`].
#[derive(Default)]
struct RemoteShared {
    /// Set when the feeder found the buffer full: the stream ends with `WatcherTooSlow`.
    overflowed: AtomicBool,
    /// The error the feeder ended the stream with, yielded after every buffered event.
    error: Mutex<Option<StorageError>>,
}

/// The consuming half of a stream fed by a task.
struct RemoteStream {
    rx: mpsc::Receiver<WatchEvent>,
    shared: Arc<RemoteShared>,
    progress: mpsc::UnboundedSender<()>,
    prefix: String,
    task: tokio::task::JoinHandle<()>,
    finished: bool,
}

impl RemoteStream {
    async fn next(&mut self) -> Option<Result<WatchEvent, StorageError>> {
        if self.finished {
            return None;
        }
        match self.rx.recv().await {
            Some(ev) => Some(Ok(ev)),
            None => {
                self.finished = true;
                if self.shared.overflowed.load(Ordering::Acquire) {
                    return Some(Err(StorageError::WatcherTooSlow));
                }
                let err = self
                    .shared
                    .error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                err.map(Err)
            }
        }
    }
}

impl Drop for RemoteStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The producing half of a stream fed by a task: events go into the stream's bounded buffer
/// without waiting; a full buffer ends the stream with [`StorageError::WatcherTooSlow`].
#[cfg_attr(not(feature = "etcd"), allow(dead_code))] // only the etcd backend feeds remote streams
pub(crate) struct Feeder {
    tx: mpsc::Sender<WatchEvent>,
    shared: Arc<RemoteShared>,
}

#[cfg_attr(not(feature = "etcd"), allow(dead_code))] // only the etcd backend feeds remote streams
impl Feeder {
    /// Buffers `ev`; `false` when the stream is over (dropped by its reader, or overflowed): the
    /// feeder must then stop.
    pub(crate) fn push(&self, ev: WatchEvent) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("watcher too slow, ending its stream");
                self.shared.overflowed.store(true, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ends the stream with `err`, yielded after every event already buffered.
    pub(crate) fn fail(self, err: StorageError) {
        *self.shared.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
    }
}

impl HubStream {
    async fn next(&mut self) -> Option<Result<WatchEvent, StorageError>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(target) = self.progress_target {
                if self.peek_ready().is_some_and(|rev| rev <= target)
                    && let Some(ev) = self.pop_ready()
                {
                    return Some(Ok(self.yield_event(ev)));
                }
                self.progress_target = None;
                if !self.shared.overflowed.load(Ordering::Acquire) {
                    self.last_yielded = self.last_yielded.max(target);
                    return Some(Ok(WatchEvent::Progress { revision: target }));
                }
                continue;
            }
            if self.shared.progress_requested.swap(false, Ordering::AcqRel) {
                // Every event at or below `published` is already in `backlog`/`peeked`/`rx`.
                let published = self.hub.upgrade().map_or(0, |h| h.published());
                self.progress_target = Some(published.max(self.last_yielded).max(self.from));
                continue;
            }
            if let Some(ev) = self.pop_ready() {
                return Some(Ok(self.yield_event(ev)));
            }
            tokio::select! {
                biased;
                ev = self.rx.recv() => match ev {
                    Some(ev) => return Some(Ok(self.yield_event(ev))),
                    None => {
                        self.finished = true;
                        if self.shared.overflowed.load(Ordering::Acquire) {
                            return Some(Err(StorageError::WatcherTooSlow));
                        }
                        return None;
                    }
                },
                _ = self.shared.progress_notify.notified() => continue,
            }
        }
    }

    fn request_progress(&self) {
        self.shared
            .progress_requested
            .store(true, Ordering::Release);
        self.shared.progress_notify.notify_one();
    }

    /// The revision of the next event already buffered (backlog, then channel), without waiting.
    fn peek_ready(&mut self) -> Option<Revision> {
        if let Some(ev) = self.backlog.front() {
            return Some(ev.revision());
        }
        if self.peeked.is_none() {
            self.peeked = self.rx.try_recv().ok();
        }
        self.peeked.as_ref().map(|ev| ev.revision())
    }

    /// The next buffered event in order: replayed history first, then the peeked live one.
    fn pop_ready(&mut self) -> Option<Arc<WatchEvent>> {
        self.backlog.pop_front().or_else(|| self.peeked.take())
    }

    fn yield_event(&mut self, ev: Arc<WatchEvent>) -> WatchEvent {
        self.last_yielded = self.last_yielded.max(ev.revision());
        Arc::unwrap_or_clone(ev)
    }
}

impl Drop for HubStream {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.lock().remove_watcher(&self.prefix, self.id);
        }
    }
}
