//! Namespace lifecycle: a namespace being deleted is emptied, then its
//! `kubernetes` finalizer is removed and it disappears (upstream's namespace
//! controller). Creating content in it meanwhile is refused by the store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::runtime::{self, Backoff, Change, ControllerContext, Outcome};
use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::meta;
use crate::registry::store::{
    DeleteOptions, ListOptions, Store, Target, WriteOptions, decode_stored,
};

/// The finalizer this controller owns (in `spec.finalizers`).
pub const FINALIZER: &str = "kubernetes";

/// A namespace of a cluster: (cluster, name).
type NsKey = (String, String);

struct Controller {
    store: Store,
    catalog: Arc<Catalog>,
    /// Polling a namespace until its content is gone: from 100 ms,
    /// doubling, up to 5 s.
    backoff: Backoff<NsKey>,
}

/// Starts the controller for every cluster of `ctx`: one watch over every
/// cluster, acting on namespaces being deleted (including those found at
/// start, e.g. after a restart).
pub fn spawn(ctx: &ControllerContext) -> tokio::task::JoinHandle<()> {
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        catalog: ctx.catalog.clone(),
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
    });
    runtime::spawn_controller(&ctx.store, "namespace", controller, interesting)
}

/// The namespace a change calls for emptying: one being deleted.
fn interesting(change: &Change<'_>) -> Option<NsKey> {
    let kv = change.current()?;
    let (cluster, name) = namespace_key(&kv.key)?;
    let obj = decode_stored(kv).ok()?;
    meta::is_deleting(&obj).then(|| (cluster.to_string(), name.to_string()))
}

/// Splits `/<cluster>/core/namespaces/<name>`.
fn namespace_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('/')?;
    let (cluster, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix("core/namespaces/")?;
    (!name.contains('/')).then_some((cluster, name))
}

#[async_trait::async_trait]
impl runtime::Reconciler<NsKey> for Controller {
    /// Empties the namespace while it is being deleted, polling with
    /// [`Controller::backoff`] until it is gone (failures are logged and
    /// polled the same way).
    async fn reconcile(&self, key: NsKey) -> Outcome<ApiError> {
        let (cluster, ns) = (&key.0, &key.1);
        let done = match self.deleting(cluster, ns).await {
            Ok(false) => Ok(true),
            Ok(true) => finalize(&self.store, &self.catalog, cluster, ns).await,
            Err(e) => Err(e),
        }
        .unwrap_or_else(|e| {
            tracing::warn!(cluster = %cluster, namespace = %ns, error = %e, "emptying namespace");
            false
        });
        if done {
            self.backoff.reset(&key);
            return Ok(None);
        }
        Ok(Some(self.backoff.next(&key)))
    }
}

impl Controller {
    /// Whether the namespace still exists and is being deleted (a reconcile
    /// queued earlier must not empty a namespace re-created since).
    async fn deleting(&self, cluster: &str, ns: &str) -> Result<bool, ApiError> {
        let Some(namespaces) = self.catalog.get("", "v1", "namespaces") else {
            return Ok(false);
        };
        let t = Target {
            cluster,
            resource: namespaces,
            namespace: None,
        };
        match self.store.get(&t, ns).await {
            Ok(obj) => Ok(meta::is_deleting(&obj)),
            Err(ApiError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Deletes the namespace's content; once it is empty, removes the finalizer
/// and the namespace. Returns true when done.
async fn finalize(
    store: &Store,
    catalog: &Catalog,
    cluster: &str,
    ns: &str,
) -> Result<bool, ApiError> {
    let mut remaining = 0;
    let mut seen = HashSet::new();
    // The built-ins and the cluster's custom resources, a CRD's storage
    // version first: objects stored at it are deleted without a conversion
    // webhook.
    let mut resources = catalog.resources_in(cluster);
    resources.sort_by_key(|r| {
        r.custom
            .as_ref()
            .is_some_and(|c| c.storage_version != r.version)
    });
    for r in resources.iter().filter(|r| r.namespaced) {
        if !seen.insert(r.storage_segment.clone()) {
            continue;
        }
        let target = Target {
            cluster,
            resource: r,
            namespace: Some(ns),
        };
        let left = store
            .delete_collection(&target, &ListOptions::default(), &DeleteOptions::default())
            .await?;
        remaining += left.len();
    }
    if remaining > 0 {
        // Deleted objects disappear or wait on their own finalizers; check again.
        let mut still = 0;
        for r in resources.iter().filter(|r| r.namespaced) {
            let target = Target {
                cluster,
                resource: r,
                namespace: Some(ns),
            };
            still += store
                .list(
                    &target,
                    &ListOptions {
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await?
                .items
                .len();
        }
        if still > 0 {
            return Ok(false);
        }
    }
    let Some(namespaces) = catalog.get("", "v1", "namespaces") else {
        return Ok(true);
    };
    let target = Target {
        cluster,
        resource: namespaces,
        namespace: None,
    };
    let result = store
        .update_with(
            &target,
            ns,
            Some("finalize"),
            WriteOptions::default(),
            |old| {
                let mut obj = old.clone();
                let finalizers: Vec<Value> = old["spec"]["finalizers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|f| f.as_str() != Some(FINALIZER))
                    .cloned()
                    .collect();
                obj["spec"]["finalizers"] = json!(finalizers);
                Ok((obj, Vec::new()))
            },
        )
        .await;
    match result {
        Ok(_) | Err(ApiError::NotFound(_)) => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_key;

    #[test]
    fn namespace_keys() {
        assert_eq!(
            namespace_key("/root/core/namespaces/default"),
            Some(("root", "default"))
        );
        assert_eq!(namespace_key("/a:b/core/namespaces/x"), Some(("a:b", "x")));
        assert_eq!(namespace_key("/root/core/pods/default/x"), None);
    }
}
