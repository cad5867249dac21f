//! Mirrors: what the parent decides and a virtual cluster only reads,
//! copied up.
//!
//! - RuntimeClasses (`node.k8s.io/v1`): a virtual cluster's RuntimeClasses
//!   are exactly its parent's (name, handler, overhead, scheduling, labels
//!   and annotations), so its tenants see which runtimes their pods may ask
//!   for; tenants cannot write them (admission `mirrored.rs`), this
//!   module's in-process client can. Any RuntimeClass event of the parent's
//!   watch (`parents.rs`) reconciles every cluster syncing there.
//! - Nodes: the parent's Nodes that the cluster's pods are bound to (as
//!   vcluster does), with their labels, taints, capacity, conditions,
//!   addresses and node info, labelled [`MIRRORED_NODE_LABEL`]; refreshed
//!   every [`NODE_REFRESH`] while any exists and after every binding, and
//!   removed once no pod is bound there. A Node the tenant made is left
//!   alone.
//!
//! This module never writes the parent.

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

/// Label on the Nodes this module mirrors into a virtual cluster (only
/// those are ever updated or deleted).
pub const MIRRORED_NODE_LABEL: &str = "tenancy.nestkube.io/mirrored";
/// How often mirrored Nodes are refreshed from the parent.
pub const NODE_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// The Nodes API of a cluster.
fn nodes(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::erase::<k8s_openapi::api::core::v1::Node>(&()),
    )
}

/// What a mirrored Node carries from the parent's Node.
fn mirrored_node(node: &Value) -> Value {
    let mut labels = node["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[MIRRORED_NODE_LABEL] = json!("true");
    let mut out = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": meta(node, "name"), "labels": labels},
        "spec": {},
    });
    for f in ["taints", "unschedulable"] {
        if let Some(v) = node["spec"].get(f).filter(|v| !v.is_null()) {
            out["spec"][f] = v.clone();
        }
    }
    let mut status = json!({});
    for f in [
        "capacity",
        "allocatable",
        "conditions",
        "addresses",
        "nodeInfo",
    ] {
        if let Some(v) = node["status"].get(f).filter(|v| !v.is_null()) {
            status[f] = v.clone();
        }
    }
    out["status"] = status;
    out
}

/// Mirrors into `ctx.cluster` the parent's Nodes its pods are bound to,
/// and removes mirrored Nodes no pod of it is bound to any more. Returns
/// when to refresh.
pub(crate) async fn sync_nodes(ctx: &Ctx) -> Result<Option<std::time::Duration>, SyncError> {
    let pods = crate::down::api_all(&ctx.virt, crate::Kind::Pod)
        .list(&ListParams::default())
        .await?;
    let mut wanted = std::collections::BTreeSet::new();
    for p in pods.items {
        let p = serde_json::to_value(p)?;
        if let Some(n) = p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            wanted.insert(n.to_string());
        }
    }
    let virt = nodes(&ctx.virt);
    let parent = nodes(&ctx.parent);
    let have: BTreeMap<String, Value> = virt
        .list(&ListParams::default().labels(&format!("{MIRRORED_NODE_LABEL}=true")))
        .await?
        .items
        .into_iter()
        .filter_map(|n| serde_json::to_value(n).ok())
        .map(|n| (meta(&n, "name").to_string(), n))
        .collect();
    for name in &wanted {
        let Some(source) = crate::down::get(&parent, name).await? else {
            continue;
        };
        let desired = mirrored_node(&source);
        let current = match have.get(name) {
            Some(cur) => cur.clone(),
            None => match crate::down::get(&virt, name).await? {
                // A Node of that name the tenant made: not ours to change.
                Some(_) => continue,
                None => {
                    let mut spec_only = desired.clone();
                    spec_only.as_object_mut().map(|m| m.remove("status"));
                    match create(&virt, &spec_only).await? {
                        Some(n) => n,
                        None => continue,
                    }
                }
            },
        };
        if current["metadata"]["labels"] != desired["metadata"]["labels"]
            || current["spec"] != desired["spec"]
        {
            let mut update = desired.clone();
            update.as_object_mut().map(|m| m.remove("status"));
            update["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            replace(&virt, &update).await?;
        }
        if current["status"] != desired["status"] {
            virt.patch_status(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"status": desired["status"]})),
            )
            .await?;
        }
    }
    for (name, cur) in &have {
        if !wanted.contains(name) {
            delete(&virt, name, meta(cur, "uid"), None).await?;
        }
    }
    Ok((!wanted.is_empty()).then_some(NODE_REFRESH))
}
