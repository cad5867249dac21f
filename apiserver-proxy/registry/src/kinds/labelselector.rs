//! `metav1.LabelSelector` validation and matching, shared by workloads,
//! PodDisruptionBudgets and NetworkPolicies (upstream
//! `apis/meta/v1/validation.ValidateLabelSelector`, `LabelSelectorAsSelector`).
//!
//! Only selectors: never defaults, never knows about a resource type.

use serde_json::Value;

use super::printing::{arr, s};
use crate::error::FieldError;
use crate::validation::{content_label_value, label_key, validate_labels};

/// `ValidateLabelSelector` (strict label values), errors under `path`.
pub fn validate(selector: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(m) = selector["matchLabels"].as_object() {
        errs.extend(validate_labels(m, &format!("{path}.matchLabels")));
    }
    for (i, e) in arr(selector, &["matchExpressions"]).iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let values = arr(e, &["values"]);
        match s(e, &["operator"]) {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                format!("{p}.operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = s(e, &["key"]);
        for msg in label_key(key) {
            errs.push(FieldError::invalid(format!("{p}.key"), key, msg));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for msg in content_label_value(v) {
                errs.push(FieldError::invalid(format!("{p}.values[{j}]"), v, msg));
            }
        }
    }
    errs
}

/// Whether the selector has no requirements (matches everything).
pub fn is_empty(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && arr(selector, &["matchExpressions"]).is_empty()
}

/// Whether `labels` (an object of strings) satisfy the selector.
pub fn matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(m) = selector["matchLabels"].as_object()
        && m.iter().any(|(k, v)| get(k) != v.as_str())
    {
        return false;
    }
    arr(selector, &["matchExpressions"]).iter().all(|e| {
        let key = s(e, &["key"]);
        let in_values = |x: &str| arr(e, &["values"]).iter().any(|v| v.as_str() == Some(x));
        match s(e, &["operator"]) {
            "In" => get(key).is_some_and(in_values),
            "NotIn" => !get(key).is_some_and(in_values),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    })
}

/// Whether a map selector (`{k: v}`, services and RCs) matches `labels`.
pub fn map_matches(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| labels.get(k).and_then(Value::as_str) == v.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matching_and_validation() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]});
        assert!(matches(&sel, &json!({"app": "web"})));
        assert!(!matches(&sel, &json!({"app": "web", "tier": "db"})));
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Foo"}]});
        let errs: Vec<String> = validate(&bad, "spec.selector")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].operator: Invalid value: \"Foo\": not a valid selector operator",
            ]
        );
        assert!(is_empty(&json!({})));
    }
}
