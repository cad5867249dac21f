//! Quota evaluation (upstream's `pkg/quota/v1/evaluator`): what an object
//! counts towards a ResourceQuota — `pods`, `services`, `configmaps`,
//! `secrets`, `persistentvolumeclaims`, `replicationcontrollers`,
//! `resourcequotas`, `services.loadbalancers`, `services.nodeports`,
//! `count/<resource>[.<group>]`, the pods' `requests.cpu`/`requests.memory`
//! (also `cpu`/`memory`) and `limits.cpu`/`limits.memory`, and claims'
//! `requests.storage` — whether a quota's scopes select it, and a
//! namespace's current usage. Shared by quota admission
//! ([`super::resourcequota`]), the LimitRanger and the ResourceQuota
//! controller.
//!
//! Reads only (through [`ReadOnlyStore`]); never writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::kinds::quantity::{self, Nanos};
use crate::registry::store::{ListOptions, Target};

const ONE: Nanos = 1_000_000_000;

/// Formats an amount of resource `name` as upstream would print it
/// (counts as integers, cpu in cores or millicores, memory and storage in
/// the largest exact binary unit).
pub fn format(name: &str, n: Nanos) -> String {
    let is_bytes = name.ends_with("memory") || name.ends_with("storage");
    if is_bytes && n % ONE == 0 && n != 0 {
        let bytes = n / ONE;
        for (unit, size) in [
            ("Ti", 1i128 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if bytes % size == 0 {
                return format!("{}{unit}", bytes / size);
            }
        }
        return bytes.to_string();
    }
    if n % ONE == 0 {
        (n / ONE).to_string()
    } else if n % 1_000_000 == 0 {
        format!("{}m", n / 1_000_000)
    } else {
        format!("{n}n")
    }
}

fn q(v: &Value) -> Nanos {
    v.as_str()
        .and_then(quantity::parse)
        .or_else(|| v.as_i64().map(|i| i as Nanos * ONE))
        .or_else(|| v.as_f64().map(|f| (f * ONE as f64) as Nanos))
        .unwrap_or(0)
}

/// A pod's effective `requests` or `limits` (`which`) of `resource`:
/// the containers' sum, at least each init container's (upstream's
/// `PodRequests`), plus the pod overhead.
pub fn pod_amount(pod: &Value, which: &str, resource: &str) -> Nanos {
    let spec = &pod["spec"];
    let of = |c: &Value| q(&c["resources"][which][resource]);
    let sum: Nanos = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(of)
        .sum();
    let init = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    sum.max(init) + q(&spec["overhead"][resource])
}

/// Whether a pod still counts against quota (not finished, not deleted).
fn pod_counts(pod: &Value) -> bool {
    nestkube_api::pod::is_active(pod)
}

/// What object `obj` of resource `r` adds to each of the quota resources
/// `names` (upstream's evaluators' `Usage`).
pub fn object_usage(r: &ResourceInfo, obj: &Value, names: &[String]) -> BTreeMap<String, Nanos> {
    let mut out = BTreeMap::new();
    let core = r.group.is_empty();
    let is = |res: &str| core && r.resource == res;
    if is("pods") && !pod_counts(obj) {
        return out;
    }
    let count_key = if core {
        format!("count/{}", r.resource)
    } else {
        format!("count/{}.{}", r.resource, r.group)
    };
    for name in names {
        let n: Nanos = match name.as_str() {
            n if n == count_key => ONE,
            "pods"
            | "services"
            | "configmaps"
            | "secrets"
            | "persistentvolumeclaims"
            | "replicationcontrollers"
            | "resourcequotas"
                if is(name) =>
            {
                ONE
            }
            "services.loadbalancers" if is("services") => {
                ONE * (obj["spec"]["type"] == "LoadBalancer") as Nanos
            }
            "services.nodeports" if is("services") => {
                let typed = matches!(
                    obj["spec"]["type"].as_str(),
                    Some("NodePort" | "LoadBalancer")
                );
                ONE * if typed {
                    obj["spec"]["ports"].as_array().map_or(0, |p| p.len()) as Nanos
                } else {
                    0
                }
            }
            "requests.cpu" | "cpu" if is("pods") => pod_amount(obj, "requests", "cpu"),
            "requests.memory" | "memory" if is("pods") => pod_amount(obj, "requests", "memory"),
            "limits.cpu" if is("pods") => pod_amount(obj, "limits", "cpu"),
            "limits.memory" if is("pods") => pod_amount(obj, "limits", "memory"),
            "requests.storage" if is("persistentvolumeclaims") => {
                q(&obj["spec"]["resources"]["requests"]["storage"])
            }
            _ => 0,
        };
        if n != 0 {
            out.insert(name.clone(), n);
        }
    }
    out
}

/// The resource a quota name counts (`pods` -> pods, `count/deployments.apps`
/// -> deployments.apps, `requests.cpu` -> pods).
fn counted_resource<'c>(
    resources: &'c [Arc<ResourceInfo>],
    name: &str,
) -> Option<&'c Arc<ResourceInfo>> {
    let (group, resource) = match name.strip_prefix("count/") {
        Some(rest) => match rest.split_once('.') {
            Some((res, group)) => (group, res),
            None => ("", rest),
        },
        None => match name {
            "services.loadbalancers" | "services.nodeports" => ("", "services"),
            "requests.storage" => ("", "persistentvolumeclaims"),
            n if n.contains("cpu") || n.contains("memory") => ("", "pods"),
            n => ("", n),
        },
    };
    // The preferred version comes first.
    resources
        .iter()
        .find(|r| r.group == group && r.resource == resource)
}

/// Whether `obj` of resource `r` is in the scope of `quota` (`spec.scopes`
/// and `spec.scopeSelector`; every scope must match). Scopes concern pods
/// only: `Terminating`/`NotTerminating` (`activeDeadlineSeconds`),
/// `BestEffort`/`NotBestEffort` (no container requests or limits), and
/// `PriorityClass` (`priorityClassName`, with the selector's operators).
pub fn in_scope(quota: &Value, r: &ResourceInfo, obj: &Value) -> bool {
    let spec = &quota["spec"];
    let mut scopes: Vec<(String, String, Vec<String>)> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s.as_str()?.to_string(), "Exists".to_string(), Vec::new())))
        .collect();
    for e in spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let values = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        scopes.push((
            e["scopeName"].as_str().unwrap_or("").to_string(),
            e["operator"].as_str().unwrap_or("").to_string(),
            values,
        ));
    }
    if scopes.is_empty() {
        return true;
    }
    if !(r.group.is_empty() && r.resource == "pods") {
        return false;
    }
    let pod = &obj["spec"];
    let terminating = pod["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|s| s >= 0);
    let best_effort = ["initContainers", "containers"].iter().all(|list| {
        pod[*list].as_array().into_iter().flatten().all(|c| {
            ["requests", "limits"]
                .iter()
                .all(|w| c["resources"][*w].as_object().is_none_or(|m| m.is_empty()))
        })
    });
    let priority = pod["priorityClassName"].as_str().filter(|p| !p.is_empty());
    scopes
        .iter()
        .all(|(scope, op, values)| match scope.as_str() {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort,
            "NotBestEffort" => !best_effort,
            "PriorityClass" => match op.as_str() {
                "In" => priority.is_some_and(|p| values.iter().any(|v| v == p)),
                "NotIn" => priority.is_none_or(|p| !values.iter().any(|v| v == p)),
                "Exists" => priority.is_some(),
                "DoesNotExist" => priority.is_none(),
                _ => false,
            },
            _ => false,
        })
}

/// The current usage of quota resources `names` of `quota` in namespace
/// `ns` of `cluster`, counted from the objects in its scope ([`in_scope`],
/// each resource listed once);
/// `resources` are the served ones, preferred versions first
/// ([`served`]).
pub async fn usage(
    store: &ReadOnlyStore<'_>,
    resources: &[Arc<ResourceInfo>],
    (cluster, ns): (&str, &str),
    quota: &Value,
    names: &[String],
) -> Result<BTreeMap<String, Nanos>, ApiError> {
    let mut used: BTreeMap<String, Nanos> = names.iter().map(|n| (n.clone(), 0)).collect();
    let mut by_resource: BTreeMap<String, (Arc<ResourceInfo>, Vec<String>)> = BTreeMap::new();
    for n in names {
        if let Some(r) = counted_resource(resources, n) {
            by_resource
                .entry(r.storage_segment.clone())
                .or_insert_with(|| (r.clone(), Vec::new()))
                .1
                .push(n.clone());
        }
    }
    for (r, keys) in by_resource.values() {
        let t = Target {
            cluster,
            resource: r,
            namespace: Some(ns),
        };
        let items = store.list(&t, &ListOptions::default()).await?.items;
        for obj in items.iter().filter(|o| in_scope(quota, r, o)) {
            for (k, v) in object_usage(r, obj, keys) {
                *used.entry(k).or_default() += v;
            }
        }
    }
    Ok(used)
}

/// The resources `cluster` serves, preferred versions first: the built-ins
/// and its custom resources (what [`usage`] counts).
pub fn served(catalog: &Catalog, cluster: &str) -> Vec<Arc<ResourceInfo>> {
    catalog.resources_in(cluster)
}

/// The names a quota limits (`spec.hard`'s keys).
pub fn hard_names(quota: &Value) -> Vec<String> {
    quota["spec"]["hard"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_like_upstream() {
        assert_eq!(format("pods", 3 * ONE), "3");
        assert_eq!(format("requests.cpu", 1500 * 1_000_000), "1500m");
        assert_eq!(format("limits.cpu", 2 * ONE), "2");
        assert_eq!(format("requests.memory", (256 << 20) * ONE), "256Mi");
        assert_eq!(format("requests.memory", 0), "0");
    }

    #[test]
    fn pod_requests_and_counts() {
        let catalog = Catalog::builtin().unwrap();
        let pods = catalog.get("", "v1", "pods").unwrap();
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": "250m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}}]}});
        let names: Vec<String> = [
            "pods",
            "requests.cpu",
            "limits.cpu",
            "requests.memory",
            "count/pods",
            "services",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let u = object_usage(pods, &pod, &names);
        assert_eq!(u["pods"], ONE);
        assert_eq!(u["count/pods"], ONE);
        assert_eq!(format("requests.cpu", u["requests.cpu"]), "2");
        assert_eq!(format("limits.cpu", u["limits.cpu"]), "1");
        assert_eq!(format("requests.memory", u["requests.memory"]), "64Mi");
        assert!(!u.contains_key("services"));
        let done = json!({"spec": {}, "status": {"phase": "Succeeded"}});
        assert!(object_usage(pods, &done, &names).is_empty());
        let deploys = catalog.get("apps", "v1", "deployments").unwrap();
        let u = object_usage(deploys, &json!({}), &["count/deployments.apps".to_string()]);
        assert_eq!(u["count/deployments.apps"], ONE);
        let all = served(&catalog, "root");
        assert!(counted_resource(&all, "count/deployments.apps").is_some());
        assert!(counted_resource(&all, "requests.cpu").is_some_and(|r| r.resource == "pods"));
    }

    #[test]
    fn scopes() {
        let catalog = Catalog::builtin().unwrap();
        let pods = catalog.get("", "v1", "pods").unwrap();
        let cms = catalog.get("", "v1", "configmaps").unwrap();
        let best = json!({"spec": {"containers": [{"name": "c"}]}});
        let burst = json!({"spec": {"priorityClassName": "high", "activeDeadlineSeconds": 10,
            "containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        let q = |spec: Value| json!({"spec": spec});
        let be = q(json!({"scopes": ["BestEffort"]}));
        assert!(in_scope(&be, pods, &best) && !in_scope(&be, pods, &burst));
        assert!(!in_scope(&be, cms, &json!({})));
        let term = q(json!({"scopes": ["Terminating", "NotBestEffort"]}));
        assert!(in_scope(&term, pods, &burst) && !in_scope(&term, pods, &best));
        let high = q(json!({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}));
        assert!(in_scope(&high, pods, &burst) && !in_scope(&high, pods, &best));
        assert!(in_scope(&q(json!({"hard": {}})), cms, &json!({})));
    }
}
