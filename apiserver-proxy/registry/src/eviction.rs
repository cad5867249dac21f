//! The `pods/eviction` subresource (upstream's
//! `pkg/registry/core/pod/storage/eviction.go`): `POST` a policy/v1
//! `Eviction` to delete a pod only if its PodDisruptionBudget allows it.
//!
//! A pod that is Pending, finished or already being deleted, or that no
//! budget selects, is deleted at once; one selected by several budgets is
//! refused (500, as upstream); otherwise the budget's `disruptionsAllowed`
//! is decremented and the pod recorded in `disruptedPods` (one
//! compare-and-swap write of the budget's status, retried on conflict)
//! before the pod is deleted with the eviction's `deleteOptions`, or the
//! eviction is refused with 429 TooManyRequests. A not-ready pod is
//! evicted without touching the budget when the budget is already healthy
//! enough (`IfHealthyBudget`, the default) or always (`AlwaysAllow`).
//!
//! It owns no state: the disruption controller recomputes the budget's status and
//! expires `disruptedPods`.

use std::collections::BTreeMap;

use nestkube_api::pod;
use serde_json::{Value, json};

use super::catalog::Catalog;
use super::meta;
use super::store::{DeleteOptions, ListOptions, Store, Target};
use crate::error::ApiError;

/// Upstream's message for an eviction a budget refuses.
pub const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
/// Most entries of `status.disruptedPods` (upstream's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;
/// Attempts at the budget's compare-and-swap before giving up.
const MAX_RETRIES: usize = 5;

fn too_many_requests(cause: String) -> ApiError {
    ApiError::Other {
        code: 429,
        reason: "TooManyRequests",
        message: REFUSED.to_string(),
        causes: vec![cause],
    }
}

/// The eviction's `deleteOptions`.
fn delete_options(eviction: &Value) -> Result<DeleteOptions, ApiError> {
    let o = &eviction["deleteOptions"];
    let propagation = o["propagationPolicy"].as_str().map(str::to_string);
    if let Some(p) = &propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::BadRequest(format!(
            "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Orphan\", \"Background\", \"Foreground\""
        )));
    }
    Ok(DeleteOptions {
        grace_period_seconds: o["gracePeriodSeconds"].as_i64(),
        precondition_uid: o["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_resource_version: o["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        propagation,
        dry_run: o["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All")),
    })
}

/// Whether the pod may go regardless of budgets (upstream's `canIgnorePDB`).
fn can_ignore_budget(pod: &Value) -> bool {
    meta::is_deleting(pod)
        || matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded") | Some("Failed") | Some("Pending") | None
        )
}

/// Evicts pod `name` of `pods` (a namespaced target) as the body
/// `eviction` asks; returns the `Status` to answer with (201).
pub async fn evict(
    store: &Store,
    catalog: &Catalog,
    pods: &Target<'_>,
    name: &str,
    eviction: Value,
) -> Result<Value, ApiError> {
    if let Some(n) = eviction["metadata"]["name"].as_str()
        && n != name
    {
        return Err(ApiError::BadRequest(
            "name in URL does not match name in Eviction object".into(),
        ));
    }
    let opts = delete_options(&eviction)?;
    let budgets = catalog
        .get("policy", "v1", "poddisruptionbudgets")
        .ok_or(ApiError::PathNotFound)?;
    let bt = Target {
        cluster: pods.cluster,
        resource: budgets,
        namespace: pods.namespace,
    };
    for _ in 0..MAX_RETRIES {
        let pod = store.get(pods, name).await?;
        if can_ignore_budget(&pod) {
            return delete(store, pods, name, &opts).await;
        }
        let labels = meta::labels(&pod);
        let matching: Vec<Value> = store
            .list(&bt, &ListOptions::default())
            .await?
            .items
            .into_iter()
            .filter(|b| selects(b, &labels))
            .collect();
        let budget = match matching.as_slice() {
            [] => return delete(store, pods, name, &opts).await,
            [one] => one,
            _ => {
                return Err(ApiError::Internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
                        .into(),
                ));
            }
        };
        let status = &budget["status"];
        let int = |f: &str| status[f].as_i64().unwrap_or(0);
        if !pod::is_ready(&pod) {
            let policy = budget["spec"]["unhealthyPodEvictionPolicy"]
                .as_str()
                .unwrap_or("IfHealthyBudget");
            let healthy_enough =
                int("currentHealthy") >= int("desiredHealthy") && int("desiredHealthy") > 0;
            if policy == "AlwaysAllow" || healthy_enough {
                return delete(store, pods, name, &opts).await;
            }
        }
        let bname = meta::name(budget);
        if int("observedGeneration") < budget["metadata"]["generation"].as_i64().unwrap_or(0) {
            return Err(too_many_requests(format!(
                "The disruption budget {bname} is still being processed by the server."
            )));
        }
        let allowed = int("disruptionsAllowed");
        if allowed < 0 {
            return Err(ApiError::Forbidden(
                "pdb disruptions allowed is negative".into(),
            ));
        }
        if status["disruptedPods"]
            .as_object()
            .is_some_and(|m| m.len() > MAX_DISRUPTED_PODS)
        {
            return Err(ApiError::Forbidden(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
                    .into(),
            ));
        }
        if allowed == 0 {
            return Err(too_many_requests(format!(
                "The disruption budget {bname} needs {} healthy pods and has {} currently",
                int("desiredHealthy"),
                int("currentHealthy")
            )));
        }
        if opts.dry_run {
            return delete(store, pods, name, &opts).await;
        }
        let mut new = budget.clone();
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if allowed == 1 {
            for c in new["status"]["conditions"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if c["type"] == "DisruptionAllowed" {
                    c["status"] = json!("False");
                    c["reason"] = json!("InsufficientPods");
                    c["lastTransitionTime"] = json!(meta::now());
                }
            }
        }
        if !new["status"]["disruptedPods"].is_object() {
            new["status"]["disruptedPods"] = json!({});
        }
        new["status"]["disruptedPods"][name] = json!(meta::now());
        // Compare-and-swap on the budget as read (its resourceVersion).
        match store
            .update(&bt, bname, Some("status"), new, Default::default())
            .await
        {
            Ok(_) => return delete(store, pods, name, &opts).await,
            Err(ApiError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(too_many_requests(
        "the disruption budget changed too often; try again".into(),
    ))
}

async fn delete(
    store: &Store,
    pods: &Target<'_>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    store.delete(pods, name, opts).await?;
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Success", "code": 201}))
}

/// Whether a budget's selector selects pods with `labels` (policy/v1: an
/// empty selector selects every pod, a missing one none).
pub fn selects(budget: &Value, labels: &BTreeMap<String, String>) -> bool {
    let sel = &budget["spec"]["selector"];
    !sel.is_null() && pod::selector(sel).is_some_and(|s| s.matches(labels))
}
