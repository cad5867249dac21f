//! Binding: a virtual pod is bound to the node its copy was scheduled to
//! (upstream's semantics: a pod gets `spec.nodeName` once, when the
//! scheduler binds it, and never again).
//!
//! The API does not serve `pods/binding` yet, and `spec.nodeName` may not
//! change through an update, so this is what upstream's binding storage
//! (`BindingREST.assignPod`) does: a compare-and-swap of the stored pod
//! that sets `spec.nodeName` only when it is empty and the pod is the one
//! the copy was made for (same uid, not deleting). Nothing else of the pod
//! changes, and every watcher sees the write as a normal update.
//!
//! This module writes nothing but `spec.nodeName` of virtual pods.

use nestkube_storage::StorageError;
use serde_json::{Value, json};

use crate::{SyncError, Syncer};

/// Binds virtual pod `ns/name` (uid `uid`) of `cluster` to `node`.
pub(crate) async fn bind(
    s: &Syncer,
    cluster: &str,
    ns: &str,
    name: &str,
    uid: &str,
    node: &str,
) -> Result<(), SyncError> {
    let storage = s.api.store.storage();
    let key = format!("/{cluster}/core/pods/{ns}/{name}");
    loop {
        let Some(kv) = storage.get(&key).await? else {
            return Ok(());
        };
        let mut pod: Value = serde_json::from_slice(&kv.value)?;
        let bound = pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        if bound || pod["metadata"]["uid"] != uid || !pod["metadata"]["deletionTimestamp"].is_null()
        {
            return Ok(());
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(m) = pod["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        match storage
            .update(&key, serde_json::to_vec(&pod)?.into(), kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
