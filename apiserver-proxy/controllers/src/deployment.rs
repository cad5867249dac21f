//! The Deployment controller, basics (upstream's `deployment` controller):
//! one ReplicaSet per pod template (named `<deployment>-<pod-template-hash>`,
//! labelled and selected by `pod-template-hash`), the `RollingUpdate`
//! strategy (scale the new ReplicaSet up within `maxSurge`, old ones down
//! within `maxUnavailable`) and `Recreate` (old ones to zero first), the
//! `deployment.kubernetes.io/revision` annotation on ReplicaSets,
//! `revisionHistoryLimit`,
//! and status with the `Available` and `Progressing` conditions, so
//! `kubectl rollout status` completes once pods are reported ready.
//!
//! Cluster-aware: one watch over all clusters, reacting to Deployments and
//! to ReplicaSets they control; a short task per Deployment being
//! reconciled. Pods are the ReplicaSet controller's business.
//!
//! Not yet: the revision annotation on the Deployment itself (upstream
//! writes it through `/status`, whose strategy keeps annotations; ours
//! resets metadata, and a main-resource write would bump `generation`),
//! adopting orphan ReplicaSets, proportional scaling during a
//! rollout, `progressDeadlineSeconds`, rollback via `spec.rollbackTo`.
//! This controller must never touch a ReplicaSet another owner controls.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::podutil;
use super::runtime::{self, ControllerContext};
use super::util;
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::store::{DeleteOptions, ListOptions, Store, Target, WriteOptions};

/// Label (and selector term) naming a ReplicaSet's pod template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotation with the revision of a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

type Key = (String, String, String);

struct Controller {
    store: Store,
    deployments: Arc<ResourceInfo>,
    replicasets: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster of `ctx`.
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        deployments: ctx.catalog.get("apps", "v1", "deployments")?.clone(),
        replicasets: ctx.catalog.get("apps", "v1", "replicasets")?.clone(),
    });
    Some(runtime::spawn_controller(
        &ctx.store,
        "deployments",
        controller,
        |change| {
            util::self_or_controller(
                change,
                "apps/deployments",
                "apps/replicasets",
                "apps",
                "Deployment",
            )
        },
    ))
}

#[async_trait::async_trait]
impl runtime::Reconciler<Key> for Controller {
    async fn reconcile(&self, (cluster, ns, name): Key) -> runtime::Outcome<ApiError> {
        self.sync(&cluster, &ns, &name).await.map(|()| None)
    }
}

/// Upstream's `rand.SafeEncodeString` of a number.
fn safe_encode(n: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// JSON with object keys sorted, so equal templates hash equally.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The `pod-template-hash` of a pod template (FNV-1a over its canonical
/// JSON, encoded as upstream encodes its hash).
pub fn pod_template_hash(template: &Value, collision_count: i64) -> String {
    let mut h: u32 = 0x811c9dc5;
    let text = canonical(template).to_string();
    for b in text.bytes().chain(collision_count.to_string().bytes()) {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    safe_encode(h)
}

/// Resolves an int-or-percent of `total` (percentages round up or down).
fn int_or_percent(v: &Value, total: i64, round_up: bool, default: &str) -> i64 {
    let v = if v.is_null() { &json!(default) } else { v };
    super::util::int_or_percent(v, total, round_up).unwrap_or(0)
}

fn replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn status_count(rs: &Value, field: &str) -> i64 {
    rs["status"][field].as_i64().unwrap_or(0)
}

fn available(rs: &Value) -> i64 {
    status_count(rs, "availableReplicas").min(replicas(rs).max(status_count(rs, "replicas")))
}

fn revision(rs: &Value) -> i64 {
    rs["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// New replica counts for old ReplicaSets during a rolling update
/// (upstream's cleanup of unhealthy replicas, then scaling down within
/// `maxUnavailable`). `old` is (spec, available), oldest first.
fn scale_down_old(
    old: &[(i64, i64)],
    new: (i64, i64),
    want: i64,
    max_unavailable: i64,
) -> Vec<i64> {
    let min_available = want - max_unavailable;
    let mut specs: Vec<i64> = old.iter().map(|o| o.0).collect();
    let all: i64 = specs.iter().sum::<i64>() + new.0;
    let new_unavailable = (new.0 - new.1).max(0);
    let mut cleanup = all - min_available - new_unavailable;
    for (i, (spec, avail)) in old.iter().enumerate() {
        if cleanup <= 0 {
            break;
        }
        let cut = (spec - avail).max(0).min(cleanup);
        specs[i] -= cut;
        cleanup -= cut;
    }
    let available_total: i64 = old
        .iter()
        .zip(&specs)
        .map(|(o, s)| o.1.min(*s))
        .sum::<i64>()
        + new.1;
    let mut down = available_total - min_available;
    for s in specs.iter_mut() {
        if down <= 0 {
            break;
        }
        let cut = (*s).min(down);
        *s -= cut;
        down -= cut;
    }
    specs
}

/// How a Deployment rolls out, resolved against its `want` replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Strategy {
    /// `Recreate`: old ReplicaSets go to zero before the new one scales up.
    recreate: bool,
    /// Pods above `want` allowed during a rolling update.
    surge: i64,
    /// Pods below `want` allowed (at least 1 when `surge` is 0).
    unavailable: i64,
}

fn strategy(d: &Value, want: i64) -> Strategy {
    let recreate = d["spec"]["strategy"]["type"] == "Recreate";
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let surge = if recreate {
        0
    } else {
        int_or_percent(&ru["maxSurge"], want, true, "25%")
    };
    let mut unavailable = if recreate {
        want
    } else {
        int_or_percent(&ru["maxUnavailable"], want, false, "25%")
    };
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Strategy {
        recreate,
        surge,
        unavailable,
    }
}

/// The replicas the new ReplicaSet (`new_rs`, if it exists) should have
/// now, next to the `old` ones.
fn new_target(s: Strategy, want: i64, new_rs: Option<&Value>, old: &[Value]) -> i64 {
    let old_replicas: i64 = old.iter().map(replicas).sum();
    let old_pods: i64 = old.iter().map(|r| status_count(r, "replicas")).sum();
    if s.recreate {
        if old_replicas > 0 || old_pods > 0 {
            0
        } else {
            want
        }
    } else if old_replicas == 0 {
        want
    } else {
        let current = new_rs.map(replicas).unwrap_or(0);
        let room = want + s.surge - (old_replicas + current);
        (current + room.max(0)).min(want)
    }
}

/// The replicas of each of the `old` ReplicaSets once the new one is
/// `new_rs` (as stored).
fn old_targets(s: Strategy, want: i64, new_rs: &Value, old: &[Value]) -> Vec<i64> {
    if s.recreate {
        return vec![0; old.len()];
    }
    let pairs: Vec<(i64, i64)> = old.iter().map(|r| (replicas(r), available(r))).collect();
    scale_down_old(
        &pairs,
        (replicas(new_rs), available(new_rs)),
        want,
        s.unavailable,
    )
}

/// The Deployment's status from what its ReplicaSets report.
fn status_for(d: &Value, s: Strategy, new_rs: Option<&Value>, old: &[Value]) -> Value {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let collisions = d["status"]["collisionCount"].as_i64().unwrap_or(0);
    let paused = d["spec"]["paused"] == true;
    let all: Vec<&Value> = old.iter().chain(new_rs).collect();
    let sum = |f: &str| all.iter().map(|r| status_count(r, f)).sum::<i64>();
    let available_total = sum("availableReplicas");
    let spec_total: i64 = all.iter().map(|r| replicas(r)).sum();
    let updated = new_rs.map(|r| status_count(r, "replicas")).unwrap_or(0);
    let complete = updated == want
        && sum("replicas") == want
        && available_total >= want
        && new_rs.is_some_and(|r| replicas(r) == want);
    let min_ok = available_total >= want - s.unavailable;
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sum("replicas"),
        "updatedReplicas": updated,
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": available_total,
        "unavailableReplicas": (spec_total - available_total).max(0),
    });
    for f in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ] {
        if status[f] == 0 {
            status.as_object_mut().map(|m| m.remove(f));
        }
    }
    if collisions > 0 {
        status["collisionCount"] = json!(collisions);
    }
    let new_name = new_rs.map(meta::name).unwrap_or_default();
    let (p_reason, p_message) = if paused {
        ("DeploymentPaused", "Deployment is paused".to_string())
    } else if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    };
    let (a_reason, a_message) = if min_ok {
        (
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let mut conditions = vec![
        condition(d, "Available", min_ok, a_reason, a_message),
        condition(d, "Progressing", !paused, p_reason, &p_message),
    ];
    // Upstream's getReplicaFailures: the new ReplicaSet's failure to
    // create pods (e.g. refused by admission) first, else an old one's.
    if let Some(c) = new_rs.into_iter().chain(old).find_map(replica_failure) {
        conditions.push(c);
    }
    status["conditions"] = json!(conditions);
    status
}

impl Controller {
    async fn sync(&self, cluster: &str, ns: &str, name: &str) -> Result<(), ApiError> {
        let dt = util::target(cluster, &self.deployments, ns);
        let Some(d) = util::get_opt(&self.store, &dt, name).await? else {
            return Ok(());
        };
        if meta::is_deleting(&d) {
            return Ok(());
        }
        let rst = util::target(cluster, &self.replicasets, ns);
        let uid = meta::uid(&d).to_string();
        let mut owned: Vec<Value> = self
            .store
            .list(&rst, &ListOptions::default())
            .await?
            .items
            .into_iter()
            .filter(|rs| podutil::controller_ref(rs).is_some_and(|r| r.uid == uid))
            .collect();
        owned.sort_by_key(|rs| {
            (
                revision(rs),
                rs["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(str::to_string),
            )
        });
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let collisions = d["status"]["collisionCount"].as_i64().unwrap_or(0);
        let hash = pod_template_hash(&d["spec"]["template"], collisions);
        let max_revision = owned.iter().map(revision).max().unwrap_or(0);
        let new_pos = owned
            .iter()
            .position(|rs| rs["metadata"]["labels"][POD_TEMPLATE_HASH] == hash.as_str());
        let s = strategy(&d, want);
        let mut new_rs = new_pos.map(|i| owned.remove(i));
        let old = owned;
        let max = want + s.surge;

        if d["spec"]["paused"] != true {
            // The new ReplicaSet: created, revision bumped, scaled up.
            let target_new = new_target(s, want, new_rs.as_ref(), &old);
            let next_revision = match &new_rs {
                Some(rs) if revision(rs) == max_revision && max_revision > 0 => max_revision,
                _ => max_revision + 1,
            };
            let written = match new_rs.take() {
                None => {
                    let body = self.new_replicaset(&d, &hash, target_new, next_revision, max);
                    match self.store.create(&rst, body, WriteOptions::default()).await {
                        Ok(w) => w.object,
                        Err(ApiError::AlreadyExists(_)) => {
                            // A ReplicaSet of that name is not ours: a hash collision.
                            self.bump_collisions(&dt, name).await?;
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                Some(rs) => {
                    self.scale(&rst, &rs, target_new, Some(next_revision), want, max)
                        .await?
                }
            };
            // Old ReplicaSets: down.
            for (rs, target) in old.iter().zip(old_targets(s, want, &written, &old)) {
                if target != replicas(rs) {
                    self.scale(&rst, rs, target, None, want, max).await?;
                }
            }
            new_rs = Some(written);
            self.cleanup_history(&d, &rst, &old).await?;
        }
        let status = status_for(&d, s, new_rs.as_ref(), &old);
        util::write_status(&self.store, &dt, &d, &status).await
    }

    fn new_replicaset(
        &self,
        d: &Value,
        hash: &str,
        replicas: i64,
        revision: i64,
        max: i64,
    ) -> Value {
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": format!("{}-{hash}", meta::name(d)),
                "labels": template["metadata"]["labels"],
                "annotations": {
                    REVISION: revision.to_string(),
                    DESIRED: d["spec"]["replicas"].as_i64().unwrap_or(1).to_string(),
                    MAX_REPLICAS: max.to_string(),
                },
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "name": meta::name(d), "uid": meta::uid(d),
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                "selector": selector,
                "template": template,
            },
        })
    }

    /// Sets a ReplicaSet's replicas (and revision); returns it as stored.
    async fn scale(
        &self,
        t: &Target<'_>,
        rs: &Value,
        replicas: i64,
        revision: Option<i64>,
        desired: i64,
        max: i64,
    ) -> Result<Value, ApiError> {
        let uid = meta::uid(rs).to_string();
        let result = self
            .store
            .update_with(t, meta::name(rs), None, WriteOptions::default(), |old| {
                let mut new = old.clone();
                if meta::uid(old) == uid {
                    new["spec"]["replicas"] = json!(replicas);
                    let a = &mut new["metadata"]["annotations"];
                    if !a.is_object() {
                        *a = json!({});
                    }
                    if let Some(r) = revision {
                        a[REVISION] = json!(r.to_string());
                    }
                    a[DESIRED] = json!(desired.to_string());
                    a[MAX_REPLICAS] = json!(max.to_string());
                }
                Ok((new, Vec::new()))
            })
            .await;
        match result {
            Ok(w) => Ok(w.object),
            Err(ApiError::NotFound(_)) | Err(ApiError::Conflict { .. }) => Ok(rs.clone()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    async fn cleanup_history(
        &self,
        d: &Value,
        t: &Target<'_>,
        old: &[Value],
    ) -> Result<(), ApiError> {
        let limit = d["spec"]["revisionHistoryLimit"]
            .as_i64()
            .unwrap_or(10)
            .max(0) as usize;
        let idle: Vec<&Value> = old
            .iter()
            .filter(|r| {
                replicas(r) == 0 && status_count(r, "replicas") == 0 && !meta::is_deleting(r)
            })
            .collect();
        for rs in idle.iter().take(idle.len().saturating_sub(limit)) {
            let opts = DeleteOptions {
                precondition_uid: Some(meta::uid(rs).to_string()),
                ..Default::default()
            };
            match self.store.delete(t, meta::name(rs), &opts).await {
                Ok(_) | Err(ApiError::NotFound(_)) | Err(ApiError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn bump_collisions(&self, t: &Target<'_>, name: &str) -> Result<(), ApiError> {
        let result = self
            .store
            .update_with(t, name, Some("status"), WriteOptions::default(), |old| {
                let mut new = old.clone();
                let n = old["status"]["collisionCount"].as_i64().unwrap_or(0) + 1;
                new["status"]["collisionCount"] = json!(n);
                Ok((new, Vec::new()))
            })
            .await;
        match result {
            Ok(_) | Err(ApiError::NotFound(_)) | Err(ApiError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A ReplicaSet's `ReplicaFailure` condition as a Deployment condition
/// (upstream's `ReplicaSetToDeploymentCondition`).
fn replica_failure(rs: &Value) -> Option<Value> {
    let c = rs["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "ReplicaFailure")?;
    Some(json!({
        "type": "ReplicaFailure", "status": c["status"],
        "lastUpdateTime": c["lastTransitionTime"], "lastTransitionTime": c["lastTransitionTime"],
        "reason": c["reason"], "message": c["message"],
    }))
}

/// A Deployment condition; keeps the previous transition time while its
/// status is unchanged.
fn condition(d: &Value, kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let now = meta::now();
    let previous = d["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind);
    let transition = previous
        .filter(|c| c["status"] == status)
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or_else(|| json!(now));
    let update = previous
        .filter(|c| c["status"] == status && c["reason"] == reason && c["message"] == message)
        .map(|c| c["lastUpdateTime"].clone())
        .unwrap_or_else(|| json!(now));
    json!({
        "type": kind, "status": status, "lastUpdateTime": update,
        "lastTransitionTime": transition, "reason": reason, "message": message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_key_order_free() {
        let a = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}});
        let b = json!({"spec": {"x": 1}, "metadata": {"labels": {"b": "2", "a": "1"}}});
        assert_eq!(pod_template_hash(&a, 0), pod_template_hash(&b, 0));
        assert_ne!(pod_template_hash(&a, 0), pod_template_hash(&a, 1));
        assert!(
            pod_template_hash(&a, 0)
                .bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c))
        );
    }

    #[test]
    fn surge_and_unavailable() {
        assert_eq!(int_or_percent(&Value::Null, 3, true, "25%"), 1);
        assert_eq!(int_or_percent(&Value::Null, 3, false, "25%"), 0);
        assert_eq!(int_or_percent(&json!(2), 3, false, "25%"), 2);
        assert_eq!(int_or_percent(&json!("50%"), 4, false, "25%"), 2);
    }

    #[test]
    fn rolling_scale_down_keeps_availability() {
        // 3 wanted, 1 unavailable allowed: old has 3 available, new has 1 not yet available.
        assert_eq!(scale_down_old(&[(3, 3)], (1, 0), 3, 1), vec![2]);
        // Unhealthy old replicas go first, within maxUnavailable.
        assert_eq!(scale_down_old(&[(3, 0)], (1, 0), 3, 1), vec![2]);
        assert_eq!(scale_down_old(&[(3, 0)], (1, 0), 3, 0), vec![3]);
        // New fully available: old goes to zero.
        assert_eq!(scale_down_old(&[(1, 1)], (3, 3), 3, 0), vec![0]);
    }

    fn rs(spec: i64, replicas: i64, available: i64) -> Value {
        json!({"metadata": {"name": "web-x"}, "spec": {"replicas": spec},
            "status": {"replicas": replicas, "availableReplicas": available}})
    }

    #[test]
    fn plan_rolls_within_surge_and_recreates_after_old_are_gone() {
        let d = json!({"spec": {"replicas": 4}});
        let s = strategy(&d, 4);
        assert_eq!((s.recreate, s.surge, s.unavailable), (false, 1, 1));
        // One pod over `want` (the surge) while the old ReplicaSet has 4.
        assert_eq!(new_target(s, 4, None, &[rs(4, 4, 4)]), 1);
        assert_eq!(new_target(s, 4, Some(&rs(1, 1, 0)), &[rs(4, 4, 4)]), 1);
        assert_eq!(new_target(s, 4, Some(&rs(1, 1, 0)), &[rs(3, 3, 3)]), 2);
        assert_eq!(new_target(s, 4, None, &[]), 4);
        let r = strategy(&json!({"spec": {"strategy": {"type": "Recreate"}}}), 4);
        assert_eq!((r.recreate, r.surge, r.unavailable), (true, 0, 4));
        assert_eq!(new_target(r, 4, None, &[rs(0, 1, 0)]), 0);
        assert_eq!(old_targets(r, 4, &rs(0, 0, 0), &[rs(4, 4, 4)]), vec![0]);
    }

    #[test]
    fn status_reports_progress_from_the_replicasets() {
        let d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}});
        let s = strategy(&d, 2);
        let done = status_for(&d, s, Some(&rs(2, 2, 2)), &[]);
        assert_eq!(done["observedGeneration"], 2);
        assert_eq!(done["availableReplicas"], 2);
        assert!(done.get("unavailableReplicas").is_none());
        assert_eq!(done["conditions"][0]["type"], "Available");
        assert_eq!(done["conditions"][0]["status"], "True");
        assert_eq!(done["conditions"][1]["reason"], "NewReplicaSetAvailable");
        let rolling = status_for(&d, s, Some(&rs(1, 1, 0)), &[rs(1, 1, 1)]);
        assert_eq!(rolling["updatedReplicas"], 1);
        assert_eq!(rolling["unavailableReplicas"], 1);
        assert_eq!(rolling["conditions"][1]["reason"], "ReplicaSetUpdated");
    }
}
