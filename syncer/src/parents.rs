//! The parents the syncer writes into, and the one watch per parent that
//! brings changes of the copies back up.
//!
//! A parent's watch covers every pod (and claim, Ingress, NetworkPolicy)
//! the syncer owns there (label
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
//! This module never writes: reconciles do.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

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
    /// A copy of another kind than pods changed: a claim or an Ingress
    /// (their status comes up), a NetworkPolicy (a copy changed or deleted
    /// below is put back).
    Copy(Kind, Option<Value>),
    /// A RuntimeClass event (whether it was not an error).
    RuntimeClass(bool),
    /// A Pod Event of the parent changed.
    Event(Box<Result<Event<CoreEvent>, watcher::Error>>),
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

/// The object of a watch event, as JSON.
fn touched<K: serde::Serialize>(e: &Result<Event<K>, watcher::Error>) -> Option<Value> {
    match e {
        Ok(Event::Apply(o) | Event::InitApply(o) | Event::Delete(o)) => {
            serde_json::to_value(o).ok()
        }
        _ => None,
    }
}

/// The API of `K` in namespace `ns` (`None`: all namespaces).
fn scoped<K>(client: &kube::Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        None => Api::all(client.clone()),
        Some(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// Watches what the syncer owns in `parent` (pods, claims, Ingresses,
/// NetworkPolicies; in every namespace, or in each of [`Syncer::scope`])
/// and its RuntimeClasses, until aborted.
pub(crate) async fn watch(syncer: Arc<Syncer>, parent: ParentKey, client: kube::Client) {
    let managed = || watcher::Config::default().labels(&names::managed_selector());
    let namespaces: Vec<Option<String>> = match syncer.scope(&parent) {
        None => vec![None],
        Some(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut streams = Vec::new();
    for ns in &namespaces {
        let scope = ns.clone();
        streams.push(
            watcher::watcher::<Pod>(scoped(&client, ns), managed())
                .default_backoff()
                .map(move |e| Watched::Pod(scope.clone(), Box::new(e)))
                .boxed(),
        );
        streams.push(
            watcher::watcher::<PersistentVolumeClaim>(scoped(&client, ns), managed())
                .default_backoff()
                .map(|e| Watched::Copy(Kind::PersistentVolumeClaim, touched(&e)))
                .boxed(),
        );
        streams.push(
            watcher::watcher::<Ingress>(scoped(&client, ns), managed())
                .default_backoff()
                .map(|e| Watched::Copy(Kind::Ingress, touched(&e)))
                .boxed(),
        );
        streams.push(
            watcher::watcher::<NetworkPolicy>(scoped(&client, ns), managed())
                .default_backoff()
                .map(|e| Watched::Copy(Kind::NetworkPolicy, touched(&e)))
                .boxed(),
        );
    }
    streams.push(
        watcher::watcher(
            Api::<RuntimeClass>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(|e| Watched::RuntimeClass(e.is_ok()))
        .boxed(),
    );
    let mut events = futures::stream::select_all(streams);
    tracing::info!(parent = ?parent, namespaces = ?namespaces, "syncer: watching the parent's copies and RuntimeClasses");
    let mut copies = CopyIndex::default();
    let mut parked = Parked::default();
    // The pod watches yet to list before the Event watches start.
    let mut unlisted: HashSet<Option<String>> = namespaces.iter().cloned().collect();
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
                .default_backoff()
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
    while let Some(event) = events.next().await {
        let (namespace, event) = match event {
            Watched::Pod(ns, e) => (ns, *e),
            Watched::Copy(kind, obj) => {
                if let Some(obj) = obj {
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
            Ok(Event::InitDone) => syncer.enqueue(Item::Sweep {
                parent: parent.clone(),
                namespace,
            }),
            Err(e) => {
                tracing::warn!(parent = ?parent, namespace = ?namespace, error = %e, "syncer: parent watch failed; retrying")
            }
            Ok(_) => {}
        }
    }
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
