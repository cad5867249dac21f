//! The token endpoints: `TokenRequest` (the `token` subresource of
//! service accounts) and `TokenReview` (`authentication.k8s.io/v1`,
//! create-only), both answered in the cluster the request is served from.
//!
//! This module owns only request validation and response shapes; keys,
//! claims and verification are [`super::tokens`]'. It must never mint a
//! token for a service account that does not exist, nor review a token
//! against any cluster but the one the request is served from.

use serde_json::{Value, json};

use super::tokens::{self, API_AUDIENCE, Claims, ObjectRef};
use crate::error::{ApiError, FieldError, Subject};
use crate::registry::catalog::Catalog;
use crate::registry::meta;
use crate::registry::store::{Store, Target};
use crate::{Cluster, Clusters};

/// Default `spec.expirationSeconds` of a TokenRequest.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// Shortest `spec.expirationSeconds` accepted (upstream: 10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// Longest `spec.expirationSeconds` accepted (upstream: 2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

const GROUP: &str = "authentication.k8s.io";

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn core_target<'a>(
    catalog: &'a Catalog,
    cluster: &'a str,
    resource: &str,
    namespace: &'a str,
) -> Result<Target<'a>, ApiError> {
    let r = catalog
        .get("", "v1", resource)
        .ok_or_else(|| ApiError::Internal(format!("{resource} are not served")))?;
    Ok(Target {
        cluster,
        resource: r,
        namespace: Some(namespace),
    })
}

/// `POST .../namespaces/<namespace>/serviceaccounts/<name>/token`: mints a
/// token for the service account with `cluster`'s key. Returns the
/// `TokenRequest` with `status.token` and `status.expirationTimestamp`.
pub async fn token_request(
    store: &Store,
    catalog: &Catalog,
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<Value, ApiError> {
    if let Some(kind) = body["kind"].as_str()
        && !kind.is_empty()
        && kind != "TokenRequest"
    {
        return Err(ApiError::BadRequest(format!(
            "expected a TokenRequest, got {kind}"
        )));
    }
    let invalid = |field: &str, value: Value, detail: &str| {
        ApiError::invalid(
            Subject {
                group: GROUP.into(),
                kind: "TokenRequest".into(),
                name: name.into(),
            },
            FieldError::invalid(field, value, detail),
        )
    };
    let spec = &body["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            invalid(
                "spec.expirationSeconds",
                v.clone(),
                "must be an integer number of seconds",
            )
        })?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            expiration.into(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            expiration.into(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences = strings(&spec["audiences"]);
    if audiences.is_empty() {
        audiences = vec![API_AUDIENCE.to_string()];
    }

    let path = &cluster.path;
    let sa = store
        .get(
            &core_target(catalog, path, "serviceaccounts", namespace)?,
            name,
        )
        .await?;
    let mut claims = Claims::new(
        path,
        namespace,
        ObjectRef {
            name: name.into(),
            uid: meta::uid(&sa).to_string(),
        },
        audiences.clone(),
        tokens::unix_now(),
        expiration,
    );

    let bound = &spec["boundObjectRef"];
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or("");
        let api_version = bound["apiVersion"].as_str().unwrap_or("");
        let bound_name = bound["name"].as_str().unwrap_or("");
        if !matches!(api_version, "" | "v1") || !matches!(kind, "Pod" | "Secret") {
            return Err(ApiError::BadRequest(format!(
                "cannot bind token to object of type {api_version}, Kind={kind}"
            )));
        }
        if bound_name.is_empty() {
            return Err(invalid(
                "spec.boundObjectRef.name",
                "".into(),
                "name is required",
            ));
        }
        let resource = if kind == "Pod" { "pods" } else { "secrets" };
        let obj = store
            .get(
                &core_target(catalog, path, resource, namespace)?,
                bound_name,
            )
            .await?;
        if kind == "Pod" {
            let pod_sa = obj["spec"]["serviceAccountName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            if pod_sa != name {
                return Err(ApiError::BadRequest(format!(
                    "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                )));
            }
        }
        let uid = meta::uid(&obj).to_string();
        if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::Conflict {
                subject: Subject {
                    group: String::new(),
                    kind: kind.into(),
                    name: bound_name.into(),
                },
                message: format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            });
        }
        let r = ObjectRef {
            name: bound_name.into(),
            uid,
        };
        if kind == "Pod" {
            claims.kubernetes.pod = Some(r);
        } else {
            claims.kubernetes.secret = Some(r);
        }
    }

    let token = cluster
        .sa_key
        .sign(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut out_spec = spec.as_object().cloned().unwrap_or_default();
    out_spec.insert("audiences".into(), json!(audiences));
    out_spec.insert("expirationSeconds".into(), json!(expiration));
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": rfc3339(claims.iat),
        },
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": rfc3339(claims.exp),
        },
    }))
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: whether
/// `spec.token` authenticates in `cluster` for `spec.audiences` (default:
/// the API's), and as whom.
pub async fn token_review(
    clusters: &Clusters,
    store: &Store,
    catalog: &Catalog,
    cluster: &str,
    body: Value,
) -> Result<Value, ApiError> {
    if let Some(kind) = body["kind"].as_str()
        && !kind.is_empty()
        && kind != "TokenReview"
    {
        return Err(ApiError::BadRequest(format!(
            "expected a TokenReview, got {kind}"
        )));
    }
    let spec = &body["spec"];
    let token = spec["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "token is required for TokenReview in authentication".into(),
        ));
    }
    let mut wanted = strings(&spec["audiences"]);
    if wanted.is_empty() {
        wanted = vec![API_AUDIENCE.to_string()];
    }
    let status = match tokens::authenticate(clusters, store, catalog, cluster, token, &wanted).await
    {
        Ok(auth) => {
            let user = auth.claims.user();
            let k = &auth.claims.kubernetes;
            let mut extra = serde_json::Map::new();
            extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                json!([format!("JTI={}", auth.claims.jti)]),
            );
            if let Some(pod) = &k.pod {
                extra.insert(
                    "authentication.kubernetes.io/pod-name".into(),
                    json!([pod.name]),
                );
                extra.insert(
                    "authentication.kubernetes.io/pod-uid".into(),
                    json!([pod.uid]),
                );
            }
            json!({
                "authenticated": true,
                "user": {
                    "username": user.name,
                    "uid": k.serviceaccount.uid,
                    "groups": user.groups,
                    "extra": extra,
                },
                "audiences": auth.audiences,
            })
        }
        Err(e) => {
            tracing::debug!(error = %e, "token review: not authenticated");
            json!({"authenticated": false, "user": {}, "error": "invalid bearer token"})
        }
    };
    let mut out_spec = spec.as_object().cloned().unwrap_or_default();
    out_spec.insert("audiences".into(), json!(wanted));
    Ok(json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": out_spec,
        "status": status,
    }))
}
