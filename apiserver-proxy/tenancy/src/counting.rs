//! What every cluster stores, counted against its limits and its
//! ancestors': the store's [`ObjectLimits`] hook, implemented by
//! [`Clusters`].
//!
//! Each cluster keeps a [`Tally`] per [`Counted`] quantity: what it stores
//! itself (`own`), what it and every cluster nested in it store
//! (`subtree`), and what is reserved but not stored yet. A create in
//! `a:b:c` reserves one in `a:b:c`, `a:b` and `a` (each against its own
//! limit) under their `reserving` locks, taken outermost first, and commits
//! once the object is written; a removal from storage gives one back to the
//! same chain. Each write costs a few atomics per level, never a list.
//!
//! The tallies are taken from storage when a cluster is loaded or added
//! (one count per cluster and quantity) and taken away from its ancestors
//! when it is removed. What bypasses the store (a whole cluster's keys
//! removed at once, another replica's writes) is corrected by a recount
//! from storage of the full cluster and those nested in it, at most once a
//! second per cluster, before a create is refused, when no write of that
//! subtree is in flight (one would be counted twice or missed). The root
//! cluster is never counted.
//!
//! This module must never refuse a create of a cluster whose chain sets no
//! limit, nor count a key of another cluster.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::limits::{self, Counted, Tally};
use super::{Cluster, Clusters};
use crate::error::ApiError;
use crate::registry::object_limits::{NewObject, ObjectLimits, Reservation};
use nestkube_api::request::ROOT_CLUSTER;

/// Least time between two recounts of one cluster from storage.
const RECOUNT_EVERY: Duration = Duration::from_secs(1);

/// `path` and every cluster it is nested in, innermost first
/// (`a:b:c`, `a:b`, `a`); never the root cluster.
pub fn lineage(path: &str) -> impl Iterator<Item = &str> {
    let first = (path != ROOT_CLUSTER && !path.is_empty()).then_some(path);
    std::iter::successors(first, |&p| p.rsplit_once(':').map(|(parent, _)| parent))
}

/// A reservation along a chain of clusters.
struct Slot {
    /// Innermost first; the first is the cluster the object is stored in.
    chain: Vec<Arc<Cluster>>,
    counted: &'static [Counted],
    committed: bool,
}

impl Reservation for Slot {
    fn commit(mut self: Box<Self>) {
        for what in self.counted {
            for (i, c) in self.chain.iter().enumerate() {
                let t = c.limits.tally(*what);
                if i == 0 {
                    t.own.fetch_add(1, Ordering::AcqRel);
                }
                t.subtree.fetch_add(1, Ordering::AcqRel);
                t.pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
        for c in &self.chain {
            c.limits.writes.fetch_add(1, Ordering::AcqRel);
        }
        self.committed = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for what in self.counted {
            for c in &self.chain {
                c.limits.tally(*what).pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// The limit a create would exceed.
struct Full {
    cluster: String,
    what: Counted,
    used: u64,
    max: u64,
}

impl Full {
    /// The 403, worded as ResourceQuota's `exceeded quota` (naming the
    /// cluster when the limit is an enclosing cluster's).
    fn error(&self, subject: &str, cluster: &str) -> ApiError {
        let of = if self.cluster == cluster {
            String::new()
        } else {
            format!(" of cluster {:?}", self.cluster)
        };
        let unit = self.what.unit();
        ApiError::Forbidden(format!(
            "{subject} is forbidden: exceeded virtual cluster limit: {}{of}, requested: {unit}=1, used: {unit}={}, limited: {unit}={}",
            self.what.field(),
            self.used,
            self.max
        ))
    }
}

impl Clusters {
    /// The served clusters of `path`'s lineage, innermost first.
    fn chain(&self, path: &str) -> Vec<Arc<Cluster>> {
        lineage(path).filter_map(|p| self.get(p)).collect()
    }

    /// Reserves one of each `counted` along `chain` unless a limit would be
    /// exceeded (`exempt`: never refused).
    fn try_reserve(
        chain: Vec<Arc<Cluster>>,
        counted: &'static [Counted],
        exempt: bool,
    ) -> Result<Slot, Full> {
        // Outermost first, as every other create takes them.
        let _held: Vec<MutexGuard<'_, ()>> = chain
            .iter()
            .rev()
            .map(|c| c.limits.reserving.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        if !exempt {
            for what in counted {
                for c in &chain {
                    let used = c.limits.tally(*what).used();
                    if let Some(max) = c.limits.get().max(*what)
                        && used >= max
                    {
                        return Err(Full {
                            cluster: c.path.clone(),
                            what: *what,
                            used,
                            max,
                        });
                    }
                }
            }
        }
        for what in counted {
            for c in &chain {
                c.limits.tally(*what).pending.fetch_add(1, Ordering::AcqRel);
            }
        }
        drop(_held);
        Ok(Slot {
            chain,
            counted,
            committed: false,
        })
    }

    /// Adds `delta` of `what` stored in `cluster` itself to its tallies
    /// and its ancestors'.
    fn add_own(&self, cluster: &Cluster, what: Counted, delta: i64) {
        if delta == 0 {
            return;
        }
        let t = cluster.limits.tally(what);
        t.own.fetch_add(delta, Ordering::AcqRel);
        t.subtree.fetch_add(delta, Ordering::AcqRel);
        for c in lineage(&cluster.path).skip(1).filter_map(|p| self.get(p)) {
            c.limits
                .tally(what)
                .subtree
                .fetch_add(delta, Ordering::AcqRel);
        }
    }

    /// Counts, in storage, what `cluster` (just made served) stores, and
    /// adds it to its tallies and its ancestors'.
    pub(super) async fn attach(&self, cluster: &Cluster) -> Result<(), ApiError> {
        if cluster.path == ROOT_CLUSTER {
            return Ok(());
        }
        for what in Counted::ALL {
            let n = limits::count(&self.storage, what, &cluster.path).await? as i64;
            let known = cluster.limits.tally(what).own.load(Ordering::Acquire);
            self.add_own(cluster, what, n - known);
        }
        Ok(())
    }

    /// Takes what `cluster` (no longer served) stores itself away from its
    /// ancestors' tallies.
    pub(super) fn detach(&self, cluster: &Cluster) {
        for what in Counted::ALL {
            let own = cluster.limits.tally(what).own.load(Ordering::Acquire);
            for c in lineage(&cluster.path).skip(1).filter_map(|p| self.get(p)) {
                c.limits
                    .tally(what)
                    .subtree
                    .fetch_sub(own, Ordering::AcqRel);
            }
        }
    }

    /// Recounts, from storage, what `path` and every served cluster nested
    /// in it store, unless that was done less than [`RECOUNT_EVERY`] ago;
    /// whether it recounted.
    async fn recount(&self, path: &str) -> Result<bool, ApiError> {
        let Some(cluster) = self.get(path) else {
            return Ok(false);
        };
        {
            let mut last = cluster
                .limits
                .recounted
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < RECOUNT_EVERY) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        // A write in flight (reserved, or stored and not yet counted) would
        // be counted twice or not at all: correct only what was quiet
        // throughout. Every write in the subtree passes `cluster`'s tallies.
        let quiet = |c: &Cluster| {
            Counted::ALL
                .iter()
                .all(|w| c.limits.tally(*w).pending.load(Ordering::Acquire) == 0)
        };
        let writes = cluster.limits.writes.load(Ordering::Acquire);
        if !quiet(&cluster) {
            return Ok(false);
        }
        let nested = format!("{path}:");
        let mut clusters = vec![cluster.clone()];
        clusters.extend(
            self.paths()
                .iter()
                .filter(|p| p.starts_with(&nested))
                .filter_map(|p| self.get(p)),
        );
        let mut counts = Vec::with_capacity(clusters.len());
        for c in &clusters {
            let mut counted = Vec::with_capacity(Counted::ALL.len());
            for what in Counted::ALL {
                counted.push((what, limits::count(&self.storage, what, &c.path).await?));
            }
            counts.push(counted);
        }
        if cluster.limits.writes.load(Ordering::Acquire) != writes || !quiet(&cluster) {
            return Ok(false);
        }
        for (c, counted) in clusters.iter().zip(counts) {
            for (what, n) in counted {
                let known = c.limits.tally(what).own.load(Ordering::Acquire);
                self.add_own(c, what, n as i64 - known);
            }
        }
        Ok(true)
    }

    /// Every counted quantity of `path`: `(what, own, used)`; for tests and
    /// diagnostics.
    pub fn tallies(&self, path: &str) -> Vec<(Counted, u64, u64)> {
        let Some(c) = self.get(path) else {
            return Vec::new();
        };
        Counted::ALL
            .into_iter()
            .map(|w| {
                let t: &Tally = c.limits.tally(w);
                (w, t.own(), t.used())
            })
            .collect()
    }
}

#[async_trait]
impl ObjectLimits for Clusters {
    async fn reserve(
        &self,
        object: &NewObject<'_>,
    ) -> Result<Option<Box<dyn Reservation>>, ApiError> {
        let counted = Counted::of(object.group, object.resource);
        let mut recounted = false;
        loop {
            let chain = self.chain(object.cluster);
            if chain.first().is_none_or(|c| c.path != object.cluster) {
                // Not served (the root cluster, or one being removed).
                return Ok(None);
            }
            let full = match Self::try_reserve(chain, counted, object.exempt) {
                Ok(slot) => return Ok(Some(Box::new(slot))),
                Err(full) => full,
            };
            // Judged again on fresh counts, once.
            if recounted || !self.recount(&full.cluster).await? {
                return Err(full.error(object.subject, object.cluster));
            }
            recounted = true;
        }
    }

    fn removed(&self, cluster: &str, group: &str, resource: &str) {
        let chain = self.chain(cluster);
        let own = chain.first().is_some_and(|c| c.path == cluster);
        for what in Counted::of(group, resource) {
            for (i, c) in chain.iter().enumerate() {
                let t = c.limits.tally(*what);
                if i == 0 && own {
                    t.own.fetch_sub(1, Ordering::AcqRel);
                }
                t.subtree.fetch_sub(1, Ordering::AcqRel);
            }
        }
        for c in &chain {
            c.limits.writes.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_is_innermost_first_without_root() {
        assert_eq!(lineage("a:b:c").collect::<Vec<_>>(), ["a:b:c", "a:b", "a"]);
        assert_eq!(lineage("a").collect::<Vec<_>>(), ["a"]);
        assert_eq!(lineage(ROOT_CLUSTER).count(), 0);
    }

    #[test]
    fn virtual_clusters_are_counted_under_the_catalogs_key() {
        let catalog = crate::registry::catalog::Catalog::builtin().unwrap();
        let vc = catalog
            .get(nestkube_tenant_crds::GROUP, "v1alpha1", "virtualclusters")
            .unwrap();
        assert_eq!(
            Counted::VirtualClusters.prefix("a"),
            format!("/a/{}/", vc.storage_segment)
        );
        assert_eq!(
            Counted::of(&vc.group, &vc.resource),
            [Counted::Objects, Counted::VirtualClusters]
        );
    }
}
