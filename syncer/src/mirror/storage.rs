//! Storage the parent provides, shown in the virtual cluster:
//!
//! - StorageClasses: every StorageClass of the parent (provisioner,
//!   reclaim policy, binding mode, expansion, mount options, topologies,
//!   labels and annotations, so the default class is marked as such), so a
//!   tenant can see which classes its claims may name. Parameters naming
//!   the parent's Secrets (`…secret…` keys) are left out: they name objects
//!   the tenant cannot reach. Reconciled with the RuntimeClasses, on every
//!   StorageClass event of the parent's watch.
//! - PersistentVolumes: when the parent binds a claim's copy, the volume it
//!   bound is mirrored under its parent name, bound to the virtual claim
//!   (`claimRef`), and the virtual claim gets its `volumeName` and the bind
//!   annotations as the PV controller sets them, so `kubectl get pv,pvc`
//!   reads as in any cluster. The volume source is the parent's CSI driver
//!   and handle (without secret references); any other source is shown as
//!   [`PARENT_DRIVER`] with the volume's name, not the parent's paths or
//!   servers. A mirrored volume goes when its virtual claim goes.
//!
//! Both are labelled [`MIRRORED_LABEL`]; a class or volume of the same name
//! the tenant made is left alone.

use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::{MIRRORED_LABEL, list_by_name, mirror_all, mirrored_labels};
use crate::down::{create, delete, get, is_not_found, meta, replace};
use crate::{Ctx, SyncError};

/// The CSI driver named by a mirrored volume whose parent source is not
/// CSI.
pub const PARENT_DRIVER: &str = "parent.tenancy.nestkube.io";

/// Annotations of the parent's objects that are not mirrored (they repeat
/// the object, parameters included).
const DROPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// `obj`'s annotations, less [`DROPPED_ANNOTATIONS`]; `None` when none is
/// left.
fn kept_annotations(obj: &Value) -> Option<Value> {
    let kept: Map<String, Value> = obj["metadata"]["annotations"]
        .as_object()?
        .iter()
        .filter(|(k, _)| !DROPPED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// What a mirrored StorageClass carries from its parent.
fn mirrored_class(sc: &Value) -> Value {
    let mut out = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": meta(sc, "name"), "labels": mirrored_labels(sc)},
        "provisioner": sc["provisioner"],
    });
    if let Some(a) = kept_annotations(sc) {
        out["metadata"]["annotations"] = a;
    }
    for f in [
        "reclaimPolicy",
        "volumeBindingMode",
        "allowVolumeExpansion",
        "mountOptions",
        "allowedTopologies",
    ] {
        if let Some(v) = sc.get(f).filter(|v| !v.is_null()) {
            out[f] = v.clone();
        }
    }
    if let Some(params) = sc["parameters"].as_object() {
        let kept: Map<String, Value> = params
            .iter()
            .filter(|(k, _)| !k.to_ascii_lowercase().contains("secret"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !kept.is_empty() {
            out["parameters"] = Value::Object(kept);
        }
    }
    out
}

/// Makes `ctx.cluster`'s mirrored StorageClasses those of its parent.
pub(crate) async fn sync_classes(ctx: &Ctx) -> Result<(), SyncError> {
    let ar = ApiResource::erase::<StorageClass>(&());
    let want = list_by_name(&ctx.parent, &ar, false).await?;
    mirror_all(&ctx.virt, &ar, &want, true, mirrored_class).await
}

/// The PersistentVolumes API of a cluster.
fn volumes(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<PersistentVolume>(&()))
}

/// The mirror of parent volume `pv`, bound to virtual claim `vpvc`.
fn mirrored_volume(pv: &Value, vpvc: &Value) -> Value {
    let spec = &pv["spec"];
    let mut out = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": meta(pv, "name"), "labels": mirrored_labels(pv)},
        "spec": {
            "claimRef": {
                "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                "namespace": meta(vpvc, "namespace"), "name": meta(vpvc, "name"),
                "uid": meta(vpvc, "uid"),
            },
        },
    });
    if let Some(a) = kept_annotations(pv) {
        out["metadata"]["annotations"] = a;
    }
    for f in [
        "capacity",
        "accessModes",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "volumeMode",
        "mountOptions",
        "nodeAffinity",
    ] {
        if let Some(v) = spec.get(f).filter(|v| !v.is_null()) {
            out["spec"][f] = v.clone();
        }
    }
    let csi = &spec["csi"];
    out["spec"]["csi"] = if csi.is_object() {
        let mut kept = json!({"driver": csi["driver"], "volumeHandle": csi["volumeHandle"]});
        for f in ["fsType", "readOnly", "volumeAttributes"] {
            if let Some(v) = csi.get(f).filter(|v| !v.is_null()) {
                kept[f] = v.clone();
            }
        }
        kept
    } else {
        json!({"driver": PARENT_DRIVER, "volumeHandle": meta(pv, "name")})
    };
    out
}

/// Annotations the PV controller sets on a claim it bound.
const BIND_ANNOTATIONS: &[(&str, &str)] = &[
    ("pv.kubernetes.io/bind-completed", "yes"),
    ("pv.kubernetes.io/bound-by-controller", "yes"),
];

/// Brings the mirror of the volume the parent bound `hpvc` (the copy of
/// virtual claim `vpvc`) to in line, and binds the virtual claim to it.
/// Nothing while the copy is not bound.
pub(crate) async fn sync_volume(ctx: &Ctx, vpvc: &Value, hpvc: &Value) -> Result<(), SyncError> {
    let name = hpvc["spec"]["volumeName"].as_str().unwrap_or("");
    if name.is_empty() || hpvc["status"]["phase"] != "Bound" {
        return Ok(());
    }
    let bound_to = vpvc["spec"]["volumeName"].as_str().unwrap_or("");
    if !bound_to.is_empty() && bound_to != name {
        // Bound to another volume in the virtual cluster (the tenant's).
        return Ok(());
    }
    let Some(pv) = get(&volumes(&ctx.parent), name).await? else {
        return Ok(());
    };
    let vapi = volumes(&ctx.virt);
    let desired = mirrored_volume(&pv, vpvc);
    let current = match get(&vapi, name).await? {
        Some(cur) if cur["metadata"]["labels"][MIRRORED_LABEL] != "true" => return Ok(()),
        Some(cur) => {
            let stale = ["labels", "annotations"]
                .iter()
                .any(|f| cur["metadata"][*f] != desired["metadata"][*f])
                || desired["spec"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(k, v)| cur["spec"][k] != *v);
            if stale {
                let mut update = desired.clone();
                update["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                replace(&vapi, &update).await?;
            }
            cur
        }
        None => match create(&vapi, &desired).await? {
            Some(created) => created,
            None => return Ok(()),
        },
    };
    let phase = &pv["status"]["phase"];
    if !phase.is_null() && current["status"]["phase"] != *phase {
        match vapi
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase}})),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let annotated = BIND_ANNOTATIONS
        .iter()
        .all(|(k, v)| vpvc["metadata"]["annotations"][*k] == *v);
    if bound_to.is_empty() || !annotated {
        let annotations: Map<String, Value> = BIND_ANNOTATIONS
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        let claims = crate::down::api(
            &ctx.virt,
            crate::Kind::PersistentVolumeClaim,
            meta(vpvc, "namespace"),
        );
        match claims
            .patch(
                meta(vpvc, "name"),
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"annotations": annotations},
                    "spec": {"volumeName": name},
                })),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Deletes the mirrored volumes bound to virtual claim `namespace/name`
/// (gone from the virtual cluster).
pub(crate) async fn forget_volume(ctx: &Ctx, namespace: &str, name: &str) -> Result<(), SyncError> {
    let vapi = volumes(&ctx.virt);
    let mirrored = vapi
        .list(&ListParams::default().labels(&format!("{MIRRORED_LABEL}=true")))
        .await?;
    for pv in mirrored.items {
        let pv = serde_json::to_value(pv)?;
        let claim = &pv["spec"]["claimRef"];
        if claim["namespace"] == namespace && claim["name"] == name {
            delete(&vapi, meta(&pv, "name"), meta(&pv, "uid"), None).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirrored_class_names_no_parent_secret() {
        let sc = json!({
            "metadata": {"name": "fast", "labels": {"tier": "ssd"}, "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true",
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            }},
            "provisioner": "ebs.csi.aws.com",
            "parameters": {"type": "gp3", "csi.storage.k8s.io/provisioner-secret-name": "creds"},
            "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
        });
        let m = mirrored_class(&sc);
        assert_eq!(m["parameters"], json!({"type": "gp3"}));
        assert_eq!(
            m["metadata"]["annotations"],
            json!({"storageclass.kubernetes.io/is-default-class": "true"})
        );
        assert_eq!(
            m["metadata"]["labels"],
            json!({"tier": "ssd", MIRRORED_LABEL: "true"})
        );
        assert_eq!(m["volumeBindingMode"], "WaitForFirstConsumer");
        // Mirroring a mirror changes nothing (so it is not written again).
        assert_eq!(mirrored_class(&m), m);
    }

    #[test]
    fn a_mirrored_volume_is_bound_to_the_virtual_claim_and_hides_its_source() {
        let pv = json!({
            "metadata": {"name": "pvc-123"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "manual",
                "hostPath": {"path": "/srv/host/secret-place"},
                "claimRef": {"namespace": "host-ns", "name": "data-x-default-x-a", "uid": "h"}},
        });
        let vpvc = json!({"metadata": {"namespace": "default", "name": "data", "uid": "v"}});
        let m = mirrored_volume(&pv, &vpvc);
        assert_eq!(
            m["spec"]["claimRef"],
            json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                "namespace": "default", "name": "data", "uid": "v"})
        );
        assert_eq!(
            m["spec"]["csi"],
            json!({"driver": PARENT_DRIVER, "volumeHandle": "pvc-123"})
        );
        assert!(m["spec"]["hostPath"].is_null());
        assert!(!m.to_string().contains("host-ns"));
    }
}
