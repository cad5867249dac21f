//! The parents the syncer writes into, and the one watch per parent that
//! brings changes of the copies back up.
//!
//! A parent's watch covers every pod the syncer owns there (label
//! `tenancy.nestkube.io/managed-by=nestkube`, all namespaces; on the host
//! with `--host-namespaces`, one watch per listed namespace instead, so a
//! service account with namespaced rights only there suffices), whichever
//! virtual cluster it belongs to; each event only enqueues the reconcile of
//! the virtual pod named by the copy's annotations, and only if that
//! virtual cluster really syncs into this parent with this owner uid and
//! host namespace (a copy claiming another owner is left to the sweep).
//!
//! The same task watches the parent's RuntimeClasses, mirrored into every
//! cluster syncing there ([`crate::mirror`]), and the parent's Pod Events
//! (field selector `involvedObject.kind=Pod`; Events carry no labels): an
//! Event is kept only if it is about a copy in the pod watch's cache of
//! copies ([`CopyIndex`], same uid) whose cluster syncs here, and is handed
//! to [`crate::events`] to be told in the virtual cluster. The Event watch
//! starts once the pod watches have listed, so no Event is judged against
//! an empty cache; an Event read before the pod watch shows its copy waits
//! for it a little ([`Parked`]).
//!
//! Copies of Services, ConfigMaps and Secrets are watched too (metadata
//! only, live changes only: a start or a relist is covered by the resync),
//! so a copy someone else deletes or edits is reconciled again at once.
//!
//! An unreachable parent: the watches retry with a short capped backoff
//! ([`WatchBackoff`]), and after a watch fails, or a reconcile could not
//! reach the parent ([`Health::suspect`]: a silent partition breaks no
//! watch), the parent is probed ([`PROBE_EVERY`]). While a probe finds it
//! unreachable its reconciles wait without trying ([`Health::is_down`])
//! rather than on it; the first probe that gets an answer resyncs every
//! cluster syncing there, sweeps, and retries every failed reconcile, so
//! what changed while it was away (both sides) is reconciled at once
//! rather than when each retry's backoff ends. At most [`PER_PARENT`] reconciles wait on one parent at a
//! time, so a parent that hangs cannot hold up the clusters syncing into
//! others.
//!
//! This module never writes: reconciles do.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event as CoreEvent, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use crate::events::{self, Pending, PodCopy};
use crate::names;
use crate::{Item, Kind, Syncer};

/// A cluster that virtual clusters sync into.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ParentKey {
    /// A cluster served by this process (`root`, or a parent virtual cluster).
    Cluster(String),
    /// The real host cluster.
    Host,
}

/// Most reconciles of one parent running at once: half of what the queue
/// runs, so the clusters of other parents always get the rest.
pub(crate) const PER_PARENT: usize = nestkube_apiserver::controllers::queue::MAX_CONCURRENT / 2;

/// What the syncer knows of one parent's reachability, shared by its watch
/// task (which probes it) and the reconciles against it (which report
/// failures to reach it, and fail at once while it is down).
pub(crate) struct Health {
    /// A probe found it unreachable, and none answered since.
    down: AtomicBool,
    /// A reconcile could not reach it: probe it.
    suspect: Notify,
    /// Reconciles against it running now (at most [`PER_PARENT`]).
    pub(crate) permits: Arc<Semaphore>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            down: AtomicBool::new(false),
            suspect: Notify::new(),
            permits: Arc::new(Semaphore::new(PER_PARENT)),
        }
    }
}

impl Health {
    /// Whether the parent is known unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Asks the parent's watch task to probe it.
    pub(crate) fn suspect(&self) {
        self.suspect.notify_one();
    }
}

/// Clears [`Health::down`] when the watch task that sets it ends (no stale
/// verdict fails the reconciles of a parent nobody probes).
struct Probing(Arc<Health>);

impl Drop for Probing {
    fn drop(&mut self) {
        self.0.down.store(false, Ordering::Relaxed);
    }
}

/// The virtual object a parent copy stands for, read from its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    /// Virtual cluster path.
    pub cluster: String,
    /// Virtual namespace.
    pub namespace: String,
    /// Virtual name.
    pub name: String,
    /// The VirtualCluster's uid (label).
    pub vc_uid: String,
}

/// Reads the owner annotations and labels of a parent copy (JSON).
pub(crate) fn owner_of(obj: &Value) -> Option<Owner> {
    let meta = &obj["metadata"];
    if meta["labels"][names::MANAGED_BY_LABEL] != names::MANAGED_BY_VALUE {
        return None;
    }
    let a = &meta["annotations"];
    let get = |k: &str| a[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    Some(Owner {
        cluster: get(names::CLUSTER_ANNOTATION)?,
        namespace: get(names::NAMESPACE_ANNOTATION)?,
        name: get(names::NAME_ANNOTATION)?,
        vc_uid: meta["labels"][names::VC_UID_LABEL]
            .as_str()
            .unwrap_or("")
            .to_string(),
    })
}

impl Syncer {
    /// Whether a copy in `parent`'s namespace `namespace` claiming `owner`
    /// belongs to a virtual cluster that syncs there now.
    pub(crate) fn owns(&self, parent: &ParentKey, namespace: &str, owner: &Owner) -> bool {
        self.placement(&owner.cluster).is_some_and(|p| {
            ParentKey::of(&p) == *parent
                && p.host_namespace == namespace
                && names::label_value(&p.uid) == owner.vc_uid
        })
    }
}

/// One event of a parent's watches.
enum Watched {
    /// A copied pod changed (or the watch of that namespace, `None`: of all
    /// namespaces, (re)listed, or failed).
    Pod(Option<String>, Box<Result<Event<Pod>, watcher::Error>>),
    /// A copy of `Kind` changed (a claim's status comes up; the others
    /// are checked against their virtual object); `Err`: its watch failed.
    Copy(Kind, Result<Option<Value>, ()>),
    /// A RuntimeClass event (whether it was not an error).
    RuntimeClass(bool),
    /// A Pod Event of the parent changed.
    Event(Box<Result<Event<CoreEvent>, watcher::Error>>),
}

impl Watched {
    /// Whether its watch failed (the parent may be unreachable).
    fn failed(&self) -> bool {
        match self {
            Watched::Pod(_, e) => e.is_err(),
            Watched::Copy(_, r) => r.is_err(),
            Watched::RuntimeClass(ok) => !ok,
            Watched::Event(e) => e.is_err(),
        }
    }
}

/// The pod copies the syncer owns in one parent, as its pod watches last
/// listed and saw them, by `(namespace, name)`: what tells an Event about a
/// copy from any other.
#[derive(Default)]
pub(crate) struct CopyIndex {
    copies: HashMap<(String, String), PodCopy>,
    /// The copies seen since a (re)list of a watch (by its namespace,
    /// `None`: all) began; what it no longer lists is dropped at its end.
    relisting: HashMap<Option<String>, HashSet<(String, String)>>,
}

impl CopyIndex {
    /// Follows one event of the pod watch of `scope`; returns the key of a
    /// copy it indexes for the first time.
    fn apply(
        &mut self,
        scope: &Option<String>,
        event: &Result<Event<Pod>, watcher::Error>,
    ) -> Option<(String, String)> {
        let key_of = |p: &Pod| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        };
        match event {
            Ok(Event::Init) => {
                self.relisting.insert(scope.clone(), HashSet::new());
            }
            Ok(Event::InitApply(p) | Event::Apply(p)) => {
                let key = key_of(p);
                if let Some(seen) = self.relisting.get_mut(scope) {
                    seen.insert(key.clone());
                }
                match copy_of(p) {
                    Some(c) => {
                        if self.copies.insert(key.clone(), c).is_none() {
                            return Some(key);
                        }
                    }
                    None => {
                        self.copies.remove(&key);
                    }
                }
            }
            Ok(Event::Delete(p)) => {
                self.copies.remove(&key_of(p));
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = self.relisting.remove(scope) {
                    self.copies.retain(|k, _| {
                        scope.as_ref().is_some_and(|ns| *ns != k.0) || seen.contains(k)
                    });
                }
            }
            Err(_) => {}
        }
        None
    }

    /// The copy named `name` in `namespace`, if the syncer owns one there.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&PodCopy> {
        self.copies.get(&(namespace.to_string(), name.to_string()))
    }
}

/// What the index keeps of a pod copy (`None`: not a copy).
fn copy_of(p: &Pod) -> Option<PodCopy> {
    // Only the metadata: every pod event of the parent passes here.
    let v = serde_json::json!({ "metadata": &p.metadata });
    Some(PodCopy {
        owner: owner_of(&v)?,
        uid: p.metadata.uid.clone().unwrap_or_default(),
        virtual_uid: v["metadata"]["annotations"][names::UID_ANNOTATION]
            .as_str()
            .unwrap_or("")
            .to_string(),
    })
}

/// How long a Pod Event about a name not (yet) known as a copy waits for
/// the pod watch to show that copy.
const PARK_FOR: Duration = Duration::from_secs(30);
/// Most Pod Events waiting so (the oldest go first).
const MAX_PARKED: usize = 4096;

/// One change of a parent Pod Event, as the Event watch reported it.
struct EventChange {
    ev: CoreEvent,
    /// The parent Event is gone.
    deleted: bool,
    /// Seen by a (re)list.
    relisted: bool,
}

/// Pod Events about a name that may be a copy (it has `-x-`) but is not in
/// the [`CopyIndex`] yet: the Event and pod watches are separate streams,
/// so the scheduler's `Scheduled` may be read before the pod it is about.
/// They are judged again when that copy is indexed, or dropped after
/// [`PARK_FOR`].
#[derive(Default)]
struct Parked {
    by_pod: HashMap<(String, String), Vec<(Instant, EventChange)>>,
    order: VecDeque<(Instant, (String, String))>,
}

impl Parked {
    fn park(&mut self, key: (String, String), change: EventChange) {
        let now = Instant::now();
        while let Some((at, k)) = self.order.front() {
            if now.duration_since(*at) < PARK_FOR && self.order.len() < MAX_PARKED {
                break;
            }
            let (at, k) = (*at, k.clone());
            self.order.pop_front();
            if let Some(list) = self.by_pod.get_mut(&k) {
                list.retain(|(t, _)| *t > at);
                if list.is_empty() {
                    self.by_pod.remove(&k);
                }
            }
        }
        self.order.push_back((now, key.clone()));
        self.by_pod.entry(key).or_default().push((now, change));
    }

    /// The changes waiting for copy `key`, oldest first.
    fn take(&mut self, key: &(String, String)) -> Vec<EventChange> {
        self.by_pod
            .remove(key)
            .into_iter()
            .flatten()
            .map(|(_, c)| c)
            .collect()
    }
}

/// Shortest wait before a failed parent watch is started again.
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest such wait. kube-rs' default (client-go's reflector: 0.8 s
/// doubling to 30 s, reset only after an event) would leave a parent that
/// came back unwatched for up to half a minute; a handful of watches per
/// parent retried every few seconds cost it little.
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a parent whose watch failed is probed until it answers.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one probe (a parent that accepts connections but
/// never answers is unreachable too).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

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

/// Whether the parent's watches are known to work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// Nothing failed since the last answer.
    Up,
    /// A watch failed: probing.
    Suspect,
    /// A probe failed (since then): resync when it answers.
    Down(Instant),
}

/// Whether `client`'s API answers within [`PROBE_TIMEOUT`].
async fn answers(client: &kube::Client) -> bool {
    tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// The object of a watch event, as JSON.
fn touched<K: serde::Serialize>(e: &Result<Event<K>, watcher::Error>) -> Option<Value> {
    match e {
        Ok(Event::Apply(o) | Event::InitApply(o) | Event::Delete(o)) => {
            serde_json::to_value(o).ok()
        }
        _ => None,
    }
}

/// Watches what the syncer owns in `parent` (pods, claims; in every
/// namespace, or in each of [`Syncer::scope`]) and its RuntimeClasses,
/// until aborted.
pub(crate) async fn watch(syncer: Arc<Syncer>, parent: ParentKey, client: kube::Client) {
    let managed = || watcher::Config::default().labels(&names::managed_selector());
    let namespaces: Vec<Option<String>> = match syncer.scope(&parent) {
        None => vec![None],
        Some(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut streams = Vec::new();
    for ns in &namespaces {
        let (pods, claims) = match ns {
            None => (Api::<Pod>::all(client.clone()), Api::all(client.clone())),
            Some(ns) => (
                Api::<Pod>::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
        };
        let scope = ns.clone();
        streams.push(
            watcher::watcher(pods, managed())
                .backoff(WatchBackoff::default())
                .map(move |e| Watched::Pod(scope.clone(), Box::new(e)))
                .boxed(),
        );
        streams.push(
            watcher::watcher::<PersistentVolumeClaim>(claims, managed())
                .backoff(WatchBackoff::default())
                .map(|e| match e {
                    Ok(_) => Watched::Copy(Kind::PersistentVolumeClaim, Ok(touched(&e))),
                    Err(_) => Watched::Copy(Kind::PersistentVolumeClaim, Err(())),
                })
                .boxed(),
        );
        streams.push(copy_watch::<Service>(&client, ns.as_deref(), Kind::Service));
        streams.push(copy_watch::<ConfigMap>(
            &client,
            ns.as_deref(),
            Kind::ConfigMap,
        ));
        streams.push(copy_watch::<Secret>(&client, ns.as_deref(), Kind::Secret));
    }
    streams.push(
        watcher::watcher(
            Api::<RuntimeClass>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::default())
        .map(|e| Watched::RuntimeClass(e.is_ok()))
        .boxed(),
    );
    let mut events = futures::stream::select_all(streams);
    tracing::info!(parent = ?parent, namespaces = ?namespaces, "syncer: watching the parent's copies and RuntimeClasses");
    let mut copies = CopyIndex::default();
    let mut parked = Parked::default();
    // The pod watches yet to list before the Event watches start.
    let mut unlisted: HashSet<Option<String>> = namespaces.iter().cloned().collect();
    // The pod watches that listed once (a later list is a relist).
    let mut listed: HashSet<Option<String>> = HashSet::new();
    let mut event_streams = Some(
        namespaces
            .iter()
            .map(|ns| {
                let api = match ns {
                    None => Api::<CoreEvent>::all(client.clone()),
                    Some(ns) => Api::namespaced(client.clone(), ns),
                };
                watcher::watcher(
                    api,
                    watcher::Config::default().fields("involvedObject.kind=Pod"),
                )
                .backoff(WatchBackoff::default())
                .map(|e| Watched::Event(Box::new(e)))
                .boxed()
            })
            .collect::<Vec<_>>(),
    );
    let copy_changed = |kind: Kind, obj: &Value| {
        let Some(owner) = owner_of(obj) else {
            return;
        };
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        if syncer.owns(&parent, ns, &owner) {
            syncer.enqueue_object(kind, &owner.cluster, &owner.namespace, &owner.name);
        }
    };
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
        let (namespace, event) = match event {
            Watched::Pod(ns, e) => (ns, *e),
            Watched::Copy(kind, obj) => {
                if let Ok(Some(obj)) = obj {
                    // A token Secret is its pod's.
                    let kind = if kind == Kind::Secret && crate::down::token::is_token_secret(&obj)
                    {
                        Kind::Pod
                    } else {
                        kind
                    };
                    copy_changed(kind, &obj);
                }
                continue;
            }
            Watched::RuntimeClass(ok) => {
                if ok {
                    for cluster in syncer.children_of(&parent) {
                        syncer.enqueue(Item::RuntimeClasses { cluster });
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
                if let Some(unknown) = event_changed(&syncer, &parent, &copies, &change) {
                    parked.park(unknown, change);
                }
                continue;
            }
        };
        if let Some(new_copy) = copies.apply(&namespace, &event) {
            for change in parked.take(&new_copy) {
                event_changed(&syncer, &parent, &copies, &change);
            }
        }
        if matches!(event, Ok(Event::InitDone)) {
            unlisted.remove(&namespace);
            if unlisted.is_empty()
                && let Some(streams) = event_streams.take()
            {
                for s in streams {
                    events.push(s);
                }
            }
        }
        if let Some(obj) = touched(&event) {
            copy_changed(Kind::Pod, &obj);
            continue;
        }
        match event {
            Ok(Event::InitDone) => {
                // A relist (the watch fell too far behind: 410 Gone) says
                // nothing of what was deleted meanwhile: reconcile all.
                if !listed.insert(namespace.clone()) {
                    for cluster in syncer.children_of(&parent) {
                        syncer.enqueue(Item::Resync { cluster });
                    }
                }
                syncer.enqueue(Item::Sweep {
                    parent: parent.clone(),
                    namespace,
                })
            }
            Err(e) => {
                tracing::warn!(parent = ?parent, namespace = ?namespace, error = %e, "syncer: parent watch failed; retrying")
            }
            Ok(_) => {}
        }
    }
}

/// The metadata watch of the copies of `kind` (type `K`) in `parent`
/// (namespace `ns`, `None`: all): live changes only (see the module docs).
fn copy_watch<K>(
    client: &kube::Client,
    ns: Option<&str>,
    kind: Kind,
) -> futures::stream::BoxStream<'static, Watched>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api = match ns {
        None => Api::<PartialObjectMeta<K>>::all(client.clone()),
        Some(ns) => Api::<PartialObjectMeta<K>>::namespaced(client.clone(), ns),
    };
    watcher::watcher(
        api,
        watcher::Config::default().labels(&names::managed_selector()),
    )
    .backoff(WatchBackoff::default())
    .map(move |e| match e {
        Ok(Event::Apply(o) | Event::Delete(o)) => {
            Watched::Copy(kind, Ok(serde_json::to_value(o).ok()))
        }
        Ok(_) => Watched::Copy(kind, Ok(None)),
        Err(_) => Watched::Copy(kind, Err(())),
    })
    .boxed()
}

/// A Pod Event of `parent` changed: if it is about a copy the syncer owns
/// for a cluster that syncs here, the virtual Event is brought in line with
/// it. Returns the pod's `(namespace, name)` when that may be a copy not
/// indexed yet (see [`Parked`]).
fn event_changed(
    syncer: &Syncer,
    parent: &ParentKey,
    copies: &CopyIndex,
    change: &EventChange,
) -> Option<(String, String)> {
    let EventChange {
        ev,
        deleted,
        relisted,
    } = change;
    let io = &ev.involved_object;
    let (Some(ns), Some(name)) = (io.namespace.as_deref(), io.name.as_deref()) else {
        return None;
    };
    let Some(copy) = copies.get(ns, name) else {
        // Every copy name has the separator; the parent's own pods rarely.
        return name
            .contains("-x-")
            .then(|| (ns.to_string(), name.to_string()));
    };
    // About an earlier pod of the same name.
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

    fn pod(ns: &str, name: &str, copy: bool) -> Pod {
        let mut meta =
            serde_json::json!({"namespace": ns, "name": name, "uid": format!("uid-{name}")});
        if copy {
            meta["labels"] = serde_json::json!(names::owner_labels("vc", "default", name));
            meta["annotations"] =
                serde_json::json!(names::owner_annotations("team-a", "default", name, "v"));
        }
        serde_json::from_value(serde_json::json!({ "metadata": meta })).unwrap()
    }

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
        let key = ("h".to_string(), "web-x-default-x-a".to_string());
        parked.park(key.clone(), change("Scheduled"));
        parked.park(key.clone(), change("Pulled"));
        parked.park(
            ("h".into(), "other-x-default-x-a".into()),
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
            parked.park(("h".into(), format!("p{i}-x-y")), change("x"));
        }
        assert!(
            parked
                .take(&("h".into(), "other-x-default-x-a".into()))
                .is_empty()
        );
        assert!(parked.by_pod.len() <= MAX_PARKED);
    }

    #[test]
    fn the_copy_index_follows_watches_and_relists() {
        let mut index = CopyIndex::default();
        let all = None;
        index.apply(&all, &Ok(Event::Init));
        index.apply(&all, &Ok(Event::InitApply(pod("h", "a", true))));
        index.apply(&all, &Ok(Event::InitApply(pod("h", "plain", false))));
        index.apply(&all, &Ok(Event::InitDone));
        assert_eq!(index.get("h", "a").unwrap().owner.name, "a");
        assert_eq!(index.get("h", "a").unwrap().uid, "uid-a");
        assert!(index.get("h", "plain").is_none());
        let new = index.apply(&all, &Ok(Event::Apply(pod("h", "b", true))));
        assert_eq!(new, Some(("h".to_string(), "b".to_string())));
        assert!(index.get("h", "b").is_some());
        assert_eq!(
            index.apply(&all, &Ok(Event::Apply(pod("h", "b", true)))),
            None
        );
        index.apply(&all, &Ok(Event::Delete(pod("h", "b", true))));
        assert!(index.get("h", "b").is_none());
        // A relist that no longer lists `a` (deleted while the watch was down).
        index.apply(&all, &Ok(Event::Apply(pod("h", "c", true))));
        index.apply(&all, &Ok(Event::Init));
        assert!(index.get("h", "a").is_some(), "kept until the relist ends");
        index.apply(&all, &Ok(Event::InitApply(pod("h", "c", true))));
        index.apply(&all, &Ok(Event::InitDone));
        assert!(index.get("h", "a").is_none());
        assert!(index.get("h", "c").is_some());
        // A relist of one namespace leaves the others' copies alone.
        index.apply(&Some("other".into()), &Ok(Event::Init));
        index.apply(&Some("other".into()), &Ok(Event::InitDone));
        assert!(index.get("h", "c").is_some());
    }
}
