//! Mirrors: what the parent decides and a virtual cluster only reads,
//! copied up. One module per kind:
//!
//! - [`runtime_classes`]: a virtual cluster's RuntimeClasses are exactly
//!   its parent's, read-only for its tenants.
//! - [`nodes`]: the parent's Nodes the cluster's pods are bound to.
//! - [`storage`]: the parent's StorageClasses, and the PersistentVolumes
//!   the parent bound the cluster's claims to.
//!
//! Mirrored objects a tenant could also create (Nodes, StorageClasses,
//! PersistentVolumes) carry [`MIRRORED_LABEL`], and only those are ever
//! updated or deleted; an object of the same name the tenant made is left
//! alone.
//!
//! This module never writes the parent.

pub mod nodes;
pub mod runtime_classes;
pub mod storage;

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::SyncError;
use crate::down::{create, delete, meta, replace};

/// Label on the objects mirrored into a virtual cluster that a tenant could
/// also have made (only those are ever updated or deleted).
pub const MIRRORED_LABEL: &str = "tenancy.nestkube.io/mirrored";

/// The objects of cluster-scoped `ar` in the cluster `client` talks to, by
/// name (only those labelled [`MIRRORED_LABEL`] with `labelled`).
async fn list_by_name(
    client: &kube::Client,
    ar: &ApiResource,
    labelled: bool,
) -> Result<BTreeMap<String, Value>, SyncError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let lp = if labelled {
        ListParams::default().labels(&format!("{MIRRORED_LABEL}=true"))
    } else {
        ListParams::default()
    };
    let mut out = BTreeMap::new();
    for o in api.list(&lp).await?.items {
        let v = serde_json::to_value(o)?;
        out.insert(meta(&v, "name").to_string(), v);
    }
    Ok(out)
}

/// Makes the cluster-scoped objects of `ar` that `virt` holds the parent's
/// `want`, each rendered by `project` (which must render a mirror it made
/// unchanged, so an up-to-date mirror is not written again). `labelled`:
/// the mirror owns only the objects labelled [`MIRRORED_LABEL`] (`project`
/// adds it); else every object of the kind is the mirror's.
async fn mirror_all(
    virt: &kube::Client,
    ar: &ApiResource,
    want: &BTreeMap<String, Value>,
    labelled: bool,
    project: fn(&Value) -> Value,
) -> Result<(), SyncError> {
    let have = list_by_name(virt, ar, labelled).await?;
    let api: Api<DynamicObject> = Api::all_with(virt.clone(), ar);
    for (name, source) in want {
        let desired = project(source);
        match have.get(name) {
            // `None` from create: the tenant's own object of that name.
            None => {
                create(&api, &desired).await?;
            }
            Some(cur) if project(cur) != desired => {
                let mut update = desired;
                update["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                replace(&api, &update).await?;
            }
            Some(_) => {}
        }
    }
    for (name, cur) in &have {
        if !want.contains_key(name) {
            delete(&api, name, meta(cur, "uid"), None).await?;
        }
    }
    Ok(())
}

/// `obj`'s `metadata.labels`, plus [`MIRRORED_LABEL`].
fn mirrored_labels(obj: &Value) -> Value {
    let mut labels = obj["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[MIRRORED_LABEL] = json!("true");
    labels
}
