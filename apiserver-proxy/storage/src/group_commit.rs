//! The write path shared by every embedded backend: one committer thread with group commit, plus
//! the read path's durability gate.
//!
//! Writers enqueue an operation and wait. The committer thread takes everything queued (up to
//! [`crate::StorageConfig::max_batch`]), checks each operation's precondition against the store
//! plus the batch so far, assigns revisions, hands the whole batch to the [`Engine`] as one atomic,
//! durable commit (one flush for all writers), then publishes the events to the
//! [`crate::watch::WatchHub`] and acknowledges the writers. While it flushes, new writes queue up
//! and form the next batch. When the previous batch had `n` writers and fewer are queued, the
//! committer waits up to [`crate::StorageConfig::commit_gather`] for them to come back (like
//! PostgreSQL's `commit_delay`), so a steady set of writers shares every flush. A writer waiting
//! for its commit lends its request's concurrency slot meanwhile ([`crate::lend`]).
//!
//! This module owns revision assignment and compare-and-swap. It must never acknowledge a write
//! or publish its event before the engine reports it durable, never let a read return state that
//! is not yet durable, and never poll: an idle committer is blocked on its queue.
//! After a failed commit the store is poisoned and refuses every later write (like etcd on an
//! fsync error): the engine's state is then unknown.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::engine::{Engine, Mutation};
use crate::watch::{WatchHub, WatchStream};
use crate::{KeyValue, ListOptions, ListResult, Revision, StorageConfig, StorageError, WatchEvent};

enum OpKind {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Revision,
    },
    DeletePrefix {
        prefix: String,
    },
}

enum Outcome {
    Kv(KeyValue),
    Deleted(KeyValue, Revision),
    Count(u64),
}

struct Op {
    kind: OpKind,
    reply: oneshot::Sender<Result<Outcome, StorageError>>,
}

struct Shared {
    /// Revision of the last durable commit; readers wait on it.
    durable: watch::Sender<Revision>,
    poisoned: AtomicBool,
}

/// A store built from an [`Engine`]: the committer thread, the watch hub and the read path.
pub(crate) struct Core {
    engine: Arc<dyn Engine>,
    hub: Arc<WatchHub>,
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
}

impl Core {
    /// Starts the committer thread for `engine`.
    pub(crate) fn start(
        engine: Arc<dyn Engine>,
        config: StorageConfig,
        name: &str,
    ) -> Result<Core, StorageError> {
        let revision = engine.revision()?;
        let hub = WatchHub::new(revision, config.clone());
        let (durable, _) = watch::channel(revision);
        let shared = Arc::new(Shared {
            durable,
            poisoned: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let committer = Committer {
            engine: engine.clone(),
            hub: hub.clone(),
            shared: shared.clone(),
            max_batch: config.max_batch.max(1),
            gather: config.commit_gather,
            revision,
        };
        let thread = std::thread::Builder::new()
            .name(format!("{name}-commit"))
            .spawn(move || committer.run(rx))
            .map_err(StorageError::backend)?;
        tracing::debug!(backend = name, revision, "storage opened");
        Ok(Core {
            engine,
            hub,
            shared,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// The watch hub (for tests and metrics).
    pub(crate) fn hub(&self) -> &Arc<WatchHub> {
        &self.hub
    }

    async fn submit(&self, kind: OpKind) -> Result<Outcome, StorageError> {
        let closed = || StorageError::Backend("store is closed".into());
        let (reply, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(closed)?
            .send(Op { kind, reply })
            .map_err(|_| closed())?;
        // The wait for the committer (and its flush) costs the caller no
        // CPU: its request's slot is lent meanwhile.
        crate::lend::lent_during(rx).await.map_err(|_| closed())?
    }

    /// Waits until `revision` is durable, so reads never expose a write that a crash could lose.
    async fn wait_durable(&self, revision: Revision) -> Result<(), StorageError> {
        if *self.shared.durable.borrow() >= revision {
            return Ok(());
        }
        let mut rx = self.shared.durable.subscribe();
        let poisoned = &self.shared.poisoned;
        rx.wait_for(|d| *d >= revision || poisoned.load(Ordering::Acquire))
            .await
            .map_err(|_| StorageError::Backend("store is closed".into()))?;
        if *self.shared.durable.borrow() >= revision {
            Ok(())
        } else {
            Err(StorageError::Backend(
                "store is poisoned by a failed commit".into(),
            ))
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let (kv, revision) = self.engine.get(key)?;
        self.wait_durable(revision).await?;
        Ok(kv)
    }

    pub(crate) async fn list(
        &self,
        prefix: &str,
        opts: ListOptions,
    ) -> Result<ListResult, StorageError> {
        let result = self.engine.list(prefix, &opts)?;
        self.wait_durable(result.revision).await?;
        Ok(result)
    }

    pub(crate) async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StorageError> {
        match self
            .submit(OpKind::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            Outcome::Kv(kv) => Ok(kv),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<KeyValue, StorageError> {
        match self
            .submit(OpKind::Update {
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            Outcome::Kv(kv) => Ok(kv),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StorageError> {
        match self
            .submit(OpKind::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Outcome::Deleted(kv, rev) => Ok((kv, rev)),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        match self
            .submit(OpKind::DeletePrefix {
                prefix: prefix.to_string(),
            })
            .await?
        {
            Outcome::Count(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    pub(crate) fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StorageError> {
        self.hub.watch(prefix, from)
    }

    pub(crate) fn current_revision(&self) -> Revision {
        *self.shared.durable.borrow()
    }

    pub(crate) fn compact(&self, revision: Revision) {
        self.hub.compact(revision)
    }
}

fn unexpected() -> StorageError {
    StorageError::Backend("committer answered with the wrong outcome".into())
}

impl Drop for Core {
    fn drop(&mut self) {
        // Closing the queue ends the committer after its current batch; joining it releases the
        // engine (and its file lock) before the store's owner can reopen the directory.
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("storage committer thread panicked");
        }
    }
}

struct Committer {
    engine: Arc<dyn Engine>,
    hub: Arc<WatchHub>,
    shared: Arc<Shared>,
    max_batch: usize,
    gather: std::time::Duration,
    /// Revision of the last durable commit.
    revision: Revision,
}

/// The pending state of one batch.
#[derive(Default)]
struct Batch {
    /// Keys written earlier in this batch: `None` = deleted.
    overlay: HashMap<String, Option<KeyValue>>,
    mutations: Vec<Mutation>,
    events: Vec<WatchEvent>,
    /// Last revision assigned in this batch.
    revision: Revision,
}

impl Committer {
    fn run(mut self, rx: mpsc::Receiver<Op>) {
        // Writers acknowledged by the last batch usually come straight back; waiting briefly for
        // them keeps batches full instead of alternating between full and tiny ones.
        let mut expected = 1;
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while ops.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            let deadline = std::time::Instant::now() + self.gather;
            while ops.len() < expected.min(self.max_batch) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            expected = ops.len();
            self.commit_batch(ops);
        }
        self.hub.close();
        tracing::debug!(revision = self.revision, "storage committer stopped");
    }

    fn commit_batch(&mut self, ops: Vec<Op>) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            for op in ops {
                let _ = op.reply.send(Err(StorageError::Backend(
                    "store is poisoned by a failed commit".into(),
                )));
            }
            return;
        }
        let mut batch = Batch {
            revision: self.revision,
            ..Batch::default()
        };
        let mut acks = Vec::with_capacity(ops.len());
        for op in ops {
            let result = self.prepare(op.kind, &mut batch);
            acks.push((op.reply, result));
        }
        if batch.mutations.is_empty() {
            for (reply, result) in acks {
                let _ = reply.send(result);
            }
            return;
        }
        // Refusals are answered only after the batch is durable too: one may
        // rest on an earlier write of this batch (`AlreadyExists` after a
        // create of the same key), which a reader must then see.
        match self.engine.commit(&batch.mutations, batch.revision) {
            Ok(()) => {
                self.revision = batch.revision;
                self.shared.durable.send_replace(batch.revision);
                self.hub.publish(batch.events, batch.revision);
                for (reply, result) in acks {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storage commit failed; refusing further writes");
                self.shared.poisoned.store(true, Ordering::Release);
                self.shared.durable.send_modify(|_| {});
                let msg = e.to_string();
                for (reply, _) in acks {
                    let _ = reply.send(Err(StorageError::Backend(msg.clone())));
                }
            }
        }
    }

    fn current(&self, key: &str, batch: &Batch) -> Result<Option<KeyValue>, StorageError> {
        match batch.overlay.get(key) {
            Some(kv) => Ok(kv.clone()),
            None => Ok(self.engine.get(key)?.0),
        }
    }

    fn prepare(&self, kind: OpKind, batch: &mut Batch) -> Result<Outcome, StorageError> {
        match kind {
            OpKind::Create { key, value } => {
                if self.current(&key, batch)?.is_some() {
                    return Err(StorageError::AlreadyExists { key });
                }
                batch.revision += 1;
                let kv = KeyValue {
                    key: key.clone(),
                    value,
                    create_revision: batch.revision,
                    mod_revision: batch.revision,
                };
                batch.put(kv.clone(), None);
                Ok(Outcome::Kv(kv))
            }
            OpKind::Update {
                key,
                value,
                expected,
            } => {
                let Some(prev) = self.current(&key, batch)? else {
                    return Err(StorageError::NotFound { key });
                };
                check(&key, expected, &prev)?;
                batch.revision += 1;
                let kv = KeyValue {
                    key: key.clone(),
                    value,
                    create_revision: prev.create_revision,
                    mod_revision: batch.revision,
                };
                batch.put(kv.clone(), Some(prev));
                Ok(Outcome::Kv(kv))
            }
            OpKind::Delete { key, expected } => {
                let Some(prev) = self.current(&key, batch)? else {
                    return Err(StorageError::NotFound { key });
                };
                check(&key, expected, &prev)?;
                batch.revision += 1;
                let revision = batch.revision;
                batch.delete(prev.clone(), revision);
                Ok(Outcome::Deleted(prev, revision))
            }
            OpKind::DeletePrefix { prefix } => {
                let mut victims: BTreeMap<String, KeyValue> = self
                    .engine
                    .scan_prefix(&prefix)?
                    .into_iter()
                    .map(|kv| (kv.key.clone(), kv))
                    .collect();
                for (key, kv) in &batch.overlay {
                    if key.starts_with(&prefix) {
                        match kv {
                            Some(kv) => victims.insert(key.clone(), kv.clone()),
                            None => victims.remove(key),
                        };
                    }
                }
                if victims.is_empty() {
                    return Ok(Outcome::Count(0));
                }
                batch.revision += 1;
                let revision = batch.revision;
                let count = victims.len() as u64;
                for kv in victims.into_values() {
                    batch.delete(kv, revision);
                }
                Ok(Outcome::Count(count))
            }
        }
    }
}

impl Batch {
    fn put(&mut self, kv: KeyValue, prev: Option<KeyValue>) {
        self.overlay.insert(kv.key.clone(), Some(kv.clone()));
        self.mutations.push(Mutation::Put(kv.clone()));
        self.events.push(WatchEvent::Put { kv, prev });
    }

    fn delete(&mut self, prev: KeyValue, revision: Revision) {
        self.overlay.insert(prev.key.clone(), None);
        self.mutations.push(Mutation::Delete(prev.key.clone()));
        self.events.push(WatchEvent::Delete { prev, revision });
    }
}

fn check(key: &str, expected: Revision, current: &KeyValue) -> Result<(), StorageError> {
    if expected != 0 && expected != current.mod_revision {
        return Err(StorageError::Conflict {
            key: key.to_string(),
            expected,
            actual: current.mod_revision,
        });
    }
    Ok(())
}

/// Implements [`crate::Storage`] for a type with a `core: Core` field.
macro_rules! impl_storage_via_core {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::Storage for $ty {
            async fn get(
                &self,
                key: &str,
            ) -> Result<Option<$crate::KeyValue>, $crate::StorageError> {
                self.core.get(key).await
            }
            async fn list(
                &self,
                prefix: &str,
                opts: $crate::ListOptions,
            ) -> Result<$crate::ListResult, $crate::StorageError> {
                self.core.list(prefix, opts).await
            }
            async fn create(
                &self,
                key: &str,
                value: bytes::Bytes,
            ) -> Result<$crate::KeyValue, $crate::StorageError> {
                self.core.create(key, value).await
            }
            async fn update(
                &self,
                key: &str,
                value: bytes::Bytes,
                expected: $crate::Revision,
            ) -> Result<$crate::KeyValue, $crate::StorageError> {
                self.core.update(key, value, expected).await
            }
            async fn delete(
                &self,
                key: &str,
                expected: $crate::Revision,
            ) -> Result<($crate::KeyValue, $crate::Revision), $crate::StorageError> {
                self.core.delete(key, expected).await
            }
            async fn delete_prefix(&self, prefix: &str) -> Result<u64, $crate::StorageError> {
                self.core.delete_prefix(prefix).await
            }
            async fn watch(
                &self,
                prefix: &str,
                from: $crate::Revision,
            ) -> Result<$crate::WatchStream, $crate::StorageError> {
                self.core.watch(prefix, from)
            }
            async fn current_revision(&self) -> Result<$crate::Revision, $crate::StorageError> {
                Ok(self.core.current_revision())
            }
            async fn compact(
                &self,
                revision: $crate::Revision,
            ) -> Result<(), $crate::StorageError> {
                self.core.compact(revision);
                Ok(())
            }
        }
    };
}
pub(crate) use impl_storage_via_core;
