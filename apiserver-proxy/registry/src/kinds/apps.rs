//! Strategies for `apps`: deployments, replicasets, statefulsets, daemonsets
//! and controllerrevisions (`pkg/apis/apps/v1/defaults.go`,
//! `pkg/apis/apps/validation`, `pkg/registry/apps/*/strategy.go`).
//!
//! Owns workload-level rules; pod templates are delegated to `podspec.rs`.
//! Never creates or reads ReplicaSets, pods or revisions.

use std::sync::Arc;

use serde_json::{Value, json};

use super::core::{default_pvc_spec, validate_pvc_spec};
use super::podspec::{default_template, validate_controller_template};
use super::printing::{
    AGE, col, container_cells, controller_of, format_label_selector, format_labels, int, name_cell,
    replica_columns, replica_row, s, wide,
};
use super::{child, each_mut, ensure_obj, labelselector, set, set_default};
use crate::error::FieldError;
use crate::strategy::{Column, Strategy};
use crate::validation::{IS_NEGATIVE, immutable};

/// The strategy for `resource` in `group`, if this module serves it.
pub fn strategy(group: &str, resource: &str) -> Option<Arc<dyn Strategy>> {
    if group != "apps" {
        return None;
    }
    Some(match resource {
        "deployments" => Arc::new(Deployments),
        "replicasets" => Arc::new(ReplicaSets),
        "statefulsets" => Arc::new(StatefulSets),
        "daemonsets" => Arc::new(DaemonSets),
        "controllerrevisions" => Arc::new(ControllerRevisions),
        _ => return None,
    })
}

fn nonneg(spec: &Value, key: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = spec[key].as_i64().filter(|v| *v < 0) {
        errs.push(FieldError::invalid(format!("spec.{key}"), v, IS_NEGATIVE));
    }
}

/// Selector and template checks shared by the four workload kinds. `kind`
/// is the lower-case word in upstream's "empty selector is invalid for ..."
/// and `template_kind` the one in the activeDeadlineSeconds message.
fn validate_workload(obj: &Value, kind: &str, template_kind: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    nonneg(spec, "replicas", &mut errs);
    nonneg(spec, "minReadySeconds", &mut errs);
    nonneg(spec, "revisionHistoryLimit", &mut errs);
    let selector = &spec["selector"];
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        errs.extend(labelselector::validate(selector, "spec.selector"));
        if labelselector::is_empty(selector) {
            errs.push(FieldError::invalid(
                "spec.selector",
                selector.clone(),
                format!("empty selector is invalid for {kind}"),
            ));
        }
    }
    let template = &spec["template"];
    let matches = labelselector::is_empty(selector)
        || labelselector::matches(selector, &template["metadata"]["labels"]);
    errs.extend(validate_controller_template(
        template,
        matches,
        "spec.template",
        template_kind,
    ));
    errs
}

fn selector_immutable(new: &Value, old: &Value) -> Option<FieldError> {
    immutable(
        &new["spec"]["selector"],
        &old["spec"]["selector"],
        "spec.selector",
    )
}

fn default_spec_template(obj: &mut Value) {
    if let Some(t) = child(obj, "spec").and_then(|s| child(s, "template")) {
        default_template(t);
    }
}

fn validate_int_or_percent(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Number(n)
            if n.as_i64().unwrap_or(0) < 0 => {
                errs.push(FieldError::invalid(path, v.clone(), IS_NEGATIVE));
            }
        Value::String(p) => match p.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n > 100 => errs.push(FieldError::invalid(path, p.as_str(), "must not be greater than 100%")),
            Some(_) => {}
            None => errs.push(FieldError::invalid(
                path,
                p.as_str(),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
        },
        _ => {}
    }
}

fn is_zero(v: &Value) -> bool {
    v == &json!(0) || v == &json!("0%")
}

// ---------------------------------------------------------------- deployments

/// `pkg/registry/apps/deployment/strategy.go`.
pub struct Deployments;

impl Strategy for Deployments {
    /// `SetDefaults_Deployment`.
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            set_default(spec, "replicas", json!(1));
            if let Some(strategy) = ensure_obj(spec, "strategy") {
                set_default(strategy, "type", json!("RollingUpdate"));
                if s(strategy, &["type"]) == "RollingUpdate"
                    && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
                {
                    set_default(ru, "maxUnavailable", json!("25%"));
                    set_default(ru, "maxSurge", json!("25%"));
                }
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
        }
        default_spec_template(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({}));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_workload(obj, "deployment", "ReplicaSet");
        let spec = &obj["spec"];
        let strategy = &spec["strategy"];
        match s(strategy, &["type"]) {
            "Recreate" => {
                if !strategy["rollingUpdate"].is_null() {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => {
                let ru = &strategy["rollingUpdate"];
                let (mu, ms) = (&ru["maxUnavailable"], &ru["maxSurge"]);
                validate_int_or_percent(
                    mu,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    &mut errs,
                );
                validate_int_or_percent(ms, "spec.strategy.rollingUpdate.maxSurge", &mut errs);
                if is_zero(mu) && is_zero(ms) {
                    errs.push(FieldError::invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        mu.clone(),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
            "" => errs.push(FieldError::required("spec.strategy.type", "")),
            t => errs.push(FieldError::not_supported(
                "spec.strategy.type",
                t,
                &["Recreate", "RollingUpdate"],
            )),
        }
        nonneg(spec, "progressDeadlineSeconds", &mut errs);
        if let (Some(p), Some(m)) = (
            spec["progressDeadlineSeconds"].as_i64(),
            spec["minReadySeconds"].as_i64(),
        ) && p <= m
        {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                p,
                "must be greater than minReadySeconds",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(selector_immutable(new, old));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    /// Deployments also bump generation on annotation changes.
    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        new.get("spec") != old.get("spec")
            || new["metadata"]["annotations"] != old["metadata"]["annotations"]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "Number of the pod with ready state",
                ..col("Ready", "string")
            },
            col("Up-to-date", "integer"),
            col("Available", "integer"),
            AGE,
            wide("Containers", "string"),
            wide("Images", "string"),
            wide("Selector", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = container_cells(&obj["spec"]["template"]["spec"]);
        vec![
            name_cell(obj),
            json!(format!(
                "{}/{}",
                int(obj, &["status", "readyReplicas"]),
                int(obj, &["spec", "replicas"])
            )),
            json!(int(obj, &["status", "updatedReplicas"])),
            json!(int(obj, &["status", "availableReplicas"])),
            super::printing::age_cell(obj),
            names,
            images,
            json!(format_label_selector(&obj["spec"]["selector"])),
        ]
    }
}

// ---------------------------------------------------------------- replicasets

/// `pkg/registry/apps/replicaset/strategy.go`.
pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            set_default(spec, "replicas", json!(1));
        }
        default_spec_template(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({"replicas": 0}));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_workload(obj, "deployment", "ReplicaSet")
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(selector_immutable(new, old));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        replica_columns()
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        replica_row(obj, format_label_selector(&obj["spec"]["selector"]))
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "status.replicas").then(|| int(obj, &["status", "replicas"]).to_string())
    }
}

// ---------------------------------------------------------------- statefulsets

/// `pkg/registry/apps/statefulset/strategy.go`.
pub struct StatefulSets;

/// What `ValidateStatefulSetUpdate` lets change.
const STS_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

impl Strategy for StatefulSets {
    /// `SetDefaults_StatefulSet` and the claim templates' PVC defaults.
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            if let Some(us) = ensure_obj(spec, "updateStrategy") {
                if s(us, &["type"]).is_empty() {
                    set(us, "type", json!("RollingUpdate"));
                    ensure_obj(us, "rollingUpdate");
                }
                if s(us, &["type"]) == "RollingUpdate"
                    && let Some(ru) = child(us, "rollingUpdate")
                {
                    set_default(ru, "partition", json!(0));
                    set_default(ru, "maxUnavailable", json!(1));
                }
            }
            if let Some(p) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
                set_default(p, "whenDeleted", json!("Retain"));
                set_default(p, "whenScaled", json!("Retain"));
            }
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            each_mut(spec, "volumeClaimTemplates", |t| {
                if !t.is_object() {
                    return;
                }
                set_default(t, "apiVersion", json!("v1"));
                set_default(t, "kind", json!("PersistentVolumeClaim"));
                if let Some(ps) = child(t, "spec") {
                    default_pvc_spec(ps);
                }
                if let Some(st) = ensure_obj(t, "status") {
                    set_default(st, "phase", json!("Pending"));
                }
            });
        }
        default_spec_template(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(
            obj,
            "status",
            json!({"replicas": 0, "availableReplicas": 0}),
        );
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_workload(obj, "statefulset", "StatefulSet");
        let spec = &obj["spec"];
        match s(spec, &["podManagementPolicy"]) {
            "OrderedReady" | "Parallel" => {}
            "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
            p => errs.push(FieldError::invalid(
                "spec.podManagementPolicy",
                p,
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
        let us = &spec["updateStrategy"];
        match s(us, &["type"]) {
            "" => errs.push(FieldError::required("spec.updateStrategy", "")),
            "OnDelete" => {
                if !us["rollingUpdate"].is_null() {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        us["rollingUpdate"].clone(),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(p) = us["rollingUpdate"]["partition"].as_i64().filter(|p| *p < 0) {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate.partition",
                        p,
                        IS_NEGATIVE,
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(
                "spec.updateStrategy",
                us.clone(),
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
        for (i, t) in super::printing::arr(spec, &["volumeClaimTemplates"])
            .iter()
            .enumerate()
        {
            errs.extend(validate_pvc_spec(
                &t["spec"],
                &format!("spec.volumeClaimTemplates[{i}].spec"),
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        let strip = |v: &Value| {
            let mut v = v["spec"].clone();
            if let Some(m) = v.as_object_mut() {
                m.retain(|k, _| !STS_MUTABLE.contains(&k.as_str()));
            }
            v
        };
        if strip(new) != strip(old) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "Number of the pod with ready state",
                ..col("Ready", "string")
            },
            AGE,
            wide("Containers", "string"),
            wide("Images", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = container_cells(&obj["spec"]["template"]["spec"]);
        vec![
            name_cell(obj),
            json!(format!(
                "{}/{}",
                int(obj, &["status", "readyReplicas"]),
                int(obj, &["spec", "replicas"])
            )),
            super::printing::age_cell(obj),
            names,
            images,
        ]
    }
}

// ---------------------------------------------------------------- daemonsets

/// `pkg/registry/apps/daemonset/strategy.go`.
pub struct DaemonSets;

/// Annotation holding a DaemonSet's template generation.
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

impl Strategy for DaemonSets {
    /// `SetDefaults_DaemonSet`.
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            if let Some(us) = ensure_obj(spec, "updateStrategy") {
                set_default(us, "type", json!("RollingUpdate"));
                if s(us, &["type"]) == "RollingUpdate"
                    && let Some(ru) = ensure_obj(us, "rollingUpdate")
                {
                    set_default(ru, "maxUnavailable", json!(1));
                    set_default(ru, "maxSurge", json!(0));
                }
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
        }
        default_spec_template(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(
            obj,
            "status",
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
        );
        // The template generation the DaemonSet controller compares against.
        if let Some(meta) = ensure_obj(obj, "metadata")
            && let Some(annotations) = ensure_obj(meta, "annotations")
        {
            set(annotations, TEMPLATE_GENERATION, json!("1"));
        }
    }

    /// `PrepareForUpdate`: a changed template bumps the template generation.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let old_generation: i64 = s(old, &["metadata", "annotations", TEMPLATE_GENERATION])
            .parse()
            .unwrap_or(1);
        let generation = if new["spec"]["template"] != old["spec"]["template"] {
            old_generation + 1
        } else {
            old_generation
        };
        if let Some(meta) = ensure_obj(new, "metadata")
            && let Some(annotations) = ensure_obj(meta, "annotations")
        {
            set(
                annotations,
                TEMPLATE_GENERATION,
                json!(generation.to_string()),
            );
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_workload(obj, "daemonset", "DaemonSet");
        let us = &obj["spec"]["updateStrategy"];
        match s(us, &["type"]) {
            "OnDelete" => {}
            "RollingUpdate" => {
                let ru = &us["rollingUpdate"];
                let (mu, ms) = (&ru["maxUnavailable"], &ru["maxSurge"]);
                validate_int_or_percent(
                    mu,
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    &mut errs,
                );
                validate_int_or_percent(
                    ms,
                    "spec.updateStrategy.rollingUpdate.maxSurge",
                    &mut errs,
                );
                if is_zero(mu) && is_zero(ms) {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate.maxUnavailable",
                        mu.clone(),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
            "" => errs.push(FieldError::required("spec.updateStrategy.type", "")),
            t => errs.push(FieldError::not_supported(
                "spec.updateStrategy.type",
                t,
                &["OnDelete", "RollingUpdate"],
            )),
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(selector_immutable(new, old));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Desired", "integer"),
            col("Current", "integer"),
            col("Ready", "integer"),
            col("Up-to-date", "integer"),
            col("Available", "integer"),
            col("Node Selector", "string"),
            AGE,
            wide("Containers", "string"),
            wide("Images", "string"),
            wide("Selector", "string"),
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = container_cells(&obj["spec"]["template"]["spec"]);
        let st = |k: &str| json!(int(obj, &["status", k]));
        vec![
            name_cell(obj),
            st("desiredNumberScheduled"),
            st("currentNumberScheduled"),
            st("numberReady"),
            st("updatedNumberScheduled"),
            st("numberAvailable"),
            json!(format_labels(
                &obj["spec"]["template"]["spec"]["nodeSelector"]
            )),
            super::printing::age_cell(obj),
            names,
            images,
            json!(format_label_selector(&obj["spec"]["selector"])),
        ]
    }
}

// ---------------------------------------------------------------- controllerrevisions

/// `pkg/registry/apps/controllerrevision/strategy.go`.
pub struct ControllerRevisions;

impl Strategy for ControllerRevisions {
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(r) = obj["revision"].as_i64().filter(|r| *r < 0) {
            errs.push(FieldError::invalid("revision", r, IS_NEGATIVE));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(immutable(&new["data"], &old["data"], "data"));
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Controller", "string"),
            col("Revision", "integer"),
            AGE,
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            name_cell(obj),
            json!(controller_of(obj)),
            json!(int(obj, &["revision"])),
            super::printing::age_cell(obj),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}})
    }

    #[test]
    fn minimal_deployment_matches_upstream() {
        let mut d = deployment();
        Deployments.default(&mut d);
        Deployments.prepare_for_create(&mut d);
        assert_eq!(
            d["spec"],
            json!({"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        "resources": {}}],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}},
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600})
        );
        assert_eq!(d["status"], json!({}));
        assert!(
            Deployments.validate(&d).is_empty(),
            "{:?}",
            Deployments.validate(&d)
        );
    }

    #[test]
    fn deployment_validation_messages() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        Deployments.default(&mut d);
        let errs: Vec<String> = Deployments
            .validate(&d)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`"
            ]
        );
        let mut old = deployment();
        Deployments.default(&mut old);
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "x": "y"}});
        new["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let errs = Deployments.validate_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("spec.selector: Invalid value: ")
        );
        assert!(errs[0].to_string().ends_with("field is immutable"));
        let mut no_sel = deployment();
        no_sel["spec"].as_object_mut().unwrap().remove("selector");
        Deployments.default(&mut no_sel);
        assert_eq!(
            Deployments.validate(&no_sel)[0].to_string(),
            "spec.selector: Required value"
        );
    }

    #[test]
    fn deployment_row() {
        let mut d = deployment();
        Deployments.default(&mut d);
        d["status"] = json!({"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        let row = Deployments.row(&d);
        assert_eq!(row.len(), Deployments.columns().len());
        assert_eq!(row[1], "1/1");
        assert_eq!(
            &row[5..],
            &[json!("nginx"), json!("nginx:1.25"), json!("app=web")]
        );
    }

    #[test]
    fn statefulset_defaults_and_update() {
        let mut sts = deployment();
        sts["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
        StatefulSets.default(&mut sts);
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}})
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        let vct = &sts["spec"]["volumeClaimTemplates"][0];
        assert_eq!(vct["kind"], "PersistentVolumeClaim");
        assert_eq!(vct["spec"]["volumeMode"], "Filesystem");
        assert_eq!(vct["status"], json!({"phase": "Pending"}));
        assert!(
            StatefulSets.validate(&sts).is_empty(),
            "{:?}",
            StatefulSets.validate(&sts)
        );
        let mut new = sts.clone();
        new["spec"]["replicas"] = json!(3);
        assert!(StatefulSets.validate_update(&new, &sts).is_empty());
        new["spec"]["serviceName"] = json!("x");
        assert_eq!(StatefulSets.validate_update(&new, &sts).len(), 1);
    }

    #[test]
    fn daemonset_defaults() {
        let mut ds = deployment();
        DaemonSets.default(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert!(DaemonSets.validate(&ds).is_empty());
        assert_eq!(DaemonSets.row(&ds).len(), DaemonSets.columns().len());
    }
}
