//! Strategies for `rbac.authorization.k8s.io`: roles, clusterroles and their
//! bindings (`pkg/apis/rbac/v1/defaults.go`, `pkg/apis/rbac/validation`,
//! `pkg/printers` role/binding printers).
//!
//! Owns object rules only; it never authorizes anything and never checks
//! escalation (that is the authorizer's job).

use std::sync::Arc;

use serde_json::{Value, json};

use super::printing::{AGE, CREATED_AT, arr, col, created_at_cell, name_cell, s, wide};
use super::{each_mut, set};
use crate::error::FieldError;
use crate::strategy::{Column, NameRule, Strategy};
use crate::validation::{dns1123_subdomain, path_segment_name};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The strategy for `resource` in `group`, if this module serves it.
pub fn strategy(group: &str, resource: &str) -> Option<Arc<dyn Strategy>> {
    if group != RBAC_GROUP {
        return None;
    }
    Some(match resource {
        "roles" => Arc::new(Roles { namespaced: true }),
        "clusterroles" => Arc::new(Roles { namespaced: false }),
        "rolebindings" => Arc::new(Bindings { namespaced: true }),
        "clusterrolebindings" => Arc::new(Bindings { namespaced: false }),
        _ => return None,
    })
}

/// Roles and ClusterRoles.
pub struct Roles {
    namespaced: bool,
}

/// `ValidatePolicyRule` for each rule.
fn validate_rules(rules: &[Value], namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let p = format!("rules[{i}]");
        if arr(r, &["verbs"]).is_empty() {
            errs.push(FieldError::required(
                format!("{p}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr(r, &["nonResourceURLs"]);
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{p}.nonResourceURLs"),
                    json!(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(r, &["apiGroups"]).is_empty() || !arr(r, &["resources"]).is_empty() {
                errs.push(FieldError::invalid(
                    format!("{p}.nonResourceURLs"),
                    json!(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(r, &["apiGroups"]).is_empty() {
            errs.push(FieldError::required(
                format!("{p}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr(r, &["resources"]).is_empty() {
            errs.push(FieldError::required(
                format!("{p}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

impl Strategy for Roles {
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        // An aggregated ClusterRole's rules are owned by the controller.
        if !self.namespaced && !obj["aggregationRule"].is_null() {
            return Vec::new();
        }
        validate_rules(arr(obj, &["rules"]), self.namespaced)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, CREATED_AT]
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![name_cell(obj), created_at_cell(obj)]
    }
}

/// RoleBindings and ClusterRoleBindings.
pub struct Bindings {
    namespaced: bool,
}

/// `SetDefaults_Subject`.
fn default_subject(subject: &mut Value) {
    if !s(subject, &["apiGroup"]).is_empty() {
        return;
    }
    // A ServiceAccount's group is "", which Go's omitempty leaves out.
    let group = match s(subject, &["kind"]) {
        "User" | "Group" => RBAC_GROUP,
        _ => return,
    };
    set(subject, "apiGroup", json!(group));
}

fn validate_binding(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let role_ref = &obj["roleRef"];
    let group = s(role_ref, &["apiGroup"]);
    if group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            group,
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = s(role_ref, &["kind"]);
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported("roleRef.kind", kind, kinds));
    }
    let name = s(role_ref, &["name"]);
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in path_segment_name(name) {
            errs.push(FieldError::invalid("roleRef.name", name, msg));
        }
    }
    for (i, sub) in arr(obj, &["subjects"]).iter().enumerate() {
        let p = format!("subjects[{i}]");
        let sname = s(sub, &["name"]);
        if sname.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        }
        let sgroup = s(sub, &["apiGroup"]);
        match s(sub, &["kind"]) {
            "ServiceAccount" => {
                if !sname.is_empty() {
                    for msg in dns1123_subdomain(sname) {
                        errs.push(FieldError::invalid(format!("{p}.name"), sname, msg));
                    }
                }
                if !sgroup.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        sgroup,
                        &[""],
                    ));
                }
                if !namespaced && s(sub, &["namespace"]).is_empty() {
                    errs.push(FieldError::required(format!("{p}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if sgroup != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        sgroup,
                        &[RBAC_GROUP],
                    ));
                }
            }
            k => errs.push(FieldError::not_supported(
                format!("{p}.kind"),
                k,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

impl Strategy for Bindings {
    fn default(&self, obj: &mut Value) {
        each_mut(obj, "subjects", default_subject);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_binding(obj, self.namespaced)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        if new["roleRef"] != old["roleRef"] {
            errs.push(FieldError::invalid(
                "roleRef",
                new["roleRef"].clone(),
                "cannot change roleRef",
            ));
        }
        errs
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Role", "string"),
            AGE,
            wide("Users", "string"),
            wide("Groups", "string"),
            wide("ServiceAccounts", "string"),
        ]
    }

    /// `printRoleBinding` / `printClusterRoleBinding`.
    fn row(&self, obj: &Value) -> Vec<Value> {
        let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
        for sub in arr(obj, &["subjects"]) {
            let name = s(sub, &["name"]).to_string();
            match s(sub, &["kind"]) {
                "User" => users.push(name),
                "Group" => groups.push(name),
                "ServiceAccount" => match s(sub, &["namespace"]) {
                    "" => sas.push(name),
                    ns => sas.push(format!("{ns}/{name}")),
                },
                _ => {}
            }
        }
        vec![
            name_cell(obj),
            json!(format!(
                "{}/{}",
                s(obj, &["roleRef", "kind"]),
                s(obj, &["roleRef", "name"])
            )),
            super::printing::age_cell(obj),
            json!(users.join(", ")),
            json!(groups.join(", ")),
            json!(sas.join(", ")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_defaults_and_validation() {
        let st = strategy(RBAC_GROUP, "rolebindings").unwrap();
        let mut rb = json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default", "namespace": "ns"}]});
        st.default(&mut rb);
        assert_eq!(rb["subjects"][0]["apiGroup"], RBAC_GROUP);
        assert!(
            rb["subjects"][1].get("apiGroup").is_none(),
            "a ServiceAccount subject keeps no apiGroup"
        );
        assert!(st.validate(&rb).is_empty(), "{:?}", st.validate(&rb));
        let mut changed = rb.clone();
        changed["roleRef"]["name"] = json!("other");
        assert_eq!(
            st.validate_update(&changed, &rb)[0].detail,
            "cannot change roleRef"
        );
        let row = st.row(&rb);
        assert_eq!(row[1], "Role/r");
        assert_eq!(&row[3..], &[json!("alice"), json!(""), json!("ns/default")]);
        assert_eq!(st.name_rule(), NameRule::PathSegment);
    }

    #[test]
    fn role_rules() {
        let st = strategy(RBAC_GROUP, "roles").unwrap();
        let errs: Vec<String> = st
            .validate(
                &json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}, {"verbs": []}]}),
            )
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                "rules[0].nonResourceURLs: Invalid value: [\"/x\"]: namespaced rules cannot apply to non-resource URLs",
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        let cr = strategy(RBAC_GROUP, "clusterroles").unwrap();
        assert!(
            cr.validate(&json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}))
                .is_empty()
        );
    }
}
