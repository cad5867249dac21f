//! Generic validation rules shared by every resource: name formats, label and
//! annotation rules, and `metadata` validation on create and update, with
//! upstream's exact messages (`k8s.io/apimachinery/pkg/util/validation`,
//! `pkg/api/validate/content` and `pkg/api/validation/objectmeta.go`).
//!
//! This module owns only format rules and `ObjectMeta`; it must never know
//! about a particular resource type (that is `kinds/`), and never mutates.

use serde_json::{Map, Value};

// The format checks live in the vocabulary crate (the schema crate uses
// them too); re-exported so the kinds keep one import path.
pub use nestkube_api::names::{
    c_identifier, config_map_key, content_label_value, dns1035_label, dns1123_label,
    dns1123_subdomain, label_key, max_len_error, path_segment_name, port_name, regex_error,
};

use super::strategy::NameRule;
use crate::error::FieldError;

/// Upstream `TotalAnnotationSizeLimitB` (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// Upstream `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
/// Upstream `IsNegativeErrorMsg`.
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// Upstream `InclusiveRangeError`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Applies a name rule (upstream `ValidateNameFunc`). `prefix` masks a
/// trailing dash, as for `generateName`.
pub fn name_errors(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    let masked;
    let name = if prefix && name.ends_with('-') {
        // maskTrailingDash: name[:len-2] + "a"
        masked = format!(
            "{}a",
            name.get(..name.len().saturating_sub(2)).unwrap_or("")
        );
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::DnsSubdomain => dns1123_subdomain(name),
        NameRule::DnsLabel => dns1123_label(name),
        NameRule::PathSegment => path_segment_name(name),
    }
}

/// `ValidateLabels`: keys are qualified names, values label values; errors
/// are reported at `field_path` itself, as upstream does.
pub fn validate_labels(labels: &Map<String, Value>, field_path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        for msg in label_key(k) {
            errs.push(FieldError::invalid(field_path, k.as_str(), msg));
        }
        let v = v.as_str().unwrap_or("");
        for msg in content_label_value(v) {
            errs.push(FieldError::invalid(field_path, v, msg));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are (case-insensitive) qualified names and the
/// total size of keys and values is at most 256 KiB.
pub fn validate_annotations(annotations: &Map<String, Value>, field_path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        for msg in label_key(&k.to_lowercase()) {
            errs.push(FieldError::invalid(field_path, k.as_str(), msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            field_path,
            TOTAL_ANNOTATION_SIZE_LIMIT,
        ));
    }
    errs
}

/// `ValidateOwnerReferences`.
fn validate_owner_references(refs: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut first_controller = String::new();
    for r in refs {
        let api_version = r["apiVersion"].as_str().unwrap_or("");
        let kind = r["kind"].as_str().unwrap_or("");
        // schema.FromAPIVersionAndKind: "group/version" or "version".
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let version = if api_version.matches('/').count() > 1 {
            ""
        } else {
            version
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.kind"),
                kind,
                "must not be empty",
            ));
        }
        let name = r["name"].as_str().unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                name,
                "must not be empty",
            ));
        }
        let uid = r["uid"].as_str().unwrap_or("");
        if uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.uid"),
                uid,
                "must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                r.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r["controller"].as_bool() == Some(true) {
            let current = format!("{kind}/{name}");
            if first_controller.is_empty() {
                first_controller = current;
            } else {
                errs.push(FieldError::invalid(
                    path,
                    Value::Array(refs.to_vec()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {current}"
                    ),
                ));
            }
        }
    }
    errs
}

/// `ValidateFinalizers`.
fn validate_finalizers(finalizers: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let names: Vec<&str> = finalizers.iter().filter_map(Value::as_str).collect();
    for f in &names {
        for msg in label_key(f) {
            errs.push(FieldError::invalid(path, *f, msg));
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            Value::Array(finalizers.to_vec()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

fn meta_of(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn str_field<'a>(meta: &'a Value, field: &str) -> &'a str {
    meta[field].as_str().unwrap_or("")
}

/// Upstream `ValidateObjectMeta` (after name generation): name, namespace,
/// generation, labels, annotations, ownerReferences and finalizers. Paths are
/// `metadata.*`.
pub fn validate_object_meta(obj: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let meta = meta_of(obj);
    let mut errs = Vec::new();
    let generate_name = str_field(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_errors(rule, generate_name, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                msg,
            ));
        }
    }
    let name = str_field(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in name_errors(rule, name, false) {
            errs.push(FieldError::invalid("metadata.name", name, msg));
        }
    }
    let namespace = str_field(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in dns1123_label(namespace) {
                errs.push(FieldError::invalid("metadata.namespace", namespace, msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    errs.extend(validate_meta_common(meta));
    errs
}

/// The checks `ValidateObjectMeta` and `ValidateObjectMetaUpdate` share.
fn validate_meta_common(meta: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(g) = meta["generation"].as_i64().filter(|g| *g < 0) {
        errs.push(FieldError::invalid("metadata.generation", g, IS_NEGATIVE));
    }
    if let Some(labels) = meta["labels"].as_object() {
        errs.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        errs.extend(validate_annotations(annotations, "metadata.annotations"));
    }
    if let Some(refs) = meta["ownerReferences"].as_array() {
        errs.extend(validate_owner_references(refs, "metadata.ownerReferences"));
    }
    if let Some(f) = meta["finalizers"].as_array() {
        errs.extend(validate_finalizers(f, "metadata.finalizers"));
    }
    errs
}

/// Upstream `ValidateImmutableField` for a JSON value.
pub fn immutable(new: &Value, old: &Value, path: &str) -> Option<FieldError> {
    let norm = |v: &Value| if v.is_null() { Value::Null } else { v.clone() };
    (norm(new) != norm(old)).then(|| FieldError::invalid(path, new.clone(), FIELD_IMMUTABLE))
}

/// Upstream `ValidateObjectMetaUpdate` (the update-only part; the store
/// validates the new metadata with [`validate_object_meta`] as well).
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (nm, om) = (meta_of(new), meta_of(old));
    let mut errs = Vec::new();
    if !om["deletionTimestamp"].is_null() {
        let old_f: Vec<&str> = om["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut extra: Vec<&str> = nm["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let list = extra
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
            ));
        }
    }
    if str_field(nm, "resourceVersion").is_empty() {
        errs.push(FieldError::invalid(
            "metadata.resourceVersion",
            "",
            "must be specified for an update",
        ));
    }
    let (ng, og) = (
        nm["generation"].as_i64().unwrap_or(0),
        om["generation"].as_i64().unwrap_or(0),
    );
    if ng < og {
        errs.push(FieldError::invalid(
            "metadata.generation",
            ng,
            "must not be decremented",
        ));
    }
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let (n, o) = (&nm[field], &om[field]);
        // Strings compare as Go would: "" and absent are the same value.
        let empty = |v: &Value| v.is_null() || v.as_str() == Some("");
        if empty(n) && empty(o) {
            continue;
        }
        errs.extend(immutable(n, o, &format!("metadata.{field}")));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn re_exported_formats_keep_the_registry_messages() {
        assert_eq!(dns1123_label("a.b"), vec!["must not contain dots"]);
        assert!(label_key("a/b/c")[0].starts_with("a valid label key must consist"));
        assert_eq!(
            content_label_value(&"v".repeat(64)),
            vec!["must be no more than 63 bytes"]
        );
        assert_eq!(path_segment_name(".."), vec!["may not be '..'"]);
        assert_eq!(
            regex_error("m", "f", &[]),
            "m (regex used for validation is 'f')"
        );
    }

    #[test]
    fn object_meta_create() {
        let obj = json!({"metadata": {"name": "Web", "namespace": "default",
            "labels": {"app": "a b"}, "finalizers": ["orphan", "foregroundDeletion"]}});
        let errs = validate_object_meta(&obj, true, NameRule::DnsSubdomain);
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["metadata.name", "metadata.labels", "metadata.finalizers"]
        );
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "x", "namespace": "a"}}),
            false,
            NameRule::DnsLabel,
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "x"}}),
            true,
            NameRule::DnsLabel,
        );
        assert_eq!(errs[0].to_string(), "metadata.namespace: Required value");
    }

    #[test]
    fn annotations_size_and_owner_refs() {
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let obj = json!({"metadata": {"name": "x", "annotations": {"a": big},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "", "uid": "u"}]}});
        let errs = validate_object_meta(&obj, false, NameRule::DnsSubdomain);
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            errs[1].to_string(),
            "metadata.ownerReferences.name: Invalid value: \"\": must not be empty"
        );
        assert!(errs[2].detail.contains("is disallowed from being an owner"));
    }

    #[test]
    fn meta_update_immutable() {
        let old = json!({"metadata": {"name": "a", "uid": "1", "resourceVersion": "5",
            "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x"]}});
        let new = json!({"metadata": {"name": "a", "uid": "2", "resourceVersion": "5",
            "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x", "b.io/y"]}});
        let errs: Vec<String> = validate_object_meta_update(&new, &old)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}",
                "metadata.uid: Invalid value: \"2\": field is immutable",
            ]
        );
    }

    #[test]
    fn generate_name_masks_trailing_dash() {
        assert!(name_errors(NameRule::DnsSubdomain, "web-", true).is_empty());
        // Upstream would slice out of range here; we mask to "a".
        assert!(name_errors(NameRule::DnsSubdomain, "-", true).is_empty());
        assert_eq!(
            name_errors(NameRule::DnsLabel, "a.b", false),
            vec!["must not contain dots"]
        );
    }
}
