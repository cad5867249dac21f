//! The disruption controller (upstream's `disruption` controller): the
//! status of every PodDisruptionBudget — `currentHealthy` (ready pods the
//! selector matches, not being deleted, not just evicted), `desiredHealthy`
//! and `expectedPods` (from `minAvailable`, or, for `maxUnavailable` and
//! percentages, from the scale of the pods' controllers: Deployment through
//! its ReplicaSet, ReplicaSet, StatefulSet, ReplicationController, or any
//! controller with `spec.replicas`), `disruptionsAllowed`, the
//! `DisruptionAllowed` condition, and expiry of `disruptedPods` entries the
//! eviction subresource ([`crate::registry::eviction`]) records.
//!
//! Cluster-aware: one watch over all clusters; changes of pods and of
//! workloads (their scale) are only looked at in namespaces that have a
//! budget (tracked on the watch loop), so an idle cluster or a namespace
//! without budgets costs nothing. Reads go to the store.
//!
//! This controller only ever writes PodDisruptionBudget status; it never
//! touches pods.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::podutil;
use super::runtime::Outcome;
use super::runtime::{self, ControllerContext};
use super::runtime::{Change, ObjectKey};
use super::util::{self, fmt_time, parse_time};
use crate::error::ApiError;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::meta;
use crate::registry::store::{ListOptions, Store};

/// How long an evicted pod that is not yet being deleted counts as
/// disrupted (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT: chrono::Duration = chrono::Duration::minutes(2);

/// Work of the controller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    /// Reconcile this budget (cluster, namespace, name).
    Budget(String, String, String),
    /// A pod of this namespace changed: reconcile its budgets.
    Namespace(String, String),
}

struct Controller {
    store: Store,
    catalog: Arc<Catalog>,
    budgets: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster `api` serves (`None` when the
/// catalog lacks budgets or pods).
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let [budgets, pods] = util::resources(&ctx.catalog, ["policy/poddisruptionbudgets", "pods"])?;
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        catalog: ctx.catalog.clone(),
        budgets,
        pods,
    });
    // (cluster, namespace) -> names of its budgets.
    let mut with_budgets: HashMap<(String, String), HashSet<String>> = HashMap::new();
    let interesting = move |change: &Change<'_>| {
        if matches!(change, Change::Listing) {
            with_budgets.clear();
            return None;
        }
        let k = change.key().and_then(ObjectKey::parse)?;
        let ns = (k.cluster.to_string(), k.namespace.to_string());
        match k.segment {
            "policy/poddisruptionbudgets" => {
                let names = with_budgets.entry(ns.clone()).or_default();
                if change.current().is_some() {
                    names.insert(k.name.to_string());
                } else {
                    names.remove(k.name);
                    if names.is_empty() {
                        with_budgets.remove(&ns);
                    }
                }
                Some(Item::Budget(ns.0, ns.1, k.name.to_string()))
            }
            // Pods, and the scale of their controllers.
            "core/pods"
            | "apps/deployments"
            | "apps/replicasets"
            | "apps/statefulsets"
            | "core/replicationcontrollers"
                if with_budgets.contains_key(&ns) =>
            {
                Some(Item::Namespace(ns.0, ns.1))
            }
            _ => None,
        }
    };
    Some(runtime::spawn_controller(
        &ctx.store,
        "disruption",
        controller,
        interesting,
    ))
}

pub use crate::registry::eviction::selects;

/// A controller's identity and scale.
type Scale = (String, i64);

/// The budget's status, computed from the pods it selects and (for
/// `maxUnavailable` and percentages) the scale of their controllers
/// (`Err` is upstream's "fail safe": no disruption allowed).
pub fn status_for(
    budget: &Value,
    pods: &[Value],
    scales: Result<Vec<Scale>, String>,
    now: DateTime<Utc>,
) -> (Value, Option<Duration>) {
    let spec = &budget["spec"];
    let old = &budget["status"];
    // Disrupted pods stay so until deleted, or until the timeout passes.
    let mut disrupted = serde_json::Map::new();
    let mut requeue: Option<Duration> = None;
    for (name, at) in old["disruptedPods"].as_object().into_iter().flatten() {
        let Some(t) = parse_time(at) else { continue };
        let pending = pods
            .iter()
            .any(|p| meta::name(p) == name && !meta::is_deleting(p));
        let expires = t + DELETION_TIMEOUT;
        if pending && expires > now {
            disrupted.insert(name.clone(), at.clone());
            let wait = (expires - now).to_std().unwrap_or_default() + Duration::from_millis(10);
            requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| {
            !meta::is_deleting(p) && podutil::is_ready(p) && !disrupted.contains_key(meta::name(p))
        })
        .count() as i64;
    let expected_from_scale = || -> Result<i64, String> {
        let mut seen = HashSet::new();
        Ok(scales?
            .into_iter()
            .filter(|(uid, _)| seen.insert(uid.clone()))
            .map(|(_, n)| n)
            .sum())
    };
    let computed = if !spec["maxUnavailable"].is_null() {
        expected_from_scale().map(|expected| {
            let max = util::int_or_percent(&spec["maxUnavailable"], expected, true).unwrap_or(0);
            (expected, (expected - max).max(0))
        })
    } else {
        match &spec["minAvailable"] {
            Value::String(_) => expected_from_scale().map(|expected| {
                let min = util::int_or_percent(&spec["minAvailable"], expected, true).unwrap_or(0);
                (expected, min)
            }),
            v => Ok((pods.len() as i64, v.as_i64().unwrap_or(0))),
        }
    };
    let now_s = fmt_time(now);
    let generation = budget["metadata"]["generation"].as_i64().unwrap_or(0);
    let (expected, desired, allowed, condition) = match computed {
        Ok((expected, desired)) => {
            let allowed = (healthy - desired).max(0);
            let (status, reason) = if allowed > 0 {
                ("True", "SufficientPods")
            } else {
                ("False", "InsufficientPods")
            };
            (expected, desired, allowed, (status, reason, String::new()))
        }
        Err(message) => (0, 0, 0, ("False", "SyncFailed", message)),
    };
    let (cstatus, reason, message) = condition;
    let transition = old["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["type"] == "DisruptionAllowed" && c["status"] == cstatus && c["reason"] == reason
        })
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or_else(|| json!(now_s));
    let mut status = json!({
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [{"type": "DisruptionAllowed", "status": cstatus, "reason": reason,
            "message": message, "observedGeneration": generation,
            "lastTransitionTime": transition}],
    });
    if !disrupted.is_empty() {
        status["disruptedPods"] = Value::Object(disrupted);
    }
    (status, requeue)
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, item: Item) -> Result<Option<Duration>, ApiError> {
        match item {
            Item::Budget(c, ns, name) => self.sync(&c, &ns, &name).await,
            Item::Namespace(c, ns) => {
                let bt = util::target(&c, &self.budgets, &ns);
                let mut requeue: Option<Duration> = None;
                for b in self.store.list(&bt, &ListOptions::default()).await?.items {
                    if let Some(r) = self.sync(&c, &ns, meta::name(&b)).await? {
                        requeue = Some(requeue.map_or(r, |o| o.min(r)));
                    }
                }
                Ok(requeue)
            }
        }
    }
}

impl Controller {
    /// Recomputes budget `name` of namespace `ns` of `cluster`.
    async fn sync(&self, cluster: &str, ns: &str, name: &str) -> Outcome<ApiError> {
        let bt = util::target(cluster, &self.budgets, ns);
        let Some(budget) = util::get_opt(&self.store, &bt, name).await? else {
            return Ok(None);
        };
        if meta::is_deleting(&budget) {
            return Ok(None);
        }
        let pt = util::target(cluster, &self.pods, ns);
        let pods: Vec<Value> = self
            .store
            .list(&pt, &ListOptions::default())
            .await?
            .items
            .into_iter()
            .filter(|p| selects(&budget, &meta::labels(p)))
            .collect();
        let needs_scale = !budget["spec"]["maxUnavailable"].is_null()
            || budget["spec"]["minAvailable"].is_string();
        let scales = if needs_scale {
            self.scales(cluster, ns, &pods).await?
        } else {
            Ok(Vec::new())
        };
        let (status, requeue) = status_for(&budget, &pods, scales, Utc::now());
        util::write_status(&self.store, &bt, &budget, &status).await?;
        Ok(requeue)
    }

    /// The scale of each pod's controller (upstream's `getExpectedScale`):
    /// a Deployment's for its ReplicaSets' pods; `Err` (with upstream's
    /// message) for a pod without a controller or one without a scale.
    async fn scales(
        &self,
        cluster: &str,
        ns: &str,
        pods: &[Value],
    ) -> Result<Result<Vec<Scale>, String>, ApiError> {
        let mut out = Vec::new();
        let mut cache: HashMap<String, Option<Value>> = HashMap::new();
        for pod in pods {
            let Some(mut r) = podutil::controller_ref(pod) else {
                return Ok(Err(format!(
                    "found no controller ref for pod \"{}\"",
                    meta::name(pod)
                )));
            };
            let mut owner = self.owner(cluster, ns, &r, &mut cache).await?;
            if r.kind == "ReplicaSet"
                && r.group() == "apps"
                && let Some(d) = owner
                    .as_ref()
                    .and_then(podutil::controller_ref)
                    .filter(|d| d.kind == "Deployment" && d.group() == "apps")
            {
                owner = self.owner(cluster, ns, &d, &mut cache).await?;
                r = d;
            }
            match owner.filter(|o| meta::uid(o) == r.uid) {
                Some(o) if o["spec"]["replicas"].is_i64() || o["spec"]["replicas"].is_null() => {
                    out.push((r.uid.clone(), o["spec"]["replicas"].as_i64().unwrap_or(1)));
                }
                _ => {
                    return Ok(Err(format!(
                        "found no controllers for pod \"{}\"",
                        meta::name(pod)
                    )));
                }
            }
        }
        Ok(Ok(out))
    }

    async fn owner(
        &self,
        cluster: &str,
        ns: &str,
        r: &super::garbagecollector::OwnerRef,
        cache: &mut HashMap<String, Option<Value>>,
    ) -> Result<Option<Value>, ApiError> {
        if let Some(o) = cache.get(&r.uid) {
            return Ok(o.clone());
        }
        let found = match self.catalog.by_kind(r.group(), &r.kind) {
            Some(info) => {
                util::get_opt(&self.store, &util::target(cluster, info, ns), &r.name).await?
            }
            None => None,
        };
        cache.insert(r.uid.clone(), found.clone());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(spec: Value) -> Value {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"metadata": {"name": "b", "generation": 2}, "spec": spec, "status": {}})
    }

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": "web"}},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn min_available_counts_pods() {
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let (s, _) = status_for(
            &pdb(json!({"minAvailable": 1})),
            &pods,
            Ok(vec![]),
            Utc::now(),
        );
        assert_eq!(s["currentHealthy"], 2);
        assert_eq!(s["desiredHealthy"], 1);
        assert_eq!(s["expectedPods"], 3);
        assert_eq!(s["disruptionsAllowed"], 1);
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
        let (s, _) = status_for(
            &pdb(json!({"minAvailable": 2})),
            &pods,
            Ok(vec![]),
            Utc::now(),
        );
        assert_eq!(s["disruptionsAllowed"], 0);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
    }

    #[test]
    fn max_unavailable_and_percentages_use_the_controllers_scale() {
        let pods = [pod("a", true), pod("b", true), pod("c", true)];
        let scales = || Ok(vec![("rs".to_string(), 4), ("rs".to_string(), 4)]);
        let (s, _) = status_for(
            &pdb(json!({"maxUnavailable": "50%"})),
            &pods,
            scales(),
            Utc::now(),
        );
        assert_eq!(s["expectedPods"], 4);
        assert_eq!(s["desiredHealthy"], 2);
        assert_eq!(s["disruptionsAllowed"], 1);
        let (s, _) = status_for(
            &pdb(json!({"minAvailable": "50%"})),
            &pods,
            scales(),
            Utc::now(),
        );
        assert_eq!(s["desiredHealthy"], 2);
        let (s, _) = status_for(
            &pdb(json!({"maxUnavailable": 1})),
            &pods,
            Err("found no controllers for pod \"a\"".into()),
            Utc::now(),
        );
        assert_eq!(s["disruptionsAllowed"], 0);
        assert_eq!(s["conditions"][0]["reason"], "SyncFailed");
    }

    #[test]
    fn disrupted_pods_are_not_healthy_until_they_expire() {
        let now = Utc::now();
        let mut b = pdb(json!({"minAvailable": 1}));
        b["status"]["disruptedPods"] = json!({"a": fmt_time(now), "gone": fmt_time(now)});
        let pods = [pod("a", true), pod("b", true)];
        let (s, requeue) = status_for(&b, &pods, Ok(vec![]), now);
        assert_eq!(s["currentHealthy"], 1);
        assert_eq!(s["disruptedPods"], json!({"a": fmt_time(now)}));
        assert!(requeue.is_some());
        let (s, _) = status_for(&b, &pods, Ok(vec![]), now + DELETION_TIMEOUT);
        assert_eq!(s["currentHealthy"], 2);
        assert!(s.get("disruptedPods").is_none());
    }
}
