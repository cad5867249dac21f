//! The sled 0.34 backend: latest values in one sled tree, made durable by an explicit flush after
//! every batch.
//!
//! Layout: data under `k<key>`, the store revision under `m:rev`, both written by one atomic
//! `apply_batch`. sled's periodic background flush is disabled (`flush_every_ms(None)`): the
//! committer flushes each batch itself, and an idle store has no timer thread.
//!
//! sled 0.34's `flush()` alone is not durable on Linux: it ends in `sync_file_range`, which
//! neither writes the file's metadata (its size, as the log grows) nor flushes the device cache;
//! only sled's periodic flusher calls `fsync`. So after every flush this module `fdatasync`s the
//! `db` file itself. sled writes items larger than a quarter segment to separate blob files that
//! it never fsyncs, so the segment size is raised to 8 MiB (blobs start above ~2 MiB, beyond
//! Kubernetes' ~1.5 MiB object limit).
//!
//! It must never report a commit before `Db::flush` returned, and never let a reader see a batch
//! half-applied (readers and `apply_batch` are serialised by a reader/writer lock; readers see
//! applied-but-not-yet-flushed batches, which [`crate::group_commit`] holds back until durable).

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::engine::{Engine, Mutation, decode, encode, list_start};
use crate::group_commit::{Core, impl_storage_via_core};
use crate::{KeyValue, ListOptions, ListResult, Revision, StorageConfig, StorageError};

const REV_KEY: &[u8] = b"m:rev";
const DATA: u8 = b'k';
/// sled segment size (a persisted parameter of the store); see the module docs.
const SEGMENT_SIZE: usize = 8 << 20;

/// A [`crate::Storage`] on sled 0.34.
pub struct SledStorage {
    core: Core,
}

impl SledStorage {
    /// Opens (or creates) a store in `dir` with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(dir, StorageConfig::default())
    }

    /// Opens (or creates) a store in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, config: StorageConfig) -> Result<Self, StorageError> {
        let engine = SledEngine::open(dir.as_ref())?;
        Ok(SledStorage {
            core: Core::start(Arc::new(engine), config, "sled")?,
        })
    }

    /// The watch hub (for tests and metrics).
    pub fn hub(&self) -> &Arc<crate::watch::WatchHub> {
        self.core.hub()
    }
}

impl_storage_via_core!(SledStorage);

struct SledEngine {
    db: sled::Db,
    /// A second handle on sled's `db` file, only for `fdatasync` (fsync works per inode).
    file: std::fs::File,
    /// Readers share it; `apply_batch` takes it exclusively, so a read sees whole batches and a
    /// revision consistent with the values.
    lock: RwLock<()>,
}

fn data_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(DATA);
    k.extend_from_slice(key.as_bytes());
    k
}

fn key_of(raw: &[u8]) -> Result<&str, StorageError> {
    std::str::from_utf8(&raw[1..]).map_err(StorageError::backend)
}

impl SledEngine {
    fn open(dir: &Path) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .segment_size(SEGMENT_SIZE)
            .open()
            .map_err(StorageError::backend)?;
        let file = std::fs::File::open(dir.join("db")).map_err(StorageError::backend)?;
        crate::engine::sync_dir(dir)?;
        Ok(SledEngine {
            db,
            file,
            lock: RwLock::new(()),
        })
    }

    fn read_revision(&self) -> Result<Revision, StorageError> {
        match self.db.get(REV_KEY).map_err(StorageError::backend)? {
            None => Ok(0),
            Some(raw) => {
                let bytes: [u8; 8] = raw
                    .as_ref()
                    .try_into()
                    .map_err(|_| StorageError::Backend("corrupt revision record".into()))?;
                Ok(u64::from_be_bytes(bytes))
            }
        }
    }
}

impl Engine for SledEngine {
    fn revision(&self) -> Result<Revision, StorageError> {
        self.read_revision()
    }

    fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision), StorageError> {
        let _g = self.lock.read().unwrap_or_else(|e| e.into_inner());
        let raw = self.db.get(data_key(key)).map_err(StorageError::backend)?;
        let revision = self.read_revision()?;
        let kv = raw.map(|raw| decode(key, &raw)).transpose()?;
        Ok((kv, revision))
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StorageError> {
        let _g = self.lock.read().unwrap_or_else(|e| e.into_inner());
        let revision = self.read_revision()?;
        let start = list_start(prefix, opts).map(data_key);
        let full_prefix = data_key(prefix);
        let mut iter = self
            .db
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take_while(|r| {
                r.as_ref()
                    .map_or(true, |(k, _)| k.starts_with(&full_prefix))
            });
        let limit = opts.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        for r in iter.by_ref().take(limit) {
            let (k, v) = r.map_err(StorageError::backend)?;
            items.push(decode(key_of(&k)?, &v)?);
        }
        let mut remaining = 0u64;
        for r in iter {
            r.map_err(StorageError::backend)?;
            remaining += 1;
        }
        Ok(ListResult {
            items,
            revision,
            remaining,
        })
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>, StorageError> {
        Ok(self.list(prefix, &ListOptions::default())?.items)
    }

    fn commit(&self, mutations: &[Mutation], revision: Revision) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for m in mutations {
            match m {
                Mutation::Put(kv) => batch.insert(data_key(&kv.key), encode(kv)),
                Mutation::Delete(key) => batch.remove(data_key(key)),
            }
        }
        batch.insert(REV_KEY, &revision.to_be_bytes());
        {
            let _g = self.lock.write().unwrap_or_else(|e| e.into_inner());
            self.db.apply_batch(batch).map_err(StorageError::backend)?;
        }
        self.db.flush().map_err(StorageError::backend)?;
        self.file.sync_data().map_err(StorageError::backend)?;
        Ok(())
    }
}
