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
//! The options (`container`, `command`, `stdin`..., `ports`) are parsed
//! once ([`StreamOptions`]), checked against the virtual pod, and what goes
//! on is a query rebuilt from the checked values, never the client's: a
//! repeated single-valued parameter is refused, so no layer below can read
//! another value than the one checked here.
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

    /// Whether it addresses one container (`container` parameter).
    fn has_container(self) -> bool {
        !matches!(self, Stream::PortForward)
    }
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

/// The options of a stream (upstream's `PodExecOptions`,
/// `PodAttachOptions`, `PodPortForwardOptions`), as parsed from a query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `container` (exec, attach): after [`ApiServer::connect_pod`]'s check,
    /// always the container the stream reaches (defaulted as upstream).
    pub container: Option<String>,
    /// `command` (exec; repeated, one argument each).
    pub command: Vec<String>,
    /// `stdin` (exec, attach).
    pub stdin: bool,
    /// `stdout` (exec, attach).
    pub stdout: bool,
    /// `stderr` (exec, attach).
    pub stderr: bool,
    /// `tty` (exec, attach).
    pub tty: bool,
    /// `ports` (port-forward; repeated or comma-separated).
    pub ports: Vec<u16>,
}

/// Upstream's `Convert_Slice_string_To_bool`: `0` and `false` (any case)
/// are false, every other value (even an empty one) true.
fn parse_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

impl StreamOptions {
    /// The options as the object `CONNECT` admission sees
    /// (`PodExecOptions`, `PodAttachOptions`, `PodPortForwardOptions`).
    pub fn to_object(&self, stream: Stream) -> serde_json::Value {
        let mut o = match stream {
            Stream::Exec => serde_json::json!({"kind": "PodExecOptions", "command": self.command}),
            Stream::Attach => serde_json::json!({"kind": "PodAttachOptions"}),
            Stream::PortForward => {
                return serde_json::json!({"kind": "PodPortForwardOptions", "apiVersion": "v1",
                    "ports": self.ports});
            }
        };
        o["apiVersion"] = "v1".into();
        for (k, v) in [
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("stderr", self.stderr),
            ("tty", self.tty),
        ] {
            if v {
                o[k] = v.into();
            }
        }
        if let Some(c) = &self.container {
            o["container"] = c.clone().into();
        }
        o
    }

    /// Reads the options of `stream` from query `query`: a repeated
    /// single-valued parameter is refused (400), parameters of other
    /// subresources are ignored (upstream's decoding drops unknown ones).
    pub fn parse(stream: Stream, query: &str) -> Result<Self, ApiError> {
        let pairs = super::request::query_pairs(Some(query));
        let mut o = Self::default();
        if stream.has_container() {
            let single = |name| super::request::single_param(&pairs, name);
            o.container = single("container")?
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            o.stdin = single("stdin")?.is_some_and(parse_bool);
            o.stdout = single("stdout")?.is_some_and(parse_bool);
            o.stderr = single("stderr")?.is_some_and(parse_bool);
            o.tty = single("tty")?.is_some_and(parse_bool);
        }
        if stream == Stream::Exec {
            o.command = pairs
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect();
        }
        if stream == Stream::PortForward {
            for (_, v) in pairs.iter().filter(|(k, _)| k == "ports") {
                for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let port = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "invalid port {p:?}: must be an integer between 1 and 65535"
                        ))
                    })?;
                    o.ports.push(port);
                }
            }
        }
        Ok(o)
    }

    /// The query string that asks for exactly these options, in upstream's
    /// parameter names (what is sent on; see the module docs).
    pub fn to_query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &self.container {
            pairs.push(("container", c.clone()));
        }
        for c in &self.command {
            pairs.push(("command", c.clone()));
        }
        for (name, on) in [
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("stderr", self.stderr),
            ("tty", self.tty),
        ] {
            if on {
                pairs.push((name, "true".into()));
            }
        }
        for p in &self.ports {
            pairs.push(("ports", p.to_string()));
        }
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", super::pod_proxy::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// What a connector needs to open the far end of a stream.
#[derive(Clone, Debug)]
pub struct StreamRequest {
    /// Which subresource.
    pub stream: Stream,
    /// `GET` (WebSocket) or `POST` (SPDY), as the client sent it.
    pub method: http::Method,
    /// The options, checked against the virtual pod before a connector is
    /// called (see the module docs).
    pub options: StreamOptions,
    /// The client's upgrade headers (see the module docs).
    pub headers: HeaderMap,
}

impl StreamRequest {
    /// The query string to send on: rebuilt from [`StreamRequest::options`],
    /// never the client's.
    pub fn query(&self) -> String {
        self.options.to_query_string()
    }
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

/// The container a stream addresses (upstream's `streamLocation`): the
/// one asked for if the pod has it, else the pod's only container.
fn validate_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
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
                Ok(c.to_string())
            } else {
                Err(ApiError::BadRequest(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if regular.len() == 1 => Ok(regular[0].to_string()),
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
    /// one of it, and it has a node; the container is then set in
    /// `request` (defaulted when the pod has one).
    async fn check_stream(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        request: &mut StreamRequest,
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
            let container = validate_container(&pod, name, request.options.container.as_deref())?;
            request.options.container = Some(container);
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
        let mut request = request.clone();
        self.check_stream(cluster, namespace, name, &mut request)
            .await?;
        let request = &request;
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
        let mut request = StreamRequest {
            stream,
            method: parts.method.clone(),
            options: StreamOptions::parse(stream, parts.uri.query().unwrap_or(""))?,
            headers: pick(&parts.headers, UPGRADE_REQUEST_HEADERS),
        };
        // CONNECT admission (the cluster's webhooks and policies), before
        // anything is reached, as upstream's connect handler.
        if let Some(pods) = self.catalog.get("", "v1", "pods") {
            let target = Target {
                cluster: &info.cluster,
                resource: pods,
                namespace: Some(namespace),
            };
            let mut options = request.options.to_object(stream);
            self.store
                .admit_connect(&target, name, stream.subresource(), &mut options)
                .await?;
        }
        let Some(on_upgrade) = on_upgrade.filter(|_| wants_upgrade) else {
            // The pod is checked first, as upstream does before proxying;
            // then what a kubelet answers a plain request.
            self.check_stream(&info.cluster, namespace, name, &mut request)
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
        assert_eq!(validate_container(&pod, "p", Some("init")).unwrap(), "init");
        assert_eq!(
            validate_container(&pod, "p", Some("x"))
                .unwrap_err()
                .to_string(),
            "container x is not valid for pod p"
        );
        let one = json!({"spec": {"containers": [{"name": "main"}]}});
        assert_eq!(validate_container(&one, "p", None).unwrap(), "main");
    }

    #[test]
    fn options_are_parsed_once_and_rebuilt() {
        let o = StreamOptions::parse(
            Stream::Exec,
            "command=sh&command=-c&command=echo+a%26b&container=main&stdin=true&tty=1&stderr=false&ports=1",
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        assert_eq!(o.container.as_deref(), Some("main"));
        assert!(o.stdin && o.tty && !o.stderr && !o.stdout);
        assert!(o.ports.is_empty(), "ports are not an exec option");
        assert_eq!(
            o.to_query_string(),
            "container=main&command=sh&command=-c&command=echo%20a%26b&stdin=true&tty=true"
        );
        assert_eq!(
            StreamOptions::parse(Stream::Exec, &o.to_query_string()).unwrap(),
            o
        );
        let pf = StreamOptions::parse(Stream::PortForward, "ports=80,443&ports=8080").unwrap();
        assert_eq!(pf.ports, [80, 443, 8080]);
        assert_eq!(pf.to_query_string(), "ports=80&ports=443&ports=8080");
        for bad in ["ports=0", "ports=70000", "ports=http"] {
            let e = StreamOptions::parse(Stream::PortForward, bad).unwrap_err();
            assert_eq!(e.code(), 400, "{bad}");
        }
    }

    #[test]
    fn repeated_single_valued_options_are_refused() {
        for (stream, q) in [
            (Stream::Exec, "container=a&container=b&command=ls"),
            (Stream::Exec, "stdin=true&stdin=false"),
            (Stream::Attach, "container=a&container=a"),
            (Stream::Attach, "tty=1&tty=0"),
        ] {
            let e = StreamOptions::parse(stream, q).unwrap_err();
            assert_eq!(e.code(), 400, "{q}");
            assert_eq!(e.reason(), "BadRequest", "{q}");
        }
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
}
