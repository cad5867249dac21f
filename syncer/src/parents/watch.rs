//! The one task per parent that watches it: the copies of every kind whose
//! row of the table asks for it ([`crate::kinds::CopyWatch`]), the parent's
//! RuntimeClasses and StorageClasses, and its Events about copies
//! ([`super::relay`]); each change only enqueues reconciles (through the
//! kind's [`crate::kinds::Translate::copy_changed`]). A failed watch is
//! retried with a short capped backoff ([`WatchBackoff`]) and has the
//! parent probed ([`super::health`]).
//!
//! This module never writes: reconciles do.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};

use super::health::{PROBE_EVERY, Probing, Reach, answers};
use super::index::Seen;
use super::relay::{EventChange, Parked, event_changed};
use super::{ParentKey, owner_of};
use crate::kinds::{CopyWatch, Kind};
use crate::{Item, Syncer, names};

/// One event of a parent's watches.
pub(crate) enum Watched {
    /// A copy of `kind` changed (or the watch of that kind and namespace,
    /// `None`: of all namespaces, (re)listed, or failed). Only metadata is
    /// watched: a change only enqueues the virtual object's reconcile.
    Copy(
        Kind,
        Option<String>,
        Box<Result<Event<Seen>, watcher::Error>>,
    ),
    /// A RuntimeClass or StorageClass event (whether it was not an error).
    Class(bool),
    /// An Event of the parent about a pod, claim or Service changed.
    Event(Box<Result<Event<CoreEvent>, watcher::Error>>),
}

impl Watched {
    /// Whether its watch failed (the parent may be unreachable).
    fn failed(&self) -> bool {
        match self {
            Watched::Copy(_, _, e) => e.is_err(),
            Watched::Class(ok) => !ok,
            Watched::Event(e) => e.is_err(),
        }
    }
}

/// Shortest wait before a failed parent watch is started again.
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest such wait. kube-rs' default (client-go's reflector: 0.8 s
/// doubling to 30 s, reset only after an event) would leave a parent that
/// came back unwatched for up to half a minute; a handful of watches per
/// parent retried every few seconds cost it little.
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The reconnect backoff of the parent watches (see [`WATCH_BACKOFF_MAX`]).
struct WatchBackoff(Duration);

impl Default for WatchBackoff {
    fn default() -> Self {
        Self(WATCH_BACKOFF_MIN)
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.0;
        self.0 = (self.0 * 2).min(WATCH_BACKOFF_MAX);
        Some(wait)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0 = WATCH_BACKOFF_MIN;
    }
}

/// `e` with its object(s) turned into `f`'s.
fn map_event<T, U>(e: Event<T>, f: impl Fn(T) -> U) -> Event<U> {
    match e {
        Event::Apply(o) => Event::Apply(f(o)),
        Event::InitApply(o) => Event::InitApply(f(o)),
        Event::Delete(o) => Event::Delete(f(o)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// Starts the labelled watch of a kind's copies in a namespace (`None`:
/// all namespaces); a row of the table names one ([`CopyWatch`]).
pub(crate) type StartWatch =
    fn(&kube::Client, Kind, &Option<String>) -> BoxStream<'static, Watched>;

/// The labelled watch of `K` (a kind, or `PartialObjectMeta` of one, which
/// asks for metadata only) in `ns`, its objects kept as `seen` says.
fn labelled<K>(
    client: &kube::Client,
    kind: Kind,
    ns: &Option<String>,
    seen: fn(K) -> Seen,
) -> BoxStream<'static, Watched>
where
    K: kube::Resource<Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let api = match ns {
        None => Api::<K>::all(client.clone()),
        Some(ns) => Api::<K>::namespaced(client.clone(), ns),
    };
    let ns = ns.clone();
    watcher::watcher(
        api,
        watcher::Config::default().labels(&names::managed_selector()),
    )
    .backoff(WatchBackoff::default())
    .map(move |e| Watched::Copy(kind, ns.clone(), Box::new(e.map(|e| map_event(e, seen)))))
    .boxed()
}

/// The watch of the copies of `kind` (of type `K`) in `ns`, kept whole
/// ([`CopyWatch::Whole`]).
pub(crate) fn watch_whole<K>(
    client: &kube::Client,
    kind: Kind,
    ns: &Option<String>,
) -> BoxStream<'static, Watched>
where
    K: kube::Resource<Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    labelled::<K>(client, kind, ns, |o| Seen {
        object: serde_json::to_value(&o).ok(),
        meta: o.meta().clone(),
    })
}

/// The watch of the copies of `kind` (of type `K`) in `ns`, metadata only.
pub(crate) fn watch_metadata<K>(
    client: &kube::Client,
    kind: Kind,
    ns: &Option<String>,
) -> BoxStream<'static, Watched>
where
    K: kube::Resource<Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    labelled::<PartialObjectMeta<K>>(client, kind, ns, |o| Seen {
        meta: o.metadata,
        object: None,
    })
}

/// Watches what the syncer owns in `parent` (the copies of every kind whose
/// row asks for it; in every namespace, or in each of [`Syncer::scope`]),
/// the Events about copies of the kinds whose row relays them, and the
/// parent's RuntimeClasses and StorageClasses, until aborted.
pub(crate) async fn watch(syncer: Arc<Syncer>, parent: ParentKey, client: kube::Client) {
    let namespaces: Vec<Option<String>> = match syncer.scope(&parent) {
        None => vec![None],
        Some(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut streams = Vec::new();
    for ns in &namespaces {
        for &kind in Kind::ALL {
            if let Some(start) = kind.row().watch.start() {
                streams.push(start(&client, kind, ns));
            }
        }
    }
    streams.push(
        watcher::watcher(
            Api::<PartialObjectMeta<RuntimeClass>>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::default())
        .map(|e| Watched::Class(e.is_ok()))
        .boxed(),
    );
    streams.push(
        watcher::watcher(
            Api::<PartialObjectMeta<StorageClass>>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::default())
        .map(|e| Watched::Class(e.is_ok()))
        .boxed(),
    );
    let mut events = futures::stream::select_all(streams);
    tracing::info!(parent = ?parent, namespaces = ?namespaces, "syncer: watching the parent's copies and classes");
    // Shared with the reconciles, which read pod copies from it; a fresh
    // one for each run of this task.
    let copies = syncer.fresh_copy_index(&parent);
    let mut parked = Parked::default();
    // The copy watches yet to list before the Event watches start.
    let mut unlisted: HashSet<(Kind, Option<String>)> = namespaces
        .iter()
        .flat_map(|ns| Kind::with_events().map(|k| (k, ns.clone())))
        .collect();
    // Events carry no labels, and a field selector matches one kind: one
    // Event watch per kind of copy (and namespace).
    // The pod watches that listed once (a later list is a relist).
    let mut listed: HashSet<Option<String>> = HashSet::new();
    let mut event_streams = Some(
        namespaces
            .iter()
            .flat_map(|ns| Kind::with_events().map(|k| (k, ns.clone())))
            .map(|(kind, ns)| {
                let api = match ns {
                    None => Api::<CoreEvent>::all(client.clone()),
                    Some(ns) => Api::namespaced(client.clone(), &ns),
                };
                watcher::watcher(
                    api,
                    watcher::Config::default()
                        .fields(&format!("involvedObject.kind={}", kind.kind())),
                )
                .backoff(WatchBackoff::default())
                .map(|e| Watched::Event(Box::new(e)))
                .boxed()
            })
            .collect::<Vec<_>>(),
    );
    let health = Probing(syncer.health(&parent));
    let mut reach = Reach::Up;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = events.next() => match event {
                Some(e) => e,
                None => break,
            },
            _ = health.0.suspect.notified(), if reach == Reach::Up => {
                reach = Reach::Suspect;
                probe.reset_immediately();
                continue;
            }
            _ = probe.tick(), if reach != Reach::Up => {
                match (answers(&client).await, reach) {
                    (true, Reach::Down(since)) => {
                        tracing::info!(parent = ?parent, unreachable_for = ?since.elapsed(),
                            "syncer: the parent answers again; resyncing the clusters syncing there");
                        // Before the retries, so that none sees it down.
                        reach = Reach::Up;
                        health.0.down.store(false, Ordering::SeqCst);
                        syncer.retry_waiting();
                        for cluster in syncer.children_of(&parent) {
                            syncer.enqueue(Item::Resync { cluster });
                        }
                        for namespace in &namespaces {
                            syncer.enqueue(Item::Sweep {
                                parent: parent.clone(),
                                namespace: namespace.clone(),
                            });
                        }
                    }
                    (true, _) => reach = Reach::Up,
                    (false, Reach::Down(_)) => {}
                    (false, _) => {
                        tracing::warn!(parent = ?parent, "syncer: the parent is unreachable");
                        reach = Reach::Down(Instant::now());
                        health.0.down.store(true, Ordering::SeqCst);
                    }
                }
                continue;
            }
        };
        if event.failed() && reach == Reach::Up {
            reach = Reach::Suspect;
            probe.reset_immediately();
        }
        let (kind, namespace, event) = match event {
            Watched::Copy(kind, ns, e) => (kind, ns, *e),
            Watched::Class(ok) => {
                if ok {
                    for cluster in syncer.children_of(&parent) {
                        syncer.enqueue(Item::Classes { cluster });
                    }
                }
                continue;
            }
            Watched::Event(e) => {
                let change = |ev, deleted, relisted| EventChange {
                    ev,
                    deleted,
                    relisted,
                };
                let change = match *e {
                    Ok(Event::Apply(ev)) => change(ev, false, false),
                    Ok(Event::InitApply(ev)) => change(ev, false, true),
                    Ok(Event::Delete(ev)) => change(ev, true, false),
                    Err(e) => {
                        tracing::warn!(parent = ?parent, error = %e, "syncer: parent Event watch failed; retrying");
                        continue;
                    }
                    Ok(_) => continue,
                };
                let unknown = event_changed(
                    &syncer,
                    &parent,
                    &copies.read().unwrap_or_else(|e| e.into_inner()),
                    &change,
                );
                if let Some(unknown) = unknown {
                    parked.park(unknown, change);
                }
                continue;
            }
        };
        let new_copy = copies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(kind, &namespace, &event);
        if let Some(new_copy) = new_copy {
            let copies = copies.read().unwrap_or_else(|e| e.into_inner());
            for change in parked.take(&new_copy) {
                event_changed(&syncer, &parent, &copies, &change);
            }
        }
        match &event {
            Ok(Event::InitApply(_)) if matches!(kind.row().watch, CopyWatch::LiveOnly(_)) => {}
            Ok(Event::Apply(seen) | Event::InitApply(seen) | Event::Delete(seen)) => {
                // The copy changed (or is gone): its virtual object's
                // reconcile takes status up or puts the copy back.
                let m = &seen.meta;
                let ns = m.namespace.as_deref().unwrap_or("");
                if let Some(owner) = owner_of(&serde_json::json!({ "metadata": m }))
                    && syncer.owns(&parent, ns, &owner)
                {
                    kind.row().translate.copy_changed(
                        &syncer,
                        &parent,
                        kind,
                        m,
                        matches!(event, Ok(Event::Delete(_))),
                        &owner,
                    );
                }
            }
            Ok(Event::InitDone) => {
                unlisted.remove(&(kind, namespace.clone()));
                if unlisted.is_empty()
                    && let Some(streams) = event_streams.take()
                {
                    for s in streams {
                        events.push(s);
                    }
                }
                // The pod watch of a namespace stands for its copy watches.
                if kind == Kind::Pod {
                    // A relist (the watch fell too far behind: 410 Gone)
                    // says nothing of what was deleted meanwhile:
                    // reconcile all.
                    if !listed.insert(namespace.clone()) {
                        for cluster in syncer.children_of(&parent) {
                            syncer.enqueue(Item::Resync { cluster });
                        }
                    }
                    syncer.enqueue(Item::Sweep {
                        parent: parent.clone(),
                        namespace,
                    });
                }
            }
            Err(e) => {
                tracing::warn!(parent = ?parent, kind = ?kind, namespace = ?namespace, error = %e, "syncer: parent watch failed; retrying")
            }
            Ok(Event::Init) => {}
        }
    }
}
