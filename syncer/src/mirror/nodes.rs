//! Nodes: the parent's Nodes that the cluster's pods are bound to (as
//! vcluster does), with their labels, taints, capacity, conditions,
//! addresses and node info, labelled [`MIRRORED_LABEL`]; refreshed every
//! [`NODE_REFRESH`] while any exists and after every binding, and removed
//! once no pod is bound there. A Node the tenant made is left alone.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};

use super::{MIRRORED_LABEL, mirrored_labels};
use crate::down::{create, delete, meta, replace};
use crate::{Ctx, SyncError};

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
    let labels = mirrored_labels(node);
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
pub(crate) async fn sync(ctx: &Ctx) -> Result<Option<std::time::Duration>, SyncError> {
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
        .list(&ListParams::default().labels(&format!("{MIRRORED_LABEL}=true")))
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
