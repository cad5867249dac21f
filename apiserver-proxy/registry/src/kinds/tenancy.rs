//! `tenancy.nestkube.io`: the [`VirtualCluster`](nestkube_tenant_crds::VirtualCluster)
//! strategy, served as a built-in resource of every cluster.
//!
//! Defaults and validation come from `nestkube-tenant-crds` (the same rules
//! the CRD schema carries, in Rust), so a VirtualCluster is judged alike by
//! nestkube and by a real kube-apiserver with the CRD installed. Printer
//! columns mirror the CRD's `additionalPrinterColumns` (a test checks).
//! This strategy never provisions anything: that is the VirtualCluster
//! controller's job.

use std::sync::Arc;

use nestkube_tenant_crds::{SpecError, VirtualClusterSpec};
use serde_json::Value;

use super::{age_cell, ensure_obj, set_default};
use crate::error::FieldError;
use crate::strategy::{Column, NameRule, Strategy};

/// The strategy for `resource` in `group`, if it is a tenancy resource.
pub fn strategy(group: &str, resource: &str) -> Option<Arc<dyn Strategy>> {
    (group == nestkube_tenant_crds::GROUP && resource == "virtualclusters")
        .then(|| Arc::new(VirtualClusters) as Arc<dyn Strategy>)
}

/// `virtualclusters.tenancy.nestkube.io`.
pub struct VirtualClusters;

/// One [`SpecError`] as a Kubernetes field error.
fn field_error(e: SpecError) -> FieldError {
    match e {
        SpecError::Invalid {
            field,
            value,
            detail,
        } => {
            // `value` is rendered as Go's %v/%q; parse it back to a JSON value
            // so the Status message quotes it exactly once.
            let value = serde_json::from_str::<Value>(&value).unwrap_or(Value::String(value));
            FieldError::invalid(field, value, detail)
        }
        SpecError::Duplicate { field, value } => {
            let value = serde_json::from_str::<Value>(&value).unwrap_or(Value::String(value));
            FieldError::duplicate(field, value)
        }
        SpecError::TooMany { field, actual, max } => {
            FieldError::invalid(field, actual, format!("must have at most {max} items"))
        }
    }
}

impl Strategy for VirtualClusters {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        if let Some(isolation) = ensure_obj(spec, "isolation") {
            set_default(isolation, "podSecurity", "baseline".into());
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        match serde_json::from_value::<VirtualClusterSpec>(spec) {
            Ok(spec) => nestkube_tenant_crds::validate(&spec)
                .into_iter()
                .map(field_error)
                .collect(),
            Err(e) => vec![FieldError::invalid("spec", Value::Null, e.to_string())],
        }
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    /// A VirtualCluster's name becomes a segment of its cluster path
    /// (`/clusters/<name>`), so it must be a DNS label.
    fn name_rule(&self) -> NameRule {
        NameRule::DnsLabel
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "Whether the virtual cluster serves requests",
                ..Column::new("Ready", "string")
            },
            Column {
                description: "Lifecycle phase",
                ..Column::new("Phase", "string")
            },
            Column {
                description: "Default RuntimeClass of the tenant's pods",
                ..Column::new("Runtime", "string")
            },
            Column::new("Age", "date"),
            Column {
                description: "URL of the virtual cluster's API",
                ..Column::wide("Endpoint", "string")
            },
        ]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let ready = obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == nestkube_tenant_crds::CONDITION_READY)
            .map(|c| c["status"].clone())
            .unwrap_or(Value::Null);
        vec![
            obj["metadata"]["name"].clone(),
            ready,
            obj["status"]["phase"].clone(),
            obj["spec"]["isolation"]["runtimeClassName"].clone(),
            age_cell(obj),
            obj["status"]["endpoint"].clone(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_match_the_crd() {
        let crd = nestkube_tenant_crds::crd();
        let printer = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let ours = VirtualClusters.columns();
        assert_eq!(ours.len(), printer.len() + 1, "NAME plus the CRD's columns");
        for (c, p) in ours[1..].iter().zip(&printer) {
            assert_eq!(c.name, p.name);
            assert_eq!(c.type_, p.type_);
            assert_eq!(c.priority, p.priority.unwrap_or(0));
            assert_eq!(c.description, p.description.as_deref().unwrap_or(""));
        }
    }

    #[test]
    fn defaults_and_validates() {
        let mut vc = json!({"metadata": {"name": "a"}, "spec": {"isolation": {
            "runtimeClassName": "runc", "allowedRuntimeClassNames": ["kata"]}}});
        VirtualClusters.default(&mut vc);
        assert_eq!(vc["spec"]["isolation"]["podSecurity"], "baseline");
        let errs = VirtualClusters.validate(&vc);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.isolation.runtimeClassName");
        assert_eq!(errs[0].value, Some(json!("runc")));
    }

    #[test]
    fn row_reads_status() {
        let vc = json!({"metadata": {"name": "a", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"isolation": {"runtimeClassName": "kata"}},
            "status": {"phase": "Ready", "endpoint": "https://x/clusters/a",
                "conditions": [{"type": "Ready", "status": "True"}]}});
        let row = VirtualClusters.row(&vc);
        assert_eq!(row[1], "True");
        assert_eq!(row[2], "Ready");
        assert_eq!(row[3], "kata");
        assert_eq!(row[5], "https://x/clusters/a");
    }
}
