//! LimitRanger admission (upstream's `LimitRanger` plugin) for pods, with
//! the namespace's LimitRanges of type `Container`: on create, containers
//! (and init containers) missing a limit or request get the range's
//! `default` / `defaultRequest` (with upstream's LimitRangeItem defaulting:
//! `default` from `max`, `defaultRequest` from `default`, then from `min`),
//! recorded in the `kubernetes.io/limit-ranger` annotation; then `min`,
//! `max` and `maxLimitRequestRatio` are enforced with upstream's 403
//! messages (`maximum cpu usage per Container is 1, but limit is 2`).
//!
//! Pod updates are not judged (as upstream: container resources cannot
//! change that way). Items of type `Pod` and `PersistentVolumeClaim` are not
//! enforced. This plugin only changes the pod being created; it never
//! writes storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{Attributes, Operation, Plugin};
use crate::error::ApiError;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::kinds::quantity;
use crate::registry::store::{ListOptions, Store};

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

    /// The `Container` items of the namespace's LimitRanges, defaulted as
    /// upstream's `SetDefaults_LimitRangeItem`.
    async fn container_items(
        &self,
        attrs: &Attributes<'_>,
        store: &Store,
    ) -> Result<Vec<Value>, ApiError> {
        let (Some(ranges), Some(ns)) = (&self.ranges, attrs.namespace) else {
            return Ok(Vec::new());
        };
        if !attrs.is_pod() || attrs.operation != Operation::Create {
            return Ok(Vec::new());
        }
        let t = attrs.target(ranges, Some(ns));
        let mut items = Vec::new();
        for lr in store.list(&t, &ListOptions::default()).await?.items {
            for item in lr["spec"]["limits"].as_array().into_iter().flatten() {
                if item["type"] == "Container" {
                    items.push(defaulted(item));
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

/// Upstream's `minConstraint`, `maxConstraint` and
/// `limitRequestRatioConstraint` for one container.
fn violations(c: &Value, item: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = &c["resources"]["requests"];
    let lim = &c["resources"]["limits"];
    let per = "Container";
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
        store: &Store,
    ) -> Result<(), ApiError> {
        let items = self.container_items(attrs, store).await?;
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
        store: &Store,
    ) -> Result<(), ApiError> {
        let items = self.container_items(attrs, store).await?;
        let mut errs = Vec::new();
        for item in &items {
            for list in ["initContainers", "containers"] {
                for c in obj["spec"][list].as_array().into_iter().flatten() {
                    errs.extend(violations(c, item));
                }
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
            violations(&c, &item),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 40.000000",
            ]
        );
        let none = json!({"resources": {}});
        assert_eq!(
            violations(&none, &json!({"max": {"memory": "1Gi"}})),
            ["maximum memory usage per Container is 1Gi.  No limit is specified"]
        );
        let ok = json!({"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}});
        assert!(violations(&ok, &item).is_empty());
    }
}
