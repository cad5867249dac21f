//! ControllerRevisions of StatefulSets and DaemonSets (upstream's
//! `pkg/controller/history`): one immutable snapshot of an owner's pod
//! template per distinct template, named `<owner>-<hash>`, labelled
//! `controller-revision-hash`, numbered by `revision`, and trimmed to
//! `revisionHistoryLimit`.
//!
//! This module only reads and writes ControllerRevisions controlled by the
//! owner it is given; it never touches pods.

use serde_json::{Value, json};

use super::util;
use crate::error::ApiError;
use crate::registry::meta;
use crate::registry::store::{Store, Target};

/// The label holding a pod's (and a revision's) revision.
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// An owner's revisions and the one matching its current template.
pub struct History {
    /// Every revision the owner controls, oldest (lowest `revision`) first.
    pub revisions: Vec<Value>,
    /// The revision of the current template (created if it was missing).
    pub update: Value,
}

/// The `revision` number of a ControllerRevision.
pub fn number(rev: &Value) -> i64 {
    rev["revision"].as_i64().unwrap_or(0)
}

/// The revision's hash label (DaemonSets label pods with it).
pub fn hash_of(rev: &Value) -> &str {
    rev["metadata"]["labels"][CONTROLLER_REVISION_HASH]
        .as_str()
        .unwrap_or("")
}

/// The pod template a revision holds (`data.spec.template`, as upstream's
/// patch of the owner).
pub fn template(rev: &Value) -> Value {
    let mut t = rev["data"]["spec"]["template"].clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

/// Lists the revisions `owner` controls and makes sure one holds its
/// current `spec.template` (creating `<owner>-<hash>` with the next
/// revision number, or renumbering an older identical one as upstream
/// does on a rollback).
pub async fn sync(
    store: &Store,
    t: &Target<'_>,
    owner: &Value,
    api_version: &str,
    kind: &str,
) -> Result<History, ApiError> {
    // Orphaned revisions the selector matches are adopted (an owner
    // deleted with `--cascade=orphan` and created again).
    let selector = super::podutil::selector(&owner["spec"]["selector"]).filter(|s| !s.is_empty());
    let mut revisions = util::claim(
        store,
        t,
        owner,
        util::controller_ref_to(owner, api_version, kind),
        |r| {
            selector
                .as_ref()
                .is_some_and(|s| s.matches(&meta::labels(r)))
        },
    )
    .await?;
    revisions.sort_by_key(number);
    let template = &owner["spec"]["template"];
    let collisions = owner["status"]["collisionCount"].as_i64().unwrap_or(0);
    let hash = super::deployment::pod_template_hash(template, collisions);
    let next = revisions.last().map(number).unwrap_or(0) + 1;
    if let Some(i) = revisions.iter().position(|r| hash_of(r) == hash) {
        if i + 1 == revisions.len() {
            let update = revisions[i].clone();
            return Ok(History { revisions, update });
        }
        // A rollback to an older template: it becomes the newest revision.
        let name = meta::name(&revisions[i]).to_string();
        let written = store
            .update_with(t, &name, None, Default::default(), |old| {
                let mut new = old.clone();
                new["revision"] = json!(next);
                Ok((new, Vec::new()))
            })
            .await?;
        revisions.remove(i);
        let rev = written.object;
        revisions.push(rev.clone());
        return Ok(History {
            revisions,
            update: rev,
        });
    }
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[CONTROLLER_REVISION_HASH] = json!(hash);
    let mut data_template = template.clone();
    data_template["$patch"] = json!("replace");
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": format!("{}-{hash}", meta::name(owner)),
            "labels": labels,
            "ownerReferences": [util::controller_ref_to(owner, api_version, kind)],
        },
        "data": {"spec": {"template": data_template}},
        "revision": next,
    });
    let update = match store.create(t, body, Default::default()).await {
        Ok(w) => w.object,
        // Left over by an earlier owner of the same name, or created by a
        // concurrent reconcile: use it if it is ours.
        Err(ApiError::AlreadyExists(_)) => {
            let existing = store
                .get(t, &format!("{}-{hash}", meta::name(owner)))
                .await?;
            if super::podutil::controller_ref(&existing).is_none_or(|r| r.uid != meta::uid(owner)) {
                return Err(ApiError::Conflict {
                    subject: crate::error::Subject {
                        group: "apps".into(),
                        kind: "controllerrevisions".into(),
                        name: meta::name(&existing).into(),
                    },
                    message: "a ControllerRevision of this name belongs to another owner".into(),
                });
            }
            existing
        }
        Err(e) => return Err(e),
    };
    revisions.push(update.clone());
    Ok(History { revisions, update })
}

/// Deletes the oldest revisions beyond `revisionHistoryLimit`, never one
/// named in `live` (revisions pods still use).
pub async fn truncate(
    store: &Store,
    t: &Target<'_>,
    owner: &Value,
    history: &History,
    live: &[&str],
) -> Result<(), ApiError> {
    let limit = owner["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
    let old: Vec<&Value> = history
        .revisions
        .iter()
        .filter(|r| meta::name(r) != meta::name(&history.update))
        .filter(|r| !live.contains(&meta::name(r)) && !live.contains(&hash_of(r)))
        .collect();
    let extra = (old.len() as i64 - limit.max(0)).max(0) as usize;
    util::delete_all(store, t, &old[..extra]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_round_trip_without_the_patch_marker() {
        let rev = json!({"data": {"spec": {"template": {"$patch": "replace",
            "metadata": {"labels": {"app": "web"}}, "spec": {}}}}, "revision": 3,
            "metadata": {"labels": {CONTROLLER_REVISION_HASH: "abc"}}});
        assert_eq!(
            template(&rev),
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {}})
        );
        assert_eq!(number(&rev), 3);
        assert_eq!(hash_of(&rev), "abc");
    }
}
