//! ObjectMeta of embedded resources (`x-kubernetes-embedded-resource`), as
//! upstream's `objectmeta` package: coercion to ObjectMeta's fields (unknown
//! ones are dropped) and `ValidateObjectMeta` of what remains.
//!
//! Only embedded `metadata` values are handled here; the root object's
//! metadata belongs to the registry and is never touched.

use nestkube_api::error::FieldError;
use serde_json::{Map, Value};

use crate::names;
use crate::path::child;

/// The JSON fields of `metav1.ObjectMeta`.
pub(crate) const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Coerces an embedded `metadata` object the way a round trip through
/// `metav1.ObjectMeta` does: unknown fields are dropped (their paths are
/// returned) and `creationTimestamp` reads `null` when unset.
pub(crate) fn coerce_embedded(meta: &mut Value, path: &str) -> Vec<String> {
    let Some(m) = meta.as_object_mut() else {
        return Vec::new();
    };
    let unknown: Vec<String> = m
        .keys()
        .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in &unknown {
        m.remove(k);
    }
    m.entry("creationTimestamp").or_insert(Value::Null);
    unknown.iter().map(|k| child(path, k)).collect()
}

fn string_map<'a>(
    m: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => {
            if o.values().all(Value::is_string) {
                Ok(Some(o))
            } else {
                Err(format!(
                    ".metadata.{field} accessor error: contains non-string value in the map under key {:?}",
                    o.iter()
                        .find(|(_, v)| !v.is_string())
                        .map(|(k, _)| k.as_str())
                        .unwrap_or_default()
                ))
            }
        }
        Some(other) => Err(format!(
            ".metadata.{field} accessor error: {other} is of the type {}, expected map[string]interface{{}}",
            crate::cel::type_name(other)
        )),
    }
}

/// `ValidateObjectMeta` of an embedded resource's metadata (its name defaults
/// to a placeholder, as upstream, since embedded objects need none).
pub(crate) fn validate_embedded(meta: &Value, path: &str) -> Vec<FieldError> {
    let Some(m) = meta.as_object() else {
        if meta.is_null() {
            return Vec::new();
        }
        return vec![FieldError::invalid(
            path,
            meta.clone(),
            format!(
                "expected map[string]interface{{}}, got {}",
                crate::cel::type_name(meta)
            ),
        )];
    };
    let mut errs = Vec::new();
    for f in ["name", "generateName", "namespace"] {
        if let Some(v) = m.get(f)
            && !v.is_string()
            && !v.is_null()
        {
            errs.push(FieldError::invalid(
                path,
                meta.clone(),
                format!(
                    ".metadata.{f} accessor error: {v} is of the type {}, expected string",
                    crate::cel::type_name(v)
                ),
            ));
        }
    }
    let labels = string_map(m, "labels");
    let annotations = string_map(m, "annotations");
    for r in [&labels, &annotations] {
        if let Err(e) = r {
            errs.push(FieldError::invalid(path, meta.clone(), e.clone()));
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    let s = |f: &str| m.get(f).and_then(Value::as_str).unwrap_or("");
    let name = s("name");
    let generate_name = s("generateName");
    if !generate_name.is_empty() {
        for e in names::path_segment_name(generate_name, true) {
            errs.push(FieldError::invalid(
                child(path, "generateName"),
                generate_name,
                e,
            ));
        }
    }
    let name = if name.is_empty() { "fakename" } else { name };
    for e in names::path_segment_name(name, false) {
        errs.push(FieldError::invalid(child(path, "name"), name, e));
    }
    let namespace = s("namespace");
    if !namespace.is_empty() {
        for e in names::dns1123_label(namespace) {
            errs.push(FieldError::invalid(child(path, "namespace"), namespace, e));
        }
    }
    if let Ok(Some(labels)) = labels {
        let lp = child(path, "labels");
        for (k, v) in labels {
            for e in names::qualified_name(k) {
                errs.push(FieldError::invalid(lp.clone(), k.as_str(), e));
            }
            let v = v.as_str().unwrap_or_default();
            // Upstream's `ValidateLabels` reports values at the labels field.
            for e in names::label_value(v) {
                errs.push(FieldError::invalid(lp.clone(), v, e));
            }
        }
    }
    if let Ok(Some(annotations)) = annotations {
        let ap = child(path, "annotations");
        let mut total = 0;
        for (k, v) in annotations {
            for e in names::qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(ap.clone(), k.as_str(), e));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError {
                kind: nestkube_api::error::FieldErrorType::TooLong,
                field: ap,
                value: None,
                detail: format!("may not be more than {} bytes", 256 * 1024),
            });
        }
    }
    if let Some(Value::Array(finalizers)) = m.get("finalizers") {
        let fp = child(path, "finalizers");
        for f in finalizers.iter().filter_map(Value::as_str) {
            for e in names::qualified_name(f) {
                errs.push(FieldError::invalid(fp.clone(), f, e));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_embedded_metadata_fields_drop() {
        let mut m = json!({"name": "a", "foo": 1});
        assert_eq!(
            coerce_embedded(&mut m, "spec.template.metadata"),
            ["spec.template.metadata.foo"]
        );
        assert_eq!(m, json!({"name": "a", "creationTimestamp": null}));
    }

    #[test]
    fn embedded_metadata_is_validated() {
        let errs = validate_embedded(
            &json!({"name": "a/b", "labels": {"k": "bad value"}}),
            "x.metadata",
        );
        let m: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            m[0],
            "x.metadata.name: Invalid value: \"a/b\": may not contain '/'"
        );
        assert!(
            m[1].starts_with("x.metadata.labels: Invalid value: \"bad value\": a valid label"),
            "{m:?}"
        );
    }
}
