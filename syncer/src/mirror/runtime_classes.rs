//! RuntimeClasses (`node.k8s.io/v1`): a virtual cluster's RuntimeClasses
//! are exactly those of its parent's (name, handler, overhead, scheduling,
//! labels and annotations) that its VirtualCluster's `spec.isolation`
//! allows, so its tenants see which runtimes their pods may ask for and
//! nothing of the parent's other runtimes (a nested cluster's parent holds
//! only what the parent's own policy allows, so every level narrows);
//! tenants cannot write them (admission `mirrored.rs`), this module's
//! in-process client can. Any RuntimeClass event of the parent's watch
//! (`parents.rs`) reconciles every cluster syncing there.

use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::ApiResource;
use serde_json::{Value, json};

use nestkube_apiserver::admission::runtimeclass::RuntimePolicy;

use super::{list_by_name, mirror_all};
use crate::down::meta;
use crate::{Ctx, SyncError};

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

/// Makes `ctx.cluster`'s RuntimeClasses those of its parent that its
/// policy allows.
pub(crate) async fn sync(ctx: &Ctx) -> Result<(), SyncError> {
    let ar = ApiResource::erase::<RuntimeClass>(&());
    let iso = &ctx.placement.spec.isolation;
    let policy = RuntimePolicy::cluster(
        iso.runtime_class_name.as_deref(),
        &iso.allowed_runtime_class_names,
    );
    let mut want = list_by_name(&ctx.parent, &ar, false).await?;
    want.retain(|name, _| policy.allows(name));
    mirror_all(&ctx.virt, &ar, &want, false, mirrored).await
}
