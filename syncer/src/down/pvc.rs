//! PersistentVolumeClaims: every virtual claim is copied to the parent (its
//! lifetime is its own, not its pods'), where the parent's provisioner binds
//! it; the copy's status (phase, capacity, access modes, conditions) comes
//! back up. Pods mount the copy (`super::pod` translates `claimName`).
//!
//! The copy's spec is built by the allow-list of
//! [`super::pod_spec::claim_spec`] (shared with ephemeral volumes): access
//! modes, requested resources, storage class, volume mode. Refused (the
//! claim is not copied, a Warning `SyncError` Event on it says why): a label
//! selector of PersistentVolumes, data sources, a VolumeAttributesClass;
//! they name objects of the parent or objects the syncer does not copy (a
//! claim naming a parent volume binds it). Dropped: `volumeName`
//! (PersistentVolumes are the parent's: the one the parent binds the copy
//! to is mirrored up and the virtual claim bound to it,
//! [`crate::mirror::storage`], which writes this field).
//!
//! This module never touches a parent claim that is not a copy owned by the
//! reconciled cluster.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};

use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;

use super::refusal::{self, Refusal, Refusals, Refused};
use super::{api, create, delete, get, host_meta, is_not_found, is_ours, meta, pod_spec};
use crate::kinds::Translate;
use crate::mirror::storage;
use crate::{Ctx, Kind, SyncError, Syncer, names};

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
        let spec = match translate(&vpvc) {
            Ok(spec) => spec,
            Err(why) => {
                refusal::report(ctx, &vpvc, "PersistentVolumeClaim", "v1", &why).await;
                return Ok(None);
            }
        };
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

/// The spec of the parent copy of virtual claim `vpvc` (see the module
/// docs), or why it is not copied.
pub(crate) fn translate(vpvc: &Value) -> Result<Value, Refused> {
    let spec: PersistentVolumeClaimSpec =
        serde_json::from_value(vpvc["spec"].clone()).map_err(|e| {
            Refused(vec![Refusal {
                field: "spec".into(),
                detail: format!("the claim's spec could not be read: {e}"),
            }])
        })?;
    let mut errs = Refusals::default();
    let out = pod_spec::claim_spec(&spec, "spec", &mut errs);
    errs.finish(serde_json::to_value(out).unwrap_or_else(|_| json!({})))
}

/// Claims' translation ([`crate::kinds`]).
pub(crate) struct Claims;

#[async_trait::async_trait]
impl Translate for Claims {
    async fn sync(
        &self,
        _s: &Syncer,
        ctx: &Ctx,
        _kind: Kind,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, SyncError> {
        sync(ctx, ns, name).await
    }

    fn keeps_legacy_copies(&self) -> bool {
        // Its volume's data is the tenant's: never deleted here.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_naming_parent_objects_is_refused() {
        let base = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
        let with = |extra: Value| {
            let mut spec = base.clone();
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"spec": spec})
        };
        // Written by the binding mirror on the virtual claim: dropped.
        assert_eq!(
            translate(&with(json!({"volumeName": "pv-1"}))).unwrap(),
            base
        );
        for (extra, field) in [
            (
                json!({"selector": {"matchLabels": {"tenant": "b"}}}),
                "spec.selector",
            ),
            (
                json!({"dataSource": {"kind": "PersistentVolumeClaim", "name": "x"}}),
                "spec.dataSource",
            ),
            (
                json!({"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "x", "namespace": "b"}}),
                "spec.dataSourceRef",
            ),
            (
                json!({"volumeAttributesClassName": "gold"}),
                "spec.volumeAttributesClassName",
            ),
        ] {
            let Err(Refused(list)) = translate(&with(extra)) else {
                panic!("{field} not refused");
            };
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].field, field);
        }
        let kept =
            with(json!({"storageClassName": "fast", "volumeMode": "Block", "futureField": "x"}));
        let mut want = base.clone();
        want["storageClassName"] = json!("fast");
        want["volumeMode"] = json!("Block");
        assert_eq!(translate(&kept).unwrap(), want);
    }
}
