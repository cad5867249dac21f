//! The parents the syncer writes into, and the one watch per parent that
//! brings changes of the copies back up.
//!
//! A parent's watches cover every pod, claim, Service, Ingress,
//! NetworkPolicy, ConfigMap and Secret the syncer owns there (label
//! `tenancy.nestkube.io/managed-by=nestkube`, all namespaces; on the host
//! with `--host-namespaces`, one watch per listed namespace instead, so a
//! service account with namespaced rights only there suffices), whichever
//! virtual cluster it belongs to: pods whole, the other kinds metadata
//! only. Each event only enqueues the reconcile of the virtual object
//! named by the copy's annotations (status up, or a copy deleted by
//! someone else put back), and only if that virtual cluster really syncs
//! into this parent with this owner uid and host namespace (a copy claiming
//! another owner is left to the sweep). What the watches saw is kept in
//! the parent's [`CopyIndex`], from which pod reconciles read their copies
//! instead of asking the parent (once the pod watch has listed).
//!
//! The same task watches the parent's RuntimeClasses and StorageClasses,
//! mirrored into every cluster syncing there ([`crate::mirror`]), and the parent's Events about
//! pods, claims and Services (one field selector `involvedObject.kind=…`
//! each; Events carry no labels): an Event is kept only if it is about a
//! copy in the watches' cache of copies ([`CopyIndex`], same kind and uid)
//! whose cluster syncs here, and is handed to [`crate::events`] to be told
//! in the virtual cluster. The Event watches start once the copy watches
//! have listed, so no Event is judged against an empty cache; an Event read
//! before the copy watch shows its copy waits for it a little ([`Parked`]).
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
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use crate::events::{self, Copy, Pending};
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

/// The kinds of copies the parent's watches follow, so their changes come
/// up (status, or a copy deleted or edited below put back).
const WATCHED_COPIES: [Kind; 7] = [
    Kind::Pod,
    Kind::PersistentVolumeClaim,
    Kind::Service,
    Kind::Ingress,
    Kind::NetworkPolicy,
    Kind::ConfigMap,
    Kind::Secret,
];
/// Kinds whose copies a (re)list does not reconcile: there can be many
/// and their reconciles read the pods that reference them; a start or a
/// relist resyncs every cluster anyway, live changes are reconciled.
const LIVE_ONLY: [Kind; 2] = [Kind::ConfigMap, Kind::Secret];
/// The kinds of copies whose parent Events are told in the virtual cluster
/// (one Event watch each); their copy watches list before those start.
const EVENT_KINDS: [Kind; 3] = [Kind::Pod, Kind::PersistentVolumeClaim, Kind::Service];

/// One event of a parent's watches.
enum Watched {
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

/// `(kind, namespace, name)` of a parent object.
type CopyKey = (Kind, String, String);

/// A parent object as its watch reports it: its metadata, and the whole
/// object for the kinds reconciles read from the index ([`KEPT_WHOLE`]).
pub(crate) struct Seen {
    meta: ObjectMeta,
    object: Option<Value>,
}

/// Kinds whose copies the index keeps whole, so their reconciles read them
/// from it instead of asking the parent ([`CopyIndex::object`]).
const KEPT_WHOLE: [Kind; 1] = [Kind::Pod];

/// What the index says of a copy a reconcile asks for.
pub(crate) enum Lookup {
    /// The watch of its kind and namespace has not listed yet: ask the
    /// parent.
    Unknown,
    /// It does not exist (as far as the watch has seen).
    Absent,
    /// It is this.
    Present(Value),
}

/// The copies the syncer owns in one parent, as its copy watches last
/// listed and saw them: what tells an Event about a copy from any other,
/// and what the reconciles of pods read their copies from. Shared by the
/// parent's watch task (the only writer) and the reconciles.
#[derive(Default)]
pub(crate) struct CopyIndex {
    copies: HashMap<CopyKey, Copy>,
    /// The objects of the copies of [`KEPT_WHOLE`] kinds.
    objects: HashMap<CopyKey, Value>,
    /// The copies seen since a (re)list of a watch (by its kind and
    /// namespace, `None`: all) began; what it no longer lists is dropped at
    /// its end.
    relisting: HashMap<(Kind, Option<String>), HashSet<CopyKey>>,
    /// The watches that have listed once.
    listed: HashSet<(Kind, Option<String>)>,
}

impl CopyIndex {
    /// Follows one event of the watch of `kind` in `scope`; returns the key
    /// of a copy it indexes for the first time.
    fn apply(
        &mut self,
        kind: Kind,
        scope: &Option<String>,
        event: &Result<Event<Seen>, watcher::Error>,
    ) -> Option<CopyKey> {
        let key_of = |m: &ObjectMeta| {
            (
                kind,
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
            )
        };
        let watch = (kind, scope.clone());
        match event {
            Ok(Event::Init) => {
                self.relisting.insert(watch, HashSet::new());
            }
            Ok(Event::InitApply(seen) | Event::Apply(seen)) => {
                let key = key_of(&seen.meta);
                if let Some(listed) = self.relisting.get_mut(&watch) {
                    listed.insert(key.clone());
                }
                match copy_of(kind, &seen.meta) {
                    Some(c) => {
                        if let Some(o) = &seen.object {
                            self.objects.insert(key.clone(), o.clone());
                        }
                        if self.copies.insert(key.clone(), c).is_none() {
                            return Some(key);
                        }
                    }
                    None => {
                        self.copies.remove(&key);
                        self.objects.remove(&key);
                    }
                }
            }
            Ok(Event::Delete(seen)) => {
                let key = key_of(&seen.meta);
                self.copies.remove(&key);
                self.objects.remove(&key);
            }
            Ok(Event::InitDone) => {
                if let Some(listed) = self.relisting.remove(&watch) {
                    let keep = |k: &CopyKey| {
                        k.0 != kind
                            || scope.as_ref().is_some_and(|ns| *ns != k.1)
                            || listed.contains(k)
                    };
                    self.copies.retain(|k, _| keep(k));
                    self.objects.retain(|k, _| keep(k));
                }
                self.listed.insert(watch);
            }
            Err(_) => {}
        }
        None
    }

    /// The copy of `kind` named `name` in `namespace`, if the syncer owns
    /// one there.
    pub(crate) fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Copy> {
        self.copies
            .get(&(kind, namespace.to_string(), name.to_string()))
    }

    /// The copy of `kind` (one of [`KEPT_WHOLE`]) named `name` in
    /// `namespace`, as the watch last saw it.
    pub(crate) fn object(&self, kind: Kind, namespace: &str, name: &str) -> Lookup {
        let listed = self.listed.contains(&(kind, None))
            || self.listed.contains(&(kind, Some(namespace.to_string())));
        if !listed || !KEPT_WHOLE.contains(&kind) {
            return Lookup::Unknown;
        }
        match self
            .objects
            .get(&(kind, namespace.to_string(), name.to_string()))
        {
            Some(o) => Lookup::Present(o.clone()),
            None => Lookup::Absent,
        }
    }
}

/// What the index keeps of a copy of `kind` (`None`: not a copy).
fn copy_of(kind: Kind, m: &ObjectMeta) -> Option<Copy> {
    let v = serde_json::json!({ "metadata": m });
    Some(Copy {
        kind,
        owner: owner_of(&v)?,
        uid: m.uid.clone().unwrap_or_default(),
        virtual_uid: v["metadata"]["annotations"][names::UID_ANNOTATION]
            .as_str()
            .unwrap_or("")
            .to_string(),
    })
}

/// How long an Event about a name not (yet) known as a copy waits for the
/// copy watch to show that copy.
const PARK_FOR: Duration = Duration::from_secs(30);
/// Most Events waiting so (the oldest go first).
const MAX_PARKED: usize = 4096;

/// One change of a parent Event, as the Event watch reported it.
struct EventChange {
    ev: CoreEvent,
    /// The parent Event is gone.
    deleted: bool,
    /// Seen by a (re)list.
    relisted: bool,
}

/// Events about a name that may be a copy (it has `-x-`) but is not in the
/// [`CopyIndex`] yet: the Event and copy watches are separate streams, so
/// the scheduler's `Scheduled` may be read before the pod it is about. They
/// are judged again when that copy is indexed, or dropped after
/// [`PARK_FOR`].
#[derive(Default)]
struct Parked {
    by_copy: HashMap<CopyKey, Vec<(Instant, EventChange)>>,
    order: VecDeque<(Instant, CopyKey)>,
}

impl Parked {
    fn park(&mut self, key: CopyKey, change: EventChange) {
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
    fn take(&mut self, key: &CopyKey) -> Vec<EventChange> {
        self.by_copy
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

/// What the index keeps of a copy watched for its metadata only.
fn metadata_only<K>(o: PartialObjectMeta<K>) -> Seen {
    Seen {
        meta: o.metadata,
        object: None,
    }
}

/// What the index keeps of a pod copy: metadata and the whole pod.
fn whole_pod(p: Pod) -> Seen {
    Seen {
        object: serde_json::to_value(&p).ok(),
        meta: p.metadata,
    }
}

/// The watch of copies of `kind` in `ns` (`None`: all namespaces): whole
/// objects for [`KEPT_WHOLE`] kinds, metadata for the others.
fn copy_watch(
    client: &kube::Client,
    kind: Kind,
    ns: &Option<String>,
) -> futures::stream::BoxStream<'static, Watched> {
    /// The labelled watch of `K` (a kind, or `PartialObjectMeta` of one,
    /// which asks for metadata only), its objects kept as `seen` says.
    fn watch<K>(
        client: &kube::Client,
        kind: Kind,
        ns: &Option<String>,
        seen: fn(K) -> Seen,
    ) -> futures::stream::BoxStream<'static, Watched>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
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
    type Meta<K> = PartialObjectMeta<K>;
    match kind {
        Kind::Pod => watch::<Pod>(client, kind, ns, whole_pod),
        Kind::PersistentVolumeClaim => {
            watch::<Meta<PersistentVolumeClaim>>(client, kind, ns, metadata_only)
        }
        Kind::Service => watch::<Meta<Service>>(client, kind, ns, metadata_only),
        Kind::Ingress => watch::<Meta<Ingress>>(client, kind, ns, metadata_only),
        Kind::NetworkPolicy => watch::<Meta<NetworkPolicy>>(client, kind, ns, metadata_only),
        Kind::ConfigMap => watch::<Meta<ConfigMap>>(client, kind, ns, metadata_only),
        Kind::Secret => watch::<Meta<Secret>>(client, kind, ns, metadata_only),
        other => unreachable!("no watch of copies of {other:?}"),
    }
}

/// Watches what the syncer owns in `parent` (pods, claims, Services,
/// Ingresses, NetworkPolicies; in every namespace, or in each of
/// [`Syncer::scope`]), the Events about pods, claims and Services, and the
/// parent's RuntimeClasses and StorageClasses, until aborted.
pub(crate) async fn watch(syncer: Arc<Syncer>, parent: ParentKey, client: kube::Client) {
    let namespaces: Vec<Option<String>> = match syncer.scope(&parent) {
        None => vec![None],
        Some(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut streams = Vec::new();
    for ns in &namespaces {
        for kind in WATCHED_COPIES {
            streams.push(copy_watch(&client, kind, ns));
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
        .flat_map(|ns| EVENT_KINDS.map(|k| (k, ns.clone())))
        .collect();
    // Events carry no labels, and a field selector matches one kind: one
    // Event watch per kind of copy (and namespace).
    // The pod watches that listed once (a later list is a relist).
    let mut listed: HashSet<Option<String>> = HashSet::new();
    let mut event_streams = Some(
        namespaces
            .iter()
            .flat_map(|ns| EVENT_KINDS.map(|k| (k, ns.clone())))
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
            Ok(Event::InitApply(_)) if LIVE_ONLY.contains(&kind) => {}
            Ok(Event::Apply(seen) | Event::InitApply(seen) | Event::Delete(seen)) => {
                // The copy changed (or is gone): its virtual object's
                // reconcile takes status up or puts the copy back.
                let m = &seen.meta;
                let ns = m.namespace.as_deref().unwrap_or("");
                if let Some(owner) = owner_of(&serde_json::json!({ "metadata": m }))
                    && syncer.owns(&parent, ns, &owner)
                {
                    let token = kind == Kind::Secret
                        && m.annotations.as_ref().is_some_and(|a| {
                            a.contains_key(crate::down::token::REFRESH_ANNOTATION)
                        });
                    if !token {
                        syncer.enqueue_object(kind, &owner.cluster, &owner.namespace, &owner.name);
                    } else if syncer.tokens.changed_below(
                        &parent,
                        ns,
                        m.name.as_deref().unwrap_or(""),
                        match &event {
                            Ok(Event::Delete(_)) => None,
                            _ => m.resource_version.as_deref(),
                        },
                    ) {
                        // A token Secret is its pod's: its reconcile writes
                        // it again.
                        syncer.enqueue_object(
                            Kind::Pod,
                            &owner.cluster,
                            &owner.namespace,
                            &owner.name,
                        );
                    }
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

/// An Event of `parent` changed: if it is about a copy the syncer owns for
/// a cluster that syncs here, the virtual Event is brought in line with it.
/// Returns the copy's key when that may be a copy not indexed yet (see
/// [`Parked`]).
fn event_changed(
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

    fn pod(ns: &str, name: &str, copy: bool) -> Seen {
        let mut meta =
            serde_json::json!({"namespace": ns, "name": name, "uid": format!("uid-{name}")});
        if copy {
            meta["labels"] = serde_json::json!(names::owner_labels("vc", "default", name));
            meta["annotations"] =
                serde_json::json!(names::owner_annotations("team-a", "default", name, "v"));
        }
        Seen {
            object: Some(serde_json::json!({ "metadata": &meta })),
            meta: serde_json::from_value(meta).unwrap(),
        }
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

    #[test]
    fn the_copy_index_follows_watches_and_relists() {
        let mut index = CopyIndex::default();
        let all = None;
        // Nothing is known of pods before their watch has listed.
        assert!(matches!(index.object(Kind::Pod, "h", "a"), Lookup::Unknown));
        index.apply(Kind::Pod, &all, &Ok(Event::Init));
        index.apply(Kind::Pod, &all, &Ok(Event::InitApply(pod("h", "a", true))));
        index.apply(
            Kind::Pod,
            &all,
            &Ok(Event::InitApply(pod("h", "plain", false))),
        );
        index.apply(Kind::Pod, &all, &Ok(Event::InitDone));
        assert_eq!(index.get(Kind::Pod, "h", "a").unwrap().owner.name, "a");
        assert_eq!(index.get(Kind::Pod, "h", "a").unwrap().uid, "uid-a");
        assert!(index.get(Kind::Pod, "h", "plain").is_none());
        // Reconciles read pod copies whole; a pod that is not a copy is
        // not one.
        assert!(matches!(
            index.object(Kind::Pod, "h", "a"),
            Lookup::Present(o) if o["metadata"]["name"] == "a"
        ));
        assert!(matches!(
            index.object(Kind::Pod, "h", "plain"),
            Lookup::Absent
        ));
        let new = index.apply(Kind::Pod, &all, &Ok(Event::Apply(pod("h", "b", true))));
        assert_eq!(new, Some((Kind::Pod, "h".to_string(), "b".to_string())));
        assert!(index.get(Kind::Pod, "h", "b").is_some());
        assert_eq!(
            index.apply(Kind::Pod, &all, &Ok(Event::Apply(pod("h", "b", true)))),
            None
        );
        index.apply(Kind::Pod, &all, &Ok(Event::Delete(pod("h", "b", true))));
        assert!(index.get(Kind::Pod, "h", "b").is_none());
        // A relist that no longer lists `a` (deleted while the watch was down).
        index.apply(Kind::Pod, &all, &Ok(Event::Apply(pod("h", "c", true))));
        index.apply(Kind::Pod, &all, &Ok(Event::Init));
        assert!(
            index.get(Kind::Pod, "h", "a").is_some(),
            "kept until the relist ends"
        );
        index.apply(Kind::Pod, &all, &Ok(Event::InitApply(pod("h", "c", true))));
        index.apply(Kind::Pod, &all, &Ok(Event::InitDone));
        assert!(index.get(Kind::Pod, "h", "a").is_none());
        assert!(index.get(Kind::Pod, "h", "c").is_some());
        // A relist of one namespace leaves the others' copies alone.
        index.apply(Kind::Pod, &Some("other".into()), &Ok(Event::Init));
        index.apply(Kind::Pod, &Some("other".into()), &Ok(Event::InitDone));
        assert!(index.get(Kind::Pod, "h", "c").is_some());
        // Kinds are indexed apart: a claim named like a pod, and a relist
        // of the pods that leaves the claims alone.
        index.apply(
            Kind::PersistentVolumeClaim,
            &all,
            &Ok(Event::Apply(pod("h", "c", true))),
        );
        index.apply(Kind::Pod, &all, &Ok(Event::Init));
        index.apply(Kind::Pod, &all, &Ok(Event::InitDone));
        assert!(index.get(Kind::Pod, "h", "c").is_none());
        let claim = index.get(Kind::PersistentVolumeClaim, "h", "c").unwrap();
        assert_eq!(claim.kind, Kind::PersistentVolumeClaim);
    }
}
