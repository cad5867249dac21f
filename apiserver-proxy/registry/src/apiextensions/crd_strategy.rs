//! The strategy of the CustomResourceDefinition object itself, after
//! `apiextensions-apiserver/pkg/registry/customresourcedefinition/`
//! (`strategy.go` and the `Delete` of `etcd.go`): defaults, the status a new
//! CRD starts with, `storedVersions`, generation, and the cleanup finalizer a
//! deletion adds.

use serde_json::{Value, json};

use super::CLEANUP_FINALIZER;
use super::conditions::{self, Condition, TERMINATING};
use crate::error::FieldError;
use crate::kinds::printing::{arr, s};
use crate::kinds::{child, ensure_obj, set, set_default};
use crate::meta;
use crate::strategy::Strategy;

/// `customresourcedefinitions.apiextensions.k8s.io`.
pub struct CustomResourceDefinitions;

/// The storage version named in `spec.versions` (the one with `storage: true`).
pub fn storage_version(crd: &Value) -> Option<&str> {
    arr(crd, &["spec", "versions"])
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
}

impl Strategy for CustomResourceDefinitions {
    /// `SetDefaults_CustomResourceDefinitionSpec`.
    fn default(&self, obj: &mut Value) {
        let Some(spec) = child(obj, "spec") else {
            return;
        };
        set_default(spec, "scope", json!("Namespaced"));
        let kind = s(spec, &["names", "kind"]).to_string();
        if let Some(names) = child(spec, "names")
            && !kind.is_empty()
        {
            set_default(names, "singular", json!(kind.to_lowercase()));
            set_default(names, "listKind", json!(format!("{kind}List")));
        }
        if let Some(conv) = ensure_obj(spec, "conversion") {
            set_default(conv, "strategy", json!("None"));
            if let Some(svc) = child(conv, "webhook")
                .and_then(|w| child(w, "clientConfig"))
                .and_then(|c| child(c, "service"))
            {
                set_default(svc, "port", json!(443));
            }
        }
    }

    /// A new CRD has accepted no names yet and has stored only its storage
    /// version.
    fn prepare_for_create(&self, obj: &mut Value) {
        let stored: Vec<Value> = storage_version(obj).map(Value::from).into_iter().collect();
        set(
            obj,
            "status",
            json!({"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored}),
        );
    }

    /// A new storage version joins `status.storedVersions`.
    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        let Some(storage) = storage_version(new).map(str::to_string) else {
            return;
        };
        if !new["status"].is_object() {
            new["status"] = json!({});
        }
        let stored = &mut new["status"]["storedVersions"];
        if !stored.is_array() {
            *stored = json!([]);
        }
        if let Some(list) = stored.as_array_mut()
            && !list.iter().any(|v| v == storage.as_str())
        {
            list.push(storage.into());
        }
    }

    /// `ValidateCustomResourceDefinition`: names, versions, structural
    /// schemas, CEL rules and their cost, conversion, printer columns.
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        nestkube_schema::validate_crd(obj)
    }

    /// `ValidateCustomResourceDefinitionUpdate`: the create rules plus what
    /// may not change.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        nestkube_schema::validate_crd_update(new, old)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    /// The first deletion request adds the cleanup finalizer and the
    /// `Terminating` condition, so the CRD stays until the CRD controller
    /// has deleted every custom resource. The condition marks the request
    /// as handled: once the finalizer is removed, nothing holds the CRD.
    fn begin_delete(&self, obj: &mut Value) -> bool {
        if conditions::is_true(obj, TERMINATING) {
            return false;
        }
        let mut finalizers = meta::finalizers(obj);
        if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
            finalizers.push(CLEANUP_FINALIZER.into());
        }
        meta::set(obj, "finalizers", Some(finalizers.into()));
        conditions::set(
            obj,
            &Condition::new(
                TERMINATING,
                "True",
                "InstanceDeletionPending",
                "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
            ),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_status_and_the_cleanup_finalizer() {
        let mut crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let s = CustomResourceDefinitions;
        s.default(&mut crd);
        s.prepare_for_create(&mut crd);
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(s.validate(&crd), []);

        // A new storage version is recorded on update.
        let old = crd.clone();
        crd["spec"]["versions"] =
            json!([{"name": "v1", "storage": false}, {"name": "v2", "storage": true}]);
        s.prepare_for_update(&mut crd, &old);
        assert_eq!(crd["status"]["storedVersions"], json!(["v1", "v2"]));

        // The first delete holds the CRD; once Terminating, nothing does.
        assert!(s.begin_delete(&mut crd));
        assert_eq!(meta::finalizers(&crd), [CLEANUP_FINALIZER]);
        assert!(conditions::is_true(&crd, TERMINATING));
        assert!(!s.begin_delete(&mut crd));
    }
}
