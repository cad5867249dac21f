//! Refusals: what a virtual object asks of the parent that its copy may not
//! carry (a field naming an object the translation cannot map, an exposure
//! the VirtualCluster does not allow), shaped like upstream's field errors,
//! and how the tenant learns of it: a Warning `SyncError` Event on the
//! virtual object ([`report`]).
//!
//! The translations (`super::pod_spec`, `super::pvc`, `super::service`,
//! ...) are pure and collect every refusal of an object; this module never
//! decides what is refused, and never writes the parent.

use std::fmt;

use serde_json::Value;

use crate::{Ctx, events};

/// One field the copy may not carry: its path in the virtual object and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Path of the field, e.g. `spec.volumes[0].csi.nodePublishSecretRef`.
    pub field: String,
    /// Why (upstream style: `Forbidden: ...`).
    pub detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: Forbidden: {}", self.field, self.detail)
    }
}

/// Every refusal of one object (not empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", join(.0))]
pub struct Refused(pub Vec<Refusal>);

fn join(list: &[Refusal]) -> String {
    let parts: Vec<String> = list.iter().map(ToString::to_string).collect();
    match parts.len() {
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => format!("[{}]", parts.join(", ")),
    }
}

/// Collects the refusals of one translation (as upstream's
/// `field.ErrorList`).
#[derive(Debug, Default)]
pub struct Refusals(Vec<Refusal>);

impl Refusals {
    /// Refuses `field` for `detail`.
    pub fn push(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Refusal {
            field: field.into(),
            detail: detail.into(),
        });
    }

    /// Refuses `field` when `value` is set.
    pub fn forbid<T>(&mut self, value: &Option<T>, field: impl FnOnce() -> String, detail: &str) {
        if value.is_some() {
            self.push(field(), detail);
        }
    }

    /// `value` if nothing was refused.
    pub fn finish<T>(self, value: T) -> Result<T, Refused> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Refused(self.0))
        }
    }
}

/// Tells the tenant that virtual object `obj` (of `kind` in `api_version`)
/// is not copied to the parent, and why: a Warning [`events::SYNC_ERROR`]
/// Event on it, counted up when repeated. A failure to write the Event is
/// only logged (the reconcile itself succeeded: nothing is to be retried).
pub(crate) async fn report(ctx: &Ctx, obj: &Value, kind: &str, api_version: &str, why: &Refused) {
    let message = format!("not copied to the parent cluster: {why}");
    tracing::info!(cluster = %ctx.cluster, kind, object = %format!("{}/{}", super::meta(obj, "namespace"), super::meta(obj, "name")),
        %message, "refused");
    if let Err(e) = events::record(
        &ctx.virt,
        obj,
        kind,
        api_version,
        events::SYNC_ERROR,
        &message,
    )
    .await
    {
        tracing::debug!(cluster = %ctx.cluster, error = %e, "could not record the SyncError event");
    }
}
