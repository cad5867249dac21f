//! Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-<key>`), as upstream's `WithImpersonation` filter: each
//! requested attribute is authorized with the `impersonate` verb (users,
//! groups, service accounts, `authentication.k8s.io` uids and userextras) in
//! the request's cluster, and the request then runs as the impersonated user.
//!
//! This module must never let a caller become a user it was not granted,
//! nor consult any cluster's policy but the request's.

use http::HeaderMap;

use super::UserInfo;
use super::rbac::{Attributes, Authorizer, AuthzError};
use nestkube_api::request::percent_decode;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Why impersonation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImpersonationError {
    /// Groups, uid or extras without a user (upstream answers this too).
    #[error("requested {0} without impersonating a user")]
    NoUser(String),
    /// A header value that is not text.
    #[error("invalid impersonation header {0}")]
    BadHeader(String),
    /// Not granted, or the policy could not be read.
    #[error(transparent)]
    Authz(#[from] AuthzError),
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, ImpersonationError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| ImpersonationError::BadHeader(name.into()))
        })
        .collect()
}

/// Whether the request asks to impersonate anyone.
pub fn requested(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k == USER || k == GROUP || k == UID || k.starts_with(EXTRA_PREFIX)
    })
}

/// The user the request acts as: `actor` itself without impersonation
/// headers, else the impersonated user once every requested attribute is
/// authorized for `actor` in `cluster`.
pub async fn resolve(
    authorizer: &Authorizer,
    cluster: &str,
    actor: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ImpersonationError> {
    if !requested(headers) {
        return Ok(actor);
    }
    let users = values(headers, USER)?;
    let groups = values(headers, GROUP)?;
    let uids = values(headers, UID)?;
    let mut extras: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX) {
            let v = v
                .to_str()
                .map_err(|_| ImpersonationError::BadHeader(k.as_str().into()))?;
            // Extra keys are percent-encoded in header names (upstream `unescapeExtraKey`).
            extras.push((percent_decode(key), v.to_string()));
        }
    }
    let Some(name) = users.first().map(|s| s.to_string()) else {
        let what = if !groups.is_empty() {
            format!("groups {groups:?}")
        } else if !uids.is_empty() {
            format!("uid {:?}", uids[0])
        } else {
            "extras".to_string()
        };
        return Err(ImpersonationError::NoUser(what));
    };
    let check = |resource: &str, group: &str, namespace: &str, name: &str, sub: &str| Attributes {
        user: actor.clone(),
        verb: "impersonate".into(),
        resource_request: true,
        namespace: namespace.into(),
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        name: name.into(),
        path: String::new(),
    };
    let mut asks = Vec::new();
    let service_account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, sa)) => asks.push(check("serviceaccounts", "", ns, sa, "")),
        None => asks.push(check("users", "", "", &name, "")),
    }
    for g in &groups {
        asks.push(check("groups", "", "", g, ""));
    }
    for u in &uids {
        asks.push(check("uids", "authentication.k8s.io", "", u, ""));
    }
    for (k, v) in &extras {
        asks.push(check("userextras", "authentication.k8s.io", "", v, k));
    }
    for a in &asks {
        authorizer.authorize(cluster, a).await?;
    }
    let mut out_groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    if let (Some((ns, _)), true) = (service_account, groups.is_empty()) {
        out_groups.push("system:serviceaccounts".into());
        out_groups.push(format!("system:serviceaccounts:{ns}"));
    }
    let implied = if name == "system:anonymous" {
        "system:unauthenticated"
    } else {
        "system:authenticated"
    };
    if !out_groups.iter().any(|g| g == implied) {
        out_groups.push(implied.into());
    }
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (k, v) in extras {
        extra.entry(k).or_default().push(v);
    }
    Ok(UserInfo {
        name,
        groups: out_groups,
        uid: uids.first().map(|u| u.to_string()).unwrap_or_default(),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_headers() {
        let mut h = HeaderMap::new();
        assert!(!requested(&h));
        h.insert("impersonate-extra-scopes", "x".parse().unwrap());
        assert!(requested(&h));
        assert_eq!(percent_decode("example.com%2fscopes"), "example.com/scopes");
    }
}
