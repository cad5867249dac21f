//! RuntimeClasses (`node.k8s.io/v1`): a virtual cluster's RuntimeClasses
//! are exactly its parent's (name, handler, overhead, scheduling, labels and
//! annotations), so its tenants see which runtimes their pods may ask for;
//! tenants cannot write them (admission `mirrored.rs`), this module's
//! in-process client can. Any RuntimeClass event of the parent's watch
//! (`parents.rs`) reconciles every cluster syncing there.

use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::ApiResource;
use serde_json::{Value, json};

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

/// Makes `ctx.cluster`'s RuntimeClasses those of its parent.
pub(crate) async fn sync(ctx: &Ctx) -> Result<(), SyncError> {
    let ar = ApiResource::erase::<RuntimeClass>(&());
    let want = list_by_name(&ctx.parent, &ar, false).await?;
    mirror_all(&ctx.virt, &ar, &want, false, mirrored).await
}
