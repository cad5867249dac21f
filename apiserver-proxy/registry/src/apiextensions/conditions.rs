//! A CRD's `status.conditions` as upstream's controllers write them
//! (`apiextensions/helpers.go`: `SetCRDCondition`, `IsCRDConditionTrue`):
//! one condition per type, `lastTransitionTime` moving only when the status
//! changes.

use serde_json::{Value, json};

use crate::meta;

/// `NamesAccepted`: the names do not conflict with another CRD of the group.
pub const NAMES_ACCEPTED: &str = "NamesAccepted";
/// `Established`: the resource is served.
pub const ESTABLISHED: &str = "Established";
/// `Terminating`: the CRD is being deleted.
pub const TERMINATING: &str = "Terminating";

/// A condition to set (`lastTransitionTime` is filled in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// Condition type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// Machine-readable reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

impl Condition {
    /// A condition of `type_`.
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(crd: &'a Value, type_: &str) -> Option<&'a Value> {
    crd["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Whether the condition of `type_` is `True`.
pub fn is_true(crd: &Value, type_: &str) -> bool {
    find(crd, type_).is_some_and(|c| c["status"] == "True")
}

/// Sets `c` on `crd`, keeping `lastTransitionTime` when the status is
/// unchanged (as upstream's `SetCRDCondition`).
pub fn set(crd: &mut Value, c: &Condition) {
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    let status = &mut crd["status"];
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    let existing = conditions.iter_mut().find(|x| x["type"] == c.type_);
    let transition = match &existing {
        Some(old) if old["status"] == c.status => old["lastTransitionTime"].clone(),
        _ => Value::String(meta::now()),
    };
    let new = json!({
        "type": c.type_,
        "status": c.status,
        "lastTransitionTime": transition,
        "reason": c.reason,
        "message": c.message,
    });
    match existing {
        Some(old) => *old = new,
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut crd = json!({});
        set(
            &mut crd,
            &Condition::new(ESTABLISHED, "False", "Installing", "x"),
        );
        let first = find(&crd, ESTABLISHED).unwrap()["lastTransitionTime"].clone();
        crd["status"]["conditions"][0]["lastTransitionTime"] = json!("2000-01-01T00:00:00Z");
        set(
            &mut crd,
            &Condition::new(ESTABLISHED, "False", "Installing", "y"),
        );
        assert_eq!(
            find(&crd, ESTABLISHED).unwrap()["lastTransitionTime"],
            "2000-01-01T00:00:00Z"
        );
        assert!(!is_true(&crd, ESTABLISHED));
        set(&mut crd, &Condition::new(ESTABLISHED, "True", "Done", "z"));
        assert!(is_true(&crd, ESTABLISHED));
        assert_ne!(
            find(&crd, ESTABLISHED).unwrap()["lastTransitionTime"],
            "2000-01-01T00:00:00Z"
        );
        assert!(first.is_string());
        assert_eq!(crd["status"]["conditions"].as_array().unwrap().len(), 1);
    }
}
