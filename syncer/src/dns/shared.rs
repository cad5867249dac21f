//! The pod index shared by replicas over their common store.
//!
//! Only the syncer's lease holder reconciles pods, so only it learns pod
//! addresses; but a pod's query may reach any replica (the nameserver is a
//! Service in front of all of them). So the syncer writes each pod's
//! addresses to the store under [`PREFIX`] ([`publish`]), and every
//! replica's DNS server follows that prefix into its own in-memory
//! [`PodIndex`] ([`follow`]): a query is answered alike wherever it lands.
//!
//! The keys live outside every cluster's part of the store (as the leases
//! do), so no API request of any tenant can read or write them; what they
//! hold comes from the parent-reported copy status only, as in the index.
//! A lease holder that starts removes the entries of pods that went while
//! no syncer ran ([`sweep`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use nestkube_apiserver::server::ApiServer;
use nestkube_storage::{ListOptions, Storage, StorageError, WatchEvent};

use super::index::{PodIndex, PodRef};

/// Where pod addresses are kept: `/_dns/pods/<cluster>/<namespace>/<name>`
/// → a JSON list of addresses.
pub const PREFIX: &str = "/_dns/pods/";

/// How long [`follow`] waits before listing again after the store failed.
const RETRY: Duration = Duration::from_secs(1);

/// The key of `pod`'s addresses.
fn key(pod: &PodRef) -> String {
    format!("{PREFIX}{}/{}/{}", pod.cluster, pod.namespace, pod.name)
}

/// The pod a key names (`None`: not a pod key).
fn pod_of(key: &str) -> Option<PodRef> {
    let mut parts = key.strip_prefix(PREFIX)?.splitn(3, '/');
    let (cluster, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    (!cluster.is_empty() && !namespace.is_empty() && !name.is_empty()).then(|| PodRef {
        cluster: cluster.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// The addresses a stored value lists (unreadable: none).
fn addresses(value: &[u8]) -> Vec<IpAddr> {
    serde_json::from_slice(value).unwrap_or_default()
}

/// Makes `ips` the stored addresses of `pod` (none: its entry is removed).
/// Writes only what differs.
pub async fn publish(
    storage: &dyn Storage,
    pod: &PodRef,
    ips: &[IpAddr],
) -> Result<(), StorageError> {
    let key = key(pod);
    // Compare-and-swap, again when a concurrent write got in between.
    for _ in 0..3 {
        let current = storage.get(&key).await?;
        let result = match (&current, ips.is_empty()) {
            (None, true) => return Ok(()),
            (Some(kv), true) => storage.delete(&key, kv.mod_revision).await.map(|_| ()),
            (Some(kv), false) if addresses(&kv.value) == ips => return Ok(()),
            (Some(kv), false) => {
                let value = serde_json::to_vec(ips).unwrap_or_default().into();
                storage
                    .update(&key, value, kv.mod_revision)
                    .await
                    .map(|_| ())
            }
            (None, false) => {
                let value = serde_json::to_vec(ips).unwrap_or_default().into();
                storage.create(&key, value).await.map(|_| ())
            }
        };
        match result {
            Err(
                StorageError::Conflict { .. }
                | StorageError::AlreadyExists { .. }
                | StorageError::NotFound { .. },
            ) => continue,
            r => return r,
        }
    }
    Ok(())
}

/// Removes the stored addresses of every pod of `cluster` (gone).
pub async fn unpublish_cluster(storage: &dyn Storage, cluster: &str) -> Result<(), StorageError> {
    storage
        .delete_prefix(&format!("{PREFIX}{cluster}/"))
        .await
        .map(|_| ())
}

/// Removes the stored addresses of pods that no longer exist (or whose
/// cluster is no longer served): what a syncer that was not running when
/// they went could not remove.
pub async fn sweep(api: &Arc<ApiServer>) -> Result<usize, StorageError> {
    let storage = api.store.storage();
    let listed = storage.list(PREFIX, ListOptions::default()).await?;
    let mut removed = 0;
    for kv in listed.items {
        let Some(pod) = pod_of(&kv.key) else {
            continue;
        };
        let exists = api.clusters.contains(&pod.cluster) && {
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(
                api.client_for_agent(&pod.cluster, crate::syncer::SYNCER_MANAGER),
                &pod.namespace,
            );
            // A failed read keeps the entry: better stale than missing.
            !matches!(pods.get_opt(&pod.name).await, Ok(None))
        };
        if !exists {
            match storage.delete(&kv.key, kv.mod_revision).await {
                Ok(_) => removed += 1,
                Err(StorageError::NotFound { .. } | StorageError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Keeps `index` equal to the stored addresses, until aborted: lists them,
/// then follows every change; lists again after any failure of the store
/// (a compacted or overflowing watch included).
pub async fn follow(storage: Arc<dyn Storage>, index: Arc<PodIndex>) {
    loop {
        if let Err(e) = follow_once(storage.as_ref(), &index).await {
            tracing::warn!(error = %e, "DNS: following the shared pod index failed; listing again");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One list-then-watch of [`follow`]; returns when the store fails.
async fn follow_once(storage: &dyn Storage, index: &PodIndex) -> Result<(), StorageError> {
    let listed = storage.list(PREFIX, ListOptions::default()).await?;
    let all: HashMap<PodRef, Vec<IpAddr>> = listed
        .items
        .iter()
        .filter_map(|kv| Some((pod_of(&kv.key)?, addresses(&kv.value))))
        .collect();
    index.replace_all(all);
    let mut events = storage.watch(PREFIX, listed.revision).await?;
    while let Some(event) = events.next().await {
        match event? {
            WatchEvent::Put { kv, .. } => {
                if let Some(pod) = pod_of(&kv.key) {
                    index.set(pod, addresses(&kv.value));
                }
            }
            WatchEvent::Delete { prev, .. } => {
                if let Some(pod) = pod_of(&prev.key) {
                    index.set(pod, Vec::new());
                }
            }
            WatchEvent::Progress { .. } => {}
        }
    }
    Err(StorageError::Backend("the watch ended".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_pod() {
        let pod = PodRef {
            cluster: "team-a:dev".into(),
            namespace: "shop".into(),
            name: "web-0".into(),
        };
        assert_eq!(key(&pod), "/_dns/pods/team-a:dev/shop/web-0");
        assert_eq!(pod_of(&key(&pod)), Some(pod));
        assert_eq!(pod_of("/_dns/pods/a/b"), None);
        assert_eq!(pod_of("/team-a/core/pods/a/b"), None);
    }
}
