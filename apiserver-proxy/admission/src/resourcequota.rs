//! ResourceQuota admission (upstream's `ResourceQuota` plugin, last in the
//! chain): a create that would take a namespace's usage of a quota'd
//! resource past a ResourceQuota's `spec.hard` is refused with 403
//! `exceeded quota: <quota>, requested: <r>=<n>, used: <r>=<n>, limited:
//! <r>=<n>`.
//!
//! Usage is counted from the namespace's objects at admission
//! ([`super::quota::usage`]), not from `status.used`
//! (which the ResourceQuota controller writes), so a burst of creates is
//! judged against what exists; two creates racing each other may both
//! pass. Only creates are judged (updates of quota'd amounts — resizes —
//! are not). This plugin never writes: not the object, not the quota.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::quota::{format, hard_names, in_scope, object_usage, served, usage};
use super::{Attributes, Operation, Plugin};
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::kinds::quantity;
use crate::registry::store::ListOptions;

/// The ResourceQuota plugin.
pub struct ResourceQuota {
    quotas: Option<Arc<ResourceInfo>>,
    /// What each cluster serves (its custom resources count too).
    catalog: Arc<Catalog>,
}

impl ResourceQuota {
    /// The plugin for `catalog`'s resources.
    pub fn new(catalog: &Arc<Catalog>) -> Self {
        Self {
            quotas: catalog.get("", "v1", "resourcequotas").cloned(),
            catalog: catalog.clone(),
        }
    }
}

/// `a=1,b=2` of `names` from `amounts`, sorted by name.
fn list(names: &[String], amounts: impl Fn(&str) -> quantity::Nanos) -> String {
    names
        .iter()
        .map(|n| format!("{n}={}", format(n, amounts(n))))
        .collect::<Vec<_>>()
        .join(",")
}

#[async_trait]
impl Plugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        _old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let (Some(quotas), Some(ns)) = (&self.quotas, attrs.namespace) else {
            return Ok(());
        };
        if attrs.operation != Operation::Create || attrs.subresource.is_some() || attrs.dry_run {
            return Ok(());
        }
        let t = attrs.target(quotas, Some(ns));
        let mut all = store.list(&t, &ListOptions::default()).await?.items;
        all.sort_by(|a, b| crate::registry::meta::name(a).cmp(crate::registry::meta::name(b)));
        for quota in all {
            if !in_scope(&quota, attrs.resource, obj) {
                continue;
            }
            let names = hard_names(&quota);
            let requested = object_usage(attrs.resource, obj, &names);
            if requested.is_empty() {
                continue;
            }
            let keys: Vec<String> = requested.keys().cloned().collect();
            let resources = served(&self.catalog, attrs.path);
            let used = usage(store, &resources, (attrs.path, ns), &quota, &keys).await?;
            let hard = |n: &str| {
                let v = &quota["spec"]["hard"][n];
                v.as_str()
                    .and_then(quantity::parse)
                    .or_else(|| v.as_i64().map(|i| i as quantity::Nanos * 1_000_000_000))
                    .unwrap_or(0)
            };
            let exceeded: Vec<String> = keys
                .iter()
                .filter(|n| used.get(*n).copied().unwrap_or(0) + requested[*n] > hard(n))
                .cloned()
                .collect();
            if !exceeded.is_empty() {
                return Err(attrs.forbidden(format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    crate::registry::meta::name(&quota),
                    list(&exceeded, |n| requested[n]),
                    list(&exceeded, |n| used.get(n).copied().unwrap_or(0)),
                    list(&exceeded, hard),
                )));
            }
        }
        Ok(())
    }
}
