//! The StatefulSet controller (upstream's `statefulset` controller): pods
//! with stable identities `<name>-<ordinal>` (hostname, `subdomain` from
//! `spec.serviceName`, labels `statefulset.kubernetes.io/pod-name` and
//! `apps.kubernetes.io/pod-index`), one PersistentVolumeClaim
//! `<template>-<name>-<ordinal>` per `volumeClaimTemplates` entry, created
//! `OrderedReady` (one at a time, each after the previous is Running and
//! Ready; scale down from the highest ordinal, one at a time) or
//! `Parallel`; ControllerRevisions ([`super::history`]) and the
//! `RollingUpdate` (highest ordinal first, down to `partition`) and
//! `OnDelete` update strategies; status as upstream.
//!
//! Cluster-aware: one watch over all clusters, reacting to StatefulSets and
//! the pods they control; a short task per StatefulSet being reconciled.
//! Reads go to the store (no cache, no expectations).
//!
//! Orphan pods the selector matches and named as members (`<name>-<n>`)
//! are adopted, owned pods that stop matching are released (upstream's
//! `ControllerRefManager`); an orphan appearing later is adopted at the
//! StatefulSet's next reconcile.
//!
//! Simplification: a pod whose identity drifted (labels, hostname) is not
//! repaired.
//! This controller never touches a pod or claim it does not control (a
//! claim is only ever created, or deleted under a `Delete` retention
//! policy), nor anything outside its StatefulSet's cluster and namespace.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::history::{self, CONTROLLER_REVISION_HASH};
use super::podutil;
use super::runtime::{self, ControllerContext};
use super::util::{self, Item};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::store::Store;

/// The pod-name label of a StatefulSet's pods.
pub const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// The ordinal label of a StatefulSet's pods.
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";

struct Controller {
    store: Store,
    statefulsets: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
    claims: Arc<ResourceInfo>,
    revisions: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster `api` serves (`None` when the
/// catalog lacks one of the resources it manages).
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let [statefulsets, pods, claims, revisions] = util::resources(
        &ctx.catalog,
        [
            "apps/statefulsets",
            "pods",
            "persistentvolumeclaims",
            "apps/controllerrevisions",
        ],
    )?;
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        statefulsets,
        pods,
        claims,
        revisions,
    });
    Some(runtime::spawn_controller(
        &ctx.store,
        "statefulsets",
        controller,
        |change| {
            util::self_or_controller(
                change,
                "apps/statefulsets",
                "core/pods",
                "apps",
                "StatefulSet",
            )
        },
    ))
}

/// The ordinal of pod `pod_name` of StatefulSet `set`, if it is one.
pub fn ordinal(set: &str, pod_name: &str) -> Option<i64> {
    let (parent, ord) = pod_name.rsplit_once('-')?;
    if parent != set || ord.starts_with('+') {
        return None;
    }
    ord.parse().ok().filter(|o| *o >= 0)
}

/// The claim of volume claim template `template` for ordinal `ord`.
pub fn claim_name(template: &str, set: &str, ord: i64) -> String {
    format!("{template}-{set}-{ord}")
}

fn is_running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && podutil::is_ready(pod)
}

fn is_finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    )
}

fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][CONTROLLER_REVISION_HASH]
        .as_str()
        .unwrap_or("")
}

/// The revisions a reconcile works with: (name, pod template).
pub struct Revisions {
    /// `status.currentRevision` (or the update revision at first).
    pub current: (String, Value),
    /// The revision of the current `spec.template`.
    pub update: (String, Value),
}

/// A new pod for ordinal `ord` of `set` from `template` at `revision`.
pub fn pod_for(set: &Value, template: &Value, revision: &str, ord: i64) -> Value {
    let set_name = meta::name(set);
    let name = format!("{set_name}-{ord}");
    let mut pod = podutil::pod_from_template(
        template,
        util::controller_ref_to(set, "apps/v1", "StatefulSet"),
    );
    let metadata = &mut pod["metadata"];
    metadata["name"] = json!(name);
    metadata["labels"][POD_NAME] = json!(name);
    metadata["labels"][POD_INDEX] = json!(ord.to_string());
    metadata["labels"][CONTROLLER_REVISION_HASH] = json!(revision);
    let spec = &mut pod["spec"];
    spec["hostname"] = json!(name);
    match set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        Some(svc) => spec["subdomain"] = json!(svc),
        None => {
            if let Some(m) = spec.as_object_mut() {
                m.remove("subdomain");
            }
        }
    }
    let claims = set["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !claims.is_empty() {
        let mut volumes: Vec<Value> = spec["volumes"].as_array().cloned().unwrap_or_default();
        for c in &claims {
            let tpl = meta::name(c);
            volumes.retain(|v| v["name"] != tpl);
            volumes.push(json!({"name": tpl, "persistentVolumeClaim": {
                "claimName": claim_name(tpl, set_name, ord)}}));
        }
        spec["volumes"] = json!(volumes);
    }
    pod
}

/// The claims pod `ord` of `set` needs (upstream's `getPersistentVolumeClaims`).
pub fn claims_for(set: &Value, ord: i64) -> Vec<Value> {
    let set_name = meta::name(set);
    let delete_with_set =
        set["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    set["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut labels = c["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            for (k, v) in set["spec"]["selector"]["matchLabels"]
                .as_object()
                .into_iter()
                .flatten()
            {
                labels[k] = v.clone();
            }
            let mut metadata = json!({"name": claim_name(meta::name(c), set_name, ord),
                "labels": labels});
            if let Some(a) = c["metadata"].get("annotations").filter(|a| a.is_object()) {
                metadata["annotations"] = a.clone();
            }
            if delete_with_set {
                metadata["ownerReferences"] =
                    json!([util::controller_ref_to(set, "apps/v1", "StatefulSet")]);
            }
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": metadata, "spec": c["spec"]})
        })
        .collect()
}

/// What to do with a StatefulSet's pods (a pure plan).
#[derive(Debug, Default)]
pub struct Plan {
    /// Ordinals to create pods for, with the revision to create each at.
    pub create: Vec<(i64, bool)>,
    /// Pods to delete (failed, condemned, or outdated).
    pub delete: Vec<Value>,
    /// Ordinals scaled away (their claims go under `whenScaled: Delete`).
    pub condemned: Vec<i64>,
    /// The new status.
    pub status: Value,
    /// When to look again (a pod becoming available).
    pub requeue: Option<Duration>,
}

/// Plans one reconcile of `set` given the pods it controls (upstream's
/// `defaultStatefulSetControl.updateStatefulSet`). In `create`, `true`
/// means "at the current revision" (ordinals below the partition).
pub fn plan(set: &Value, pods: &[Value], rev: &Revisions, now: DateTime<Utc>) -> Plan {
    let spec = &set["spec"];
    let name = meta::name(set);
    let start = spec["ordinals"]["start"].as_i64().unwrap_or(0).max(0);
    let replicas = spec["replicas"].as_i64().unwrap_or(1).max(0);
    let monotonic = spec["podManagementPolicy"] != "Parallel";
    let rolling = spec["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition = if rolling {
        spec["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .unwrap_or(0)
            .max(0)
    } else {
        0
    };
    let min_ready = spec["minReadySeconds"].as_i64().unwrap_or(0);
    let (current, update) = (rev.current.0.as_str(), rev.update.0.as_str());

    let mut slots: Vec<Option<&Value>> = vec![None; replicas as usize];
    let mut condemned: Vec<(i64, &Value)> = Vec::new();
    for pod in pods {
        let Some(ord) = ordinal(name, meta::name(pod)) else {
            continue;
        };
        if ord >= start && ord < start + replicas {
            slots[(ord - start) as usize] = Some(pod);
        } else {
            condemned.push((ord, pod));
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));

    let mut p = Plan::default();
    let available = |pod: &Value| {
        is_running_and_ready(pod) && podutil::until_available(pod, min_ready, now) == Some(0)
    };
    let healthy = |pod: &Value| available(pod) && !meta::is_deleting(pod);

    // Replicas: create missing pods, replace finished ones.
    let mut blocked = false;
    for (i, slot) in slots.iter().enumerate() {
        let ord = start + i as i64;
        match slot {
            None => {
                p.create.push((ord, rolling && (i as i64) < partition));
                blocked |= monotonic;
            }
            Some(pod) if is_finished(pod) && !meta::is_deleting(pod) => {
                p.delete.push((*pod).clone());
                blocked |= monotonic;
            }
            Some(pod) if !healthy(pod) => blocked |= monotonic,
            Some(_) => {}
        }
        if blocked {
            break;
        }
    }
    // Condemned pods: highest ordinal first; one at a time when ordered.
    if !blocked {
        // The lowest condemned ordinal that is unhealthy (replicas are all
        // healthy here when ordered).
        let first_unhealthy = condemned
            .iter()
            .rev()
            .find(|(_, p)| !healthy(p))
            .map(|(o, _)| *o);
        for (ord, pod) in &condemned {
            if meta::is_deleting(pod)
                || (monotonic && !healthy(pod) && Some(*ord) != first_unhealthy)
            {
                blocked |= monotonic;
            } else {
                p.delete.push((*pod).clone());
                p.condemned.push(*ord);
                blocked |= monotonic;
            }
            if blocked {
                break;
            }
        }
    }
    // Rolling update: highest ordinal first, down to the partition, at
    // most `maxUnavailable` replicas unavailable at once (upstream's
    // MaxUnavailableStatefulSet; the default 1 is the classic one at a time).
    if !blocked && rolling && condemned.is_empty() {
        let one = json!(1);
        let mu = &spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"];
        let mu = if mu.is_null() { &one } else { mu };
        let max_unavailable = util::int_or_percent(mu, replicas, false)
            .unwrap_or(1)
            .max(1);
        let unavailable = slots
            .iter()
            .filter(|s| s.is_none_or(|p| !healthy(p)))
            .count() as i64;
        let room = (max_unavailable - unavailable).max(0) as usize;
        let outdated = (partition.min(replicas)..replicas)
            .rev()
            .filter_map(|i| slots[i as usize])
            .filter(|pod| revision_of(pod) != update && !meta::is_deleting(pod))
            .filter(|pod| !p.delete.iter().any(|d| meta::uid(d) == meta::uid(pod)))
            .take(room)
            .cloned()
            .collect::<Vec<_>>();
        p.delete.extend(outdated);
    }

    // Status, from the pods as seen (the next event brings the rest).
    let (mut count, mut ready, mut avail, mut cur, mut upd) = (0, 0, 0, 0, 0);
    let mut waits = Vec::new();
    for pod in pods {
        if ordinal(name, meta::name(pod)).is_none() {
            continue;
        }
        if !meta::is_deleting(pod) {
            count += 1;
            cur += (revision_of(pod) == current) as i64;
            upd += (revision_of(pod) == update) as i64;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            match podutil::until_available(pod, min_ready, now) {
                Some(0) => avail += 1,
                Some(w) => waits.push(w),
                None => {}
            }
        }
    }
    p.requeue = waits.iter().min().map(|w| Duration::from_secs(*w as u64));
    let mut current_rev = current.to_string();
    if rolling && upd == count && ready == count {
        current_rev = update.to_string();
        cur = upd;
    }
    let status = util::workload_status(
        set,
        json!({"replicas": count, "availableReplicas": avail,
            "currentRevision": current_rev, "updateRevision": update,
            "collisionCount": set["status"]["collisionCount"].as_i64().unwrap_or(0)}),
        &[
            ("readyReplicas", ready),
            ("currentReplicas", cur),
            ("updatedReplicas", upd),
        ],
    );
    p.status = status;
    p
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, item: Item) -> Result<Option<Duration>, ApiError> {
        self.sync(&item).await
    }
}

impl Controller {
    async fn sync(&self, (cluster, ns, name): &Item) -> Result<Option<Duration>, ApiError> {
        let st = util::target(cluster, &self.statefulsets, ns);
        let Some(set) = util::get_opt(&self.store, &st, name).await? else {
            return Ok(None);
        };
        if meta::is_deleting(&set) {
            return Ok(None);
        }
        let rt = util::target(cluster, &self.revisions, ns);
        let hist = history::sync(&self.store, &rt, &set, "apps/v1", "StatefulSet").await?;
        let update = (
            meta::name(&hist.update).to_string(),
            history::template(&hist.update),
        );
        let current = set["status"]["currentRevision"]
            .as_str()
            .and_then(|c| hist.revisions.iter().find(|r| meta::name(r) == c))
            .map(|r| (meta::name(r).to_string(), history::template(r)))
            .unwrap_or_else(|| update.clone());
        let rev = Revisions { current, update };
        let pt = util::target(cluster, &self.pods, ns);
        let selector = podutil::selector(&set["spec"]["selector"]).filter(|s| !s.is_empty());
        let pods = util::claim(
            &self.store,
            &pt,
            &set,
            util::controller_ref_to(&set, "apps/v1", "StatefulSet"),
            |p| {
                selector
                    .as_ref()
                    .is_some_and(|s| s.matches(&meta::labels(p)))
                    && ordinal(meta::name(&set), meta::name(p)).is_some()
            },
        )
        .await?;
        let p = plan(&set, &pods, &rev, Utc::now());

        let ct = util::target(cluster, &self.claims, ns);
        let mut bodies = Vec::new();
        for (ord, at_current) in &p.create {
            for claim in claims_for(&set, *ord) {
                if util::get_opt(&self.store, &ct, meta::name(&claim))
                    .await?
                    .is_none()
                {
                    util::create_all(&self.store, &ct, vec![claim]).await?;
                }
            }
            let (rname, template) = if *at_current {
                &rev.current
            } else {
                &rev.update
            };
            bodies.push(pod_for(&set, template, rname, *ord));
        }
        util::create_all(&self.store, &pt, bodies).await?;
        util::delete_all(&self.store, &pt, &p.delete.iter().collect::<Vec<_>>()).await?;
        if set["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete" {
            for ord in &p.condemned {
                for claim in claims_for(&set, *ord) {
                    if let Some(c) = util::get_opt(&self.store, &ct, meta::name(&claim)).await? {
                        util::delete_all(&self.store, &ct, &[&c]).await?;
                    }
                }
            }
        }
        util::write_status(&self.store, &st, &set, &p.status).await?;
        let live: Vec<&str> = pods.iter().map(revision_of).collect();
        let mut keep = live.clone();
        keep.push(p.status["currentRevision"].as_str().unwrap_or(""));
        history::truncate(&self.store, &rt, &set, &hist, &keep).await?;
        Ok(p.requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(extra: Value) -> Value {
        let mut s = json!({"metadata": {"name": "web", "uid": "u-sts", "generation": 2},
            "spec": {"replicas": 3, "serviceName": "nginx", "podManagementPolicy": "OrderedReady",
                "selector": {"matchLabels": {"app": "web"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            s["spec"][k] = v.clone();
        }
        s
    }

    fn revs() -> Revisions {
        Revisions {
            current: ("web-old".into(), json!({})),
            update: ("web-new".into(), json!({})),
        }
    }

    fn pod(ord: i64, rev: &str, ready: bool) -> Value {
        let mut p = json!({"metadata": {"name": format!("web-{ord}"), "uid": format!("u{ord}"),
            "labels": {CONTROLLER_REVISION_HASH: rev}}, "status": {"phase": "Pending"}});
        if ready {
            p["status"] =
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        }
        p
    }

    fn names(v: &[Value]) -> Vec<&str> {
        v.iter().map(meta::name).collect()
    }

    #[test]
    fn identity_and_claims() {
        let s = set(json!({}));
        let p = pod_for(&s, &s["spec"]["template"], "web-abc", 1);
        assert_eq!(p["metadata"]["name"], "web-1");
        assert_eq!(p["metadata"]["labels"][POD_NAME], "web-1");
        assert_eq!(p["metadata"]["labels"][POD_INDEX], "1");
        assert_eq!(p["metadata"]["labels"][CONTROLLER_REVISION_HASH], "web-abc");
        assert_eq!(p["spec"]["hostname"], "web-1");
        assert_eq!(p["spec"]["subdomain"], "nginx");
        assert_eq!(
            p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "www-web-1"
        );
        let c = claims_for(&s, 1);
        assert_eq!(c[0]["metadata"]["name"], "www-web-1");
        assert_eq!(c[0]["metadata"]["labels"]["app"], "web");
        assert!(c[0]["metadata"]["ownerReferences"].is_null());
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-x-1"), None);
        assert_eq!(ordinal("web", "webx-1"), None);
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time() {
        let s = set(json!({}));
        let now = Utc::now();
        let p = plan(&s, &[], &revs(), now);
        assert_eq!(p.create, [(0, false)]);
        let p = plan(&s, &[pod(0, "web-new", false)], &revs(), now);
        assert!(p.create.is_empty());
        let p = plan(&s, &[pod(0, "web-new", true)], &revs(), now);
        assert_eq!(p.create, [(1, false)]);
        let par = set(json!({"podManagementPolicy": "Parallel"}));
        let p = plan(&par, &[], &revs(), now);
        assert_eq!(p.create.len(), 3);
    }

    #[test]
    fn scale_down_highest_first_one_at_a_time() {
        let s = set(json!({"replicas": 1}));
        let pods = [
            pod(0, "web-new", true),
            pod(1, "web-new", true),
            pod(2, "web-new", true),
        ];
        let p = plan(&s, &pods, &revs(), Utc::now());
        assert_eq!(names(&p.delete), ["web-2"]);
        assert_eq!(p.condemned, [2]);
    }

    #[test]
    fn rolling_update_respects_the_partition() {
        let s = set(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
        );
        let pods = [
            pod(0, "web-old", true),
            pod(1, "web-old", true),
            pod(2, "web-new", true),
        ];
        let p = plan(&s, &pods, &revs(), Utc::now());
        assert_eq!(names(&p.delete), ["web-1"]);
        assert_eq!(p.status["updatedReplicas"], 1);
        assert_eq!(p.status["currentReplicas"], 2);
        assert_eq!(p.status["currentRevision"], "web-old");
        let pods = [
            pod(0, "web-old", true),
            pod(1, "web-new", true),
            pod(2, "web-new", true),
        ];
        let p = plan(&s, &pods, &revs(), Utc::now());
        assert!(p.delete.is_empty());
        // Below the partition, a missing pod comes back at the current revision.
        let p = plan(&s, &pods[1..], &revs(), Utc::now());
        assert_eq!(p.create, [(0, true)]);
        let all_new = [
            pod(0, "web-new", true),
            pod(1, "web-new", true),
            pod(2, "web-new", true),
        ];
        let p = plan(&s, &all_new, &revs(), Utc::now());
        assert_eq!(p.status["currentRevision"], "web-new");
        assert_eq!(p.status["currentReplicas"], 3);
        assert_eq!(p.status["readyReplicas"], 3);
        assert_eq!(p.status["availableReplicas"], 3);
        assert_eq!(p.status["observedGeneration"], 2);
        // maxUnavailable 2: two outdated pods at once, highest first.
        let wide = set(json!({"podManagementPolicy": "Parallel", "updateStrategy":
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}}));
        let old3 = [
            pod(0, "web-old", true),
            pod(1, "web-old", true),
            pod(2, "web-old", true),
        ];
        let p = plan(&wide, &old3, &revs(), Utc::now());
        assert_eq!(names(&p.delete), ["web-2", "web-1"]);
        // One already unavailable: room for one more.
        let mut one_down = old3.clone();
        one_down[0] = pod(0, "web-old", false);
        let p = plan(&wide, &one_down, &revs(), Utc::now());
        assert_eq!(names(&p.delete), ["web-2"]);
        let ondelete = set(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert!(
            plan(&ondelete, &pods, &revs(), Utc::now())
                .delete
                .is_empty()
        );
    }
}
