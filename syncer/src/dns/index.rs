//! Which virtual cluster a DNS query comes from: an in-memory index of the
//! IP addresses of synced pods, by the virtual pod whose copy has them.
//!
//! Filled by the syncer's pod reconcile ([`PodIndex::observe`]) from the
//! **copy's** status as its parent reports it (never from the virtual
//! pod's own status, which the tenant may write), and emptied when the
//! virtual pod or its copy goes. A pod copied through several levels
//! (`a:b` → `a` → host) is indexed once per level; the deepest cluster owns
//! the address, since the workload is its pod.
//!
//! The tenancy rule lives in [`PodIndex::owner`]: an address claimed by two
//! clusters of which neither is the other's ancestor (an address reused
//! while an old pod is still indexed, or a status forged in a parent) has
//! no owner until the claims are resolved: better no answer than another
//! tenant's. This module never reads any store.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::RwLock;

use serde_json::Value;

use crate::names;

/// A virtual pod: its cluster, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// The virtual cluster's path (`team-a`, `team-a:dev`).
    pub cluster: String,
    /// The pod's namespace in that cluster.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
}

/// Who an address belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// No indexed pod has it.
    Unknown,
    /// This pod.
    Pod(PodRef),
    /// Pods of unrelated clusters claim it: answer no one.
    Ambiguous,
}

#[derive(Debug, Default)]
struct Inner {
    by_ip: HashMap<IpAddr, Vec<PodRef>>,
    by_pod: HashMap<PodRef, Vec<IpAddr>>,
}

/// Pod IP → virtual pod, for every synced pod with an address (one entry
/// per address and level: bytes per pod, no task).
#[derive(Debug, Default)]
pub struct PodIndex {
    inner: RwLock<Inner>,
}

impl PodIndex {
    /// What the parent reports about `hpod`, the copy of virtual pod
    /// `vpod` of `cluster`: the pod and its addresses while it has not
    /// finished, none after. A virtual pod that is itself the copy of a pod
    /// of a cluster below `cluster` gets none: it is left to that cluster's
    /// own reconcile.
    pub fn addresses(cluster: &str, vpod: &Value, hpod: &Value) -> (PodRef, Vec<IpAddr>) {
        let meta = &vpod["metadata"];
        let pod = PodRef {
            cluster: cluster.to_string(),
            namespace: meta["namespace"].as_str().unwrap_or("").to_string(),
            name: meta["name"].as_str().unwrap_or("").to_string(),
        };
        let copied_from_below = meta["labels"][names::MANAGED_BY_LABEL] == names::MANAGED_BY_VALUE
            && meta["annotations"][names::CLUSTER_ANNOTATION]
                .as_str()
                .is_some_and(|c| c.starts_with(&format!("{cluster}:")));
        let status = &hpod["status"];
        let finished = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
        let ips = if copied_from_below || finished {
            Vec::new()
        } else {
            pod_ips(status)
        };
        (pod, ips)
    }

    /// Records [`PodIndex::addresses`].
    pub fn observe(&self, cluster: &str, vpod: &Value, hpod: &Value) {
        let (pod, ips) = Self::addresses(cluster, vpod, hpod);
        self.set(pod, ips);
    }

    /// Forgets pod `namespace/name` of `cluster` (deleted, or its copy gone).
    pub fn forget(&self, cluster: &str, namespace: &str, name: &str) {
        self.set(
            PodRef {
                cluster: cluster.into(),
                namespace: namespace.into(),
                name: name.into(),
            },
            Vec::new(),
        );
    }

    /// Makes `ips` the addresses of `pod` (none: forget it); whether that
    /// changed anything.
    pub fn set(&self, pod: PodRef, ips: Vec<IpAddr>) -> bool {
        let new = ips.clone();
        self.swap(pod, ips) != new
    }

    /// Makes `ips` the addresses of `pod` (none: forget it); returns those
    /// it had (none when unknown).
    pub fn swap(&self, pod: PodRef, ips: Vec<IpAddr>) -> Vec<IpAddr> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner
            .by_pod
            .get(&pod)
            .map_or(ips.is_empty(), |have| *have == ips)
        {
            return ips;
        }
        let old = inner.by_pod.remove(&pod).unwrap_or_default();
        for ip in &old {
            inner.unclaim(*ip, &pod);
        }
        if !ips.is_empty() {
            for ip in &ips {
                let owners = inner.by_ip.entry(*ip).or_default();
                if !owners.contains(&pod) {
                    owners.push(pod.clone());
                }
            }
            inner.by_pod.insert(pod, ips);
        }
        old
    }

    /// Makes `all` the whole index (a relist of the shared index).
    pub fn replace_all(&self, all: HashMap<PodRef, Vec<IpAddr>>) {
        let stale: Vec<PodRef> = {
            let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
            inner
                .by_pod
                .keys()
                .filter(|p| !all.contains_key(*p))
                .cloned()
                .collect()
        };
        for pod in stale {
            self.set(pod, Vec::new());
        }
        for (pod, ips) in all {
            self.set(pod, ips);
        }
    }

    /// Keeps only the pods of clusters `keep` accepts (served clusters that
    /// went away leave nothing behind); returns the clusters dropped.
    pub fn retain_clusters(&self, keep: impl Fn(&str) -> bool) -> HashSet<String> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<PodRef> = inner
            .by_pod
            .keys()
            .filter(|p| !keep(&p.cluster))
            .cloned()
            .collect();
        let clusters = gone.iter().map(|p| p.cluster.clone()).collect();
        for pod in gone {
            for ip in inner.by_pod.remove(&pod).unwrap_or_default() {
                inner.unclaim(ip, &pod);
            }
        }
        clusters
    }

    /// The pod `ip` belongs to: the deepest claiming cluster when every
    /// other claim comes from its ancestors (the same pod, one level up),
    /// else [`Owner::Ambiguous`].
    pub fn owner(&self, ip: IpAddr) -> Owner {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let Some(claims) = inner.by_ip.get(&ip).filter(|c| !c.is_empty()) else {
            return Owner::Unknown;
        };
        let deepest = claims
            .iter()
            .max_by_key(|p| p.cluster.matches(':').count())
            .expect("not empty");
        let related = claims.iter().all(|p| {
            p.cluster == deepest.cluster
                && p.namespace == deepest.namespace
                && p.name == deepest.name
                || deepest.cluster.starts_with(&format!("{}:", p.cluster))
        });
        if related {
            Owner::Pod(deepest.clone())
        } else {
            Owner::Ambiguous
        }
    }

    /// Whether pod `ip` belongs to a pod of namespace `namespace` of
    /// `cluster` (`<ip>.<ns>.pod.cluster.local`, as CoreDNS's `pods verified`).
    pub fn has_pod_in(&self, ip: IpAddr, cluster: &str, namespace: &str) -> bool {
        matches!(self.owner(ip), Owner::Pod(p) if p.cluster == cluster && p.namespace == namespace)
    }

    /// Number of indexed addresses.
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_ip.len()
    }

    /// Whether no address is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn unclaim(&mut self, ip: IpAddr, pod: &PodRef) {
        if let Some(owners) = self.by_ip.get_mut(&ip) {
            owners.retain(|p| p != pod);
            if owners.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
    }
}

/// `status.podIPs` (or `podIP`) as addresses.
fn pod_ips(status: &Value) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = status["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str()?.parse().ok())
        .collect();
    if let Some(ip) = status["podIP"].as_str().and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(cluster: &str, name: &str) -> PodRef {
        PodRef {
            cluster: cluster.into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn owners_and_tenancy() {
        let index = PodIndex::default();
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(index.owner(ip), Owner::Unknown);
        index.set(pod("a", "web"), vec![ip]);
        assert_eq!(index.owner(ip), Owner::Pod(pod("a", "web")));
        // The same pod one level down: the deepest cluster owns it.
        index.set(pod("a:b", "web"), vec![ip]);
        assert_eq!(index.owner(ip), Owner::Pod(pod("a:b", "web")));
        // An unrelated tenant claiming it: no one.
        index.set(pod("c", "x"), vec![ip]);
        assert_eq!(index.owner(ip), Owner::Ambiguous);
        index.forget("c", "default", "x");
        assert_eq!(index.owner(ip), Owner::Pod(pod("a:b", "web")));
        index.retain_clusters(|c| c == "a");
        assert_eq!(index.owner(ip), Owner::Pod(pod("a", "web")));
        // A new address replaces the old one.
        let other: IpAddr = "10.0.0.6".parse().unwrap();
        index.set(pod("a", "web"), vec![other]);
        assert_eq!(index.owner(ip), Owner::Unknown);
        assert!(index.has_pod_in(other, "a", "default"));
        assert!(!index.has_pod_in(other, "a", "kube-system"));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn observes_the_copy_status() {
        let index = PodIndex::default();
        let vpod = json!({"metadata": {"name": "web", "namespace": "default"},
            "status": {"podIP": "10.9.9.9"}});
        let hpod = json!({"status": {"phase": "Running", "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}]}});
        index.observe("a", &vpod, &hpod);
        assert_eq!(index.len(), 2);
        assert_eq!(index.owner("10.9.9.9".parse().unwrap()), Owner::Unknown);
        // A copy of a child's pod is left to the child.
        let copy = json!({"metadata": {"name": "web-x-default-x-b", "namespace": "default",
            "labels": {names::MANAGED_BY_LABEL: names::MANAGED_BY_VALUE},
            "annotations": {names::CLUSTER_ANNOTATION: "a:b"}}});
        index.observe("a", &copy, &json!({"status": {"podIP": "10.0.0.8"}}));
        assert_eq!(index.owner("10.0.0.8".parse().unwrap()), Owner::Unknown);
        // A finished pod's address is released.
        let done = json!({"status": {"phase": "Succeeded", "podIP": "10.0.0.7"}});
        index.observe("a", &vpod, &done);
        assert!(index.is_empty());
    }
}
