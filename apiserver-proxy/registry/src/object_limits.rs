//! The hook through which the generic store counts what every cluster
//! stores: given to the store ([`super::store::Store::with_object_limits`]),
//! as upstream passes admission to its generic registry, so that every
//! create (an API request's or an in-process controller's alike) is counted
//! and may be refused, and every removal from storage is counted back.
//!
//! The store calls [`ObjectLimits::reserve`] before it stores a new object
//! and commits the [`Reservation`] once the object is written (dropping it
//! un-committed releases it: a failed or dry-run write stores nothing), and
//! [`ObjectLimits::removed`] after it removed an object from storage.
//!
//! This module only states the contract: what is counted against what, and
//! the limits themselves, belong to the implementation (tenancy's limits).
//! It must never know a cluster's limits.

use async_trait::async_trait;

use crate::error::ApiError;

/// An object about to be stored.
#[derive(Clone, Copy, Debug)]
pub struct NewObject<'a> {
    /// The cluster path it is stored in.
    pub cluster: &'a str,
    /// Its API group (`""` for core).
    pub group: &'a str,
    /// Its resource (plural).
    pub resource: &'a str,
    /// How upstream names it in messages (`configmaps "a"`; a generated
    /// name by its prefix).
    pub subject: &'a str,
    /// Count it but never refuse it (the bootstrap of a cluster's default
    /// namespaces).
    pub exempt: bool,
}

/// A counted slot held until the object is stored.
pub trait Reservation: Send {
    /// The object was stored: the slot becomes a stored object.
    fn commit(self: Box<Self>);
}

/// Counts (and bounds) what each cluster stores.
#[async_trait]
pub trait ObjectLimits: Send + Sync {
    /// Before `object` is stored: a slot to commit once it is, or a refusal
    /// (403 Forbidden). `None`: nothing counts it (e.g. an unserved cluster).
    async fn reserve(
        &self,
        object: &NewObject<'_>,
    ) -> Result<Option<Box<dyn Reservation>>, ApiError>;

    /// After an object of `group`/`resource` in `cluster` was removed from
    /// storage.
    fn removed(&self, cluster: &str, group: &str, resource: &str);
}
