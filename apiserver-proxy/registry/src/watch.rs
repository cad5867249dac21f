//! Watches: storage events turned into Kubernetes watch events for one
//! target, with selector filtering, initial events and bookmarks.
//!
//! Ordering and exactly-once delivery come from the storage watch; this layer
//! only filters and converts. An object that stops matching a selector is
//! reported as DELETED and one that starts matching as ADDED, as upstream.

use std::collections::VecDeque;

use nestkube_storage::{
    ListOptions as StorageList, StorageError, WatchEvent as StorageEvent, WatchStream,
};
use serde_json::{Value, json};

use super::catalog::ResourceInfo;
use super::meta;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Store, Target, decode_for, undecodable};
use crate::error::ApiError;

/// Watch parameters.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// The oldest revision whose history this watch may see: the creation of
    /// the watched cluster's current incarnation (0: all). Events before it
    /// belong to an earlier cluster at the same path, so a watch from an
    /// older resourceVersion is `410 Gone`, as one from compacted history.
    pub oldest_revision: u64,
}

/// A Kubernetes watch event.
#[derive(Debug)]
pub enum Event {
    /// ADDED.
    Added(Value),
    /// MODIFIED.
    Modified(Value),
    /// DELETED.
    Deleted(Value),
    /// BOOKMARK at a resourceVersion; `initial_events_end` marks the end of
    /// `sendInitialEvents`.
    Bookmark {
        /// Resource version.
        revision: u64,
        /// Annotated `k8s.io/initial-events-end: "true"`.
        initial_events_end: bool,
    },
    /// ERROR with a Status (e.g. 410 Gone), after which the watch ends.
    Error(ApiError),
}

impl Event {
    /// The wire form `{"type": ..., "object": ...}`, with the object transformed by `f`.
    pub fn to_json(&self, r: &ResourceInfo, f: impl Fn(&Value) -> Value) -> Value {
        match self {
            Event::Added(o) => json!({"type": "ADDED", "object": f(o)}),
            Event::Modified(o) => json!({"type": "MODIFIED", "object": f(o)}),
            Event::Deleted(o) => json!({"type": "DELETED", "object": f(o)}),
            Event::Bookmark {
                revision,
                initial_events_end,
            } => {
                let mut metadata = json!({"resourceVersion": revision.to_string()});
                if *initial_events_end {
                    metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                json!({"type": "BOOKMARK", "object": {"kind": r.kind, "apiVersion": r.api_version(), "metadata": metadata}})
            }
            Event::Error(e) => json!({"type": "ERROR", "object": e.to_status()}),
        }
    }
}

/// An open watch.
pub struct Watch {
    initial: VecDeque<Event>,
    stream: Option<WatchStream>,
    /// The store (its converter) and the cluster watched: objects stored
    /// at another version of a CRD are converted as they are read.
    store: Store,
    cluster: String,
    resource: std::sync::Arc<ResourceInfo>,
    labels: LabelSelector,
    fields: FieldSelector,
    done: bool,
}

impl Watch {
    /// Opens a watch on `t` (its resource must be `resource`).
    pub async fn open(
        store: &Store,
        t: &Target<'_>,
        resource: std::sync::Arc<ResourceInfo>,
        opts: WatchOptions,
    ) -> Result<Watch, ApiError> {
        Store::check_field_selector(&resource, &opts.field_selector)?;
        let storage = store.storage();
        let prefix = t.prefix();
        let rv = opts.resource_version.as_deref().filter(|s| !s.is_empty());
        // Upstream: no resourceVersion or "0" = initial state as ADDED events,
        // then changes; sendInitialEvents=true does the same and ends the
        // initial events with a bookmark; "N" = changes after N.
        let initial_state = match opts.send_initial_events {
            Some(send) => send,
            None => rv.is_none_or(|v| v == "0"),
        };
        let mut initial = VecDeque::new();
        let from = if initial_state {
            let page = storage
                .list(
                    &prefix,
                    StorageList {
                        start_after: None,
                        limit: None,
                    },
                )
                .await?;
            let t = Target {
                resource: &resource,
                ..*t
            };
            let objects = store
                .decode_all(&t, &page.items.iter().collect::<Vec<_>>())
                .await?;
            for obj in objects {
                if Store::matches(&resource, &obj, &opts.label_selector, &opts.field_selector)? {
                    initial.push_back(Event::Added(obj));
                }
            }
            let from = page.revision;
            if opts.send_initial_events == Some(true) && opts.allow_bookmarks {
                initial.push_back(Event::Bookmark {
                    revision: from,
                    initial_events_end: true,
                });
            }
            from
        } else {
            let v = rv.unwrap_or("0");
            v.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v:?}")))?
        };
        // Only an explicit resourceVersion can name history (an initial list,
        // and "0", start at the current revision).
        let stream = if !initial_state && from != 0 && from < opts.oldest_revision {
            Err(StorageError::Compacted {
                requested: from,
                compacted: opts.oldest_revision,
            })
        } else {
            storage.watch(&prefix, from).await
        };
        let stream = match stream {
            Ok(s) => Some(s),
            Err(StorageError::Compacted {
                requested,
                compacted,
            }) => {
                initial.push_back(Event::Error(ApiError::Gone(format!(
                    "too old resource version: {requested} ({compacted})"
                ))));
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Watch {
            initial,
            stream,
            store: store.clone(),
            cluster: t.cluster.to_string(),
            resource,
            labels: opts.label_selector,
            fields: opts.field_selector,
            done: false,
        })
    }

    /// Asks for a bookmark: a later [`Watch::next`] yields one once every
    /// event before it has been delivered.
    pub fn request_bookmark(&self) {
        if let Some(s) = &self.stream {
            s.request_progress();
        }
    }

    /// Decodes an event's object (and its previous state) at the watched
    /// version, converting both in one review when they are stored at
    /// another. `None`: not decodable (skipped, as before conversion).
    async fn decode(
        &self,
        kv: &nestkube_storage::KeyValue,
        prev: Option<&nestkube_storage::KeyValue>,
    ) -> Result<Option<(Value, Option<Value>)>, ApiError> {
        let Ok(obj) = decode_for(&self.resource, kv) else {
            return Ok(None);
        };
        let prev = prev.and_then(|p| decode_for(&self.resource, p).ok());
        let mut objects: Vec<Value> = std::iter::once(obj).chain(prev).collect();
        let t = Target {
            cluster: &self.cluster,
            resource: &self.resource,
            namespace: None,
        };
        if let Err(e) = self
            .store
            .convert(&t, &mut objects, &self.resource.api_version())
            .await
        {
            return Err(undecodable(
                &self.resource,
                &objects[0],
                kv.mod_revision,
                &e,
            ));
        }
        let mut objects = objects.into_iter();
        let obj = objects.next().unwrap_or_default();
        Ok(Some((obj, objects.next())))
    }

    /// Ends the watch with an error event (an object could not be
    /// converted: upstream's watch ends with its decode error).
    fn fail(&mut self, e: ApiError) -> Event {
        self.done = true;
        self.stream = None;
        Event::Error(e)
    }

    fn matches(&self, obj: &Value) -> bool {
        Store::matches(&self.resource, obj, &self.labels, &self.fields).unwrap_or(false)
    }

    /// The next event; `None` when the watch has ended.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.initial.pop_front() {
            if matches!(e, Event::Error(_)) {
                self.done = true;
            }
            return Some(e);
        }
        if self.done {
            return None;
        }
        loop {
            let event = match self.stream.as_mut()?.next().await? {
                Ok(e) => e,
                Err(StorageError::Compacted {
                    requested,
                    compacted,
                }) => {
                    self.done = true;
                    return Some(Event::Error(ApiError::Gone(format!(
                        "too old resource version: {requested} ({compacted})"
                    ))));
                }
                Err(e) => {
                    // A watcher that fell behind is closed, never silently skipped:
                    // the client re-watches from its last resourceVersion.
                    tracing::debug!(error = %e, "watch closed by storage");
                    self.done = true;
                    return None;
                }
            };
            match event {
                StorageEvent::Progress { revision } => {
                    return Some(Event::Bookmark {
                        revision,
                        initial_events_end: false,
                    });
                }
                StorageEvent::Put { kv, prev } => {
                    let (obj, before) = match self.decode(&kv, prev.as_ref()).await {
                        Ok(Some(decoded)) => decoded,
                        Ok(None) => continue,
                        Err(e) => return Some(self.fail(e)),
                    };
                    let now = self.matches(&obj);
                    let before = before.map(|p| (self.matches(&p), p));
                    match (before, now) {
                        (None, true) | (Some((false, _)), true) => return Some(Event::Added(obj)),
                        (Some((true, _)), true) => return Some(Event::Modified(obj)),
                        (Some((true, mut old)), false) => {
                            meta::set(
                                &mut old,
                                "resourceVersion",
                                Some(kv.mod_revision.to_string().into()),
                            );
                            return Some(Event::Deleted(old));
                        }
                        _ => continue,
                    }
                }
                StorageEvent::Delete { prev, revision } => {
                    let mut obj = match self.decode(&prev, None).await {
                        Ok(Some((obj, _))) => obj,
                        Ok(None) => continue,
                        Err(e) => return Some(self.fail(e)),
                    };
                    if self.matches(&obj) {
                        meta::set(
                            &mut obj,
                            "resourceVersion",
                            Some(revision.to_string().into()),
                        );
                        return Some(Event::Deleted(obj));
                    }
                }
            }
        }
    }
}
