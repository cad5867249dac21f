//! `kubectl logs` of a virtual pod: the [`PodConnector`] the syncer
//! registers on the apiserver ([`register`]). A virtual pod's log is its
//! copy's log in the parent: the same `pods/log` request, with the same
//! options, sent to the parent (the host's kube-apiserver, or a served
//! cluster in-process) for the copy's name in the placement's host
//! namespace, its bytes streamed back as they come (a follow streams).
//!
//! Nesting needs nothing more: a parent that is itself a virtual cluster
//! answers `pods/log` through this same connector, one hop further down.
//!
//! Tenancy: the only pod reached is the copy of `cluster`'s own pod, named
//! by [`names::host_name`] of `(cluster, namespace, pod)` in the host
//! namespace of `cluster`'s placement, through `cluster`'s parent.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use nestkube_apiserver::error::ApiError;
use nestkube_apiserver::server::ApiServer;
use nestkube_apiserver::server::pod_proxy::{ConnectError, LogQuery, LogStream, PodConnector};
use nestkube_apiserver::tenancy::Parent;

use crate::names;

/// Largest error body read from a parent.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The syncer's [`PodConnector`]: reaches a virtual pod's copy in its
/// cluster's parent.
pub struct Connector {
    api: Arc<ApiServer>,
    host: Option<kube::Client>,
}

/// Registers the syncer's connector on `api` (`host`: the client of the
/// host cluster, for placements on it). Needs no running syncer: any
/// replica can answer logs.
pub fn register(api: &Arc<ApiServer>, host: Option<kube::Client>) {
    api.set_pod_connector(Arc::new(Connector {
        api: api.clone(),
        host,
    }));
}

#[async_trait]
impl PodConnector for Connector {
    async fn log(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
        query: &LogQuery,
    ) -> Result<LogStream, ConnectError> {
        let Some(placement) = self.api.clusters.get(cluster).and_then(|c| c.placement()) else {
            return Err(ConnectError::NotRunning);
        };
        let client = match &placement.parent {
            Parent::Cluster(path) => self.api.client_for(path),
            Parent::Host => self.host.clone().ok_or_else(|| {
                ApiError::Internal(format!(
                    "cluster {cluster} is placed on the host cluster, but no host client was given"
                ))
            })?,
        };
        let copy = names::host_name(cluster, namespace, pod);
        let mut uri = format!(
            "/api/v1/namespaces/{}/pods/{copy}/log",
            placement.host_namespace
        );
        let q = query.to_query_string();
        if !q.is_empty() {
            uri = format!("{uri}?{q}");
        }
        let request = http::Request::get(uri)
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let response = client.send(request).await.map_err(|e| {
            ApiError::Internal(format!("reaching the parent of cluster {cluster}: {e}"))
        })?;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            let bytes = http_body_util::Limited::new(body, MAX_ERROR_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(parent_error(parts.status.as_u16(), &bytes, &copy, pod));
        }
        let stream = body
            .into_data_stream()
            .take_while(|chunk| {
                if let Err(e) = chunk {
                    tracing::debug!(error = %e, "log stream from the parent ended");
                }
                std::future::ready(chunk.is_ok())
            })
            .filter_map(|chunk| std::future::ready(chunk.ok().filter(|b: &Bytes| !b.is_empty())));
        Ok(stream.boxed())
    }
}

/// The parent's error as the virtual cluster's: the copy's name replaced by
/// the virtual pod's; a copy that does not exist (yet) is a pod not running.
fn parent_error(code: u16, body: &[u8], copy: &str, pod: &str) -> ConnectError {
    let status: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = status["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    if code == 404 && status["details"]["name"] == copy {
        return ConnectError::NotRunning;
    }
    ConnectError::Api(ApiError::Other {
        code,
        reason: reason(status["reason"].as_str().unwrap_or("")),
        message: message.replace(copy, pod),
        causes: Vec::new(),
    })
}

/// Upstream's `StatusReason` as a static string ("" when unknown).
fn reason(r: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "MethodNotAllowed",
        "NotAcceptable",
        "TooManyRequests",
        "InternalError",
        "ServiceUnavailable",
        "Timeout",
        "Gone",
        "Invalid",
    ];
    KNOWN.iter().find(|k| **k == r).copied().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_errors_name_the_virtual_pod() {
        let body = br#"{"kind":"Status","status":"Failure","reason":"BadRequest","code":400,
            "message":"container \"main\" in pod \"web-x-default-x-a\" is waiting to start: ContainerCreating"}"#;
        match parent_error(400, body, "web-x-default-x-a", "web") {
            ConnectError::Api(e) => {
                assert_eq!(e.code(), 400);
                assert_eq!(e.reason(), "BadRequest");
                assert_eq!(
                    e.to_string(),
                    "container \"main\" in pod \"web\" is waiting to start: ContainerCreating"
                );
            }
            other => panic!("{other:?}"),
        }
        let missing = br#"{"kind":"Status","reason":"NotFound","code":404,
            "details":{"name":"web-x-default-x-a","kind":"pods"}}"#;
        assert!(matches!(
            parent_error(404, missing, "web-x-default-x-a", "web"),
            ConnectError::NotRunning
        ));
    }
}
