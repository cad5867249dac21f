//! Namespace lifecycle: a namespace being deleted is emptied, then its
//! `kubernetes` finalizer is removed and it disappears (upstream's namespace
//! controller). Creating content in it meanwhile is refused by the store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::meta;
use crate::registry::store::{
    DeleteOptions, ListOptions, Store, Target, WriteOptions, decode_stored,
};

/// The finalizer this controller owns (in `spec.finalizers`).
pub const FINALIZER: &str = "kubernetes";

/// Runs the controller until the process ends: one watch over every
/// cluster ([`super::watch`]), acting on namespaces being deleted
/// (including those found at start, e.g. after a restart).
pub async fn run(store: Store, catalog: Arc<Catalog>) {
    let in_flight = Arc::new(Mutex::new(HashSet::<(String, String)>::new()));
    let (s, c) = (store.clone(), catalog.clone());
    super::watch::run(store, "namespace", move |change| {
        let Some(kv) = change.current() else {
            return;
        };
        if namespace_key(&kv.key).is_none() {
            return;
        }
        if let Ok(obj) = decode_stored(kv) {
            consider(&s, &c, &in_flight, &kv.key, &obj);
        }
    })
    .await
}

/// Splits `/<cluster>/core/namespaces/<name>`.
fn namespace_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('/')?;
    let (cluster, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix("core/namespaces/")?;
    (!name.contains('/')).then_some((cluster, name))
}

fn consider(
    store: &Store,
    catalog: &Arc<Catalog>,
    in_flight: &Arc<Mutex<HashSet<(String, String)>>>,
    key: &str,
    obj: &Value,
) {
    if !meta::is_deleting(obj) {
        return;
    }
    let Some((cluster, name)) = namespace_key(key) else {
        return;
    };
    let id = (cluster.to_string(), name.to_string());
    if !in_flight
        .lock()
        .map(|mut s| s.insert(id.clone()))
        .unwrap_or(false)
    {
        return;
    }
    let (store, catalog, in_flight) = (store.clone(), catalog.clone(), in_flight.clone());
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match finalize(&store, &catalog, &id.0, &id.1).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(cluster = %id.0, namespace = %id.1, error = %e, "emptying namespace")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        if let Ok(mut s) = in_flight.lock() {
            s.remove(&id);
        }
    });
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
    for r in catalog.resources().filter(|r| r.namespaced) {
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
        for r in catalog.resources().filter(|r| r.namespaced) {
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
