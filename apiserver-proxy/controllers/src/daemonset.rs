//! The DaemonSet controller (upstream's `daemon` controller): one pod per
//! (virtual) Node that the pod template fits — `nodeSelector`, required
//! node affinity, and taints with effect NoSchedule or NoExecute tolerated
//! (with the tolerations upstream adds to every daemon pod) — pinned to its
//! node by a required node affinity on `metadata.name` as upstream (never by
//! `nodeName`); ControllerRevisions ([`super::history`]), the
//! `RollingUpdate` (`maxUnavailable`, `maxSurge`) and `OnDelete`
//! strategies, and status.
//!
//! A virtual cluster's Nodes appear when the syncer mirrors them (or when a
//! client creates them); with no Node, a DaemonSet wants no pod.
//!
//! Cluster-aware: one watch over all clusters, reacting to DaemonSets, the
//! pods they control, and changes of Nodes' labels, taints or
//! schedulability (which reconcile every DaemonSet of that cluster). Reads
//! go to the store (no cache).
//!
//! Rolling updates replace pods within `maxUnavailable`, or, with
//! `maxSurge`, start the new pod beside the old one and delete the old one
//! once the new one is available. Simplification: failed pods are replaced
//! at once (no backoff).
//! Orphans the selector matches are adopted at the DaemonSet's next
//! reconcile, owned pods that stop matching are released. This controller never touches a pod it does
//! not control, nor anything outside its DaemonSet's cluster and namespace;
//! it never writes Nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::history::{self, CONTROLLER_REVISION_HASH};
use super::podutil;
use super::runtime::Outcome;
use super::runtime::{self, ControllerContext};
use super::runtime::{Change, ObjectKey};
use super::util;
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::store::{ListOptions, Store, Target, decode_stored};

/// The template generation label of daemon pods.
pub const POD_TEMPLATE_GENERATION: &str = "pod-template-generation";
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Work of the controller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    /// Reconcile this DaemonSet (cluster, namespace, name).
    DaemonSet(String, String, String),
    /// A Node of this cluster changed: reconcile all its DaemonSets.
    Nodes(String),
}

struct Controller {
    store: Store,
    daemonsets: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
    nodes: Arc<ResourceInfo>,
    revisions: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster `api` serves (`None` when the
/// catalog lacks one of the resources it uses).
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let [daemonsets, pods, nodes, revisions] = util::resources(
        &ctx.catalog,
        [
            "apps/daemonsets",
            "pods",
            "nodes",
            "apps/controllerrevisions",
        ],
    )?;
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        daemonsets,
        pods,
        nodes,
        revisions,
    });
    Some(runtime::spawn_controller(
        &ctx.store,
        "daemonsets",
        controller,
        interesting,
    ))
}

/// What of a Node decides where daemon pods run.
fn placement(node: &Value) -> (Value, Value, Value) {
    (
        node["metadata"]["labels"].clone(),
        node["spec"]["taints"].clone(),
        node["spec"]["unschedulable"].clone(),
    )
}

fn interesting(change: &Change<'_>) -> Option<Item> {
    let key = change.key()?;
    let k = ObjectKey::parse(key)?;
    if k.segment == "core/nodes" {
        let relevant = match change {
            Change::Put { kv, prev } => {
                let new = decode_stored(kv).ok()?;
                let old = prev.and_then(|p| decode_stored(p).ok());
                old.is_none_or(|o| placement(&o) != placement(&new))
            }
            Change::Delete { .. } => true,
            _ => false,
        };
        return relevant.then(|| Item::Nodes(k.cluster.to_string()));
    }
    let (c, ns, n) =
        util::self_or_controller(change, "apps/daemonsets", "core/pods", "apps", "DaemonSet")?;
    Some(Item::DaemonSet(c, ns, n))
}

/// The tolerations upstream adds to every daemon pod
/// (`AddOrUpdateDaemonPodTolerations`).
fn default_tolerations(host_network: bool) -> Vec<Value> {
    let mut t: Vec<Value> = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    .iter()
    .map(|(k, e)| json!({"key": k, "operator": "Exists", "effect": e}))
    .collect();
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable",
            "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

/// The pod spec of `ds` with upstream's daemon tolerations added.
fn spec_with_tolerations(ds: &Value) -> Value {
    let mut spec = ds["spec"]["template"]["spec"].clone();
    let mut tolerations: Vec<Value> = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for t in default_tolerations(spec["hostNetwork"] == true) {
        if !tolerations
            .iter()
            .any(|o| o["key"] == t["key"] && o["effect"] == t["effect"])
        {
            tolerations.push(t);
        }
    }
    spec["tolerations"] = json!(tolerations);
    spec
}

fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = toleration["effect"].as_str().unwrap_or("");
    if !effect.is_empty() && toleration["effect"] != taint["effect"] {
        return false;
    }
    let key = toleration["key"].as_str().unwrap_or("");
    if !key.is_empty() && toleration["key"] != taint["key"] {
        return false;
    }
    match toleration["operator"].as_str().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration["value"].as_str().unwrap_or("")
                    == taint["value"].as_str().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether a node selector requirement (`matchExpressions` on labels, or
/// `matchFields` on `metadata.name`) holds for `value` (`None` = absent).
fn requirement_holds(req: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = req["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let num = |v: Option<&str>| v.and_then(|s| s.parse::<i64>().ok());
    match req["operator"].as_str().unwrap_or("") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => num(value)
            .zip(num(values.first().copied()))
            .is_some_and(|(a, b)| a > b),
        "Lt" => num(value)
            .zip(num(values.first().copied()))
            .is_some_and(|(a, b)| a < b),
        _ => false,
    }
}

/// Whether a `NodeSelectorTerm` matches the node.
fn term_matches(term: &Value, node: &Value) -> bool {
    let exprs = term["matchExpressions"].as_array();
    let fields = term["matchFields"].as_array();
    if exprs.is_none_or(|e| e.is_empty()) && fields.is_none_or(|f| f.is_empty()) {
        return false;
    }
    exprs.into_iter().flatten().all(|r| {
        let key = r["key"].as_str().unwrap_or("");
        requirement_holds(r, node["metadata"]["labels"][key].as_str())
    }) && fields
        .into_iter()
        .flatten()
        .all(|r| r["key"] == "metadata.name" && requirement_holds(r, Some(meta::name(node))))
}

/// Whether a daemon pod with `spec` should run on `node` (upstream's
/// `NodeShouldRunDaemonPod`: node selector, required node affinity, and
/// NoSchedule/NoExecute taints tolerated).
pub fn should_run(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels[k] == *v);
    let required =
        &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let affinity_ok = required.is_null()
        || required["nodeSelectorTerms"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| term_matches(t, node));
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let taints_ok = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule") | Some("NoExecute")))
        .all(|t| tolerations.iter().any(|o| tolerates(o, t)));
    selector_ok && affinity_ok && taints_ok
}

/// The node a daemon pod is for: `spec.nodeName` once bound, else the
/// `metadata.name` its required node affinity pins.
pub fn node_of(pod: &Value) -> Option<&str> {
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()?
        .iter()
        .flat_map(|t| t["matchFields"].as_array().into_iter().flatten())
        .find(|f| f["key"] == "metadata.name" && f["operator"] == "In")
        .and_then(|f| f["values"][0].as_str())
}

/// A new pod of `ds` for `node` at revision `hash` (upstream's
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required terms become one
/// `matchFields metadata.name In [node]` term).
pub fn pod_for(ds: &Value, hash: &str, node: &str) -> Value {
    let mut pod = podutil::pod_from_template(
        &ds["spec"]["template"],
        util::controller_ref_to(ds, "apps/v1", "DaemonSet"),
    );
    let metadata = &mut pod["metadata"];
    metadata["generateName"] = json!(format!("{}-", meta::name(ds)));
    metadata["labels"][CONTROLLER_REVISION_HASH] = json!(hash);
    let generation = ds["metadata"]["annotations"][TEMPLATE_GENERATION]
        .as_str()
        .unwrap_or("1");
    metadata["labels"][POD_TEMPLATE_GENERATION] = json!(generation);
    pod["spec"] = spec_with_tolerations(ds);
    let spec = &mut pod["spec"];
    if !spec["affinity"].is_object() {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]["nodeAffinity"].is_object() {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    pod
}

/// What to do with a DaemonSet's pods (a pure plan).
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes to create a pod on.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Value>,
    /// The new status.
    pub status: Value,
    /// When to look again (a pod becoming available).
    pub requeue: Option<Duration>,
}

/// Plans one reconcile of `ds` (current revision `hash`) over `nodes` and
/// the pods it controls (upstream's `manage` then `rollingUpdate`).
pub fn plan(ds: &Value, hash: &str, nodes: &[Value], pods: &[Value]) -> Plan {
    let now = Utc::now();
    let spec = spec_with_tolerations(ds);
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| !meta::is_deleting(p)) {
        by_node
            .entry(node_of(pod).unwrap_or(""))
            .or_default()
            .push(pod);
    }
    let us = &ds["spec"]["updateStrategy"];
    let rolling = us["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate";
    let desired = nodes.iter().filter(|n| should_run(&spec, n)).count() as i64;
    let max_surge = if rolling {
        util::int_or_percent(&us["rollingUpdate"]["maxSurge"], desired, true).unwrap_or(0)
    } else {
        0
    };
    let is_new = |p: &Value| p["metadata"]["labels"][CONTROLLER_REVISION_HASH] == hash;
    let is_available = |p: &Value| podutil::until_available(p, min_ready, now) == Some(0);
    let mut p = Plan::default();
    let (mut current, mut misscheduled) = (0, 0);
    let (mut ready, mut updated, mut available) = (0, 0, 0);
    let mut waits = Vec::new();
    // (pod, available) of each node's daemon pod, for the rolling update.
    let mut running: Vec<(&Value, bool)> = Vec::new();
    // (node, old pod, new pod) of each node, when surging.
    let mut surging: Vec<(&str, Option<&Value>, Option<&Value>)> = Vec::new();
    let mut missing = 0;
    for node in nodes {
        let name = meta::name(node);
        let mut on_node = by_node.remove(name).unwrap_or_default();
        if !should_run(&spec, node) {
            if !on_node.is_empty() {
                misscheduled += 1;
            }
            p.delete.extend(on_node.into_iter().cloned());
            continue;
        }
        let (failed, mut alive): (Vec<&Value>, Vec<&Value>) = on_node
            .drain(..)
            .partition(|p| p["status"]["phase"] == "Failed");
        p.delete.extend(failed.into_iter().cloned());
        if alive.is_empty() {
            p.create.push(name.to_string());
            missing += 1;
            continue;
        }
        // Keep the oldest (when surging, the oldest old and the oldest
        // new); extras go.
        alive.sort_by_key(|p| {
            p["metadata"]["creationTimestamp"]
                .as_str()
                .map(str::to_string)
        });
        let pod = alive[0];
        if max_surge > 0 {
            let old = alive.iter().copied().find(|p| !is_new(p));
            let new = alive.iter().copied().find(|p| is_new(p));
            let kept = |p: &&Value| {
                [old, new]
                    .iter()
                    .flatten()
                    .any(|k| meta::uid(k) == meta::uid(p))
            };
            p.delete
                .extend(alive.iter().filter(|p| !kept(p)).map(|p| (*p).clone()));
            surging.push((name, old, new));
        } else {
            p.delete.extend(alive.drain(1..).cloned());
        }
        current += 1;
        if podutil::is_ready(pod) {
            ready += 1;
        }
        if is_new(pod) {
            updated += 1;
        }
        let avail = match podutil::until_available(pod, min_ready, now) {
            Some(0) => true,
            Some(w) => {
                waits.push(w);
                false
            }
            None => false,
        };
        available += avail as i64;
        running.push((pod, avail));
    }
    // Pods for nodes that no longer exist.
    p.delete.extend(by_node.into_values().flatten().cloned());

    if rolling && max_surge > 0 {
        // Surge: a new pod beside each old one (at most maxSurge at once,
        // at once where the old one is unavailable anyway); the old one
        // goes when the new one is available.
        let (mut in_flight, mut allowed, mut candidates) = (0, Vec::new(), Vec::new());
        for (node, old, new) in &surging {
            match (old, new) {
                (Some(o), None) if !is_available(o) => allowed.push(node.to_string()),
                (Some(_), None) => candidates.push(node.to_string()),
                (Some(o), Some(n)) if is_available(n) => p.delete.push((*o).clone()),
                (Some(_), Some(_)) => in_flight += 1,
                _ => {}
            }
        }
        let room = ((max_surge - in_flight).max(0) as usize).min(candidates.len());
        p.create.extend(allowed);
        p.create.extend(candidates.drain(..room));
    } else if rolling {
        let one = json!(1);
        let mu = &us["rollingUpdate"]["maxUnavailable"];
        let mu = if mu.is_null() { &one } else { mu };
        let max_unavailable = util::int_or_percent(mu, desired, true).unwrap_or(1).max(1);
        let unavailable = missing + running.iter().filter(|(_, a)| !a).count() as i64;
        let old = running.iter().filter(|(pod, _)| !is_new(pod));
        // Old pods that are unavailable anyway go first, then available
        // ones within maxUnavailable.
        let (old_unavailable, old_available): (Vec<_>, Vec<_>) = old.partition(|(_, a)| !a);
        p.delete
            .extend(old_unavailable.into_iter().map(|(pod, _)| (*pod).clone()));
        let room = (max_unavailable - unavailable).max(0) as usize;
        p.delete.extend(
            old_available
                .into_iter()
                .take(room)
                .map(|(pod, _)| (*pod).clone()),
        );
    }

    let mut status = util::workload_status(
        ds,
        json!({
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
        }),
        &[
            ("updatedNumberScheduled", updated),
            ("numberAvailable", available),
            ("numberUnavailable", desired - available),
        ],
    );
    if let Some(v) = ds["status"].get("collisionCount").filter(|v| !v.is_null()) {
        status["collisionCount"] = v.clone();
    }
    p.status = status;
    p.requeue = waits.iter().min().map(|w| Duration::from_secs(*w as u64));
    p
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, item: Item) -> Result<Option<Duration>, ApiError> {
        match item {
            Item::DaemonSet(c, ns, name) => self.sync(&c, &ns, &name).await,
            Item::Nodes(c) => {
                let all = Target {
                    cluster: &c,
                    resource: &self.daemonsets,
                    namespace: None,
                };
                let list = self.store.list(&all, &ListOptions::default()).await?;
                for ds in list.items {
                    self.sync(&c, meta::namespace(&ds), meta::name(&ds)).await?;
                }
                Ok(None)
            }
        }
    }
}

impl Controller {
    async fn sync(&self, cluster: &str, ns: &str, name: &str) -> Outcome<ApiError> {
        let t = |r| Target {
            cluster,
            resource: r,
            namespace: Some(ns),
        };
        let dt = t(&self.daemonsets);
        let Some(ds) = util::get_opt(&self.store, &dt, name).await? else {
            return Ok(None);
        };
        if meta::is_deleting(&ds) {
            return Ok(None);
        }
        let rt = t(&self.revisions);
        let hist = history::sync(&self.store, &rt, &ds, "apps/v1", "DaemonSet").await?;
        let hash = history::hash_of(&hist.update).to_string();
        let nt = Target {
            cluster,
            resource: &self.nodes,
            namespace: None,
        };
        let nodes = self.store.list(&nt, &ListOptions::default()).await?.items;
        let pt = t(&self.pods);
        let selector = podutil::selector(&ds["spec"]["selector"]).filter(|s| !s.is_empty());
        let pods = util::claim(
            &self.store,
            &pt,
            &ds,
            util::controller_ref_to(&ds, "apps/v1", "DaemonSet"),
            |p| {
                selector
                    .as_ref()
                    .is_some_and(|s| s.matches(&meta::labels(p)))
            },
        )
        .await?;
        let p = plan(&ds, &hash, &nodes, &pods);
        let bodies = p.create.iter().map(|n| pod_for(&ds, &hash, n)).collect();
        util::create_all(&self.store, &pt, bodies).await?;
        util::delete_all(&self.store, &pt, &p.delete.iter().collect::<Vec<_>>()).await?;
        util::write_status(&self.store, &dt, &ds, &p.status).await?;
        let live: Vec<&str> = pods
            .iter()
            .filter_map(|p| p["metadata"]["labels"][CONTROLLER_REVISION_HASH].as_str())
            .collect();
        history::truncate(&self.store, &rt, &ds, &hist, &live).await?;
        Ok(p.requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surging() -> Value {
        let mut d = ds(json!({}));
        d["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": 1});
        d
    }

    #[test]
    fn surge_starts_new_pods_beside_old_ones() {
        let nodes = [
            node("a", json!({}), json!(null)),
            node("b", json!({}), json!(null)),
        ];
        let old = [pod_on("a", "h1", true), pod_on("b", "h1", true)];
        let p = plan(&surging(), "h2", &nodes, &old);
        assert_eq!(p.create, ["a"]);
        assert!(p.delete.is_empty());
        // The new pod on a is not ready yet: nothing more.
        let mut pods = old.to_vec();
        pods.push(pod_on("a", "h2", false));
        let p = plan(&surging(), "h2", &nodes, &pods);
        assert!(p.create.is_empty() && p.delete.is_empty());
        // Ready: a's old pod goes, b's surge starts.
        pods[2] = pod_on("a", "h2", true);
        let p = plan(&surging(), "h2", &nodes, &pods);
        assert_eq!(names(&p.delete), ["agent-a-h1"]);
        assert_eq!(p.create, ["b"]);
    }

    fn names(v: &[Value]) -> Vec<&str> {
        v.iter().map(meta::name).collect()
    }

    fn ds(extra: Value) -> Value {
        let mut d = json!({"metadata": {"name": "agent", "uid": "u-ds", "generation": 1,
                "annotations": {TEMPLATE_GENERATION: "1"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "c", "image": "agent"}]}}}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            d["spec"]["template"]["spec"][k] = v.clone();
        }
        d
    }

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    fn pod_on(node: &str, hash: &str, ready: bool) -> Value {
        let mut p = pod_for(&ds(json!({})), hash, node);
        p["metadata"]["name"] = json!(format!("agent-{node}-{hash}"));
        p["metadata"]["uid"] = json!(format!("u-{node}-{hash}"));
        if ready {
            p["status"] =
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        }
        p
    }

    #[test]
    fn placement_by_selector_affinity_and_taints() {
        let ssd = node("a", json!({"disk": "ssd"}), json!(null));
        let hdd = node("b", json!({"disk": "hdd"}), json!(null));
        let tainted = node(
            "c",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        let not_ready = node(
            "d",
            json!({}),
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        );
        let plain = spec_with_tolerations(&ds(json!({})));
        assert!(should_run(&plain, &ssd));
        assert!(!should_run(&plain, &tainted));
        assert!(should_run(&plain, &not_ready), "default tolerations");
        let sel = spec_with_tolerations(&ds(json!({"nodeSelector": {"disk": "ssd"}})));
        assert!(should_run(&sel, &ssd) && !should_run(&sel, &hdd));
        let aff = spec_with_tolerations(&ds(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}})));
        assert!(!should_run(&aff, &ssd) && should_run(&aff, &hdd));
        let tol = spec_with_tolerations(&ds(json!({"tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]})));
        assert!(should_run(&tol, &tainted));
        let pod = pod_for(&ds(json!({})), "h1", "a");
        assert_eq!(node_of(&pod), Some("a"));
        assert!(pod["spec"]["nodeName"].is_null());
        assert_eq!(pod["metadata"]["labels"][CONTROLLER_REVISION_HASH], "h1");
        assert_eq!(pod["metadata"]["labels"][POD_TEMPLATE_GENERATION], "1");
    }

    #[test]
    fn one_pod_per_node_and_rolling_update_within_max_unavailable() {
        let nodes = [
            node("a", json!({}), json!(null)),
            node("b", json!({}), json!(null)),
        ];
        let p = plan(&ds(json!({})), "h1", &nodes, &[]);
        assert_eq!(p.create, ["a", "b"]);
        assert_eq!(p.status["desiredNumberScheduled"], 2);
        let pods = [pod_on("a", "h1", true), pod_on("b", "h1", true)];
        let p = plan(&ds(json!({})), "h1", &nodes, &pods);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.status["numberReady"], 2);
        assert_eq!(p.status["numberAvailable"], 2);
        assert_eq!(p.status["updatedNumberScheduled"], 2);
        // A new template: one old pod at a time.
        let p = plan(&ds(json!({})), "h2", &nodes, &pods);
        assert_eq!(p.delete.len(), 1);
        assert!(p.status.get("updatedNumberScheduled").is_none());
        // Pods of a gone node go.
        let p = plan(&ds(json!({})), "h1", &nodes[..1], &pods);
        assert_eq!(p.delete.len(), 1);
        assert_eq!(meta::name(&p.delete[0]), "agent-b-h1");
    }
}
