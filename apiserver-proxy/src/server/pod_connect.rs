//! Streaming pod subresources (`pods/exec`, `pods/attach`,
//! `pods/portforward`): the connection is upgraded (WebSocket, kubectl's
//! default since 1.30, or SPDY/3.1) and its bytes are spliced, unchanged, to
//! an upgraded connection where the pod really runs. The apiserver checks
//! the request against the virtual pod (it exists, the container is one of
//! it, it has a node) as upstream's `streamLocation` does; the registered
//! [`PodConnector`] opens the other end (the syncer: the same request for
//! the pod's copy in its cluster's parent).
//!
//! The upgrade is negotiated end to end: the client's upgrade headers
//! (WebSocket key and subprotocols, SPDY stream protocol versions) go to the
//! far end as they are, and its answer (accept key, chosen protocol) comes
//! back as it is, so every protocol version either side speaks works and
//! none is parsed here. Nested clusters need nothing more: a parent that is
//! itself a served cluster is reached with [`ApiServer::connect_pod`], one
//! hop further down, without HTTP in between.
//!
//! Tenancy: a connector is called with the cluster the request was
//! authorized in and must only reach that cluster's pods; this module never
//! looks at the bytes.

use std::pin::Pin;

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::handler::{ApiServer, Body};
use super::pod_proxy::ConnectError;
use super::request::{RequestInfo, ResourceRequest};
use crate::error::ApiError;
use crate::registry::store::Target;

/// A streaming pod subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// `pods/exec`: run a command in a container.
    Exec,
    /// `pods/attach`: attach to a container's main process.
    Attach,
    /// `pods/portforward`: forward ports of the pod.
    PortForward,
}

impl Stream {
    /// The subresource's name in paths (`exec`, `attach`, `portforward`).
    pub fn subresource(self) -> &'static str {
        match self {
            Stream::Exec => "exec",
            Stream::Attach => "attach",
            Stream::PortForward => "portforward",
        }
    }

    fn parse(subresource: &str) -> Option<Self> {
        Some(match subresource {
            "exec" => Stream::Exec,
            "attach" => Stream::Attach,
            "portforward" => Stream::PortForward,
            _ => return None,
        })
    }

    /// Whether it addresses one container (`container` parameter).
    fn has_container(self) -> bool {
        !matches!(self, Stream::PortForward)
    }
}

/// The stream `rr` asks for, if it is `pods/{exec,attach,portforward}`.
pub fn stream_of(rr: &ResourceRequest) -> Option<Stream> {
    if !rr.group.is_empty() || rr.resource != "pods" || rr.name.is_none() {
        return None;
    }
    Stream::parse(rr.subresource.as_deref()?)
}

/// Request headers that negotiate the upgrade, passed to the far end.
const UPGRADE_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Response headers of the far end's `101` passed back to the client.
const UPGRADE_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

fn pick(headers: &HeaderMap, names: &[&'static str]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in names {
        let name = HeaderName::from_static(name);
        for v in headers.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

/// What a connector needs to open the far end of a stream.
#[derive(Clone, Debug)]
pub struct StreamRequest {
    /// Which subresource.
    pub stream: Stream,
    /// `GET` (WebSocket) or `POST` (SPDY), as the client sent it.
    pub method: http::Method,
    /// The query string as the client sent it (`command` repeats, so it is
    /// never re-encoded from parsed parameters).
    pub query: String,
    /// The client's upgrade headers (see the module docs).
    pub headers: HeaderMap,
}

/// Both ends' bytes: what an upgraded connection is to this module.
pub trait StreamIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> StreamIo for T {}

/// The far end of a stream, upgraded.
pub struct Upgraded {
    /// The far end's `101` headers to pass back (see the module docs).
    pub headers: HeaderMap,
    /// Its bytes.
    pub io: Pin<Box<dyn StreamIo>>,
}

impl Upgraded {
    /// The far end's answer `headers` (filtered to the negotiation headers)
    /// with its upgraded `io`.
    pub fn new(headers: &HeaderMap, io: impl StreamIo) -> Self {
        Self {
            headers: pick(headers, UPGRADE_RESPONSE_HEADERS),
            io: Box::pin(io),
        }
    }
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// The container a stream addresses (upstream's `streamLocation`).
fn validate_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<(), ApiError> {
    let names = |key: &str| -> Vec<&str> {
        pod["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect()
    };
    let regular = names("containers");
    match asked {
        Some(c) => {
            let known = ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .any(|k| names(k).contains(&c));
            if known {
                Ok(())
            } else {
                Err(ApiError::BadRequest(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if regular.len() == 1 => Ok(()),
        None if regular.is_empty() => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}"
        ))),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                regular.join(" ")
            );
            let init = names("initContainers");
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::BadRequest(message))
        }
    }
}

impl ApiServer {
    /// Checks `request` against pod `namespace/name` of `cluster` as
    /// upstream's `streamLocation` does: the pod exists, the container is
    /// one of it, and it has a node.
    async fn check_stream(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        request: &StreamRequest,
    ) -> Result<(), ApiError> {
        let pods = self
            .catalog
            .get("", "v1", "pods")
            .ok_or(ApiError::PathNotFound)?;
        let target = Target {
            cluster,
            resource: pods,
            namespace: Some(namespace),
        };
        let pod = self.store.get(&target, name).await?;
        if request.stream.has_container() {
            let container = super::request::parse_query(Some(&request.query))
                .remove("container")
                .filter(|c| !c.is_empty());
            validate_container(&pod, name, container.as_deref())?;
        }
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::BadRequest(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        Ok(())
    }

    /// Opens `request` to pod `namespace/name` of `cluster`: checks it
    /// against the pod, then asks the registered connector for the far end.
    /// Used by the HTTP edge and, for nested clusters, by the connector of
    /// a child (the caller is trusted: no authorization).
    pub async fn connect_pod(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        request: &StreamRequest,
    ) -> Result<Upgraded, ApiError> {
        self.check_stream(cluster, namespace, name, request).await?;
        let not_running = || {
            ApiError::BadRequest(format!(
                "unable to upgrade connection: pod {name} is not running anywhere yet"
            ))
        };
        let connector = self.pod_connector().ok_or_else(not_running)?;
        match connector.connect(cluster, namespace, name, request).await {
            Ok(upgraded) => Ok(upgraded),
            Err(ConnectError::NotRunning) => Err(not_running()),
            Err(ConnectError::Api(e)) => Err(e),
        }
    }

    /// `pods/{exec,attach,portforward}` over HTTP (already authorized):
    /// answers `101` with the far end's negotiation and splices the two
    /// upgraded connections until either side closes.
    pub(super) async fn pod_stream(
        &self,
        info: &RequestInfo,
        rr: &ResourceRequest,
        stream: Stream,
        parts: &http::request::Parts,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
        retired: super::handler::Retired,
    ) -> Result<Response<Body>, ApiError> {
        if !matches!(rr.verb, "get" | "create") {
            return Err(ApiError::MethodNotAllowed);
        }
        let namespace = rr.namespace.as_deref().ok_or(ApiError::PathNotFound)?;
        let name = rr.name.as_deref().ok_or(ApiError::PathNotFound)?;
        let wants_upgrade = parts
            .headers
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
            && parts.headers.contains_key(header::UPGRADE);
        let request = StreamRequest {
            stream,
            method: parts.method.clone(),
            query: parts.uri.query().unwrap_or("").to_string(),
            headers: pick(&parts.headers, UPGRADE_REQUEST_HEADERS),
        };
        let Some(on_upgrade) = on_upgrade.filter(|_| wants_upgrade) else {
            // The pod is checked first, as upstream does before proxying;
            // then what a kubelet answers a plain request.
            self.check_stream(&info.cluster, namespace, name, &request)
                .await?;
            return Err(ApiError::BadRequest("Upgrade request required".into()));
        };
        let far = self
            .connect_pod(&info.cluster, namespace, name, &request)
            .await?;
        let cluster = info.cluster.clone();
        let pod = format!("{namespace}/{name}");
        tokio::spawn(async move {
            let mut near = match on_upgrade.await {
                Ok(u) => hyper_util::rt::TokioIo::new(u),
                Err(e) => {
                    tracing::debug!(%cluster, %pod, error = %e, "client upgrade failed");
                    return;
                }
            };
            let mut far_io = far.io;
            // The stream ends with its cluster's instance (removed or re-created).
            tokio::select! {
                copied = tokio::io::copy_bidirectional(&mut near, &mut far_io) => match copied {
                    Ok((up, down)) => {
                        tracing::debug!(%cluster, %pod, up, down, "pod stream ended")
                    }
                    Err(e) => tracing::debug!(%cluster, %pod, error = %e, "pod stream ended"),
                },
                () = retired => tracing::debug!(%cluster, %pod, "pod stream ended: cluster retired"),
            }
        });
        let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *resp.headers_mut() = far.headers;
        if !resp.headers().contains_key(header::CONNECTION) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_validated_as_upstream() {
        let pod = json!({"spec": {"initContainers": [{"name": "init"}],
                                  "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            validate_container(&pod, "p", None).unwrap_err().to_string(),
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"
        );
        assert!(validate_container(&pod, "p", Some("init")).is_ok());
        assert_eq!(
            validate_container(&pod, "p", Some("x"))
                .unwrap_err()
                .to_string(),
            "container x is not valid for pod p"
        );
        let one = json!({"spec": {"containers": [{"name": "main"}]}});
        assert!(validate_container(&one, "p", None).is_ok());
    }

    #[test]
    fn only_negotiation_headers_pass() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.append(
            "x-stream-protocol-version",
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        h.append(
            "x-stream-protocol-version",
            HeaderValue::from_static("v3.channel.k8s.io"),
        );
        let picked = pick(&h, UPGRADE_REQUEST_HEADERS);
        assert!(picked.get("authorization").is_none());
        assert_eq!(
            picked.get_all("x-stream-protocol-version").iter().count(),
            2
        );
        assert_eq!(picked["upgrade"], "websocket");
    }

    #[test]
    fn streams_are_recognised() {
        let rr = |sub: &str| ResourceRequest {
            resource: "pods".into(),
            name: Some("p".into()),
            subresource: Some(sub.into()),
            ..Default::default()
        };
        assert_eq!(stream_of(&rr("exec")), Some(Stream::Exec));
        assert_eq!(stream_of(&rr("portforward")), Some(Stream::PortForward));
        assert_eq!(stream_of(&rr("log")), None);
    }
}
