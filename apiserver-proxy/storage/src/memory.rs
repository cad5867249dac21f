//! An in-memory store with the same semantics as the disk backends (revisions, CAS, watch), for
//! tests of higher layers.
//!
//! It owns a `BTreeMap` behind a lock. It must never be used where data has to survive the
//! process: nothing is written to disk.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use crate::engine::{Engine, Mutation, list_start};
use crate::group_commit::{Core, impl_storage_via_core};
use crate::{KeyValue, ListOptions, ListResult, Revision, StorageConfig, StorageError};

/// A [`crate::Storage`] kept in memory only.
pub struct MemoryStorage {
    core: Core,
}

impl MemoryStorage {
    /// An empty store at revision 0 with the default configuration.
    pub fn new() -> Self {
        Self::with_config(StorageConfig::default())
    }

    /// An empty store at revision 0.
    ///
    /// # Panics
    /// If the committer thread cannot be spawned (the process is out of threads).
    pub fn with_config(config: StorageConfig) -> Self {
        let engine = Arc::new(MemoryEngine::default());
        match Core::start(engine, config, "memory") {
            Ok(core) => MemoryStorage { core },
            Err(e) => panic!("cannot start in-memory store: {e}"),
        }
    }

    /// The watch hub (for tests and metrics).
    pub fn hub(&self) -> &Arc<crate::watch::WatchHub> {
        self.core.hub()
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl_storage_via_core!(MemoryStorage);

#[derive(Default)]
struct MemoryEngine {
    state: RwLock<(BTreeMap<String, KeyValue>, Revision)>,
}

impl MemoryEngine {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, (BTreeMap<String, KeyValue>, Revision)> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Engine for MemoryEngine {
    fn revision(&self) -> Result<Revision, StorageError> {
        Ok(self.read().1)
    }

    fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision), StorageError> {
        let st = self.read();
        Ok((st.0.get(key).cloned(), st.1))
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StorageError> {
        let st = self.read();
        let start = list_start(prefix, opts).map(str::to_string);
        let mut iter =
            st.0.range((start, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix));
        let limit = opts.limit.unwrap_or(usize::MAX);
        let items: Vec<KeyValue> = iter.by_ref().take(limit).map(|(_, v)| v.clone()).collect();
        let remaining = iter.count() as u64;
        Ok(ListResult {
            items,
            revision: st.1,
            remaining,
        })
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>, StorageError> {
        Ok(self.list(prefix, &ListOptions::default())?.items)
    }

    fn commit(&self, mutations: &[Mutation], revision: Revision) -> Result<(), StorageError> {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        for m in mutations {
            match m {
                Mutation::Put(kv) => {
                    st.0.insert(kv.key.clone(), kv.clone());
                }
                Mutation::Delete(key) => {
                    st.0.remove(key);
                }
            }
        }
        st.1 = revision;
        Ok(())
    }
}
