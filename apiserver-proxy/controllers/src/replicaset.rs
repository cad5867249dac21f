//! The ReplicaSet controller (upstream's `replicaset` controller): keeps
//! `spec.replicas` active pods matching the selector, created from the
//! template and owned by the ReplicaSet (controller reference), adopts
//! matching orphans, releases owned pods that stop matching, deletes extras
//! (unscheduled and not-ready first) and reports status.
//!
//! Cluster-aware: one watch over all clusters, reacting to ReplicaSets and
//! pods only; a short task per ReplicaSet being reconciled. Reads go to the
//! store (no cache), so there is no expectation bookkeeping: a reconcile
//! always sees the pods the previous one created.
//!
//! This controller must never touch a pod controlled by another owner, nor
//! a pod outside its ReplicaSet's cluster and namespace. Deleting a
//! ReplicaSet's pods when it is deleted is the garbage collector's job.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::podutil;
use super::runtime::{self, ControllerContext};
use super::runtime::{Change, ObjectKey};
use super::util::{self, tolerate};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::store::{ListOptions, Store, Target, WriteOptions};

/// Most pods created or deleted by one reconcile (upstream's burst).
const BURST: usize = 500;

/// Work of the controller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    /// Reconcile this ReplicaSet (cluster, namespace, name).
    ReplicaSet(String, String, String),
    /// Find ReplicaSets that may adopt this pod (cluster, namespace, name).
    Orphan(String, String, String),
}

struct Controller {
    store: Store,
    replicasets: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster of `ctx` (`None` when the
/// catalog lacks ReplicaSets or pods).
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        replicasets: ctx.catalog.get("apps", "v1", "replicasets")?.clone(),
        pods: ctx.catalog.get("", "v1", "pods")?.clone(),
    });
    Some(runtime::spawn_controller(
        &ctx.store,
        "replicasets",
        controller,
        interesting,
    ))
}

/// The work a change calls for, if any.
fn interesting(change: &Change<'_>) -> Option<Item> {
    let k = ObjectKey::parse(change.key()?)?;
    let id = |name: &str| {
        (
            k.cluster.to_string(),
            k.namespace.to_string(),
            name.to_string(),
        )
    };
    match k.segment {
        "apps/replicasets" => {
            let (c, ns, n) = id(k.name);
            Some(Item::ReplicaSet(c, ns, n))
        }
        "core/pods" => {
            let pod = change.object()?;
            match podutil::controller_ref(&pod) {
                Some(r) if r.kind == "ReplicaSet" && r.group() == "apps" => {
                    let (c, ns, n) = id(&r.name);
                    Some(Item::ReplicaSet(c, ns, n))
                }
                Some(_) => None,
                None if change.current().is_some()
                    && podutil::is_active(&pod)
                    && !meta::labels(&pod).is_empty() =>
                {
                    let (c, ns, n) = id(k.name);
                    Some(Item::Orphan(c, ns, n))
                }
                None => None,
            }
        }
        _ => None,
    }
}

/// What one reconcile does to a ReplicaSet's active pods.
#[derive(Debug, PartialEq, Eq)]
enum Scale {
    /// Create this many pods from the template.
    Create(usize),
    /// Delete this many (the first of the active pods sorted for deletion).
    Delete(usize),
    /// Nothing (enough pods, or the ReplicaSet is being deleted).
    Keep,
}

/// Whether `rs` with `active` active pods creates or deletes some, at most
/// [`BURST`] at a time.
fn plan(rs: &Value, active: usize) -> Scale {
    if meta::is_deleting(rs) {
        return Scale::Keep;
    }
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    if active < want {
        Scale::Create((want - active).min(BURST))
    } else if active > want {
        Scale::Delete((active - want).min(BURST))
    } else {
        Scale::Keep
    }
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, item: Item) -> Result<Option<Duration>, ApiError> {
        match item {
            Item::ReplicaSet(c, ns, name) => self.sync(&c, &ns, &name).await,
            Item::Orphan(c, ns, name) => self.find_adopters(&c, &ns, &name).await.map(|()| None),
        }
    }
}

impl Controller {
    /// An orphan pod changed: reconcile every ReplicaSet that selects it.
    async fn find_adopters(&self, cluster: &str, ns: &str, pod: &str) -> Result<(), ApiError> {
        let pods = Target {
            cluster,
            resource: &self.pods,
            namespace: Some(ns),
        };
        let pod = match self.store.get(&pods, pod).await {
            Ok(p) => p,
            Err(ApiError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if podutil::controller_ref(&pod).is_some() {
            return Ok(());
        }
        let rss = Target {
            cluster,
            resource: &self.replicasets,
            namespace: Some(ns),
        };
        let labels = meta::labels(&pod);
        for rs in self.store.list(&rss, &ListOptions::default()).await?.items {
            if meta::is_deleting(&rs) {
                continue;
            }
            if podutil::selector(&rs["spec"]["selector"])
                .is_some_and(|s| !s.is_empty() && s.matches(&labels))
            {
                // Inline: the adopting reconcile is cheap and rare.
                self.sync(cluster, ns, meta::name(&rs)).await?;
            }
        }
        Ok(())
    }

    /// Brings one ReplicaSet's pods to `spec.replicas` and writes its status.
    async fn sync(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, ApiError> {
        let rst = util::target(cluster, &self.replicasets, ns);
        let Some(rs) = util::get_opt(&self.store, &rst, name).await? else {
            return Ok(None);
        };
        let Some(sel) = podutil::selector(&rs["spec"]["selector"]).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let uid = meta::uid(&rs).to_string();
        let deleting = meta::is_deleting(&rs);
        let pt = util::target(cluster, &self.pods, ns);
        let mut active = Vec::new();
        // The first refused pod create (admission, validation), reported in
        // the ReplicaFailure condition as upstream.
        let mut create_error: Option<ApiError> = None;
        for pod in self.store.list(&pt, &ListOptions::default()).await?.items {
            let matches = sel.matches(&meta::labels(&pod));
            match podutil::controller_ref(&pod) {
                Some(r) if r.uid == uid => {
                    if matches || deleting {
                        if podutil::is_active(&pod) {
                            active.push(pod);
                        }
                    } else {
                        tolerate(self.set_controller(&pt, &pod, None).await)?;
                    }
                }
                Some(_) => {}
                None if matches && !deleting && podutil::is_active(&pod) => {
                    if let Some(w) = tolerate(self.set_controller(&pt, &pod, Some(&rs)).await)? {
                        active.push(w);
                    }
                }
                None => {}
            }
        }
        match plan(&rs, active.len()) {
            Scale::Create(n) => {
                let body = pod_from_template(&rs);
                let created = futures::future::join_all((0..n).map(|_| {
                    self.store
                        .create(&pt, body.clone(), WriteOptions::default())
                }))
                .await;
                for c in created {
                    match c {
                        Ok(w) => active.push(w.object),
                        // The namespace is going away: nothing to report.
                        Err(ApiError::Forbidden(m)) if m.contains(NAMESPACE_TERMINATING) => {}
                        // Refused by admission or invalid for pods: reported
                        // in status, retried with backoff (as upstream).
                        Err(e @ (ApiError::Forbidden(_) | ApiError::Invalid { .. })) => {
                            create_error.get_or_insert(e);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Scale::Delete(n) => {
                podutil::sort_for_deletion(&mut active);
                let extra: Vec<Value> = active.drain(..n).collect();
                util::delete_all(&self.store, &pt, &extra.iter().collect::<Vec<_>>()).await?;
            }
            Scale::Keep => {}
        }
        let (mut status, requeue) = status_for(&rs, &active, chrono::Utc::now());
        replica_failure(&mut status, create_error.as_ref());
        util::write_status(&self.store, &rst, &rs, &status).await?;
        match create_error {
            Some(e) => Err(e),
            None => Ok(requeue),
        }
    }

    /// Sets (adopt) or removes (release) the pod's controller reference to
    /// `rs`, if the pod is still as seen.
    async fn set_controller(
        &self,
        t: &Target<'_>,
        pod: &Value,
        rs: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let uid = meta::uid(pod).to_string();
        self.store
            .update_with(t, meta::name(pod), None, WriteOptions::default(), |old| {
                if meta::uid(old) != uid {
                    return Err(ApiError::Conflict {
                        subject: crate::error::Subject {
                            group: String::new(),
                            kind: "pods".into(),
                            name: meta::name(old).into(),
                        },
                        message: "the pod was replaced".into(),
                    });
                }
                let mut new = old.clone();
                let mut refs: Vec<Value> = old["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                match rs {
                    Some(rs) => {
                        if podutil::controller_ref(old).is_some() {
                            return Ok((old.clone(), Vec::new()));
                        }
                        refs.push(controller_ref_to(rs));
                    }
                    None => refs.retain(|r| r["controller"] != true),
                }
                meta::set(
                    &mut new,
                    "ownerReferences",
                    (!refs.is_empty()).then(|| json!(refs)),
                );
                Ok((new, Vec::new()))
            })
            .await
            .map(|w| w.object)
    }
}

/// The controller owner reference to ReplicaSet `rs`.
fn controller_ref_to(rs: &Value) -> Value {
    util::controller_ref_to(rs, "apps/v1", "ReplicaSet")
}

/// A new pod for `rs` from its template.
fn pod_from_template(rs: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let mut metadata = json!({
        "generateName": format!("{}-", meta::name(rs)),
        "ownerReferences": [controller_ref_to(rs)],
    });
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(field).filter(|v| !v.is_null()) {
            metadata[field] = v.clone();
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// Part of the message of a create refused in a terminating namespace.
const NAMESPACE_TERMINATING: &str = "because it is being terminated";

/// Upstream's `ReplicaFailure` condition: set (reason `FailedCreate`, the
/// error as message) when a pod create was refused, kept while refusals
/// continue, removed once creates succeed again.
fn replica_failure(status: &mut Value, create_error: Option<&ApiError>) {
    let mut conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let existing = conditions
        .iter()
        .position(|c| c["type"] == "ReplicaFailure");
    match (create_error, existing) {
        (Some(e), None) => conditions.push(json!({
            "type": "ReplicaFailure",
            "status": "True",
            "lastTransitionTime": meta::now(),
            "reason": "FailedCreate",
            "message": e.to_string(),
        })),
        (None, Some(i)) => {
            conditions.remove(i);
        }
        _ => return,
    }
    match status.as_object_mut() {
        Some(map) if conditions.is_empty() => {
            map.remove("conditions");
        }
        Some(map) => {
            map.insert("conditions".into(), conditions.into());
        }
        None => {}
    }
}

/// The status of `rs` given its active pods at `now`, and when to look
/// again (a ready pod becoming available after `minReadySeconds`).
fn status_for(
    rs: &Value,
    active: &[Value],
    now: chrono::DateTime<chrono::Utc>,
) -> (Value, Option<Duration>) {
    let template_labels = meta::labels(&rs["spec"]["template"]);
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let l = meta::labels(p);
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| podutil::is_ready(p)).count();
    let waits: Vec<i64> = active
        .iter()
        .filter_map(|p| podutil::until_available(p, min_ready, now))
        .collect();
    let available = waits.iter().filter(|w| **w == 0).count();
    let requeue = waits
        .iter()
        .filter(|w| **w > 0)
        .min()
        .map(|s| Duration::from_secs(*s as u64));
    let status = util::workload_status(
        rs,
        json!({"replicas": active.len()}),
        &[
            ("fullyLabeledReplicas", fully_labeled as i64),
            ("readyReplicas", ready as i64),
            ("availableReplicas", available as i64),
        ],
    );
    (status, requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> Value {
        json!({"metadata": {"name": "web", "uid": "u-rs", "generation": 3},
            "spec": {"replicas": 2, "minReadySeconds": 5,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    }

    #[test]
    fn plan_scales_within_the_burst_and_not_while_deleting() {
        assert_eq!(plan(&rs(), 0), Scale::Create(2));
        assert_eq!(plan(&rs(), 2), Scale::Keep);
        assert_eq!(plan(&rs(), 5), Scale::Delete(3));
        let big = json!({"spec": {"replicas": BURST + 7}});
        assert_eq!(plan(&big, 0), Scale::Create(BURST));
        let mut deleting = rs();
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(plan(&deleting, 0), Scale::Keep);
    }

    #[test]
    fn pods_from_the_template_are_owned() {
        let pod = pod_from_template(&rs());
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["labels"]["tier"], "fe");
        let r = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(r["uid"], "u-rs");
        assert_eq!(r["controller"], true);
        assert_eq!(r["blockOwnerDeletion"], true);
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
    }

    #[test]
    fn refused_creates_set_and_clear_replica_failure() {
        let refused = ApiError::Forbidden("pods \"web-\" is forbidden: no".into());
        let mut status = json!({"replicas": 0});
        replica_failure(&mut status, Some(&refused));
        let c = &status["conditions"][0];
        assert_eq!(c["type"], "ReplicaFailure");
        assert_eq!(c["reason"], "FailedCreate");
        assert_eq!(c["message"], "pods \"web-\" is forbidden: no");
        let kept = status.clone();
        replica_failure(&mut status, Some(&ApiError::Forbidden("other".into())));
        assert_eq!(status, kept, "the first failure is kept");
        replica_failure(&mut status, None);
        assert!(status.get("conditions").is_none());
    }

    #[test]
    fn status_counts() {
        let now = chrono::Utc::now();
        let long_ago = (now - chrono::Duration::seconds(60)).to_rfc3339();
        let just_now = now.to_rfc3339();
        let ready = |t: &str| {
            json!({"metadata": {"labels": {"app": "web", "tier": "fe"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}]}})
        };
        let pods = vec![
            ready(&long_ago),
            ready(&just_now),
            json!({"metadata": {"labels": {"app": "web"}}}),
        ];
        let (status, requeue) = status_for(&rs(), &pods, now);
        assert_eq!(status["replicas"], 3);
        assert_eq!(status["fullyLabeledReplicas"], 2);
        assert_eq!(status["readyReplicas"], 2);
        assert_eq!(status["availableReplicas"], 1);
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(requeue, Some(Duration::from_secs(5)));
        let (empty, none) = status_for(&rs(), &[], now);
        assert_eq!(empty, json!({"replicas": 0, "observedGeneration": 3}));
        assert_eq!(none, None);
    }
}
