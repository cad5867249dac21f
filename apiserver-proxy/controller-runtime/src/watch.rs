//! The runtime's first stage: the shared "watch every cluster" loop of
//! cluster-aware controllers (kube-runtime's `watcher`).
//!
//! One storage watch over the whole key space (all clusters), delivered to a
//! synchronous callback as [`Change`]s: first the objects that exist
//! ([`Change::Listing`], each [`Change::Initial`], then [`Change::Synced`]), then every put and delete.
//! A watcher that falls behind resumes from the last revision it saw (no
//! event lost; the events of that last revision may be delivered twice, so
//! callbacks must be idempotent); a watch from compacted history lists again.
//!
//! This module owns no controller state and never writes: the callback must
//! be cheap (filter by key, enqueue work) because it runs on the watch loop.
//! Cluster records (keys under `/_`) are never delivered.

use std::time::Duration;

use nestkube_storage::{KeyValue, ListOptions, Revision, StorageError, WatchEvent};
use serde_json::Value;

use crate::error::ApiError;
use crate::registry::store::{Store, decode_stored};

/// One change seen by a cluster-wide watch.
#[derive(Debug)]
pub enum Change<'a> {
    /// A (re)list begins: state derived from earlier changes may be stale.
    Listing,
    /// An object that existed when the watch (re)started.
    Initial(&'a KeyValue),
    /// Every [`Change::Initial`] of this (re)start has been delivered.
    Synced,
    /// An object was created or updated (`prev` is its previous value).
    Put {
        /// The new value.
        kv: &'a KeyValue,
        /// The previous value, if it existed.
        prev: Option<&'a KeyValue>,
    },
    /// An object was deleted; `prev` is its last value.
    Delete {
        /// The last value.
        prev: &'a KeyValue,
    },
}

impl Change<'_> {
    /// The key this change is about (`None` for [`Change::Synced`]).
    pub fn key(&self) -> Option<&str> {
        match self {
            Change::Initial(kv) | Change::Put { kv, .. } => Some(&kv.key),
            Change::Delete { prev } => Some(&prev.key),
            Change::Synced | Change::Listing => None,
        }
    }

    /// The object's current value (`None` when deleted or for `Synced`).
    pub fn current(&self) -> Option<&KeyValue> {
        match self {
            Change::Initial(kv) | Change::Put { kv, .. } => Some(kv),
            _ => None,
        }
    }

    /// Decodes the object (current value, or the last one of a delete).
    pub fn object(&self) -> Option<Value> {
        let kv = match self {
            Change::Initial(kv) | Change::Put { kv, .. } => *kv,
            Change::Delete { prev } => *prev,
            Change::Synced | Change::Listing => return None,
        };
        decode_stored(kv).ok()
    }
}

/// The parts of a storage key `/<cluster>/<group>/<resource>/[<ns>/]<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKey<'a> {
    /// Cluster path.
    pub cluster: &'a str,
    /// `<group or core>/<resource>` (the catalog's `storage_segment`).
    pub segment: &'a str,
    /// Namespace ("" when cluster-scoped).
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
}

impl<'a> ObjectKey<'a> {
    /// Parses a storage key; `None` for cluster records and malformed keys.
    pub fn parse(key: &'a str) -> Option<Self> {
        let rest = key.strip_prefix('/')?;
        if rest.starts_with('_') {
            return None;
        }
        let (cluster, rest) = rest.split_once('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let seg_len = parts.get(..2)?.iter().map(|s| s.len()).sum::<usize>() + 1;
        let segment = &rest[..seg_len];
        match parts.len() {
            3 => Some(Self {
                cluster,
                segment,
                namespace: "",
                name: parts[2],
            }),
            4 => Some(Self {
                cluster,
                segment,
                namespace: parts[2],
                name: parts[3],
            }),
            _ => None,
        }
    }
}

/// Whether `haystack` contains `needle` (a cheap filter before decoding).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs the watch until the process ends, calling `on` for every change.
/// `name` names the controller in logs.
pub async fn run(store: Store, name: &'static str, mut on: impl FnMut(Change<'_>) + Send) {
    let mut resume: Option<Revision> = None;
    loop {
        match watch_once(&store, &mut resume, &mut on).await {
            Ok(()) => tracing::debug!(controller = name, "watch ended; restarting"),
            Err(e) => tracing::warn!(controller = name, error = %e, "watch failed; restarting"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn watch_once(
    store: &Store,
    resume: &mut Option<Revision>,
    on: &mut (impl FnMut(Change<'_>) + Send),
) -> Result<(), ApiError> {
    let storage = store.storage();
    let mut stream = match *resume {
        // One revision back: a watch cut inside a multi-key revision (a
        // cluster's `delete_prefix`) must not lose the rest of it; the
        // replayed events are harmless to idempotent callbacks.
        Some(from) => match storage.watch("/", from.saturating_sub(1)).await {
            Ok(s) => s,
            Err(StorageError::Compacted { .. }) => {
                *resume = None;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            let all = storage.list("/", ListOptions::default()).await?;
            let stream = storage.watch("/", all.revision).await?;
            on(Change::Listing);
            for kv in all.items.iter().filter(|kv| !kv.key.starts_with("/_")) {
                on(Change::Initial(kv));
            }
            on(Change::Synced);
            *resume = Some(all.revision);
            stream
        }
    };
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(StorageError::Compacted { .. }) => {
                *resume = None;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        match &event {
            WatchEvent::Put { kv, prev } if !kv.key.starts_with("/_") => on(Change::Put {
                kv,
                prev: prev.as_ref(),
            }),
            WatchEvent::Delete { prev, .. } if !prev.key.starts_with("/_") => {
                on(Change::Delete { prev })
            }
            _ => {}
        }
        *resume = Some(event.revision());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys() {
        let k = ObjectKey::parse("/root/core/pods/default/web-1").unwrap();
        assert_eq!(
            k,
            ObjectKey {
                cluster: "root",
                segment: "core/pods",
                namespace: "default",
                name: "web-1"
            }
        );
        let k = ObjectKey::parse("/a:b/core/namespaces/x").unwrap();
        assert_eq!(
            (k.cluster, k.segment, k.namespace, k.name),
            ("a:b", "core/namespaces", "", "x")
        );
        assert!(ObjectKey::parse("/_clusters/a").is_none());
        assert!(ObjectKey::parse("/root/core").is_none());
    }

    #[test]
    fn byte_search() {
        assert!(contains(b"{\"ownerReferences\":[]}", b"ownerReferences"));
        assert!(!contains(b"{}", b"ownerReferences"));
    }
}
