//! Down sync: virtual objects copied into the parent, one module per kind
//! ([`pod`], [`config`] for the ConfigMaps and Secrets pods reference,
//! [`token`] for the service-account token a pod runs with, [`service`],
//! [`endpoints`] of selector-less Services, [`pvc`]; [`ingress`] and
//! [`network_policy`] when the VirtualCluster's `spec.sync` enables them),
//! each behind [`crate::kinds::Translate`] and named by its row of the
//! table of kinds ([`crate::kinds`]).
//! Each reconcile is keyed by the virtual object and goes both ways for it
//! (copy down, status or cluster IP up), so one key is never reconciled by
//! two tasks at once.
//!
//! Every copy is an allow-list translation of its virtual object: each
//! kind's module names the fields it keeps, translates every object
//! reference or refuses the object ([`refusal`]: a Warning `SyncError` Event
//! on it), and drops whatever it does not name ([`pod_spec`] for pods;
//! [`exposure`] for the addresses `spec.network` allows).
//!
//! This module holds the helpers they share: typed-free access to both
//! sides (`DynamicObject`: the objects as served, before a translation picks
//! what reaches the parent), the metadata every copy carries, and the
//! ownership check that keeps a reconcile from touching a parent object of
//! another virtual cluster.

pub mod binding;
pub mod config;
pub mod endpoints;
pub mod exposure;
pub mod ingress;
pub mod isolation;
pub mod network_policy;
pub mod pod;
pub mod pod_spec;
pub mod pvc;
pub mod refusal;
pub mod service;
pub mod status;
pub mod token;

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, DynamicObject, PostParams, Preconditions};
use serde_json::{Value, json};

use crate::{Ctx, Kind, SyncError, names};

/// The API of `kind` in namespace `ns` of a cluster.
pub(crate) fn api(client: &kube::Client, kind: Kind, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &(kind.row().resource)())
}

/// The API of `kind` across all namespaces of a cluster.
pub(crate) fn api_all(client: &kube::Client, kind: Kind) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &(kind.row().resource)())
}

/// Whether `e` is a 404.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// Whether `e` is a 409 AlreadyExists.
pub(crate) fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}

/// Whether `e` is a 409 Conflict (stale resourceVersion or uid precondition).
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() && !s.is_already_exists())
}

/// GET as JSON; `None` when absent.
pub(crate) async fn get(api: &Api<DynamicObject>, name: &str) -> Result<Option<Value>, SyncError> {
    Ok(match api.get_opt(name).await? {
        Some(o) => Some(serde_json::to_value(o)?),
        None => None,
    })
}

/// POST; `Ok(None)` when an object of that name already exists.
pub(crate) async fn create(
    api: &Api<DynamicObject>,
    obj: &Value,
) -> Result<Option<Value>, SyncError> {
    let obj: DynamicObject = serde_json::from_value(obj.clone())?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(o) => Ok(Some(serde_json::to_value(o)?)),
        Err(e) if is_already_exists(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// PUT (the body carries the resourceVersion it was read at); `Ok(false)`
/// on a conflict or when it is gone (the next event reconciles again).
pub(crate) async fn replace(api: &Api<DynamicObject>, obj: &Value) -> Result<bool, SyncError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let obj: DynamicObject = serde_json::from_value(obj.clone())?;
    match api.replace(&name, &PostParams::default(), &obj).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) || is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// DELETE of the object with uid `uid` (precondition, so a newer object of
/// the same name is never deleted by mistake); absent is fine.
pub(crate) async fn delete(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    grace: Option<u32>,
) -> Result<(), SyncError> {
    let dp = DeleteParams {
        grace_period_seconds: grace,
        preconditions: (!uid.is_empty()).then(|| Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `metadata.<field>` as a string ("" when absent).
pub(crate) fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

/// A string map of `obj` at `metadata.<field>`.
pub(crate) fn string_map(obj: &Value, field: &str) -> BTreeMap<String, String> {
    obj["metadata"][field]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// Whether parent object `obj` is a copy owned by `ctx`'s VirtualCluster.
pub(crate) fn is_ours(ctx: &Ctx, obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    labels[names::MANAGED_BY_LABEL] == names::MANAGED_BY_VALUE
        && labels[names::VC_UID_LABEL] == names::label_value(&ctx.placement.uid).as_str()
        && annotation(obj, names::CLUSTER_ANNOTATION) == ctx.cluster
}

/// Writes [`names::SPEC_HASH_ANNOTATION`] on copy `desired` (a hash of its
/// spec), which [`is_current`] compares.
pub(crate) fn stamp_spec(desired: &mut Value) {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(desired["spec"].to_string().as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    desired["metadata"]["annotations"][names::SPEC_HASH_ANNOTATION] = json!(hash);
}

/// Whether copy `have` already is `want`: same labels and annotations (for
/// a copy [`stamp_spec`]ed, the same virtual spec written last), and every
/// field of `want`'s spec present in `have`'s with the same value (fields
/// the parent defaulted, e.g. a port's protocol or an Ingress's default
/// class, are not differences, or each reconcile would write; a change made
/// in the parent is).
pub(crate) fn is_current(have: &Value, want: &Value) -> bool {
    have["metadata"]["labels"] == want["metadata"]["labels"]
        && have["metadata"]["annotations"] == want["metadata"]["annotations"]
        && covers(&have["spec"], &want["spec"])
}

/// Whether `have` holds everything `want` does (objects: every key of
/// `want`, recursively; arrays: as many items, each covered; else equal).
pub(crate) fn covers(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| v.is_null() || h.get(k).is_some_and(|x| covers(x, v))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(x, v)| covers(x, v))
        }
        (h, w) => h == w,
    }
}

/// An annotation of `obj` ("" when absent).
pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"]["annotations"][key].as_str().unwrap_or("")
}

/// The origin of virtual object `vobj` of `ctx`'s cluster
/// ([`names::Origin::of`]).
pub(crate) fn origin(ctx: &Ctx, vobj: &Value) -> names::Origin {
    names::Origin::of(
        &ctx.cluster,
        meta(vobj, "namespace"),
        meta(vobj, "name"),
        meta(vobj, "uid"),
        &string_map(vobj, "annotations"),
    )
}

/// The metadata of the parent copy of virtual object `vobj`, named
/// `host_name`: the virtual labels carried over, the owner labels, the
/// owner annotations (the object one level up) and the origin annotations
/// (the object a tenant created, however many levels up); nothing else of
/// the virtual metadata.
pub(crate) fn host_meta(ctx: &Ctx, vobj: &Value, host_name: &str) -> Value {
    let (ns, name, uid) = (
        meta(vobj, "namespace"),
        meta(vobj, "name"),
        meta(vobj, "uid"),
    );
    let mut labels = names::host_labels(&string_map(vobj, "labels"));
    labels.extend(names::owner_labels(&ctx.placement.uid, ns, name));
    let mut annotations = names::owner_annotations(&ctx.cluster, ns, name, uid);
    annotations.extend(origin(ctx, vobj).annotations());
    json!({
        "name": host_name,
        "namespace": ctx.placement.host_namespace,
        "labels": labels,
        "annotations": annotations,
    })
}
