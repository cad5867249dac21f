//! The redb 2.x backend: latest values in one redb table, the store revision in another, each
//! batch one write transaction committed with `Durability::Immediate`.
//!
//! It owns the file `nestkube.redb` in the store directory. redb commits are ACID and
//! checksummed, so a crash leaves the last committed transaction. Reads use read transactions
//! (MVCC snapshots), so a list sees exactly one revision and never blocks the committer.
//! It must never commit with a weaker durability than `Immediate`.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

use crate::engine::{Engine, Mutation, decode, encode, list_start};
use crate::group_commit::{Core, impl_storage_via_core};
use crate::{KeyValue, ListOptions, ListResult, Revision, StorageConfig, StorageError};

const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REV_KEY: &str = "revision";
const FILE: &str = "nestkube.redb";

/// A [`crate::Storage`] on redb 2.x.
pub struct RedbStorage {
    core: Core,
}

impl RedbStorage {
    /// Opens (or creates) a store in `dir` with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(dir, StorageConfig::default())
    }

    /// Opens (or creates) a store in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, config: StorageConfig) -> Result<Self, StorageError> {
        let engine = RedbEngine::open(dir.as_ref())?;
        Ok(RedbStorage {
            core: Core::start(Arc::new(engine), config, "redb")?,
        })
    }

    /// The watch hub (for tests and metrics).
    pub fn hub(&self) -> &Arc<crate::watch::WatchHub> {
        self.core.hub()
    }
}

impl_storage_via_core!(RedbStorage);

struct RedbEngine {
    db: Database,
}

fn be(e: impl std::fmt::Display) -> StorageError {
    StorageError::backend(e)
}

impl RedbEngine {
    fn open(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(be)?;
        let db = Database::create(dir.join(FILE)).map_err(be)?;
        let txn = db.begin_write().map_err(be)?;
        {
            txn.open_table(DATA).map_err(be)?;
            txn.open_table(META).map_err(be)?;
        }
        txn.commit().map_err(be)?;
        crate::engine::sync_dir(dir)?;
        Ok(RedbEngine { db })
    }
}

fn read_revision(meta: &impl ReadableTable<&'static str, u64>) -> Result<Revision, StorageError> {
    Ok(meta.get(REV_KEY).map_err(be)?.map_or(0, |v| v.value()))
}

impl Engine for RedbEngine {
    fn revision(&self) -> Result<Revision, StorageError> {
        let txn = self.db.begin_read().map_err(be)?;
        read_revision(&txn.open_table(META).map_err(be)?)
    }

    fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision), StorageError> {
        let txn = self.db.begin_read().map_err(be)?;
        let data = txn.open_table(DATA).map_err(be)?;
        let revision = read_revision(&txn.open_table(META).map_err(be)?)?;
        let kv = match data.get(key).map_err(be)? {
            Some(raw) => Some(decode(key, raw.value())?),
            None => None,
        };
        Ok((kv, revision))
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StorageError> {
        let txn = self.db.begin_read().map_err(be)?;
        let data = txn.open_table(DATA).map_err(be)?;
        let revision = read_revision(&txn.open_table(META).map_err(be)?)?;
        let start = list_start(prefix, opts);
        let range = data.range::<&str>((start, Bound::Unbounded)).map_err(be)?;
        let limit = opts.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut remaining = 0u64;
        for entry in range {
            let (k, v) = entry.map_err(be)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if items.len() < limit {
                items.push(decode(key, v.value())?);
            } else {
                remaining += 1;
            }
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
        let txn = self.db.begin_write().map_err(be)?;
        {
            let mut data = txn.open_table(DATA).map_err(be)?;
            for m in mutations {
                match m {
                    Mutation::Put(kv) => {
                        data.insert(kv.key.as_str(), encode(kv).as_slice())
                            .map_err(be)?;
                    }
                    Mutation::Delete(key) => {
                        data.remove(key.as_str()).map_err(be)?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(be)?;
            meta.insert(REV_KEY, revision).map_err(be)?;
        }
        txn.commit().map_err(be)?;
        Ok(())
    }
}
