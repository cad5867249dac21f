//! Mirrors: what the parent decides and a virtual cluster only reads,
//! copied up. Today RuntimeClasses (`node.k8s.io/v1`): a virtual cluster's
//! RuntimeClasses are exactly its parent's (name, handler, overhead,
//! scheduling, labels and annotations), so its tenants see which runtimes
//! their pods may ask for; tenants cannot write them (admission
//! `mirrored.rs`), this module's in-process client can.
//!
//! Changes come from the parent's watch (`parents.rs`): any RuntimeClass
//! event reconciles every cluster syncing into that parent; a new placement
//! reconciles its cluster. This module never writes the parent.

use std::collections::BTreeMap;

use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::down::{create, delete, meta, replace};
use crate::{Ctx, SyncError};

/// The RuntimeClasses API of a cluster.
pub(crate) fn runtime_classes(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<RuntimeClass>(&()))
}

/// What a mirrored RuntimeClass carries from its parent.
fn mirrored(rc: &Value) -> Value {
    let mut out = json!({
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": meta(rc, "name")},
        "handler": rc["handler"],
    });
    for f in ["overhead", "scheduling"] {
        if let Some(v) = rc.get(f).filter(|v| !v.is_null()) {
            out[f] = v.clone();
        }
    }
    for f in ["labels", "annotations"] {
        if let Some(v) = rc["metadata"].get(f).filter(|v| !v.is_null()) {
            out["metadata"][f] = v.clone();
        }
    }
    out
}

/// Makes `ctx.cluster`'s RuntimeClasses those of its parent.
pub(crate) async fn sync_runtime_classes(ctx: &Ctx) -> Result<(), SyncError> {
    let list = |client: &kube::Client| {
        let api = runtime_classes(client);
        async move {
            let mut out = BTreeMap::new();
            for o in api.list(&ListParams::default()).await?.items {
                let v = serde_json::to_value(o)?;
                out.insert(meta(&v, "name").to_string(), v);
            }
            Ok::<_, SyncError>(out)
        }
    };
    let want = list(&ctx.parent).await?;
    let have = list(&ctx.virt).await?;
    let api = runtime_classes(&ctx.virt);
    for (name, rc) in &want {
        let desired = mirrored(rc);
        match have.get(name) {
            None => {
                create(&api, &desired).await?;
            }
            Some(cur) if mirrored(cur) != desired => {
                let mut update = desired.clone();
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
