//! Binding: a virtual pod is bound to the node its copy was scheduled to,
//! through the `pods/binding` subresource's code
//! ([`nestkube_apiserver::registry::binding`]), as a scheduler binds: the pod
//! gets `spec.nodeName` once, the `PodScheduled` condition, and the write
//! passes the store's update loop and admission like any other.
//!
//! This module writes nothing but bindings of virtual pods.

use nestkube_apiserver::ApiError;
use nestkube_apiserver::registry::store::{Target, WriteOptions};
use serde_json::json;

use crate::{SyncError, Syncer};

/// Binds virtual pod `ns/name` (uid `uid`) of `cluster` to `node`. A pod
/// already bound, re-created (another uid), being deleted or gone is left
/// alone, as before the syncer's copy was scheduled.
pub(crate) async fn bind(
    s: &Syncer,
    cluster: &str,
    ns: &str,
    name: &str,
    uid: &str,
    node: &str,
) -> Result<(), SyncError> {
    let Some(pods) = s.api.catalog.get("", "v1", "pods") else {
        return Ok(());
    };
    let target = Target {
        cluster,
        resource: pods,
        namespace: Some(ns),
    };
    match s.api.store.get(&target, name).await {
        Ok(pod)
            if pod["metadata"]["uid"] == uid && pod["metadata"]["deletionTimestamp"].is_null() => {}
        Ok(_) | Err(ApiError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": uid},
        "target": {"kind": "Node", "name": node},
    });
    let bound = nestkube_apiserver::registry::binding::bind(
        &s.api.store,
        &target,
        name,
        &binding,
        WriteOptions::default(),
    )
    .await;
    // Bound already, re-created (the uid precondition), being deleted or
    // gone: each is a Conflict or NotFound, and nothing to do.
    match bound {
        Ok(_) | Err(ApiError::Conflict { .. } | ApiError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
