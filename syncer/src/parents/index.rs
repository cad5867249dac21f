//! The copies the syncer owns in one parent, as that parent's copy watches
//! last listed and saw them ([`CopyIndex`]): what tells a parent Event about
//! a copy from any other ([`super::relay`]), and what reconciles read the
//! copies of kinds watched whole from instead of asking the parent
//! ([`crate::Syncer::cached_copy`]).
//!
//! Only the parent's watch task writes an index; it never makes a request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

use super::{ParentKey, owner_of};
use crate::events::Copy;
use crate::kinds::{CopyWatch, Kind};
use crate::{Ctx, SyncError, Syncer, names};

/// `(kind, namespace, name)` of a parent object.
pub(super) type CopyKey = (Kind, String, String);

/// A parent object as its watch reports it: its metadata, and the whole
/// object for the kinds reconciles read from the index (kinds watched [`CopyWatch::Whole`]).
pub(crate) struct Seen {
    pub(super) meta: ObjectMeta,
    pub(super) object: Option<Value>,
}

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
    /// The objects of the copies of kinds watched [`CopyWatch::Whole`].
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
    pub(super) fn apply(
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

    /// The copy of `kind` (watched [`CopyWatch::Whole`]) named `name` in
    /// `namespace`, as the watch last saw it.
    pub(crate) fn object(&self, kind: Kind, namespace: &str, name: &str) -> Lookup {
        let listed = self.listed.contains(&(kind, None))
            || self.listed.contains(&(kind, Some(namespace.to_string())));
        if !listed || !matches!(kind.row().watch, CopyWatch::Whole(_)) {
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

impl Syncer {
    /// A new, empty index of `parent`'s copies, replacing any earlier one
    /// (for its watch task to fill).
    pub(crate) fn fresh_copy_index(&self, parent: &ParentKey) -> Arc<RwLock<CopyIndex>> {
        let index = Arc::new(RwLock::new(CopyIndex::default()));
        self.copy_indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(parent.clone(), index.clone());
        index
    }

    /// Copy `name` of `kind` in `ctx`'s host namespace as its parent's watch
    /// last saw it; asks the parent when the watch cannot tell.
    pub(crate) async fn cached_copy(
        &self,
        ctx: &Ctx,
        kind: Kind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, SyncError> {
        let index = self
            .copy_indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ParentKey::of(&ctx.placement))
            .cloned();
        if let Some(index) = index {
            let lookup = index.read().unwrap_or_else(|e| e.into_inner()).object(
                kind,
                &ctx.placement.host_namespace,
                name,
            );
            match lookup {
                Lookup::Present(o) => return Ok(Some(o)),
                Lookup::Absent => return Ok(None),
                Lookup::Unknown => {}
            }
        }
        crate::down::get(
            &crate::down::api(&ctx.parent, kind, &ctx.placement.host_namespace),
            name,
        )
        .await
    }
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
