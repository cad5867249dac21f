//! RBAC escalation prevention, as upstream's policy-based Role and binding
//! storage (`pkg/registry/rbac/*/policybased`, `validation.ConfirmNoEscalation`):
//! a user may write a Role or ClusterRole only with rules they already hold
//! (or with the `escalate` verb on it), and a binding only to a role whose
//! rules they already hold (or with the `bind` verb on it). Members of
//! `system:masters` are exempt. Coverage itself, bounded whatever the size
//! of the rules, is [`super::rbac_coverage`]'s.
//!
//! This module must never consult another cluster's policy, nor allow a
//! write it cannot prove harmless.

use serde_json::Value;

use super::UserInfo;
use super::rbac::{
    Attributes, Authorizer, AuthzError, Forbidden, PolicyRule, RBAC_GROUP, RequestDenied,
};
use super::rbac_coverage::{self, Missing, go_quoted_strings};
use nestkube_api::request::ResourceRequest;

fn forbidden(user: &UserInfo, rr: &ResourceRequest, name: &str, missing: &Missing) -> Forbidden {
    Forbidden {
        message: format!(
            "{}.{RBAC_GROUP} {name:?} is forbidden: user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            rr.resource,
            user.name,
            go_quoted_strings(&user.groups),
            missing.description
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
    match rbac_coverage::missing(&held, &granted) {
        None => Ok(()),
        Some(missing) => Err(RequestDenied::Forbidden(forbidden(
            user, rr, &name, &missing,
        ))),
    }
}
