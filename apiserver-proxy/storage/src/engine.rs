//! The narrow, synchronous interface an embedded backend implements, and the value encoding the
//! disk backends share.
//!
//! An [`Engine`] stores only the latest value of each key plus the store revision. It owns
//! atomicity and durability of one batch ([`Engine::commit`]) and snapshot reads. It must never
//! assign revisions, check preconditions or know about watchers: that is [`crate::group_commit`].

use bytes::Bytes;

use crate::{KeyValue, ListOptions, ListResult, Revision, StorageError};

/// One change of a committed batch.
#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    /// Store `kv` (its revisions included) under `kv.key`.
    Put(KeyValue),
    /// Remove the key.
    Delete(String),
}

/// A storage engine: latest values plus the store revision, with atomic durable batches.
pub(crate) trait Engine: Send + Sync + 'static {
    /// The revision persisted by the last commit (0 for a new store).
    fn revision(&self) -> Result<Revision, StorageError>;
    /// The value of `key` and the store revision this read observed.
    fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision), StorageError>;
    /// A consistent page of keys under `prefix`, with the revision it observed.
    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StorageError>;
    /// Every key under `prefix` (used by `delete_prefix`, on the committer thread).
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>, StorageError>;
    /// Applies `mutations` and sets the store revision to `revision` in one atomic step, and
    /// makes it durable before returning.
    fn commit(&self, mutations: &[Mutation], revision: Revision) -> Result<(), StorageError>;
}

const HEADER: usize = 16;

/// Encodes a value with its revisions: `create_revision` and `mod_revision` as big-endian u64,
/// then the value bytes.
pub(crate) fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_be_bytes());
    out.extend_from_slice(&kv.mod_revision.to_be_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes what [`encode`] wrote.
pub(crate) fn decode(key: &str, raw: &[u8]) -> Result<KeyValue, StorageError> {
    if raw.len() < HEADER {
        return Err(StorageError::Backend(format!(
            "corrupt record for key {key}: {} bytes",
            raw.len()
        )));
    }
    let mut c = [0u8; 8];
    let mut m = [0u8; 8];
    c.copy_from_slice(&raw[..8]);
    m.copy_from_slice(&raw[8..16]);
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(&raw[HEADER..]),
        create_revision: u64::from_be_bytes(c),
        mod_revision: u64::from_be_bytes(m),
    })
}

/// Where a page of `prefix` starts: after `start_after` when it is at or past the prefix.
pub(crate) fn list_start<'a>(prefix: &'a str, opts: &'a ListOptions) -> std::ops::Bound<&'a str> {
    match opts.start_after.as_deref() {
        Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
        _ => std::ops::Bound::Included(prefix),
    }
}

/// Makes the directory entries of `dir` (a newly created store file) durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::backend)
}
