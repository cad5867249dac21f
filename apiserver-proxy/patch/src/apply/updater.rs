//! Field ownership across managers, after structured-merge-diff's
//! `merge/update.go`: [`update`] (an `Update` operation: whoever changed a
//! field now owns it, and takes it from others), [`apply`] (an `Apply`:
//! merge the configuration, prune what the applier no longer sets, detect
//! conflicts with other managers, or take their fields with `force`).
//!
//! Managers are opaque identifiers here (the registry encodes name,
//! operation, API version and subresource into them); objects are served in
//! one version, so no conversion happens between managers' versions.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fieldpath::{Path, Set};
use super::schema::TypeResolver;
use super::typed::{self, Comparison};
use super::{ApplyError, Conflict};

/// The fields of one manager: the set, the API version it was written in,
/// and whether it was applied (an `Apply` operation) or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedSet {
    /// The owned fields.
    pub set: Set,
    /// The API version the fields are in.
    pub api_version: String,
    /// Whether the manager applied them (`Apply`) rather than updated.
    pub applied: bool,
}

/// Every manager's fields, by manager identifier.
pub type ManagedFields = BTreeMap<String, VersionedSet>;

/// The type of the objects and what to leave out of ownership.
pub struct Typing<'r, R: TypeResolver> {
    /// The resolver.
    pub resolver: &'r R,
    /// The type of the root object (`None`: untyped).
    pub root: Option<R::Ty>,
    /// Fields nobody owns through this endpoint (upstream's reset fields,
    /// e.g. `status` on the main resource); excluded from comparisons.
    pub ignored: Set,
}

/// Upstream's `Updater.update`: the comparison of `old` and `new`, and
/// `managers` with the changed fields taken from everyone but `workflow`
/// (an error with the conflicts unless `force`).
fn update_managers<R: TypeResolver>(
    t: &Typing<'_, R>,
    old: &Value,
    new: &Value,
    managers: &mut ManagedFields,
    workflow: &str,
    force: bool,
) -> Result<Comparison, ApplyError> {
    let compare = typed::compare(t.resolver, t.root, old, new)?.exclude_fields(&t.ignored);
    let changed = compare.modified.union(&compare.added);
    let mut conflicts: BTreeMap<String, Set> = BTreeMap::new();
    for (manager, vs) in managers.iter() {
        if manager == workflow {
            continue;
        }
        let c = vs.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.insert(manager.clone(), c);
        }
    }
    if !force && !conflicts.is_empty() {
        let mut list = Vec::new();
        for (manager, set) in conflicts {
            for path in set.paths() {
                list.push(Conflict {
                    manager: manager.clone(),
                    path,
                });
            }
        }
        return Err(ApplyError::Conflicts(list));
    }
    for (manager, vs) in managers.iter_mut() {
        if manager == workflow {
            continue;
        }
        if let Some(c) = conflicts.get(manager) {
            vs.set = vs.set.difference(c);
        }
        if !compare.removed.is_empty() {
            vs.set = vs.set.difference(&compare.removed);
        }
    }
    managers.retain(|_, vs| !vs.set.is_empty());
    Ok(compare)
}

/// An `Update` by `manager` from `live` to `new` (upstream's
/// `Updater.Update`): the fields it added or changed become its own (and
/// leave other managers), removed fields leave everyone.
pub fn update<R: TypeResolver>(
    t: &Typing<'_, R>,
    live: &Value,
    new: &Value,
    api_version: &str,
    mut managers: ManagedFields,
    manager: &str,
) -> Result<ManagedFields, ApplyError> {
    let compare = update_managers(t, live, new, &mut managers, manager, true)?;
    let previous = managers
        .remove(manager)
        .map(|vs| vs.set)
        .unwrap_or_default();
    let set = previous
        .difference(&compare.removed)
        .union(&compare.modified)
        .union(&compare.added)
        .recursive_difference(&t.ignored);
    if !set.is_empty() {
        managers.insert(
            manager.to_string(),
            VersionedSet {
                set,
                api_version: api_version.to_string(),
                applied: false,
            },
        );
    }
    Ok(managers)
}

/// The result of an apply.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new object, or `None` when it equals the live one (a no-op).
    pub object: Option<Value>,
    /// Every manager's fields afterwards.
    pub managers: ManagedFields,
}

/// An `Apply` of `config` by `manager` to `live` (upstream's
/// `Updater.Apply`): merge, take ownership of the configuration's fields,
/// prune the fields the manager applied last time and no longer does
/// (unless someone else owns them), then check the changes against other
/// managers (conflicts, unless `force`).
pub fn apply<R: TypeResolver>(
    t: &Typing<'_, R>,
    live: &Value,
    config: &Value,
    api_version: &str,
    mut managers: ManagedFields,
    manager: &str,
    force: bool,
) -> Result<Applied, ApplyError> {
    let merged = typed::merge(t.resolver, t.root, Some(live), Some(config))?
        .unwrap_or_else(|| Value::Object(Default::default()));
    let last = managers.get(manager).map(|vs| vs.set.clone());
    let set = typed::to_field_set(t.resolver, t.root, config)?.recursive_difference(&t.ignored);
    managers.insert(
        manager.to_string(),
        VersionedSet {
            set,
            api_version: api_version.to_string(),
            applied: true,
        },
    );
    let new = match last {
        Some(last) if !last.is_empty() => prune(t, merged, &managers, &last),
        _ => merged,
    };
    update_managers(t, live, &new, &mut managers, manager, force)?;
    let object = (new != *live).then_some(new);
    Ok(Applied { object, managers })
}

/// Removes from `merged` what `last` (the applier's previous set) holds and
/// no manager (the applier's new set included) owns now (upstream's
/// `prune` with `addBackOwnedItems` and `addBackDanglingItems`).
fn prune<R: TypeResolver>(
    t: &Typing<'_, R>,
    merged: Value,
    managers: &ManagedFields,
    last: &Set,
) -> Value {
    let r = t.resolver;
    let owned = managers
        .values()
        .fold(Set::new(), |acc, vs| acc.union(&vs.set));
    let owned = typed::ensure_named_fields_are_members(r, t.root, &owned);
    let last = typed::ensure_named_fields_are_members(r, t.root, last);
    let Ok(present) = typed::to_field_set(r, t.root, &merged) else {
        return merged;
    };
    let present = typed::ensure_named_fields_are_members(r, t.root, &present);
    let to_remove = last.intersection(&present).difference(&owned);
    if to_remove.is_empty() {
        return merged;
    }
    typed::remove_items(r, t.root, &merged, &to_remove)
        .unwrap_or_else(|| Value::Object(Default::default()))
}

/// The conflicts' paths, for messages.
pub fn conflict_paths(conflicts: &[Conflict]) -> Vec<&Path> {
    conflicts.iter().map(|c| &c.path).collect()
}
