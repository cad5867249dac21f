//! Small helpers shared by the workload controllers: which object a watch
//! change concerns, tolerated write races, reads and writes of owned objects and
//! status, and `metav1.Time` formatting.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::podutil;
use super::runtime::{Change, ObjectKey};
use crate::error::ApiError;

/// A work item: cluster, namespace, name.
pub type Item = (String, String, String);

/// The served `v1` resources named `group/resource` (`"apps/statefulsets"`,
/// `"pods"` for core), in order; `None` if one is not served.
pub fn resources<const N: usize>(
    catalog: &crate::registry::catalog::Catalog,
    names: [&str; N],
) -> Option<[std::sync::Arc<crate::registry::catalog::ResourceInfo>; N]> {
    let found: Vec<_> = names
        .iter()
        .map(|n| {
            let (group, resource) = n.split_once('/').unwrap_or(("", n));
            catalog.get(group, "v1", resource).cloned()
        })
        .collect::<Option<_>>()?;
    found.try_into().ok()
}

/// The target of resource `r` in namespace `ns` of `cluster`.
pub fn target<'a>(
    cluster: &'a str,
    r: &'a crate::registry::catalog::ResourceInfo,
    ns: &'a str,
) -> crate::registry::store::Target<'a> {
    crate::registry::store::Target {
        cluster,
        resource: r,
        namespace: Some(ns),
    }
}

/// A workload's status: `base`, plus the `counts` that are not zero (as
/// upstream omits them), `observedGeneration`, and the conditions the
/// object already has (other writers own them).
pub fn workload_status(obj: &Value, mut base: Value, counts: &[(&str, i64)]) -> Value {
    for (field, n) in counts {
        if *n > 0 {
            base[*field] = serde_json::json!(n);
        }
    }
    if let Some(g) = obj["metadata"]["generation"].as_i64() {
        base["observedGeneration"] = serde_json::json!(g);
    }
    if let Some(c) = obj["status"].get("conditions").filter(|c| !c.is_null()) {
        base["conditions"] = c.clone();
    }
    base
}

/// The object a controller reconciles for this change: the object itself
/// when it is in `own_segment` (e.g. `batch/jobs`), or its controlling owner
/// of `owner_group`/`owner_kind` when it is in `child_segment` (e.g. a Job's
/// pods in `core/pods`). Owners are always in the child's own cluster and
/// namespace.
pub fn self_or_controller(
    change: &Change<'_>,
    own_segment: &str,
    child_segment: &str,
    owner_group: &str,
    owner_kind: &str,
) -> Option<Item> {
    let k = ObjectKey::parse(change.key()?)?;
    let name = if k.segment == own_segment {
        k.name.to_string()
    } else if k.segment == child_segment {
        let r = podutil::controller_ref(&change.object()?)?;
        if r.kind != owner_kind || r.group() != owner_group {
            return None;
        }
        r.name
    } else {
        return None;
    };
    Some((k.cluster.to_string(), k.namespace.to_string(), name))
}

/// A write that lost a race (the object is gone or changed meanwhile) is
/// not an error: the next event reconciles again.
pub fn tolerate<T>(r: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound(_)) | Err(ApiError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a `metav1.Time` (RFC 3339).
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a `metav1.Time` as upstream (seconds, UTC).
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The controller owner reference to `owner` (`apiVersion`/`kind` of the
/// owner's type), as upstream's `metav1.NewControllerRef`.
pub fn controller_ref_to(owner: &Value, api_version: &str, kind: &str) -> Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": crate::registry::meta::name(owner),
        "uid": crate::registry::meta::uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Gets an object; `None` when it does not exist.
pub async fn get_opt(
    store: &crate::registry::store::Store,
    t: &crate::registry::store::Target<'_>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    match store.get(t, name).await {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The objects of `t` (pods, ControllerRevisions) that `owner` controls
/// after claiming them as upstream's `ControllerRefManager`: orphans that
/// `matches` (and are not being deleted) are adopted, owned objects that no
/// longer match are released. An owner being deleted adopts nothing. Races
/// with other writers are tolerated (the next reconcile claims again).
pub async fn claim(
    store: &crate::registry::store::Store,
    t: &crate::registry::store::Target<'_>,
    owner: &Value,
    owner_ref: Value,
    matches: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>, ApiError> {
    use crate::registry::meta;
    let uid = meta::uid(owner);
    let adopting = !meta::is_deleting(owner);
    let list = store
        .list(t, &crate::registry::store::ListOptions::default())
        .await?;
    let mut owned = Vec::new();
    for obj in list.items {
        let adopt = match podutil::controller_ref(&obj) {
            Some(r) if r.uid == uid => {
                if matches(&obj) {
                    owned.push(obj);
                    continue;
                }
                false
            }
            Some(_) => continue,
            None if adopting && matches(&obj) && !meta::is_deleting(&obj) => true,
            None => continue,
        };
        let obj_uid = meta::uid(&obj).to_string();
        let written = tolerate(
            store
                .update_with(
                    t,
                    meta::name(&obj),
                    None,
                    crate::registry::store::WriteOptions::default(),
                    |old| {
                        let mut refs: Vec<Value> = old["metadata"]["ownerReferences"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        let current = podutil::controller_ref(old).map(|r| r.uid);
                        let still = meta::uid(old) == obj_uid
                            && if adopt {
                                current.is_none()
                            } else {
                                current.as_deref() == Some(uid)
                            };
                        if !still {
                            return Ok((old.clone(), Vec::new()));
                        }
                        if adopt {
                            refs.push(owner_ref.clone());
                        } else {
                            refs.retain(|r| r["controller"] != true);
                        }
                        let mut new = old.clone();
                        meta::set(
                            &mut new,
                            "ownerReferences",
                            (!refs.is_empty()).then(|| serde_json::json!(refs)),
                        );
                        Ok((new, Vec::new()))
                    },
                )
                .await,
        )?;
        if let Some(w) = written
            && podutil::controller_ref(&w.object).is_some_and(|r| r.uid == uid)
        {
            owned.push(w.object);
        }
    }
    Ok(owned)
}

/// Writes `status` of object `name` through the status subresource when it
/// differs from `current`'s, only if the object still has uid `uid`
/// (tolerating races).
pub async fn write_status(
    store: &crate::registry::store::Store,
    t: &crate::registry::store::Target<'_>,
    current: &Value,
    status: &Value,
) -> Result<(), ApiError> {
    if current.get("status") == Some(status) {
        return Ok(());
    }
    let uid = crate::registry::meta::uid(current).to_string();
    let name = crate::registry::meta::name(current).to_string();
    tolerate(
        store
            .update_with(
                t,
                &name,
                Some("status"),
                crate::registry::store::WriteOptions::default(),
                |old| {
                    if crate::registry::meta::uid(old) != uid {
                        return Err(ApiError::NotFound(crate::error::Subject {
                            group: t.resource.group.clone(),
                            kind: t.resource.resource.clone(),
                            name: name.clone(),
                        }));
                    }
                    let mut new = old.clone();
                    new["status"] = status.clone();
                    Ok((new, Vec::new()))
                },
            )
            .await,
    )?;
    Ok(())
}

/// Creates objects concurrently; a create refused as Forbidden (the
/// namespace is going away) or Invalid (a bad template), or AlreadyExists,
/// is not retried and counted as not created. Returns how many were.
pub async fn create_all(
    store: &crate::registry::store::Store,
    t: &crate::registry::store::Target<'_>,
    bodies: Vec<Value>,
) -> Result<usize, ApiError> {
    let created = futures::future::join_all(
        bodies
            .into_iter()
            .map(|b| store.create(t, b, crate::registry::store::WriteOptions::default())),
    )
    .await;
    let mut n = 0;
    for c in created {
        match c {
            Ok(_) => n += 1,
            Err(ApiError::Forbidden(_))
            | Err(ApiError::Invalid { .. })
            | Err(ApiError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Deletes objects (by name, pinned to their uid) concurrently, tolerating
/// ones already gone.
pub async fn delete_all(
    store: &crate::registry::store::Store,
    t: &crate::registry::store::Target<'_>,
    objs: &[&Value],
) -> Result<(), ApiError> {
    let deletes = objs.iter().map(|o| {
        let opts = crate::registry::store::DeleteOptions {
            precondition_uid: Some(crate::registry::meta::uid(o).to_string()),
            ..Default::default()
        };
        let name = crate::registry::meta::name(o).to_string();
        async move { store.delete(t, &name, &opts).await }
    });
    for d in futures::future::join_all(deletes).await {
        tolerate(d)?;
    }
    Ok(())
}

/// Resolves an int-or-percent (`3` or `"25%"`) against `total`,
/// rounding percentages up or down (upstream's
/// `intstr.GetScaledValueFromIntOrPercent`); `None` when malformed.
pub fn int_or_percent(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let p: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some(if round_up {
                (p * total + 99) / 100
            } else {
                p * total / 100
            })
        }
        _ => None,
    }
}
