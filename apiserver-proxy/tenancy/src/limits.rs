//! A cluster's API limits (a VirtualCluster's `spec.limits`) and their
//! enforcement: requests in flight, requests per second and stored objects.
//!
//! Each [`Cluster`](super::Cluster) owns one [`ClusterLimits`]; the
//! VirtualCluster controller sets it ([`ClusterLimits::set`]) on every
//! reconcile (and a restart takes it from the cluster's record), so a
//! changed spec takes effect at once. Nothing here owns a task or a timer:
//! the token bucket refills lazily when a request arrives, the in-flight
//! count is an atomic released when the request's [`Permit`] drops, and
//! stored objects are counted by [`Tally`]s the store's object-limits hook
//! keeps current ([`super::counting`]). A cluster without limits pays one
//! read of its (unlocked in practice) limits per request.
//!
//! Rules, as upstream where upstream has one:
//! - `maxConcurrentRequests`: requests in flight, long-running ones (watches)
//!   excluded, like kube-apiserver's `--max-requests-inflight`; beyond it,
//!   429 `TooManyRequests` with `Retry-After: 1`.
//! - `requestsPerSecond`: a token bucket of `2 × rps` tokens refilled at
//!   `rps` per second (client-go's default client allows bursts of twice its
//!   QPS as well); every request, watches included, takes a token; beyond it,
//!   429 with `Retry-After` the seconds until a token is back (at least 1).
//! - `maxObjects`: every stored object of the cluster and of every cluster
//!   nested in it counts, whoever writes it (API clients and the cluster's
//!   own controllers alike), including what the system creates (default
//!   namespaces, service accounts, the root CA ConfigMap): a create that
//!   would store more is refused with 403, worded like ResourceQuota's
//!   `exceeded quota`. Only the bootstrap of default namespaces is never
//!   refused (it is counted).
//! - `maxVirtualClusters`: VirtualClusters stored in the cluster and in
//!   every cluster nested in it, refused likewise beyond it.
//! - `maxCustomResourceDefinitions`: CustomResourceDefinitions stored in the
//!   cluster and every cluster nested in it, refused likewise (each distinct
//!   CRD costs the process a compiled schema). Custom resources count as
//!   objects.
//!
//! This module must never reject a request of a cluster without limits,
//! and never count another cluster's keys.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use nestkube_storage::{ListOptions, Storage};
use nestkube_tenant_crds::{GROUP, LimitsSpec};

use crate::error::ApiError;

/// Message of a request refused for load (upstream's wording).
pub const TOO_MANY_REQUESTS: &str = "Too many requests, please try again later.";

/// A cluster's limits; `None` = unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most objects stored.
    pub max_objects: Option<u64>,
    /// Sustained requests per second.
    pub requests_per_second: Option<u32>,
    /// Most requests in flight (watches excluded).
    pub max_concurrent_requests: Option<u32>,
    /// Most VirtualClusters stored in the cluster and those nested in it.
    pub max_virtual_clusters: Option<u64>,
    /// Most CustomResourceDefinitions stored in the cluster and those nested in it.
    pub max_custom_resource_definitions: Option<u64>,
}

impl From<&LimitsSpec> for Limits {
    fn from(spec: &LimitsSpec) -> Self {
        Self {
            max_objects: spec.max_objects,
            requests_per_second: spec.requests_per_second,
            max_concurrent_requests: spec.max_concurrent_requests,
            max_virtual_clusters: Some(u64::from(spec.effective_max_virtual_clusters())),
            max_custom_resource_definitions: spec.max_custom_resource_definitions.map(u64::from),
        }
    }
}

impl Limits {
    /// The most of `what` the cluster may hold.
    pub fn max(&self, what: Counted) -> Option<u64> {
        match what {
            Counted::Objects => self.max_objects,
            Counted::VirtualClusters => self.max_virtual_clusters,
            Counted::CustomResourceDefinitions => self.max_custom_resource_definitions,
        }
    }

    /// Whether requests need any accounting.
    fn limits_requests(&self) -> bool {
        self.requests_per_second.is_some() || self.max_concurrent_requests.is_some()
    }
}

/// A request refused for load: answer 429 with this `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds the client should wait.
    pub retry_after_seconds: u64,
}

/// Held while a request is in flight; releases its slot on drop.
#[derive(Debug)]
pub struct Permit {
    inflight: Option<Arc<AtomicU32>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(n) = &self.inflight {
            n.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What a cluster's stored objects are counted as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Every object (`maxObjects`).
    Objects,
    /// VirtualClusters (`maxVirtualClusters`).
    VirtualClusters,
    /// CustomResourceDefinitions (`maxCustomResourceDefinitions`).
    CustomResourceDefinitions,
}

/// The segment of CRDs in storage keys (the catalog's storage segment).
const CRD_SEGMENT: &str = "apiextensions.k8s.io/customresourcedefinitions";

impl Counted {
    /// Every counted quantity.
    pub const ALL: [Counted; 3] = [
        Self::Objects,
        Self::VirtualClusters,
        Self::CustomResourceDefinitions,
    ];

    /// The limit's field name in `spec.limits`.
    pub fn field(self) -> &'static str {
        match self {
            Self::Objects => "maxObjects",
            Self::VirtualClusters => "maxVirtualClusters",
            Self::CustomResourceDefinitions => "maxCustomResourceDefinitions",
        }
    }

    /// The resource name in refusal messages (`objects=1`).
    pub fn unit(self) -> &'static str {
        match self {
            Self::Objects => "objects",
            Self::VirtualClusters => "virtualclusters",
            Self::CustomResourceDefinitions => "customresourcedefinitions.apiextensions.k8s.io",
        }
    }

    /// What a stored object of `group`/`resource` counts as.
    pub fn of(group: &str, resource: &str) -> &'static [Counted] {
        match (group, resource) {
            (GROUP, "virtualclusters") => &[Self::Objects, Self::VirtualClusters],
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                &[Self::Objects, Self::CustomResourceDefinitions]
            }
            _ => &[Self::Objects],
        }
    }

    /// The storage prefix of what this counts in cluster `path`.
    pub fn prefix(self, path: &str) -> String {
        match self {
            Self::Objects => crate::registry::keys::cluster_prefix(path),
            // The catalog's storage segment of virtualclusters (a unit test
            // keeps them equal).
            Self::VirtualClusters => crate::registry::keys::collection_prefix(
                path,
                &format!("{GROUP}/virtualclusters"),
                None,
            ),
            Self::CustomResourceDefinitions => {
                crate::registry::keys::collection_prefix(path, CRD_SEGMENT, None)
            }
        }
    }
}

/// One counted quantity of one cluster. Signed, so that a late correction
/// never wraps; read as at least 0.
#[derive(Debug, Default)]
pub struct Tally {
    /// Stored in the cluster itself.
    pub(super) own: AtomicI64,
    /// Stored in the cluster and every cluster nested in it.
    pub(super) subtree: AtomicI64,
    /// Reserved in the cluster's subtree, not stored yet.
    pub(super) pending: AtomicI64,
}

impl Tally {
    /// Stored in the cluster and the clusters nested in it, reservations
    /// included.
    pub fn used(&self) -> u64 {
        (self.subtree.load(Ordering::Acquire) + self.pending.load(Ordering::Acquire)).max(0) as u64
    }

    /// Stored in the cluster itself.
    pub fn own(&self) -> u64 {
        self.own.load(Ordering::Acquire).max(0) as u64
    }
}

#[derive(Debug, Default)]
struct Bucket {
    tokens: f64,
    /// `None` until the first request (the bucket starts full).
    last: Option<Instant>,
}

impl Bucket {
    /// Takes a token at `rps`, or says how long until one is back.
    fn take(&mut self, rps: u32, now: Instant) -> Result<(), Throttled> {
        let rate = f64::from(rps.max(1));
        let burst = 2.0 * rate;
        self.tokens = match self.last {
            None => burst,
            Some(last) => (self.tokens + now.duration_since(last).as_secs_f64() * rate).min(burst),
        };
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - self.tokens) / rate).ceil() as u64;
            Err(Throttled {
                retry_after_seconds: wait.max(1),
            })
        }
    }
}

/// One cluster's limits and their counters.
#[derive(Debug, Default)]
pub struct ClusterLimits {
    limits: RwLock<Limits>,
    inflight: Arc<AtomicU32>,
    bucket: Mutex<Bucket>,
    objects: Tally,
    virtual_clusters: Tally,
    custom_resource_definitions: Tally,
    /// Held while a create checks and reserves along its cluster's chain
    /// (taken outermost cluster first), so concurrent creates never
    /// overshoot.
    pub(super) reserving: Mutex<()>,
    /// When the tallies were last recounted from storage.
    pub(super) recounted: Mutex<Option<Instant>>,
    /// Writes (stored or removed objects) counted in this cluster's subtree
    /// so far: a recount applies only if none happened meanwhile.
    pub(super) writes: std::sync::atomic::AtomicU64,
}

impl ClusterLimits {
    /// The current limits.
    pub fn get(&self) -> Limits {
        self.limits.read().map(|l| *l).unwrap_or_default()
    }

    /// Requests counted in flight now (only while `maxConcurrentRequests`
    /// is set).
    pub fn in_flight(&self) -> u32 {
        self.inflight.load(Ordering::Acquire)
    }

    /// Replaces the limits (takes effect for the next request). A changed
    /// rate starts with a full bucket.
    pub fn set(&self, limits: Limits) {
        let Ok(mut current) = self.limits.write() else {
            return;
        };
        if current.requests_per_second != limits.requests_per_second
            && let Ok(mut bucket) = self.bucket.lock()
        {
            *bucket = Bucket::default();
        }
        *current = limits;
    }

    /// Admits a request or refuses it for load. `long_running` requests
    /// (watches) take a rate token but no in-flight slot.
    pub fn admit(&self, long_running: bool) -> Result<Option<Permit>, Throttled> {
        let limits = self.get();
        if !limits.limits_requests() {
            return Ok(None);
        }
        let mut permit = Permit { inflight: None };
        if let Some(max) = limits.max_concurrent_requests
            && !long_running
        {
            self.inflight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .map_err(|_| Throttled {
                    retry_after_seconds: 1,
                })?;
            permit.inflight = Some(self.inflight.clone());
        }
        if let Some(rps) = limits.requests_per_second {
            let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.take(rps, Instant::now())?;
        }
        Ok(Some(permit))
    }

    /// The tally of `what`.
    pub fn tally(&self, what: Counted) -> &Tally {
        match what {
            Counted::Objects => &self.objects,
            Counted::VirtualClusters => &self.virtual_clusters,
            Counted::CustomResourceDefinitions => &self.custom_resource_definitions,
        }
    }
}

/// Objects stored in cluster `path` itself (every key under `/<path>/`).
pub async fn count_objects(storage: &Arc<dyn Storage>, path: &str) -> Result<u64, ApiError> {
    count(storage, Counted::Objects, path).await
}

/// `what` stored in cluster `path` itself, counted in storage.
pub async fn count(storage: &Arc<dyn Storage>, what: Counted, path: &str) -> Result<u64, ApiError> {
    let page = storage
        .list(
            &what.prefix(path),
            ListOptions {
                start_after: None,
                limit: Some(1),
            },
        )
        .await?;
    Ok(page.items.len() as u64 + page.remaining)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_a_burst_of_twice_the_rate_then_refills() {
        let mut b = Bucket::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            b.take(2, t0).unwrap();
        }
        assert_eq!(
            b.take(2, t0),
            Err(Throttled {
                retry_after_seconds: 1
            })
        );
        b.take(2, t0 + Duration::from_millis(500)).unwrap();
        assert!(b.take(2, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn inflight_excludes_long_running_and_releases_on_drop() {
        let l = ClusterLimits::default();
        assert!(l.admit(false).unwrap().is_none(), "no limits, no permit");
        l.set(Limits {
            max_concurrent_requests: Some(1),
            ..Limits::default()
        });
        let held = l.admit(false).unwrap();
        assert!(l.admit(false).is_err());
        let _watch = l.admit(true).unwrap();
        drop(held);
        assert!(l.admit(false).is_ok());
        l.set(Limits::default());
        assert!(l.admit(false).unwrap().is_none());
    }
}
