//! ClusterIP allocation for standalone mode (upstream's service IP
//! allocator, admission-time): a Service of type ClusterIP, NodePort or
//! LoadBalancer created without `spec.clusterIP` gets a free IPv4 address
//! of `10.96.0.0/12`, unique within its cluster (`10.96.0.1` is reserved
//! for the `kubernetes` Service); a requested address already used by
//! another Service of the cluster is refused with 422 (`provided IP is
//! already allocated`); `clusterIP: None` stays headless.
//!
//! Called from the Service strategy's [`Strategy::begin_create`] hook
//! (create is the only write path that allocates). The allocator keeps no per-cluster state: the used addresses
//! are the Services stored in the cluster, read under a lock (one of a fixed
//! set, chosen by cluster) that the caller holds until its write is done, so
//! an address is released by deleting its Service and survives restarts
//! with it. Not handled: dry-run creates (no address shown), updates that
//! change the type or the address, IPv6 and dual-stack.

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use nestkube_storage::Storage;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::{ApiError, FieldError, Subject};
use crate::store::decode_stored;
#[cfg(doc)]
use crate::strategy::Strategy;

/// The service CIDR: 10.96.0.0/12.
const BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SIZE: u32 = 1 << 20;
/// Locks striped by cluster: fixed memory whatever the number of clusters.
static LOCKS: LazyLock<Vec<Mutex<()>>> =
    LazyLock::new(|| (0..64).map(|_| Mutex::new(())).collect());

/// Held by the creating request until its Service is stored.
pub type Reservation = MutexGuard<'static, ()>;

/// Whether a Service (after defaulting) needs an address.
fn needs_ip(spec: &Value) -> bool {
    matches!(
        spec["type"].as_str().unwrap_or("ClusterIP"),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) && spec["clusterIP"] != "None"
}

fn in_range(ip: Ipv4Addr) -> bool {
    let n = u32::from(ip);
    (BASE..BASE + SIZE).contains(&n)
}

/// 422 for a requested address.
fn refuse(svc: &Value, ip: &str, why: String) -> ApiError {
    ApiError::invalid(
        Subject {
            group: String::new(),
            kind: "Service".into(),
            name: svc["metadata"]["name"].as_str().unwrap_or("").into(),
        },
        FieldError::invalid(
            "spec.clusterIPs",
            json!([ip]),
            format!("failed to allocate IP {ip}: {why}"),
        ),
    )
}

/// Assigns or checks `svc`'s cluster IP in `cluster`; the returned guard
/// must be held until the Service is written (`None`: nothing to do).
pub async fn allocate(
    storage: &dyn Storage,
    cluster: &str,
    svc: &mut Value,
) -> Result<Option<Reservation>, ApiError> {
    if !needs_ip(&svc["spec"]) {
        return Ok(None);
    }
    let stripe = cluster
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    let guard = LOCKS[stripe % LOCKS.len()].lock().await;
    let prefix = crate::keys::collection_prefix(cluster, "core/services", None);
    let mut used: std::collections::HashSet<u32> = [BASE, BASE + 1].into();
    for kv in storage
        .list(&prefix, nestkube_storage::ListOptions::default())
        .await?
        .items
    {
        let Ok(other) = decode_stored(&kv) else {
            continue;
        };
        for ip in other["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&other["spec"]["clusterIP"]))
            .filter_map(|v| v.as_str()?.parse::<Ipv4Addr>().ok())
        {
            used.insert(u32::from(ip));
        }
    }
    let requested = svc["spec"]["clusterIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let ip = match requested {
        Some(r) => {
            let Ok(ip) = r.parse::<Ipv4Addr>() else {
                return Ok(None); // validation's business
            };
            // The `kubernetes` Service may take its reserved address.
            let reserved_for_kubernetes = u32::from(ip) == BASE + 1
                && svc["metadata"]["name"] == "kubernetes"
                && svc["metadata"]["namespace"] == "default";
            let taken = if reserved_for_kubernetes {
                false
            } else {
                used.contains(&u32::from(ip))
            };
            if !in_range(ip) && !reserved_for_kubernetes {
                return Err(refuse(
                    svc,
                    &r,
                    format!(
                        "the provided IP ({r}) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                    ),
                ));
            }
            if taken {
                return Err(refuse(svc, &r, "provided IP is already allocated".into()));
            }
            ip
        }
        None => {
            if used.len() as u32 >= SIZE {
                return Err(ApiError::Internal(
                    "failed to allocate a serviceIP: range is full".into(),
                ));
            }
            // Random start, then the next free address (as upstream's
            // random allocation, without its static band).
            let start = u32::from_be_bytes(
                uuid::Uuid::new_v4().into_bytes()[..4]
                    .try_into()
                    .unwrap_or_default(),
            ) % SIZE;
            let n = (0..SIZE)
                .map(|i| BASE + (start + i) % SIZE)
                .find(|n| !used.contains(n))
                .unwrap_or(BASE + 2);
            Ipv4Addr::from(n)
        }
    };
    let spec = &mut svc["spec"];
    spec["clusterIP"] = json!(ip.to_string());
    spec["clusterIPs"] = json!([ip.to_string()]);
    Ok(Some(guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unique_per_cluster_and_conflicts_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = nestkube_storage::Backend::default()
            .open(dir.path())
            .unwrap();
        let mut a =
            json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"type": "ClusterIP"}});
        let g = allocate(storage.as_ref(), "c1", &mut a).await.unwrap();
        assert!(g.is_some());
        drop(g);
        let ip: Ipv4Addr = a["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(in_range(ip) && u32::from(ip) > BASE + 1);
        storage
            .create("/c1/core/services/d/a", bytes::Bytes::from(a.to_string()))
            .await
            .unwrap();
        let mut b = json!({"metadata": {"name": "b", "namespace": "d"},
            "spec": {"type": "ClusterIP", "clusterIP": ip.to_string()}});
        let err = allocate(storage.as_ref(), "c1", &mut b).await.unwrap_err();
        assert!(format!("{err:?}").contains("provided IP is already allocated"));
        // Another cluster may use it.
        assert!(allocate(storage.as_ref(), "c2", &mut b).await.is_ok());
        let mut headless = json!({"spec": {"type": "ClusterIP", "clusterIP": "None"}});
        assert!(
            allocate(storage.as_ref(), "c1", &mut headless)
                .await
                .unwrap()
                .is_none()
        );
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "x"}});
        assert!(
            allocate(storage.as_ref(), "c1", &mut ext)
                .await
                .unwrap()
                .is_none()
        );
    }
}
