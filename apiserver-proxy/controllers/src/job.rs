//! The Job controller (upstream's `job` controller): runs pods from a Job's
//! template until `completions` of them succeed (NonIndexed) or every index
//! in `[0, completions)` has a succeeded pod (Indexed), at most
//! `parallelism` at a time; fails the Job after more than `backoffLimit`
//! failed pods or after `activeDeadlineSeconds`; honours `suspend`; and
//! deletes a finished Job after `ttlSecondsAfterFinished` (upstream's
//! TTL-after-finished controller).
//!
//! Cluster-aware: one watch over all clusters, reacting to Jobs and to pods
//! controlled by a Job; a short task per Job being reconciled, a timer only
//! for a pending deadline or TTL. Reads go to the store (no cache).
//!
//! Simplifications: terminal pods are counted from the pods that exist (no
//! `job-tracking` finalizer), so `uncountedTerminatedPods` is always empty
//! and the counters never go down; failed pods are replaced at once (no
//! exponential delay); `podFailurePolicy`, `backoffLimitPerIndex` and
//! `successPolicy` are not evaluated. This controller never touches a pod
//! it does not control, nor a pod outside its Job's cluster and namespace.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::podutil;
use super::runtime::{self, ControllerContext};
use super::util::{self, Item, fmt_time, parse_time, tolerate};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::store::{DeleteOptions, ListOptions, Store, Target, WriteOptions};

/// Most pods created or deleted by one reconcile.
const BURST: usize = 500;
/// The completion index annotation and label of Indexed Jobs' pods.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

struct Controller {
    store: Store,
    jobs: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster of `ctx` (`None` when the
/// catalog lacks Jobs or pods).
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        jobs: ctx.catalog.get("batch", "v1", "jobs")?.clone(),
        pods: ctx.catalog.get("", "v1", "pods")?.clone(),
    });
    Some(runtime::spawn_controller(
        &ctx.store,
        "jobs",
        controller,
        |change| util::self_or_controller(change, "batch/jobs", "core/pods", "batch", "Job"),
    ))
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, (cluster, ns, name): Item) -> runtime::Outcome<ApiError> {
        self.sync(&cluster, &ns, &name).await
    }
}

/// The condition of `type_` with status True, if any.
fn true_condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

/// When the Job finished (Complete or Failed), if it did.
pub fn finished_at(job: &Value) -> Option<DateTime<Utc>> {
    ["Complete", "Failed"].iter().find_map(|t| {
        let c = true_condition(job, t)?;
        parse_time(&job["status"]["completionTime"])
            .or_else(|| parse_time(&c["lastTransitionTime"]))
            .or_else(|| Some(Utc::now()))
    })
}

/// Whether the Job finished, and how (`Complete` or `Failed`).
pub fn finished(job: &Value) -> Option<&'static str> {
    ["Complete", "Failed"]
        .into_iter()
        .find(|t| true_condition(job, t).is_some())
}

fn condition(type_: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now})
}

/// Sets (or replaces) condition `c` in `conds`, keeping the transition
/// time when the status does not change.
fn set_condition(conds: &mut Vec<Value>, c: Value) {
    if let Some(old) = conds.iter_mut().find(|o| o["type"] == c["type"]) {
        if old["status"] == c["status"] && old["reason"] == c["reason"] {
            return;
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

/// The completion index of an Indexed Job's pod.
fn pod_index(pod: &Value) -> Option<i64> {
    pod["metadata"]["annotations"][COMPLETION_INDEX]
        .as_str()
        .or_else(|| pod["metadata"]["labels"][COMPLETION_INDEX].as_str())?
        .parse()
        .ok()
}

/// Upstream's compressed interval format of completed indexes ("0-2,5").
pub fn format_indexes(idx: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = idx.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The controller owner reference to Job `job`.
fn controller_ref_to(job: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta::name(job),
        "uid": meta::uid(job),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A new pod for `job` from its template (with its completion index for
/// Indexed Jobs).
pub fn pod_from_template(job: &Value, index: Option<i64>) -> Value {
    let template = &job["spec"]["template"];
    let name = meta::name(job);
    let mut metadata = json!({
        "generateName": match index {
            Some(i) => format!("{name}-{i}-"),
            None => format!("{name}-"),
        },
        "ownerReferences": [controller_ref_to(job)],
    });
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(field).filter(|v| !v.is_null()) {
            metadata[field] = v.clone();
        }
    }
    if metadata["labels"].is_null() {
        metadata["labels"] = json!({});
    }
    metadata["labels"]["batch.kubernetes.io/job-name"] = json!(name);
    let mut spec = template["spec"].clone();
    if let Some(i) = index {
        if metadata["annotations"].is_null() {
            metadata["annotations"] = json!({});
        }
        metadata["annotations"][COMPLETION_INDEX] = json!(i.to_string());
        metadata["labels"][COMPLETION_INDEX] = json!(i.to_string());
        if spec["hostname"].as_str().is_none_or(str::is_empty) {
            spec["hostname"] = json!(format!("{name}-{i}"));
        }
        let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
        for list in ["containers", "initContainers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                match c["env"].as_array_mut() {
                    Some(e) => {
                        if !e.iter().any(|v| v["name"] == "JOB_COMPLETION_INDEX") {
                            e.push(env.clone())
                        }
                    }
                    None => c["env"] = json!([env.clone()]),
                }
            }
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// The Job's pods, classified.
#[derive(Default)]
struct Pods {
    active: Vec<Value>,
    succeeded: Vec<Value>,
    failed: Vec<Value>,
    terminating: usize,
}

/// What to do with a Job's pods (a pure plan from the Job and its pods).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create (`Some(index)` for Indexed Jobs).
    pub create: Vec<Option<i64>>,
    /// Names of active pods to delete.
    pub delete: Vec<String>,
    /// The new status.
    pub status: Value,
    /// When to look again (deadline, TTL).
    pub requeue: Option<Duration>,
}

fn plan(job: &Value, pods: &Pods, now: DateTime<Utc>) -> Plan {
    let spec = &job["spec"];
    let old = &job["status"];
    let now_s = fmt_time(now);
    let indexed = spec["completionMode"] == "Indexed";
    let completions = spec["completions"].as_i64();
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
    let suspended = spec["suspend"].as_bool() == Some(true);
    let mut conds: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();

    let succeeded_idx: BTreeSet<i64> = pods
        .succeeded
        .iter()
        .filter_map(pod_index)
        .filter(|i| completions.is_some_and(|c| *i < c) && *i >= 0)
        .collect();
    let succeeded = (pods.succeeded.len() as i64).max(old["succeeded"].as_i64().unwrap_or(0));
    let failed = (pods.failed.len() as i64).max(old["failed"].as_i64().unwrap_or(0));
    let mut p = Plan::default();
    let mut start_time = old["startTime"].clone();
    let mut completion_time = old["completionTime"].clone();

    let complete = if indexed {
        completions.is_some_and(|c| succeeded_idx.len() as i64 >= c)
    } else {
        match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && pods.active.is_empty(),
        }
    };
    let deadline = spec["activeDeadlineSeconds"]
        .as_i64()
        .zip(parse_time(&start_time))
        .map(|(s, t)| t + chrono::Duration::seconds(s));
    let failure = if failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if deadline.is_some_and(|d| d <= now) && !suspended {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };

    if let Some((reason, message)) = failure.filter(|_| !complete) {
        set_condition(
            &mut conds,
            condition("FailureTarget", reason, message, &now_s),
        );
        set_condition(&mut conds, condition("Failed", reason, message, &now_s));
        p.delete = pods
            .active
            .iter()
            .map(|p| meta::name(p).to_string())
            .collect();
    } else if complete {
        set_condition(
            &mut conds,
            condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                &now_s,
            ),
        );
        set_condition(
            &mut conds,
            condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                &now_s,
            ),
        );
        if completion_time.is_null() {
            completion_time = json!(now_s);
        }
        p.delete = pods
            .active
            .iter()
            .map(|p| meta::name(p).to_string())
            .collect();
    } else if suspended {
        set_condition(
            &mut conds,
            json!({"type": "Suspended", "status": "True", "reason": "JobSuspended",
                "message": "Job suspended", "lastProbeTime": now_s, "lastTransitionTime": now_s}),
        );
        start_time = Value::Null;
        p.delete = pods
            .active
            .iter()
            .map(|p| meta::name(p).to_string())
            .collect();
    } else {
        if conds
            .iter()
            .any(|c| c["type"] == "Suspended" && c["status"] == "True")
        {
            set_condition(
                &mut conds,
                json!({"type": "Suspended", "status": "False", "reason": "JobResumed",
                    "message": "Job resumed", "lastProbeTime": now_s, "lastTransitionTime": now_s}),
            );
        }
        if start_time.is_null() {
            start_time = json!(now_s);
            if let Some(s) = spec["activeDeadlineSeconds"].as_i64() {
                p.requeue = Some(Duration::from_secs(s.max(0) as u64 + 1));
            }
        } else if let Some(d) = deadline {
            p.requeue = Some(Duration::from_secs(
                (d - now).num_seconds().max(0) as u64 + 1,
            ));
        }
        if indexed {
            let c = completions.unwrap_or(0);
            let active_idx: BTreeSet<i64> = pods.active.iter().filter_map(pod_index).collect();
            // Duplicates of an index, or indexes out of range, go.
            let mut seen = BTreeSet::new();
            for pod in &pods.active {
                match pod_index(pod) {
                    Some(i) if i < c && !succeeded_idx.contains(&i) && seen.insert(i) => {}
                    _ => p.delete.push(meta::name(pod).to_string()),
                }
            }
            let running = seen.len() as i64;
            let room = (parallelism - running).max(0) as usize;
            p.create = (0..c)
                .filter(|i| !succeeded_idx.contains(i) && !active_idx.contains(i))
                .take(room.min(BURST))
                .map(Some)
                .collect();
        } else {
            let want = match completions {
                Some(c) => parallelism.min((c - succeeded).max(0)),
                None if succeeded > 0 => 0,
                None => parallelism,
            };
            let active = pods.active.len() as i64;
            if active < want {
                p.create = vec![None; ((want - active) as usize).min(BURST)];
            } else if active > want {
                let mut extra = pods.active.clone();
                podutil::sort_for_deletion(&mut extra);
                p.delete = extra
                    .iter()
                    .take(((active - want) as usize).min(BURST))
                    .map(|p| meta::name(p).to_string())
                    .collect();
            }
        }
    }

    let active_after = (pods.active.len() + p.create.len()).saturating_sub(p.delete.len());
    let mut status = json!({
        "ready": pods.active.iter().filter(|p| podutil::is_ready(p)).count(),
        "terminating": pods.terminating + p.delete.len(),
        "uncountedTerminatedPods": {},
    });
    for (field, v) in [
        ("active", active_after as i64),
        ("succeeded", succeeded),
        ("failed", failed),
    ] {
        if v > 0 {
            status[field] = json!(v);
        }
    }
    if !start_time.is_null() {
        status["startTime"] = start_time;
    }
    if !completion_time.is_null() {
        status["completionTime"] = completion_time;
    }
    if !conds.is_empty() {
        status["conditions"] = json!(conds);
    }
    if indexed {
        let done = format_indexes(&succeeded_idx);
        if !done.is_empty() {
            status["completedIndexes"] = json!(done);
        }
    }
    p.status = status;
    p
}

impl Controller {
    async fn sync(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, ApiError> {
        let jt = Target {
            cluster,
            resource: &self.jobs,
            namespace: Some(ns),
        };
        let job = match self.store.get(&jt, name).await {
            Ok(j) => j,
            Err(ApiError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if meta::is_deleting(&job) {
            return Ok(None);
        }
        let pt = Target {
            cluster,
            resource: &self.pods,
            namespace: Some(ns),
        };
        let uid = meta::uid(&job).to_string();
        let mut pods = Pods::default();
        for pod in self.store.list(&pt, &ListOptions::default()).await?.items {
            if podutil::controller_ref(&pod).is_none_or(|r| r.uid != uid) {
                continue;
            }
            match pod["status"]["phase"].as_str() {
                Some("Succeeded") => pods.succeeded.push(pod),
                Some("Failed") => pods.failed.push(pod),
                _ if meta::is_deleting(&pod) => pods.terminating += 1,
                _ => pods.active.push(pod),
            }
        }
        if finished(&job).is_some() {
            // Leftover active pods of a finished Job go; then the TTL.
            self.delete_pods(
                &pt,
                &pods
                    .active
                    .iter()
                    .map(|p| meta::name(p).to_string())
                    .collect::<Vec<_>>(),
            )
            .await?;
            return self.expire(&jt, &job).await;
        }
        let mut p = plan(&job, &pods, Utc::now());
        self.delete_pods(&pt, &p.delete).await?;
        if !p.create.is_empty() {
            let created = futures::future::join_all(p.create.iter().map(|i| {
                self.store
                    .create(&pt, pod_from_template(&job, *i), WriteOptions::default())
            }))
            .await;
            let mut refused = 0;
            for c in created {
                match c {
                    Ok(_) => {}
                    // The namespace is going away, or the template is
                    // invalid for pods: not active, nothing to retry.
                    Err(ApiError::Forbidden(_)) | Err(ApiError::Invalid { .. }) => refused += 1,
                    Err(e) => return Err(e),
                }
            }
            if refused > 0 {
                let active = p.status["active"].as_i64().unwrap_or(0) - refused;
                match p.status.as_object_mut() {
                    Some(o) if active <= 0 => {
                        o.remove("active");
                    }
                    Some(o) => {
                        o.insert("active".into(), json!(active));
                    }
                    None => {}
                }
            }
        }
        if job.get("status") != Some(&p.status) {
            let status = p.status.clone();
            let written = tolerate(
                self.store
                    .update_with(&jt, name, Some("status"), WriteOptions::default(), |old| {
                        if meta::uid(old) != uid {
                            return Err(ApiError::NotFound(crate::error::Subject {
                                group: "batch".into(),
                                kind: "jobs".into(),
                                name: meta::name(old).into(),
                            }));
                        }
                        let mut new = old.clone();
                        new["status"] = status.clone();
                        Ok((new, Vec::new()))
                    })
                    .await,
            )?;
            if let Some(w) = written
                && finished(&w.object).is_some()
            {
                return self.expire(&jt, &w.object).await;
            }
        }
        Ok(p.requeue)
    }

    async fn delete_pods(&self, pt: &Target<'_>, names: &[String]) -> Result<(), ApiError> {
        let deletes = names
            .iter()
            .map(|n| async move { self.store.delete(pt, n, &DeleteOptions::default()).await });
        for d in futures::future::join_all(deletes).await {
            tolerate(d)?;
        }
        Ok(())
    }

    /// `ttlSecondsAfterFinished`: deletes the finished Job when its time has
    /// come (its pods follow through the garbage collector), else asks to
    /// look again then.
    async fn expire(&self, jt: &Target<'_>, job: &Value) -> Result<Option<Duration>, ApiError> {
        let (Some(ttl), Some(at)) = (
            job["spec"]["ttlSecondsAfterFinished"].as_i64(),
            finished_at(job),
        ) else {
            return Ok(None);
        };
        let due = at + chrono::Duration::seconds(ttl);
        let now = Utc::now();
        if due > now {
            let wait = (due - now).to_std().unwrap_or_default();
            return Ok(Some(wait + Duration::from_millis(10)));
        }
        let opts = DeleteOptions {
            precondition_uid: Some(meta::uid(job).to_string()),
            propagation: Some("Background".into()),
            ..Default::default()
        };
        tolerate(self.store.delete(jt, meta::name(job), &opts).await)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(extra: Value) -> Value {
        let mut j = json!({"metadata": {"name": "pi", "uid": "u-job"},
            "spec": {"parallelism": 2, "completions": 3, "backoffLimit": 1,
                "completionMode": "NonIndexed", "suspend": false,
                "template": {"metadata": {"labels": {"batch.kubernetes.io/job-name": "pi"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            j["spec"][k] = v.clone();
        }
        j
    }

    fn pod(name: &str, phase: &str, index: Option<i64>) -> Value {
        let mut p = json!({"metadata": {"name": name}, "status": {"phase": phase}});
        if let Some(i) = index {
            p["metadata"]["annotations"] = json!({COMPLETION_INDEX: i.to_string()});
        }
        p
    }

    #[test]
    fn creates_up_to_parallelism_then_completes() {
        let now = Utc::now();
        let p = plan(&job(json!({})), &Pods::default(), now);
        assert_eq!(p.create.len(), 2);
        assert_eq!(p.status["active"], 2);
        assert!(p.status["startTime"].is_string());
        let pods = Pods {
            active: vec![pod("a", "Running", None)],
            succeeded: vec![pod("b", "Succeeded", None), pod("c", "Succeeded", None)],
            ..Default::default()
        };
        let p = plan(&job(json!({})), &pods, now);
        assert!(p.create.is_empty() && p.delete.is_empty());
        let pods = Pods {
            succeeded: vec![
                pod("a", "Succeeded", None),
                pod("b", "Succeeded", None),
                pod("c", "Succeeded", None),
            ],
            ..Default::default()
        };
        let p = plan(&job(json!({})), &pods, now);
        let types: Vec<&Value> = p.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["type"])
            .collect();
        assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
        assert_eq!(p.status["succeeded"], 3);
        assert!(p.status["completionTime"].is_string());
    }

    #[test]
    fn backoff_limit_fails_the_job() {
        let pods = Pods {
            active: vec![pod("a", "Running", None)],
            failed: vec![pod("b", "Failed", None), pod("c", "Failed", None)],
            ..Default::default()
        };
        let p = plan(&job(json!({})), &pods, Utc::now());
        assert_eq!(p.delete, ["a"]);
        let c = &p.status["conditions"];
        assert_eq!(c[0]["type"], "FailureTarget");
        assert_eq!(c[1]["type"], "Failed");
        assert_eq!(c[1]["reason"], "BackoffLimitExceeded");
        assert_eq!(p.status["failed"], 2);
    }

    #[test]
    fn indexed_jobs_fill_missing_indexes() {
        let j = job(json!({"completionMode": "Indexed", "parallelism": 3, "completions": 4}));
        let pods = Pods {
            active: vec![pod("a", "Running", Some(1))],
            succeeded: vec![pod("b", "Succeeded", Some(0))],
            ..Default::default()
        };
        let p = plan(&j, &pods, Utc::now());
        assert_eq!(p.create, [Some(2), Some(3)]);
        assert_eq!(p.status["completedIndexes"], "0");
        let pod = pod_from_template(&j, Some(2));
        assert_eq!(pod["metadata"]["generateName"], "pi-2-");
        assert_eq!(pod["metadata"]["labels"][COMPLETION_INDEX], "2");
        assert_eq!(pod["metadata"]["annotations"][COMPLETION_INDEX], "2");
        assert_eq!(pod["spec"]["hostname"], "pi-2");
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0]["name"],
            "JOB_COMPLETION_INDEX"
        );
        let mut set = BTreeSet::from([0, 1, 2, 5, 7, 8]);
        assert_eq!(format_indexes(&set), "0-2,5,7-8");
        set.clear();
        assert_eq!(format_indexes(&set), "");
    }

    #[test]
    fn suspended_jobs_delete_their_pods() {
        let pods = Pods {
            active: vec![pod("a", "Running", None)],
            ..Default::default()
        };
        let p = plan(&job(json!({"suspend": true})), &pods, Utc::now());
        assert_eq!(p.delete, ["a"]);
        assert!(p.create.is_empty());
        assert_eq!(p.status["conditions"][0]["reason"], "JobSuspended");
    }
}
