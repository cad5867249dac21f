//! The shared default ClusterRoles and ClusterRoleBindings
//! ([`super::rbac_defaults`]) as every cluster's API shows them: `get`,
//! `list` and `watch` (its initial events) of `clusterroles` and
//! `clusterrolebindings` include them, as upstream lists its bootstrap
//! policy. They are merged read-only at the API layer, never stored per
//! cluster (an idle cluster keeps costing bytes); a cluster that stores an
//! object of the same name sees its own instead.
//!
//! This module must never write, and never show one cluster's stored
//! objects to another: the only per-cluster input is the requesting
//! cluster's own store, read through its [`Target`].

use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use serde_json::Value;

use super::rbac::{served_default_cluster_role_bindings, served_default_cluster_roles};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::selector::{FieldSelector, LabelSelector};
use crate::registry::store::{ListOptions, ListPage, Store, Target};

/// The RBAC API group.
const GROUP: &str = "rbac.authorization.k8s.io";

/// The defaults served for `r` (empty for every other resource), with the
/// metadata a stored object has (uid, creationTimestamp, resourceVersion),
/// identical in every cluster and for the life of the process.
pub fn defaults_for(r: &ResourceInfo) -> &'static [Value] {
    static ROLES: OnceLock<Vec<Value>> = OnceLock::new();
    static BINDINGS: OnceLock<Vec<Value>> = OnceLock::new();
    if r.group != GROUP {
        return &[];
    }
    match r.resource.as_str() {
        "clusterroles" => ROLES.get_or_init(|| with_metadata(served_default_cluster_roles())),
        "clusterrolebindings" => {
            BINDINGS.get_or_init(|| with_metadata(served_default_cluster_role_bindings()))
        }
        _ => &[],
    }
}

fn with_metadata(objects: &[Value]) -> Vec<Value> {
    static STARTED: OnceLock<String> = OnceLock::new();
    let created = STARTED.get_or_init(meta::now);
    let mut out: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let name = meta::name(&o).to_string();
            o["metadata"]["uid"] = stable_uid(&name).into();
            o["metadata"]["creationTimestamp"] = created.clone().into();
            // Older than anything stored: the cluster's first revision.
            o["metadata"]["resourceVersion"] = "1".into();
            o
        })
        .collect();
    out.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    out
}

/// A uid derived from the object's name (the same in every cluster and
/// across restarts of one build).
fn stable_uid(name: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (GROUP, name).hash(&mut h);
    let a = h.finish();
    name.len().hash(&mut h);
    let b = h.finish();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `obj` passes the list's label and field selectors.
fn selected(obj: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches(&meta::labels(obj))
        && fields
            .matches(|f| (f == "metadata.name").then(|| meta::name(obj).to_string()))
            .unwrap_or(false)
}

/// Names the requesting cluster stores for this resource (they shadow defaults).
async fn stored_names(store: &Store, target: &Target<'_>) -> Result<HashSet<String>, ApiError> {
    Ok(store
        .list(target, &ListOptions::default())
        .await?
        .items
        .iter()
        .map(|o| meta::name(o).to_string())
        .collect())
}

/// The default named `name`, for a `get` the cluster's store answered 404.
pub fn get(r: &ResourceInfo, name: &str) -> Option<Value> {
    defaults_for(r)
        .iter()
        .find(|o| meta::name(o) == name)
        .cloned()
}

/// Adds the selected defaults the cluster does not shadow to the last page
/// of a list (so that paging shows each once), keeping items sorted by name.
pub async fn merge_list(
    store: &Store,
    target: &Target<'_>,
    opts: &ListOptions,
    page: &mut ListPage,
) -> Result<(), ApiError> {
    let defaults = defaults_for(target.resource);
    if defaults.is_empty() || page.continue_token.is_some() {
        return Ok(());
    }
    let stored = stored_names(store, target).await?;
    let on_page: BTreeSet<String> = page
        .items
        .iter()
        .map(|o| meta::name(o).to_string())
        .collect();
    page.items.extend(
        defaults
            .iter()
            .filter(|d| !stored.contains(meta::name(d)) && !on_page.contains(meta::name(d)))
            .filter(|d| selected(d, &opts.label_selector, &opts.field_selector))
            .cloned(),
    );
    page.items.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    Ok(())
}

/// The defaults a watch with `sendInitialEvents=true` announces as ADDED
/// (before the cluster's own initial events).
pub async fn initial_events(
    store: &Store,
    target: &Target<'_>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Result<Vec<Value>, ApiError> {
    let defaults = defaults_for(target.resource);
    if defaults.is_empty() {
        return Ok(Vec::new());
    }
    let stored = stored_names(store, target).await?;
    Ok(defaults
        .iter()
        .filter(|d| !stored.contains(meta::name(d)) && selected(d, labels, fields))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_and_distinct() {
        assert_eq!(stable_uid("admin"), stable_uid("admin"));
        assert_ne!(stable_uid("admin"), stable_uid("edit"));
        assert_eq!(stable_uid("view").len(), 36);
    }

    #[test]
    fn aggregated_roles_are_served_with_rules() {
        let roles = served_default_cluster_roles();
        let edit = roles.iter().find(|r| meta::name(r) == "edit").unwrap();
        assert!(edit["aggregationRule"].is_object());
        assert!(!edit["rules"].as_array().unwrap().is_empty(), "{edit}");
        let fields = FieldSelector::parse("metadata.name=view").unwrap();
        let view = roles.iter().find(|r| meta::name(r) == "view").unwrap();
        assert!(selected(view, &LabelSelector::default(), &fields));
        assert!(!selected(edit, &LabelSelector::default(), &fields));
    }
}
