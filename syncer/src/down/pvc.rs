//! PersistentVolumeClaims: every virtual claim is copied to the parent (its
//! lifetime is its own, not its pods'), where the parent's provisioner binds
//! it; the copy's status (phase, capacity, access modes, conditions) comes
//! back up. Pods mount the copy (`super::pod` translates `claimName`).
//!
//! Copied: access modes, requested resources, storage class, volume mode.
//! Not copied: a label selector for PersistentVolumes, data sources and
//! `volumeName` (PersistentVolumes are the parent's: the one the parent
//! binds the copy to is mirrored up and the virtual claim bound to it,
//! [`crate::mirror::storage`]).
//!
//! This module never touches a parent claim that is not a copy owned by the
//! reconciled cluster.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::{api, create, delete, get, host_meta, is_not_found, is_ours, meta};
use crate::mirror::storage;
use crate::{Ctx, Kind, SyncError, names};

/// Spec fields copied down.
const SPEC_FIELDS: &[&str] = &["accessModes", "resources", "storageClassName", "volumeMode"];
/// Status fields taken up.
const STATUS_FIELDS: &[&str] = &["phase", "accessModes", "capacity", "conditions"];

/// Reconciles virtual claim `ns/name` with its copy.
pub(crate) async fn sync(ctx: &Ctx, ns: &str, name: &str) -> Result<Option<Duration>, SyncError> {
    let vapi = api(&ctx.virt, Kind::PersistentVolumeClaim, ns);
    let hapi = api(
        &ctx.parent,
        Kind::PersistentVolumeClaim,
        &ctx.placement.host_namespace,
    );
    let hname = names::host_name(&ctx.cluster, ns, name);
    let hpvc = match get(&hapi, &hname).await? {
        Some(h) if !is_ours(ctx, &h) => {
            tracing::warn!(cluster = %ctx.cluster, claim = %format!("{ns}/{name}"), "a parent claim of that name belongs to someone else; not syncing");
            return Ok(None);
        }
        h => h,
    };
    let vpvc = match get(&vapi, name).await? {
        Some(v) if !super::pod::is_deleting(&v) => v,
        _ => {
            if let Some(h) = hpvc.filter(|h| !super::pod::is_deleting(h)) {
                delete(&hapi, &hname, meta(&h, "uid"), None).await?;
            }
            storage::forget_volume(ctx, ns, name).await?;
            return Ok(None);
        }
    };
    let Some(hpvc) = hpvc else {
        let mut spec = json!({});
        for f in SPEC_FIELDS {
            if let Some(v) = vpvc["spec"].get(*f).filter(|v| !v.is_null()) {
                spec[*f] = v.clone();
            }
        }
        let copy = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": host_meta(ctx, &vpvc, &hname),
            "spec": spec,
        });
        return Ok(match create(&hapi, &copy).await? {
            Some(_) => None,
            None => Some(Duration::from_millis(200)),
        });
    };
    let mut status = Map::new();
    for f in STATUS_FIELDS {
        let want = hpvc["status"].get(*f).cloned().unwrap_or(Value::Null);
        if vpvc["status"].get(*f).cloned().unwrap_or(Value::Null) != want {
            status.insert((*f).to_string(), want);
        }
    }
    if !status.is_empty() {
        match vapi
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    storage::sync_volume(ctx, &vpvc, &hpvc).await?;
    Ok(None)
}
