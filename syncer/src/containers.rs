//! Reaching the containers of virtual pods: the [`PodConnector`] the syncer
//! registers on the apiserver ([`register`]). A virtual pod's containers
//! are its copy's containers in the parent, so every request is the same
//! request sent to the parent (the host's kube-apiserver, or a served
//! cluster in-process) for the copy's name in the placement's host
//! namespace:
//! - `kubectl logs`: the same `pods/log` request with the same options, its
//!   bytes streamed back as they come (a follow streams);
//! - `kubectl exec`, `attach`, `port-forward` (and `cp`, which is exec):
//!   the same upgrade request (WebSocket or SPDY, the client's negotiation
//!   headers as they are), its upgraded connection handed back to be
//!   spliced to the client's;
//! - `services/<name>/proxy/...` and `pods/<name>/proxy/...`: the same
//!   request for the copy (`[scheme:]<copy>[:port]`), the answer streamed
//!   back (an error `Status` of the parent with the copy's name replaced).
//!
//! Nesting needs nothing more: a parent that is itself a virtual cluster
//! answers through this same connector, one hop further down (for streams
//! directly with [`ApiServer::connect_pod`], no HTTP in between).
//!
//! Tenancy: the only pod reached is the copy of `cluster`'s own pod, named
//! by [`names::host_name`] of `(cluster, namespace, pod)` in the host
//! namespace of `cluster`'s placement, through `cluster`'s parent. A name
//! alone proves nothing (a host namespace may be shared, and a name can be
//! made to collide), so the pod of that name is first read and must carry
//! the owner labels and annotations of exactly this virtual pod and
//! VirtualCluster ([`is_copy_of`]); any other is answered as no copy at
//! all. The client's credential never goes on: the parent is called with
//! the syncer's own.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use nestkube_apiserver::error::ApiError;
use nestkube_apiserver::server::ApiServer;
use nestkube_apiserver::server::pod_connect::{StreamRequest, Upgraded};
use nestkube_apiserver::server::pod_proxy::{
    ConnectError, LogQuery, LogStream, PodConnector, ProxyKind, ProxyRequest,
};
use nestkube_apiserver::server::response::Body;
use nestkube_apiserver::tenancy::{Parent, Placement};

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
        let placement = self.placement(cluster)?;
        let client = self.parent_client(cluster, &placement)?;
        let copy = names::host_name(cluster, namespace, pod);
        self.check_copy(&client, &placement, cluster, namespace, pod, &copy)
            .await?;
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

    async fn proxy(
        &self,
        cluster: &str,
        namespace: &str,
        request: &ProxyRequest,
    ) -> Result<http::Response<Body>, ConnectError> {
        let placement = self.placement(cluster)?;
        let client = self.parent_client(cluster, &placement)?;
        let (scheme, name, port) = split_proxy_name(&request.name);
        let copy = names::host_name(cluster, namespace, name);
        match request.kind {
            ProxyKind::Pod => {
                self.check_copy(&client, &placement, cluster, namespace, name, &copy)
                    .await?
            }
            ProxyKind::Service => {
                let services: kube::Api<k8s_openapi::api::core::v1::Service> =
                    kube::Api::namespaced(client.clone(), &placement.host_namespace);
                let found = services.get_metadata_opt(&copy).await.map_err(|e| {
                    ApiError::Internal(format!("reaching the parent of cluster {cluster}: {e}"))
                })?;
                let meta = found
                    .map(|f| serde_json::to_value(&f.metadata).unwrap_or_default())
                    .unwrap_or_default();
                if !is_copy_of(&meta, &placement.uid, cluster, namespace, name, None) {
                    return Err(ConnectError::NotRunning);
                }
            }
        }
        let spec = match (scheme.is_empty(), port.is_empty()) {
            (true, true) => copy.clone(),
            (true, false) => format!("{copy}:{port}"),
            (false, _) => format!("{scheme}:{copy}:{port}"),
        };
        let mut uri = format!(
            "/api/v1/namespaces/{}/{}/{spec}/proxy{}",
            placement.host_namespace,
            request.kind.resource(),
            request.path
        );
        if let Some(q) = request.query.as_deref().filter(|q| !q.is_empty()) {
            uri = format!("{uri}?{q}");
        }
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(uri);
        if let Some(ct) = &request.content_type {
            builder = builder.header(http::header::CONTENT_TYPE, ct);
        }
        let req = builder
            .body(kube::client::Body::from(request.body.to_vec()))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let response = client.send(req).await.map_err(|e| {
            ApiError::Internal(format!("reaching the parent of cluster {cluster}: {e}"))
        })?;
        Ok(proxied(response, &copy, name).await)
    }

    async fn connect(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
        request: &StreamRequest,
    ) -> Result<Upgraded, ConnectError> {
        let placement = self.placement(cluster)?;
        let copy = names::host_name(cluster, namespace, pod);
        let client = self.parent_client(cluster, &placement)?;
        self.check_copy(&client, &placement, cluster, namespace, pod, &copy)
            .await?;
        match &placement.parent {
            Parent::Cluster(path) => self
                .api
                .connect_pod(path, &placement.host_namespace, &copy, request)
                .await
                .map_err(|e| match e {
                    // The copy is not there (yet): as for logs.
                    ApiError::NotFound(_) => ConnectError::NotRunning,
                    e => ConnectError::Api(rename(e, &copy, pod)),
                }),
            Parent::Host => upgrade(&client, &placement.host_namespace, &copy, pod, request).await,
        }
    }
}

impl Connector {
    /// The placement of `cluster` (a cluster that is not synced runs no pod).
    fn placement(&self, cluster: &str) -> Result<std::sync::Arc<Placement>, ConnectError> {
        self.api
            .clusters
            .get(cluster)
            .and_then(|c| c.placement())
            .ok_or(ConnectError::NotRunning)
    }

    /// A client of `cluster`'s parent (in-process for a served parent).
    fn parent_client(
        &self,
        cluster: &str,
        placement: &Placement,
    ) -> Result<kube::Client, ConnectError> {
        match &placement.parent {
            Parent::Cluster(path) => Ok(self
                .api
                .client_for_agent(path, crate::syncer::SYNCER_MANAGER)),
            Parent::Host => self.host(cluster),
        }
    }

    /// Reads parent pod `copy` and checks that it is the copy of virtual
    /// pod `namespace/pod` of `cluster` ([`is_copy_of`]); a pod that is
    /// missing or someone else's is [`ConnectError::NotRunning`], as if
    /// there were no copy, and nothing of it is told.
    async fn check_copy(
        &self,
        parent: &kube::Client,
        placement: &Placement,
        cluster: &str,
        namespace: &str,
        pod: &str,
        copy: &str,
    ) -> Result<(), ConnectError> {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(parent.clone(), &placement.host_namespace);
        let found = pods.get_metadata_opt(copy).await.map_err(|e| {
            ApiError::Internal(format!("reaching the parent of cluster {cluster}: {e}"))
        })?;
        let Some(found) = found else {
            return Err(ConnectError::NotRunning);
        };
        let meta = serde_json::to_value(&found.metadata).unwrap_or_default();
        let uid = self.virtual_uid(cluster, namespace, pod).await;
        if is_copy_of(
            &meta,
            &placement.uid,
            cluster,
            namespace,
            pod,
            uid.as_deref(),
        ) {
            Ok(())
        } else {
            tracing::warn!(%cluster, pod = %format!("{namespace}/{pod}"), parent_pod = %copy,
                "the parent pod of that name is not this pod's copy; not connecting");
            Err(ConnectError::NotRunning)
        }
    }

    /// The uid of virtual pod `namespace/pod` of `cluster`, if it exists.
    async fn virtual_uid(&self, cluster: &str, namespace: &str, pod: &str) -> Option<String> {
        let pods = self.api.catalog.get("", "v1", "pods")?;
        let target = nestkube_apiserver::registry::store::Target {
            cluster,
            resource: pods,
            namespace: Some(namespace),
        };
        let obj = self.api.store.get(&target, pod).await.ok()?;
        obj["metadata"]["uid"].as_str().map(str::to_string)
    }

    /// The host's client, for a cluster placed on the host.
    fn host(&self, cluster: &str) -> Result<kube::Client, ConnectError> {
        self.host.clone().ok_or_else(|| {
            ConnectError::Api(ApiError::Internal(format!(
                "cluster {cluster} is placed on the host cluster, but no host client was given"
            )))
        })
    }
}

/// Whether `meta` (a parent pod's metadata) is that of the copy of virtual
/// pod `namespace/pod` (uid `uid`, when known) of `cluster`, made for the
/// VirtualCluster with uid `vc_uid`: the syncer's managed-by and owner
/// labels, and owner annotations naming exactly that pod.
pub fn is_copy_of(
    meta: &serde_json::Value,
    vc_uid: &str,
    cluster: &str,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
) -> bool {
    let label = |k: &str| meta["labels"][k].as_str().unwrap_or("");
    let annotation = |k: &str| meta["annotations"][k].as_str().unwrap_or("");
    label(names::MANAGED_BY_LABEL) == names::MANAGED_BY_VALUE
        && label(names::VC_UID_LABEL) == names::label_value(vc_uid)
        && annotation(names::CLUSTER_ANNOTATION) == cluster
        && annotation(names::NAMESPACE_ANNOTATION) == namespace
        && annotation(names::NAME_ANNOTATION) == pod
        && uid.is_none_or(|u| annotation(names::UID_ANNOTATION) == u)
}

/// `[scheme:]name[:port]` split as upstream's proxy does: (scheme, name, port).
fn split_proxy_name(spec: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name] => ("", name, ""),
        [name, port] => ("", name, port),
        [scheme, name, port] => (scheme, name, port),
        _ => ("", spec, ""),
    }
}

/// The parent's answer as the client's: status and content type as they
/// are; an error body of the parent (a `Status`) with the copy's name
/// replaced by the virtual object's; anything else streamed as it comes.
async fn proxied(
    response: http::Response<kube::client::Body>,
    copy: &str,
    name: &str,
) -> http::Response<Body> {
    let (parts, body) = response.into_parts();
    let mut out = http::Response::builder().status(parts.status);
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
        out = out.header(http::header::CONTENT_TYPE, ct.clone());
    }
    let is_status = parts.status.is_client_error() || parts.status.is_server_error();
    let body: Body = if is_status {
        let bytes = http_body_util::Limited::new(body, MAX_ERROR_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).replace(copy, name);
        http_body_util::Full::new(Bytes::from(text))
            .map_err(|e| match e {})
            .boxed()
    } else {
        // Through a channel: the body must be `Sync`.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        let frames = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(|b| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)));
        BodyExt::boxed(http_body_util::StreamBody::new(frames))
    };
    out.body(body).unwrap_or_else(|_| {
        http::Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed())
    })
}

/// Sends `request` for pod `copy` in `namespace` of a remote parent as an
/// upgrade request and returns the upgraded connection.
async fn upgrade(
    client: &kube::Client,
    namespace: &str,
    copy: &str,
    pod: &str,
    request: &StreamRequest,
) -> Result<Upgraded, ConnectError> {
    let mut uri = format!(
        "/api/v1/namespaces/{namespace}/pods/{copy}/{}",
        request.stream.subresource()
    );
    // Rebuilt from the options the apiserver checked, never the client's.
    let query = request.query();
    if !query.is_empty() {
        uri = format!("{uri}?{query}");
    }
    let mut builder = http::Request::builder()
        .method(request.method.clone())
        .uri(uri);
    if let Some(headers) = builder.headers_mut() {
        headers.extend(request.headers.clone());
    }
    let req = builder
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = client
        .send(req)
        .await
        .map_err(|e| ApiError::Internal(format!("reaching the parent: {e}")))?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let code = response.status().as_u16();
        let bytes = http_body_util::Limited::new(response.into_body(), MAX_ERROR_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(parent_error(code, &bytes, copy, pod));
    }
    let headers = response.headers().clone();
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| ApiError::Internal(format!("upgrading the parent's connection: {e}")))?;
    Ok(Upgraded::new(
        &headers,
        hyper_util::rt::TokioIo::new(upgraded),
    ))
}

/// An error of a served parent with the copy's name replaced by the
/// virtual pod's.
fn rename(e: ApiError, copy: &str, pod: &str) -> ApiError {
    ApiError::Other {
        code: e.code(),
        reason: e.reason(),
        message: e.to_string().replace(copy, pod),
        causes: Vec::new(),
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
    fn only_the_pods_own_copy_is_its_copy() {
        let mut meta = serde_json::json!({
            "labels": names::owner_labels("vc-1", "default", "web"),
            "annotations": names::owner_annotations("team-a", "default", "web", "u-1"),
        });
        meta["labels"][names::MANAGED_BY_LABEL] = names::MANAGED_BY_VALUE.into();
        assert!(is_copy_of(
            &meta,
            "vc-1",
            "team-a",
            "default",
            "web",
            Some("u-1")
        ));
        assert!(is_copy_of(&meta, "vc-1", "team-a", "default", "web", None));
        // Another VirtualCluster, cluster, pod or incarnation of the pod.
        assert!(!is_copy_of(&meta, "vc-2", "team-a", "default", "web", None));
        assert!(!is_copy_of(&meta, "vc-1", "team-b", "default", "web", None));
        assert!(!is_copy_of(&meta, "vc-1", "team-a", "other", "web", None));
        assert!(!is_copy_of(&meta, "vc-1", "team-a", "default", "db", None));
        assert!(!is_copy_of(
            &meta,
            "vc-1",
            "team-a",
            "default",
            "web",
            Some("u-2")
        ));
        // A pod the syncer does not manage.
        meta["labels"]
            .as_object_mut()
            .unwrap()
            .remove(names::MANAGED_BY_LABEL);
        assert!(!is_copy_of(&meta, "vc-1", "team-a", "default", "web", None));
    }

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
