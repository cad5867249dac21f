//! The admission hook the generic store is given, as upstream passes an
//! `admission.Interface` (and `createValidation`/`updateValidation`) to its
//! generic registry: the store decides *when* admission runs (after
//! defaulting: mutate; after the strategy's validation: validate; before a
//! delete: validate), the hook decides *what* it checks.
//!
//! The hook sees storage only through [`ReadOnlyStore`]: admission reads
//! (a namespace, the LimitRanges and quotas of a namespace) but never writes.
//! This module must never name a concrete admission plugin.

use std::fmt;

use async_trait::async_trait;
use serde_json::Value;

use super::store::{ListOptions, ListPage, Store, Target};
use crate::error::ApiError;

/// The operation being admitted (upstream's `admission.Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// POST.
    Create,
    /// PUT, PATCH, and writes to subresources.
    Update,
    /// DELETE (the object is the one being deleted).
    Delete,
    /// A connection to a pod or Service (`pods/exec`, `attach`,
    /// `portforward`, `proxy`); the object is the request's options
    /// (`PodExecOptions`, ...).
    Connect,
}

impl Operation {
    /// Upstream's spelling: `CREATE`, `UPDATE`, `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

/// One write the store is about to admit.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionRequest<'a> {
    /// Cluster, resource and namespace written to.
    pub target: Target<'a>,
    /// The object's name, or on a create with `generateName` the prefix (as
    /// upstream, where admission runs before the name is generated).
    pub name: &'a str,
    /// The subresource (`status`, `scale`, ...), if any.
    pub subresource: Option<&'a str>,
    /// The operation.
    pub operation: Operation,
    /// `dryRun=All`: the hook must not cause side effects.
    pub dry_run: bool,
}

/// Admission as the store sees it.
pub trait AdmissionHook: Send + Sync + fmt::Debug {
    /// Starts admitting one write; the returned value carries the write's
    /// attributes (and the warnings it collects) through both phases.
    fn begin<'a>(&'a self, request: AdmissionRequest<'a>) -> Box<dyn AdmittedWrite + 'a>;
}

/// One write being admitted (see [`AdmissionHook::begin`]).
#[async_trait]
pub trait AdmittedWrite: Send + Sync {
    /// Mutating phase: may change `obj` (never `old`). Runs after defaulting.
    async fn mutate(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError>;

    /// Validating phase: accepts or refuses the final object. Runs after the
    /// strategy's validation, before the write.
    async fn validate(
        &self,
        obj: &Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError>;

    /// The `Warning` header texts collected so far.
    fn take_warnings(&self) -> Vec<String>;
}

/// The reads of the generic store, and nothing else: what admission and
/// other judges of a write may do with storage.
#[derive(Clone, Copy)]
pub struct ReadOnlyStore<'a>(&'a Store);

impl<'a> ReadOnlyStore<'a> {
    /// A read-only view of `store`.
    pub fn new(store: &'a Store) -> Self {
        Self(store)
    }

    /// GET one object.
    pub async fn get(&self, t: &Target<'_>, name: &str) -> Result<Value, ApiError> {
        self.0.get(t, name).await
    }

    /// LIST objects.
    pub async fn list(&self, t: &Target<'_>, opts: &ListOptions) -> Result<ListPage, ApiError> {
        self.0.list(t, opts).await
    }

    /// Converts objects of `t`'s resource to `api_version` (a CRD's
    /// conversion webhook; see [`Store::convert`]): for an admission
    /// webhook that matched another version of a custom resource.
    pub async fn convert(
        &self,
        t: &Target<'_>,
        objects: &mut [Value],
        api_version: &str,
    ) -> Result<(), crate::conversion_hook::ConversionError> {
        self.0.convert(t, objects, api_version).await
    }
}
