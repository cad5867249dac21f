//! The parent's Events about copies, judged and handed up: an Event is
//! kept only if it is about a copy in the parent's [`CopyIndex`] (same kind
//! and uid) whose cluster syncs there, and is handed to [`crate::events`]
//! to be told in the virtual cluster. An Event read before the copy watch
//! shows its copy waits for it a little ([`Parked`]).
//!
//! This module never writes: the Event reconciles do.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event as CoreEvent;

use super::ParentKey;
use super::index::{CopyIndex, CopyKey};
use crate::events::{self, Pending};
use crate::{Item, Kind, Syncer};

/// How long an Event about a name not (yet) known as a copy waits for the
/// copy watch to show that copy.
const PARK_FOR: Duration = Duration::from_secs(30);
/// Most Events waiting so (the oldest go first).
const MAX_PARKED: usize = 4096;

/// One change of a parent Event, as the Event watch reported it.
pub(super) struct EventChange {
    pub(super) ev: CoreEvent,
    /// The parent Event is gone.
    pub(super) deleted: bool,
    /// Seen by a (re)list.
    pub(super) relisted: bool,
}

/// Events about a name that may be a copy (it has `-x-`) but is not in the
/// [`CopyIndex`] yet: the Event and copy watches are separate streams, so
/// the scheduler's `Scheduled` may be read before the pod it is about. They
/// are judged again when that copy is indexed, or dropped after
/// [`PARK_FOR`].
#[derive(Default)]
pub(super) struct Parked {
    by_copy: HashMap<CopyKey, Vec<(Instant, EventChange)>>,
    order: VecDeque<(Instant, CopyKey)>,
}

impl Parked {
    pub(super) fn park(&mut self, key: CopyKey, change: EventChange) {
        let now = Instant::now();
        while let Some((at, k)) = self.order.front() {
            if now.duration_since(*at) < PARK_FOR && self.order.len() < MAX_PARKED {
                break;
            }
            let (at, k) = (*at, k.clone());
            self.order.pop_front();
            if let Some(list) = self.by_copy.get_mut(&k) {
                list.retain(|(t, _)| *t > at);
                if list.is_empty() {
                    self.by_copy.remove(&k);
                }
            }
        }
        self.order.push_back((now, key.clone()));
        self.by_copy.entry(key).or_default().push((now, change));
    }

    /// The changes waiting for copy `key`, oldest first.
    pub(super) fn take(&mut self, key: &CopyKey) -> Vec<EventChange> {
        self.by_copy
            .remove(key)
            .into_iter()
            .flatten()
            .map(|(_, c)| c)
            .collect()
    }
}

/// An Event of `parent` changed: if it is about a copy the syncer owns for
/// a cluster that syncs here, the virtual Event is brought in line with it.
/// Returns the copy's key when that may be a copy not indexed yet (see
/// [`Parked`]).
pub(super) fn event_changed(
    syncer: &Syncer,
    parent: &ParentKey,
    copies: &CopyIndex,
    change: &EventChange,
) -> Option<CopyKey> {
    let EventChange {
        ev,
        deleted,
        relisted,
    } = change;
    let io = &ev.involved_object;
    let (Some(kind), Some(ns), Some(name)) = (
        io.kind.as_deref().and_then(Kind::of_copy),
        io.namespace.as_deref(),
        io.name.as_deref(),
    ) else {
        return None;
    };
    let Some(copy) = copies.get(kind, ns, name) else {
        // Every copy name has the separator; the parent's own objects rarely.
        return name
            .contains("-x-")
            .then(|| (kind, ns.to_string(), name.to_string()));
    };
    // About an earlier object of the same name.
    if io
        .uid
        .as_deref()
        .is_some_and(|u| !u.is_empty() && u != copy.uid)
    {
        return None;
    }
    if !syncer.owns(parent, ns, &copy.owner) {
        return None;
    }
    let Ok(host) = serde_json::to_value(ev) else {
        return None;
    };
    let (key, mut wish) = events::pending(&host, copy, name, ns, *deleted);
    if let Pending::Write { create_first, .. } = &mut wish
        && *relisted
    {
        // After a restart the virtual Event most likely exists.
        *create_first = false;
    }
    let (cluster, namespace, name) = key.clone();
    syncer.outbox.put(key, wish);
    syncer.enqueue(Item::Event {
        cluster,
        namespace,
        name,
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_events_wait_for_their_copy() {
        let mut parked = Parked::default();
        let change = |reason: &str| EventChange {
            ev: serde_json::from_value(serde_json::json!({
                "metadata": {"name": reason}, "involvedObject": {}, "reason": reason,
            }))
            .unwrap(),
            deleted: false,
            relisted: false,
        };
        let key = (Kind::Pod, "h".to_string(), "web-x-default-x-a".to_string());
        parked.park(key.clone(), change("Scheduled"));
        parked.park(key.clone(), change("Pulled"));
        parked.park(
            (Kind::Pod, "h".into(), "other-x-default-x-a".into()),
            change("Started"),
        );
        let reasons: Vec<_> = parked
            .take(&key)
            .into_iter()
            .map(|c| c.ev.reason.unwrap())
            .collect();
        assert_eq!(reasons, ["Scheduled", "Pulled"]);
        assert!(parked.take(&key).is_empty());
        // The oldest go first when too many wait.
        for i in 0..MAX_PARKED {
            parked.park((Kind::Pod, "h".into(), format!("p{i}-x-y")), change("x"));
        }
        assert!(
            parked
                .take(&(Kind::Pod, "h".into(), "other-x-default-x-a".into()))
                .is_empty()
        );
        assert!(parked.by_copy.len() <= MAX_PARKED);
    }
}
