//! LimitRanger admission (upstream's `LimitRanger` plugin) for pods, with
//! the namespace's LimitRanges of type `Container`: on create, containers
//! (and init containers) missing a limit or request get the range's
//! `default` / `defaultRequest` (with upstream's LimitRangeItem defaulting:
//! `default` from `max`, `defaultRequest` from `default`, then from `min`),
//! recorded in the `kubernetes.io/limit-ranger` annotation; then `min`,
//! `max` and `maxLimitRequestRatio` are enforced with upstream's 403
//! messages (`maximum cpu usage per Container is 1, but limit is 2`).
//!
//! Items of type `Pod` bound the pod's total (containers summed, init
//! containers, overhead) and items of type `PersistentVolumeClaim` a new
//! claim's requested storage. Pod updates are not judged (as upstream:
//! container resources cannot change that way). This plugin only changes
//! the pod being created; it never writes storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{Attributes, Operation, Plugin};
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::kinds::quantity;
use crate::registry::store::ListOptions;

/// The annotation naming what LimitRanger set.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The LimitRanger plugin.
pub struct LimitRanger {
    ranges: Option<Arc<ResourceInfo>>,
}

impl LimitRanger {
    /// The plugin for `catalog`'s resources.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            ranges: catalog.get("", "v1", "limitranges").cloned(),
        }
    }

    /// The items of type `kind` (`Container`, `Pod`,
    /// `PersistentVolumeClaim`) of the namespace's LimitRanges, for a
    /// create of a pod or claim (`Container` items defaulted as upstream's
    /// `SetDefaults_LimitRangeItem`).
    async fn items(
        &self,
        attrs: &Attributes<'_>,
        store: &ReadOnlyStore<'_>,
        kinds: &[&str],
    ) -> Result<Vec<Value>, ApiError> {
        let (Some(ranges), Some(ns)) = (&self.ranges, attrs.namespace) else {
            return Ok(Vec::new());
        };
        let judged = attrs.is_pod() || attrs.is("", "persistentvolumeclaims");
        if !judged || attrs.operation != Operation::Create {
            return Ok(Vec::new());
        }
        let t = attrs.target(ranges, Some(ns));
        let mut items = Vec::new();
        for lr in store.list(&t, &ListOptions::default()).await?.items {
            for item in lr["spec"]["limits"].as_array().into_iter().flatten() {
                match item["type"].as_str() {
                    Some("Container") if kinds.contains(&"Container") => {
                        items.push(defaulted(item))
                    }
                    Some(k) if kinds.contains(&k) => items.push(item.clone()),
                    _ => {}
                }
            }
        }
        Ok(items)
    }
}

fn resources(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// `SetDefaults_LimitRangeItem` for a `Container` item.
fn defaulted(item: &Value) -> Value {
    let mut default = resources(&item["default"]);
    let mut request = resources(&item["defaultRequest"]);
    for (k, v) in resources(&item["max"]) {
        default.entry(k).or_insert(v);
    }
    for (k, v) in &default {
        request.entry(k.clone()).or_insert(v.clone());
    }
    for (k, v) in resources(&item["min"]) {
        request.entry(k).or_insert(v);
    }
    let mut out = item.clone();
    out["default"] = Value::Object(default);
    out["defaultRequest"] = Value::Object(request);
    out
}

fn amount(v: &Value) -> Option<quantity::Nanos> {
    v.as_str()
        .and_then(quantity::parse)
        .or_else(|| v.as_i64().map(|i| i as quantity::Nanos * 1_000_000_000))
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Sets missing limits and requests of every container of `spec` from
/// `item`; returns the annotation parts (`cpu, memory request for
/// container web`), as upstream's `mergeContainerResources`.
fn apply_defaults(spec: &mut Value, item: &Value) -> Vec<String> {
    let mut notes = Vec::new();
    for (list, kind) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("").to_string();
            if !c["resources"].is_object() {
                c["resources"] = json!({});
            }
            let mut set: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (field, from, word) in [
                ("limits", "default", "limit"),
                ("requests", "defaultRequest", "request"),
            ] {
                for (k, v) in resources(&item[from]) {
                    let r = &mut c["resources"][field];
                    if !r.is_object() {
                        *r = json!({});
                    }
                    if r.get(&k).is_none() {
                        r[&k] = v;
                        set.entry(word).or_default().push(k);
                    }
                }
            }
            // Upstream lists requests before limits.
            for word in ["request", "limit"] {
                if let Some(mut keys) = set.remove(word) {
                    keys.sort();
                    notes.push(format!("{} {word} for {kind} {name}", keys.join(", ")));
                }
            }
        }
    }
    notes
}

/// A pod's requests and limits as upstream's `PodRequests`/`PodLimits`
/// (containers summed, at least each init container, plus overhead), for
/// the resources some container names.
fn pod_resources(pod: &Value) -> Value {
    let spec = &pod["spec"];
    let mut out = json!({"requests": {}, "limits": {}});
    for which in ["requests", "limits"] {
        let mut names: Vec<String> = Vec::new();
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                names.extend(resources(&c["resources"][which]).keys().cloned());
            }
        }
        names.sort();
        names.dedup();
        for n in names {
            let total = super::quota::pod_amount(pod, which, &n);
            out[which][&n] = json!(super::quota::format(&n, total));
        }
    }
    out
}

/// Upstream's `PersistentVolumeClaimValidateLimitFunc`: `min` and `max` of
/// the claim's requested storage.
fn claim_violations(claim: &Value, item: &Value) -> Vec<String> {
    let per = "PersistentVolumeClaim";
    let req = &claim["spec"]["resources"]["requests"];
    let mut errs = violations(&json!({"requests": req}), &json!({"min": item["min"]}), per);
    for (k, max) in resources(&item["max"]) {
        let m = text(&max);
        match req.get(&k) {
            None => errs.push(format!(
                "maximum {k} usage per {per} is {m}.  No request is specified"
            )),
            Some(r) if amount(r).unwrap_or(0) > amount(&max).unwrap_or(0) => errs.push(format!(
                "maximum {k} usage per {per} is {m}, but request is {}",
                text(r)
            )),
            _ => {}
        }
    }
    errs
}

/// Upstream's `minConstraint`, `maxConstraint` and
/// `limitRequestRatioConstraint` for one container's (or a pod's)
/// `resources` against `item`, per `per` (`Container`, `Pod`).
fn violations(resources_: &Value, item: &Value, per: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let req = &resources_["requests"];
    let lim = &resources_["limits"];
    for (k, min) in resources(&item["min"]) {
        let enforced = amount(&min).unwrap_or(0);
        let m = text(&min);
        match req.get(&k) {
            None => errs.push(format!(
                "minimum {k} usage per {per} is {m}.  No request is specified"
            )),
            Some(r) if amount(r).unwrap_or(0) < enforced => errs.push(format!(
                "minimum {k} usage per {per} is {m}, but request is {}",
                text(r)
            )),
            _ => {
                if let Some(l) = lim.get(&k).filter(|l| amount(l).unwrap_or(0) < enforced) {
                    errs.push(format!(
                        "minimum {k} usage per {per} is {m}, but limit is {}",
                        text(l)
                    ));
                }
            }
        }
    }
    for (k, max) in resources(&item["max"]) {
        let enforced = amount(&max).unwrap_or(0);
        let m = text(&max);
        match lim.get(&k) {
            None => errs.push(format!(
                "maximum {k} usage per {per} is {m}.  No limit is specified"
            )),
            Some(l) if amount(l).unwrap_or(0) > enforced => errs.push(format!(
                "maximum {k} usage per {per} is {m}, but limit is {}",
                text(l)
            )),
            _ => {
                if let Some(r) = req.get(&k).filter(|r| amount(r).unwrap_or(0) > enforced) {
                    errs.push(format!(
                        "maximum {k} usage per {per} is {m}, but request is {}",
                        text(r)
                    ));
                }
            }
        }
    }
    for (k, ratio) in resources(&item["maxLimitRequestRatio"]) {
        let m = text(&ratio);
        let r = req.get(&k).and_then(amount).unwrap_or(0);
        let l = lim.get(&k).and_then(amount).unwrap_or(0);
        if r == 0 {
            errs.push(format!(
                "{k} max limit to request ratio per {per} is {m}, but no request is specified or request is 0"
            ));
        } else if l == 0 {
            errs.push(format!(
                "{k} max limit to request ratio per {per} is {m}, but no limit is specified or limit is 0"
            ));
        } else {
            let observed = l as f64 / r as f64;
            if observed > amount(&ratio).unwrap_or(0) as f64 / 1e9 {
                errs.push(format!(
                    "{k} max limit to request ratio per {per} is {m}, but provided ratio is {observed:.6}"
                ));
            }
        }
    }
    errs
}

#[async_trait]
impl Plugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        _old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if !attrs.is_pod() {
            return Ok(());
        }
        let items = self.items(attrs, store, &["Container"]).await?;
        let mut notes = Vec::new();
        for item in &items {
            notes.extend(apply_defaults(&mut obj["spec"], item));
        }
        if !notes.is_empty() {
            let meta = &mut obj["metadata"];
            if !meta["annotations"].is_object() {
                meta["annotations"] = json!({});
            }
            meta["annotations"][ANNOTATION] =
                json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
        }
        Ok(())
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        _old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let kinds = ["Container", "Pod", "PersistentVolumeClaim"];
        let mut errs = Vec::new();
        for item in &self.items(attrs, store, &kinds).await? {
            match item["type"].as_str() {
                Some("Container") if attrs.is_pod() => {
                    for list in ["initContainers", "containers"] {
                        for c in obj["spec"][list].as_array().into_iter().flatten() {
                            errs.extend(violations(&c["resources"], item, "Container"));
                        }
                    }
                }
                Some("Pod") if attrs.is_pod() => {
                    errs.extend(violations(&pod_resources(obj), item, "Pod"));
                }
                Some("PersistentVolumeClaim") if !attrs.is_pod() => {
                    errs.extend(claim_violations(obj, item));
                }
                _ => {}
            }
        }
        match errs.as_slice() {
            [] => Ok(()),
            [one] => Err(attrs.forbidden(one)),
            many => Err(attrs.forbidden(format!("[{}]", many.join(", ")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_upstream() {
        let item = defaulted(&json!({"type": "Container", "max": {"cpu": "2"},
            "default": {"memory": "256Mi"}, "min": {"cpu": "100m"}}));
        assert_eq!(item["default"], json!({"memory": "256Mi", "cpu": "2"}));
        assert_eq!(
            item["defaultRequest"],
            json!({"memory": "256Mi", "cpu": "2"})
        );
        let mut spec =
            json!({"containers": [{"name": "web", "resources": {"requests": {"cpu": "500m"}}}]});
        let notes = apply_defaults(&mut spec, &item);
        assert_eq!(
            notes,
            [
                "memory request for container web",
                "cpu, memory limit for container web"
            ]
        );
        assert_eq!(
            spec["containers"][0]["resources"]["requests"]["cpu"],
            "500m"
        );
        assert_eq!(spec["containers"][0]["resources"]["limits"]["cpu"], "2");
    }

    #[test]
    fn bounds_and_ratio() {
        let item = json!({"min": {"cpu": "100m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "2"}});
        let c = json!({"resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "2"}}});
        assert_eq!(
            violations(&c["resources"], &item, "Container"),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 40.000000",
            ]
        );
        let none = json!({"resources": {}});
        assert_eq!(
            violations(
                &none["resources"],
                &json!({"max": {"memory": "1Gi"}}),
                "Container"
            ),
            ["maximum memory usage per Container is 1Gi.  No limit is specified"]
        );
        let ok = json!({"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}});
        assert!(violations(&ok["resources"], &item, "Container").is_empty());
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "1"}}}]}});
        assert_eq!(
            violations(
                &pod_resources(&pod),
                &json!({"max": {"cpu": "1500m"}}),
                "Pod"
            ),
            ["maximum cpu usage per Pod is 1500m, but limit is 2"]
        );
        let claim = json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}});
        assert_eq!(
            claim_violations(
                &claim,
                &json!({"min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}})
            ),
            ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
        );
    }
}
