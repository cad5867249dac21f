//! The ResourceQuota controller (upstream's `resourcequota` controller):
//! `status.hard` (a copy of `spec.hard`) and `status.used` of every quota,
//! counted from the namespace's objects — `pods`, `services`,
//! `configmaps`, `secrets`, `persistentvolumeclaims`,
//! `replicationcontrollers`, `resourcequotas`, `services.loadbalancers`,
//! `services.nodeports`, `count/<resource>[.<group>]`, the pods'
//! `requests.cpu`/`requests.memory` (also `cpu`/`memory`) and
//! `limits.cpu`/`limits.memory`, and claims' `requests.storage`.
//! The counting itself ([`crate::admission::quota`]) is shared with quota
//! admission ([`crate::admission::resourcequota`]).
//!
//! Cluster-aware: one watch over all clusters; changes of objects are only
//! looked at in namespaces that have a quota (tracked on the watch loop).
//! Scopes (`spec.scopes`, `spec.scopeSelector`) restrict a quota to the
//! pods in them. This controller only ever writes
//! ResourceQuota status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::runtime::{self, ControllerContext};
use super::runtime::{Change, ObjectKey};
use super::util;
use crate::admission::quota::{format, hard_names, served, usage};
use crate::error::ApiError;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::meta;
use crate::registry::store::{ListOptions, Store};

/// Work of the controller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    /// Recompute this quota (cluster, namespace, name).
    Quota(String, String, String),
    /// Something in this namespace changed: recompute its quotas.
    Namespace(String, String),
}

struct Controller {
    store: Store,
    /// What each cluster serves (its custom resources count too).
    catalog: Arc<Catalog>,
    quotas: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster `api` serves.
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        catalog: ctx.catalog.clone(),
        quotas: ctx.catalog.get("", "v1", "resourcequotas")?.clone(),
    });
    // (cluster, namespace) -> names of its quotas.
    let mut with_quotas: HashMap<(String, String), HashSet<String>> = HashMap::new();
    let interesting = move |change: &Change<'_>| {
        if matches!(change, Change::Listing) {
            with_quotas.clear();
            return None;
        }
        let k = change.key().and_then(ObjectKey::parse)?;
        let ns = (k.cluster.to_string(), k.namespace.to_string());
        if k.segment == "core/resourcequotas" {
            let names = with_quotas.entry(ns.clone()).or_default();
            if change.current().is_some() {
                names.insert(k.name.to_string());
            } else {
                names.remove(k.name);
                if names.is_empty() {
                    with_quotas.remove(&ns);
                }
            }
            return Some(Item::Quota(ns.0, ns.1, k.name.to_string()));
        }
        (!k.namespace.is_empty() && with_quotas.contains_key(&ns))
            .then_some(Item::Namespace(ns.0, ns.1))
    };
    Some(runtime::spawn_controller(
        &ctx.store,
        "resourcequota",
        controller,
        interesting,
    ))
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, item: Item) -> runtime::Outcome<ApiError> {
        self.sync_item(item).await.map(|()| None)
    }
}

impl Controller {
    async fn sync_item(&self, item: Item) -> Result<(), ApiError> {
        match item {
            Item::Quota(c, ns, name) => self.sync(&c, &ns, &name).await,
            Item::Namespace(c, ns) => {
                let t = util::target(&c, &self.quotas, &ns);
                for quota in self.store.list(&t, &ListOptions::default()).await?.items {
                    self.sync(&c, &ns, meta::name(&quota)).await?;
                }
                Ok(())
            }
        }
    }

    async fn sync(&self, cluster: &str, ns: &str, name: &str) -> Result<(), ApiError> {
        let t = util::target(cluster, &self.quotas, ns);
        let Some(quota) = util::get_opt(&self.store, &t, name).await? else {
            return Ok(());
        };
        if meta::is_deleting(&quota) {
            return Ok(());
        }
        let names = hard_names(&quota);
        let resources = served(&self.catalog, cluster);
        let used = usage(
            &self.store.read_only(),
            &resources,
            (cluster, ns),
            &quota,
            &names,
        )
        .await?;
        let used: serde_json::Map<String, Value> = used
            .iter()
            .map(|(k, v)| (k.clone(), json!(format(k, *v))))
            .collect();
        let mut status = json!({"hard": quota["spec"]["hard"], "used": used});
        if names.is_empty() {
            status = json!({});
        }
        util::write_status(&self.store, &t, &quota, &status).await
    }
}
