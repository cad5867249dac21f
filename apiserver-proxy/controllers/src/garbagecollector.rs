//! The garbage collector (upstream's `garbagecollector`): objects whose
//! owners are gone are deleted (background), an owner deleted with
//! `propagationPolicy: Foreground` waits until its blocking dependents are
//! gone, one deleted with `Orphan` first has its ownerReferences removed from
//! its dependents. The store adds the [`FOREGROUND`] and [`ORPHAN`]
//! finalizers; this controller acts on them and removes them.
//!
//! Cluster-aware: one watch over all clusters; an in-memory [`Graph`] of
//! owner references exists only for clusters that have objects with owner
//! references, so an idle cluster (or one without owners) costs nothing.
//! Owners are looked up by the dependent's cluster and namespace only: an
//! owner reference never reaches into another cluster.
//!
//! Foreground deletion deletes every dependent of the owner at once
//! (foreground again when the dependent has dependents of its own) and
//! waits only for those with `blockOwnerDeletion`, as upstream does.
//!
//! This controller must never delete an object whose owner it cannot
//! resolve (unknown kind): such references are treated as alive.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::runtime::{self, ControllerContext};
use super::runtime::{Change, ObjectKey, contains};
use super::util::tolerate;
use crate::error::ApiError;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::keys;
use crate::registry::meta;
use crate::registry::store::{DeleteOptions, Deleted, Store, Target, WriteOptions, decode_stored};

/// Finalizer of an owner deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer of an owner deleted with `propagationPolicy: Orphan`.
pub const ORPHAN: &str = "orphan";

/// One entry of `metadata.ownerReferences`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `kind` of the owner.
    pub kind: String,
    /// Name of the owner (in the dependent's namespace when namespaced).
    pub name: String,
    /// uid of the owner.
    pub uid: String,
    /// Whether the owner is the managing controller.
    pub controller: bool,
    /// Whether the owner's foreground deletion waits for this dependent.
    pub block_owner_deletion: bool,
}

impl OwnerRef {
    /// The API group of the owner ("" for core).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// The owner references of `obj`.
pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(OwnerRef {
                api_version: r["apiVersion"].as_str()?.into(),
                kind: r["kind"].as_str()?.into(),
                name: r["name"].as_str()?.into(),
                uid: r["uid"].as_str()?.into(),
                controller: r["controller"].as_bool().unwrap_or(false),
                block_owner_deletion: r["blockOwnerDeletion"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

#[derive(Default, Debug)]
struct ClusterGraph {
    /// Dependent key -> its owner references.
    owners_of: HashMap<String, Vec<OwnerRef>>,
    /// Owner uid -> dependent keys.
    dependents: HashMap<String, HashSet<String>>,
}

/// Owner references of every object that has some, per cluster; clusters
/// without any have no entry.
#[derive(Default, Debug)]
pub struct Graph {
    clusters: HashMap<String, ClusterGraph>,
}

impl Graph {
    /// Records `key`'s owner references (none forgets it); returns whether
    /// they changed.
    pub fn set(&mut self, cluster: &str, key: &str, refs: Vec<OwnerRef>) -> bool {
        if refs.is_empty() {
            return !self.remove(cluster, key).is_empty();
        }
        let g = self.clusters.entry(cluster.to_string()).or_default();
        if g.owners_of.get(key) == Some(&refs) {
            return false;
        }
        if let Some(old) = g.owners_of.remove(key) {
            unlink(g, key, &old);
        }
        for r in &refs {
            g.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(key.to_string());
        }
        g.owners_of.insert(key.to_string(), refs);
        true
    }

    /// Forgets `key`; returns the owner references it had.
    pub fn remove(&mut self, cluster: &str, key: &str) -> Vec<OwnerRef> {
        let Some(g) = self.clusters.get_mut(cluster) else {
            return Vec::new();
        };
        let old = g.owners_of.remove(key).unwrap_or_default();
        unlink(g, key, &old);
        if g.owners_of.is_empty() {
            self.clusters.remove(cluster);
        }
        old
    }

    /// The owner references recorded for `key`.
    pub fn refs(&self, cluster: &str, key: &str) -> Option<Vec<OwnerRef>> {
        self.clusters.get(cluster)?.owners_of.get(key).cloned()
    }

    /// Keys of the objects naming `owner_uid` as an owner.
    pub fn dependents(&self, cluster: &str, owner_uid: &str) -> Vec<String> {
        self.clusters
            .get(cluster)
            .and_then(|g| g.dependents.get(owner_uid))
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether anything in `cluster` has owner references.
    pub fn tracks_cluster(&self, cluster: &str) -> bool {
        self.clusters.contains_key(cluster)
    }

    /// Whether `key` is recorded.
    pub fn tracks(&self, cluster: &str, key: &str) -> bool {
        self.clusters
            .get(cluster)
            .is_some_and(|g| g.owners_of.contains_key(key))
    }

    /// Number of clusters with owner references.
    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }

    /// Forgets everything (before a relist).
    pub fn clear(&mut self) {
        self.clusters.clear();
    }
}

fn unlink(g: &mut ClusterGraph, key: &str, refs: &[OwnerRef]) {
    for r in refs {
        if let Some(d) = g.dependents.get_mut(&r.uid) {
            d.remove(key);
            if d.is_empty() {
                g.dependents.remove(&r.uid);
            }
        }
    }
}

/// Work of the collector, by storage key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    /// Check whether this object's owners are gone.
    Dependent(String),
    /// This object is being deleted with a GC finalizer.
    Owner(String),
}

/// How an owner reference resolves.
#[derive(Debug, PartialEq)]
enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// The owner does not exist (or is another object by that name).
    Dangling,
    /// The owner is being deleted in the foreground.
    Waiting,
}

/// What becomes of a dependent, given how each of its owner references
/// resolves.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// An owner is alive (or none is gone): nothing to do.
    Keep,
    /// An owner is alive: drop the references (uids) to the gone ones.
    DropRefs(Vec<String>),
    /// Every owner is gone or waiting: delete it with this propagation
    /// (foreground when an owner waits for it, as its own finalizers ask
    /// otherwise).
    Delete(&'static str),
}

/// Upstream's `attemptToDeleteItem` decision for `obj`, whose owner
/// references (by uid) resolve to `states`.
fn verdict(obj: &Value, states: &[(&str, OwnerState)]) -> Verdict {
    let solid = states.iter().any(|(_, s)| *s == OwnerState::Solid);
    let waiting = states.iter().any(|(_, s)| *s == OwnerState::Waiting);
    let dangling: Vec<String> = states
        .iter()
        .filter(|(_, s)| *s == OwnerState::Dangling)
        .map(|(uid, _)| uid.to_string())
        .collect();
    if solid || (dangling.is_empty() && !waiting) {
        return if dangling.is_empty() {
            Verdict::Keep
        } else {
            Verdict::DropRefs(dangling)
        };
    }
    Verdict::Delete(if waiting {
        "Foreground"
    } else if meta::finalizers(obj).iter().any(|f| f == ORPHAN) {
        "Orphan"
    } else {
        "Background"
    })
}

/// The target of the object at `k`, of `resource`.
fn target<'a>(k: &ObjectKey<'a>, resource: &'a ResourceInfo) -> Target<'a> {
    Target {
        cluster: k.cluster,
        resource,
        namespace: (!k.namespace.is_empty()).then_some(k.namespace),
    }
}

/// The collector; one per process.
struct Collector {
    store: Store,
    catalog: Arc<Catalog>,
    /// Storage segment -> resource (its preferred version).
    by_segment: HashMap<String, Arc<ResourceInfo>>,
    graph: Mutex<Graph>,
}

/// Starts the garbage collector for every cluster of `ctx`. The keys of a
/// (re)list wait until it is complete, so no owner is judged gone before
/// the graph knows it.
pub fn spawn(ctx: &ControllerContext) -> tokio::task::JoinHandle<()> {
    let mut by_segment = HashMap::new();
    for r in ctx.catalog.resources() {
        by_segment
            .entry(r.storage_segment.clone())
            .or_insert_with(|| r.clone());
    }
    let gc = Arc::new(Collector {
        store: ctx.store.clone(),
        catalog: ctx.catalog.clone(),
        by_segment,
        graph: Mutex::new(Graph::default()),
    });
    runtime::Controller::new("garbagecollector", gc.clone())
        .hold_initial_until_synced()
        .watch(&ctx.store, move |change| match change {
            Change::Listing => {
                if let Ok(mut g) = gc.graph.lock() {
                    g.clear();
                }
                Vec::new()
            }
            Change::Synced => Vec::new(),
            change => gc.observe(change, matches!(change, Change::Initial(_))),
        })
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Collector {
    async fn reconcile(&self, item: Item) -> runtime::Outcome<ApiError> {
        self.sync(&item).await.map(|()| None)
    }
}

impl Collector {
    /// Updates the graph from one change; returns the work it calls for.
    /// Cheap: objects without owner references or GC finalizers are not
    /// even decoded.
    fn observe(&self, change: &Change<'_>, initial: bool) -> Vec<Item> {
        let mut items = Vec::new();
        let Some(key) = change.key() else {
            return items;
        };
        let Some(k) = ObjectKey::parse(key) else {
            return items;
        };
        let Ok(mut graph) = self.graph.lock() else {
            return items;
        };
        match change.current() {
            Some(kv) => {
                let refs_inside = contains(&kv.value, b"\"ownerReferences\"");
                let finalized = contains(&kv.value, FOREGROUND.as_bytes())
                    || contains(&kv.value, b"\"orphan\"");
                if !refs_inside && !finalized && !graph.tracks(k.cluster, key) {
                    return items;
                }
                let Ok(obj) = decode_stored(kv) else {
                    return items;
                };
                let refs = owner_refs(&obj);
                let had = graph.refs(k.cluster, key);
                let changed = graph.set(k.cluster, key, refs.clone());
                if !refs.is_empty() && (changed || initial) {
                    items.push(Item::Dependent(key.to_string()));
                }
                // References dropped (orphaning, adoption changes): owners
                // waiting in the foreground may be done.
                for r in had.unwrap_or_default() {
                    if !refs.contains(&r)
                        && let Some(owner) = self.owner_key(&k, &r)
                    {
                        items.push(Item::Owner(owner));
                    }
                }
                let fins = meta::finalizers(&obj);
                if meta::is_deleting(&obj) && fins.iter().any(|f| f == FOREGROUND || f == ORPHAN) {
                    items.push(Item::Owner(key.to_string()));
                }
            }
            None => {
                if !graph.tracks_cluster(k.cluster) {
                    return items;
                }
                for r in graph.remove(k.cluster, key) {
                    if let Some(owner) = self.owner_key(&k, &r) {
                        items.push(Item::Owner(owner));
                    }
                }
                if let Some(obj) = change.object() {
                    for d in graph.dependents(k.cluster, meta::uid(&obj)) {
                        items.push(Item::Dependent(d));
                    }
                }
            }
        }
        items
    }

    /// The storage key of `r`'s owner, for a dependent at `dep`; `None` when
    /// the kind is not served or the reference cannot be valid.
    fn owner_key(&self, dep: &ObjectKey<'_>, r: &OwnerRef) -> Option<String> {
        let resource = self.catalog.by_kind_in(dep.cluster, r.group(), &r.kind)?;
        let segment = &resource.storage_segment;
        if resource.namespaced {
            (!dep.namespace.is_empty())
                .then(|| keys::object_key(dep.cluster, segment, Some(dep.namespace), &r.name))
        } else {
            Some(keys::object_key(dep.cluster, segment, None, &r.name))
        }
    }

    /// The resource stored under `k`'s segment: a built-in, else one of
    /// the cluster's custom resources.
    fn resource_of(&self, k: &ObjectKey<'_>) -> Option<Arc<ResourceInfo>> {
        if let Some(r) = self.by_segment.get(k.segment) {
            return Some(r.clone());
        }
        self.catalog
            .custom
            .cluster(k.cluster)?
            .resources()
            .find(|r| r.storage_segment == k.segment)
            .cloned()
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, ApiError> {
        match self.store.storage().get(key).await? {
            Some(kv) => decode_stored(&kv).map(Some),
            None => Ok(None),
        }
    }

    async fn sync(&self, item: &Item) -> Result<(), ApiError> {
        match item {
            Item::Dependent(key) => self.attempt_to_delete(key).await,
            Item::Owner(key) => self.process_owner(key).await,
        }
    }

    async fn owner_state(&self, dep: &ObjectKey<'_>, r: &OwnerRef) -> Result<OwnerState, ApiError> {
        if self
            .catalog
            .by_kind_in(dep.cluster, r.group(), &r.kind)
            .is_none()
        {
            return Ok(OwnerState::Solid);
        }
        let Some(key) = self.owner_key(dep, r) else {
            // A cluster-scoped dependent naming a namespaced owner.
            return Ok(OwnerState::Dangling);
        };
        Ok(match self.get(&key).await? {
            None => OwnerState::Dangling,
            Some(o) if meta::uid(&o) != r.uid => OwnerState::Dangling,
            Some(o)
                if meta::is_deleting(&o)
                    && meta::finalizers(&o).iter().any(|f| f == FOREGROUND) =>
            {
                OwnerState::Waiting
            }
            Some(_) => OwnerState::Solid,
        })
    }

    /// Deletes `key` when all its owners are gone (foreground when one waits
    /// for it), or drops its references to the gone ones.
    async fn attempt_to_delete(&self, key: &str) -> Result<(), ApiError> {
        let Some(k) = ObjectKey::parse(key) else {
            return Ok(());
        };
        let Some(obj) = self.get(key).await? else {
            return Ok(());
        };
        let refs = owner_refs(&obj);
        if refs.is_empty() || meta::is_deleting(&obj) {
            return Ok(());
        }
        let mut states = Vec::with_capacity(refs.len());
        for r in &refs {
            states.push((r.uid.as_str(), self.owner_state(&k, r).await?));
        }
        let Some(resource) = self.resource_of(&k) else {
            return Ok(());
        };
        let t = target(&k, &resource);
        match verdict(&obj, &states) {
            Verdict::Keep => {}
            Verdict::DropRefs(dangling) => {
                tolerate(
                    self.remove_refs(&t, k.name, meta::uid(&obj), &dangling)
                        .await,
                )?;
            }
            Verdict::Delete(propagation) => {
                let opts = DeleteOptions {
                    precondition_uid: Some(meta::uid(&obj).to_string()),
                    propagation: Some(propagation.into()),
                    ..Default::default()
                };
                tolerate(self.store.delete(&t, k.name, &opts).await)?;
            }
        }
        Ok(())
    }

    /// An owner being deleted with a GC finalizer: orphan or delete its
    /// dependents, then remove the finalizer.
    async fn process_owner(&self, key: &str) -> Result<(), ApiError> {
        let Some(k) = ObjectKey::parse(key) else {
            return Ok(());
        };
        let Some(obj) = self.get(key).await? else {
            return Ok(());
        };
        let fins = meta::finalizers(&obj);
        if !meta::is_deleting(&obj) {
            return Ok(());
        }
        let Some(resource) = self.resource_of(&k) else {
            return Ok(());
        };
        let t = target(&k, &resource);
        let uid = meta::uid(&obj).to_string();
        let dependents = self
            .graph
            .lock()
            .map(|g| g.dependents(k.cluster, &uid))
            .unwrap_or_default();
        if fins.iter().any(|f| f == ORPHAN) {
            for d in &dependents {
                let Some(dk) = ObjectKey::parse(d) else {
                    continue;
                };
                if let Some(resource) = self.resource_of(&dk) {
                    let dt = target(&dk, &resource);
                    tolerate(
                        self.remove_refs(&dt, dk.name, "", std::slice::from_ref(&uid))
                            .await,
                    )?;
                }
            }
            tolerate(self.remove_finalizer(&t, k.name, ORPHAN).await)?;
            return Ok(());
        }
        if !fins.iter().any(|f| f == FOREGROUND) {
            return Ok(());
        }
        let mut blocking = 0;
        for d in &dependents {
            let (Some(dk), Some(dep)) = (ObjectKey::parse(d), self.get(d).await?) else {
                continue;
            };
            let Some(r) = owner_refs(&dep).into_iter().find(|r| r.uid == uid) else {
                continue;
            };
            let Some(resource) = self.resource_of(&dk) else {
                continue;
            };
            let dt = target(&dk, &resource);
            if !meta::is_deleting(&dep) {
                let has_own = self
                    .graph
                    .lock()
                    .map(|g| !g.dependents(dk.cluster, meta::uid(&dep)).is_empty())
                    .unwrap_or(true);
                let opts = DeleteOptions {
                    precondition_uid: Some(meta::uid(&dep).to_string()),
                    propagation: Some(if has_own { "Foreground" } else { "Background" }.into()),
                    ..Default::default()
                };
                if let Some(Deleted::Gone(_)) | None =
                    tolerate(self.store.delete(&dt, dk.name, &opts).await)?
                {
                    continue;
                }
            }
            if r.block_owner_deletion {
                blocking += 1;
            }
        }
        if blocking == 0 {
            tolerate(self.remove_finalizer(&t, k.name, FOREGROUND).await)?;
        }
        Ok(())
    }

    /// Removes the owner references with `uids` from an object (of `uid`
    /// unless empty).
    async fn remove_refs(
        &self,
        t: &Target<'_>,
        name: &str,
        uid: &str,
        uids: &[String],
    ) -> Result<(), ApiError> {
        self.store
            .update_with(t, name, None, WriteOptions::default(), |old| {
                if !uid.is_empty() && meta::uid(old) != uid {
                    return Ok((old.clone(), Vec::new()));
                }
                let mut obj = old.clone();
                let kept: Vec<Value> = old["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| !uids.iter().any(|u| r["uid"] == u.as_str()))
                    .cloned()
                    .collect();
                meta::set(
                    &mut obj,
                    "ownerReferences",
                    (!kept.is_empty()).then(|| json!(kept)),
                );
                Ok((obj, Vec::new()))
            })
            .await
            .map(|_| ())
    }

    async fn remove_finalizer(&self, t: &Target<'_>, name: &str, f: &str) -> Result<(), ApiError> {
        self.store
            .update_with(t, name, None, WriteOptions::default(), |old| {
                let mut obj = old.clone();
                let kept: Vec<String> = meta::finalizers(old)
                    .into_iter()
                    .filter(|x| x != f)
                    .collect();
                meta::set(
                    &mut obj,
                    "finalizers",
                    (!kept.is_empty()).then(|| json!(kept)),
                );
                Ok((obj, Vec::new()))
            })
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verdicts_follow_the_owners() {
        use OwnerState::*;
        let obj = json!({"metadata": {"name": "d"}});
        assert_eq!(verdict(&obj, &[("a", Solid)]), Verdict::Keep);
        assert_eq!(
            verdict(&obj, &[("a", Solid), ("b", Dangling)]),
            Verdict::DropRefs(vec!["b".into()])
        );
        assert_eq!(
            verdict(&obj, &[("a", Dangling)]),
            Verdict::Delete("Background")
        );
        assert_eq!(
            verdict(&obj, &[("a", Dangling), ("b", Waiting)]),
            Verdict::Delete("Foreground")
        );
        let orphaning = json!({"metadata": {"finalizers": [ORPHAN]}});
        assert_eq!(
            verdict(&orphaning, &[("a", Dangling)]),
            Verdict::Delete("Orphan")
        );
    }

    use super::*;

    fn r(uid: &str) -> OwnerRef {
        OwnerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: uid.into(),
            controller: true,
            block_owner_deletion: true,
        }
    }

    #[test]
    fn owner_refs_parse() {
        let obj = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1",
             "controller": true, "blockOwnerDeletion": true},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u2"}]}});
        let refs = owner_refs(&obj);
        assert_eq!(refs[0], r("u1"));
        assert_eq!(refs[1].group(), "");
        assert!(!refs[1].block_owner_deletion);
    }

    #[test]
    fn graph_exists_only_for_clusters_with_owners() {
        let mut g = Graph::default();
        assert!(g.set("t1", "/t1/core/pods/ns/a", vec![r("u1")]));
        assert!(!g.set("t1", "/t1/core/pods/ns/a", vec![r("u1")]));
        assert!(g.set("t1", "/t1/core/pods/ns/b", vec![r("u1"), r("u2")]));
        let mut d = g.dependents("t1", "u1");
        d.sort();
        assert_eq!(d, ["/t1/core/pods/ns/a", "/t1/core/pods/ns/b"]);
        assert!(g.dependents("root", "u1").is_empty());
        assert!(g.set("t1", "/t1/core/pods/ns/b", vec![r("u2")]));
        assert_eq!(g.dependents("t1", "u1"), ["/t1/core/pods/ns/a"]);
        assert_eq!(g.remove("t1", "/t1/core/pods/ns/a"), vec![r("u1")]);
        assert!(g.set("t1", "/t1/core/pods/ns/b", vec![]));
        assert_eq!(g.cluster_count(), 0);
        assert!(!g.tracks_cluster("t1"));
    }
}
