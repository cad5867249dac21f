//! The create-only review APIs, answered from the caller's cluster's policy
//! and never stored: `authorization.k8s.io/v1` `SelfSubjectAccessReview`,
//! `SubjectAccessReview`, `LocalSubjectAccessReview`,
//! `SelfSubjectRulesReview` (`kubectl auth can-i [--list]`) and
//! `authentication.k8s.io/v1` `SelfSubjectReview` (`kubectl auth whoami`).
//!
//! The request itself is authorized like any other (`create` on the review
//! resource) before it gets here. This module must never answer about
//! another cluster's policy nor persist anything.

use serde_json::{Value, json};

use super::UserInfo;
use super::rbac::{Attributes, Authorizer, AuthzError, PolicyRule};
use crate::error::ApiError;
use nestkube_api::request::ResourceRequest;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

/// The attributes a review's `spec` asks about, for `user`.
fn spec_attributes(spec: &Value, user: UserInfo) -> Result<Attributes, ApiError> {
    let ra = &spec["resourceAttributes"];
    let nra = &spec["nonResourceAttributes"];
    if ra.is_object() {
        Ok(Attributes {
            user,
            verb: str_of(ra, "verb"),
            resource_request: true,
            namespace: str_of(ra, "namespace"),
            api_group: str_of(ra, "group"),
            resource: str_of(ra, "resource"),
            subresource: str_of(ra, "subresource"),
            name: str_of(ra, "name"),
            path: String::new(),
        })
    } else if nra.is_object() {
        Ok(Attributes {
            user,
            verb: str_of(nra, "verb"),
            path: str_of(nra, "path"),
            ..Default::default()
        })
    } else {
        Err(bad(
            "spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ))
    }
}

/// Answers a review `create` in `cluster` for `caller` (already impersonated
/// if asked), returning the object to send back with `201 Created`. The
/// body is decoded only once the method and path are known to be valid.
pub async fn review(
    authorizer: &Authorizer,
    cluster: &str,
    caller: &UserInfo,
    rr: &ResourceRequest,
    decode_body: impl FnOnce() -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    if rr.verb != "create" || rr.name.is_some() || rr.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    if rr.version != "v1" {
        return Err(ApiError::PathNotFound);
    }
    let mut body = decode_body()?;
    if !body.is_object() {
        return Err(bad("the request body must be an object"));
    }
    let namespaced = rr.resource == "localsubjectaccessreviews";
    if namespaced != rr.namespace.is_some() {
        return Err(ApiError::PathNotFound);
    }
    if body["metadata"].is_null() {
        body["metadata"] = json!({});
    }
    body["metadata"]["creationTimestamp"] = Value::Null;
    let spec = body["spec"].clone();
    let status = match rr.resource.as_str() {
        "selfsubjectreviews" => {
            let mut info = json!({"username": caller.name, "groups": caller.groups});
            if !caller.uid.is_empty() {
                info["uid"] = json!(caller.uid);
            }
            if !caller.extra.is_empty() {
                info["extra"] = json!(caller.extra);
            }
            json!({ "userInfo": info })
        }
        "selfsubjectrulesreviews" => {
            let policy = authorizer.policy(cluster).await?;
            let ns = str_of(&spec, "namespace");
            rules_status(&policy.rules_for(caller, &ns))
        }
        "selfsubjectaccessreviews" => {
            access_status(authorizer, cluster, spec_attributes(&spec, caller.clone())?).await?
        }
        _ => {
            let user = UserInfo {
                name: str_of(&spec, "user"),
                groups: spec["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect(),
                uid: str_of(&spec, "uid"),
                extra: serde_json::from_value(spec["extra"].clone()).unwrap_or_default(),
            };
            if user.name.is_empty() && user.groups.is_empty() {
                return Err(bad(
                    "spec.user: Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            let attrs = spec_attributes(&spec, user)?;
            if let Some(ns) = &rr.namespace
                && (!attrs.resource_request || attrs.namespace != *ns)
            {
                return Err(bad(format!(
                    "spec.resourceAttributes.namespace: Invalid value: {:?}: must match metadata.namespace",
                    attrs.namespace
                )));
            }
            access_status(authorizer, cluster, attrs).await?
        }
    };
    if let Some(ns) = &rr.namespace {
        body["metadata"]["namespace"] = ns.clone().into();
    }
    body["status"] = status;
    Ok(body)
}

async fn access_status(
    authorizer: &Authorizer,
    cluster: &str,
    attrs: Attributes,
) -> Result<Value, ApiError> {
    match authorizer.authorize(cluster, &attrs).await {
        Ok(reason) => Ok(json!({"allowed": true, "reason": reason})),
        Err(AuthzError::Forbidden(_)) => Ok(json!({"allowed": false})),
        Err(AuthzError::Api(e)) => Err(e),
    }
}

fn rules_status(rules: &[PolicyRule]) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if !r.resources.is_empty() || !r.api_groups.is_empty() {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(v);
        }
        if !r.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}
