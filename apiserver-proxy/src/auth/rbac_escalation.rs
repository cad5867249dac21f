//! RBAC escalation prevention, as upstream's policy-based Role and binding
//! storage (`pkg/registry/rbac/*/policybased`, `validation.ConfirmNoEscalation`):
//! a user may write a Role or ClusterRole only with rules they already hold
//! (or with the `escalate` verb on it), and a binding only to a role whose
//! rules they already hold (or with the `bind` verb on it). Members of
//! `system:masters` are exempt.
//!
//! This module must never consult another cluster's policy, nor allow a
//! write it cannot prove harmless.

use serde_json::Value;

use super::UserInfo;
use super::rbac::{
    Attributes, Authorizer, AuthzError, Forbidden, MASTERS_GROUP, PolicyRule, RBAC_GROUP,
    RequestDenied,
};
use crate::server::request::ResourceRequest;

/// Whether a request is a Role/binding write that must be checked for
/// escalation.
pub fn guards(user: &UserInfo, rr: &ResourceRequest) -> bool {
    rr.group == RBAC_GROUP
        && matches!(
            rr.resource.as_str(),
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        )
        && matches!(rr.verb, "create" | "update" | "patch")
        && rr.subresource.is_none()
        && !user.groups.iter().any(|g| g == MASTERS_GROUP)
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

fn resources_cover(owner: &[String], requested: &[String]) -> bool {
    if has(owner, "*") || has_all(owner, requested) {
        return true;
    }
    requested.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn urls_cover(owner: &[String], requested: &[String]) -> bool {
    requested.iter().all(|path| {
        owner.iter().any(|o| {
            o == path
                || o.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    })
}

/// Upstream `ruleCovers`.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    (has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs))
        && (has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups))
        && resources_cover(&owner.resources, &sub.resources)
        && urls_cover(&owner.non_resource_urls, &sub.non_resource_urls)
        && (owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names))
}

/// Upstream `BreakdownRule`: one verb, group, resource and name each.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                if rule.resource_names.is_empty() {
                    out.push(PolicyRule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        ..Default::default()
                    });
                }
                for name in &rule.resource_names {
                    out.push(PolicyRule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..Default::default()
                    });
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

/// The rules of `servant` that `owner` does not cover (upstream `Covers`).
fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

fn forbidden(
    user: &UserInfo,
    rr: &ResourceRequest,
    name: &str,
    missing: &[PolicyRule],
) -> Forbidden {
    let rules: Vec<String> = missing
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    Forbidden {
        message: format!(
            "{}.{RBAC_GROUP} {name:?} is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
            rr.resource,
            user.name,
            user.groups,
            rules.join("\n")
        ),
        group: RBAC_GROUP.into(),
        kind: rr.resource.clone(),
        name: name.into(),
    }
}

/// Checks that writing `proposed` (the object as it would be stored) does
/// not grant more than `user` holds in `cluster`.
pub async fn confirm(
    authorizer: &Authorizer,
    cluster: &str,
    user: &UserInfo,
    rr: &ResourceRequest,
    proposed: &Value,
) -> Result<(), RequestDenied> {
    let namespace = rr.namespace.clone().unwrap_or_default();
    let name = proposed["metadata"]["name"]
        .as_str()
        .or(rr.name.as_deref())
        .unwrap_or("")
        .to_string();
    let is_binding = rr.resource.ends_with("bindings");
    // The verb that waives the check, on the role the request grants.
    let (waiver_resource, waiver_name, verb) = if is_binding {
        let kind = proposed["roleRef"]["kind"].as_str().unwrap_or("");
        let resource = if kind == "ClusterRole" {
            "clusterroles"
        } else {
            "roles"
        };
        let role = proposed["roleRef"]["name"].as_str().unwrap_or("");
        (resource.to_string(), role.to_string(), "bind")
    } else {
        (rr.resource.clone(), name.clone(), "escalate")
    };
    let waiver = Attributes {
        user: user.clone(),
        verb: verb.into(),
        resource_request: true,
        namespace: namespace.clone(),
        api_group: RBAC_GROUP.into(),
        resource: waiver_resource,
        name: waiver_name,
        ..Default::default()
    };
    match authorizer.authorize(cluster, &waiver).await {
        Ok(_) => return Ok(()),
        Err(AuthzError::Api(e)) => return Err(RequestDenied::Other(e)),
        Err(AuthzError::Forbidden(_)) => {}
    }
    let policy = authorizer
        .policy(cluster)
        .await
        .map_err(RequestDenied::Other)?;
    let granted: Vec<PolicyRule> = if is_binding {
        policy.role_rules(
            proposed["roleRef"]["kind"].as_str() == Some("ClusterRole"),
            &namespace,
            proposed["roleRef"]["name"].as_str().unwrap_or(""),
        )
    } else {
        proposed["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(PolicyRule::from_json)
            .collect()
    };
    let held = policy.rules_for(user, &namespace);
    let missing = uncovered(&held, &granted);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RequestDenied::Forbidden(forbidden(
            user, rr, &name, &missing,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> Vec<PolicyRule> {
        v.as_array()
            .unwrap()
            .iter()
            .map(PolicyRule::from_json)
            .collect()
    }

    #[test]
    fn coverage_as_upstream() {
        let owner = rules(json!([
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]},
            {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]},
        ]));
        assert!(uncovered(&owner, &rules(json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods", "pods/status"]}]))).is_empty());
        assert!(uncovered(&owner, &rules(json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}]))).is_empty());
        assert!(
            uncovered(
                &owner,
                &rules(json!([{"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}]))
            )
            .is_empty()
        );
        assert_eq!(
            uncovered(
                &owner,
                &rules(json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]))
            )
            .len(),
            1
        );
        assert_eq!(
            uncovered(
                &owner,
                &rules(json!([{"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]}]))
            )
            .len(),
            1
        );
        assert_eq!(
            uncovered(
                &owner,
                &rules(json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]))
            )
            .len(),
            1
        );
    }
}
