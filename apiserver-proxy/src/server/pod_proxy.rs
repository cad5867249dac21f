//! Pod subresources that reach a running container (`pods/log` here; the
//! upgraded streams `exec`, `attach` and `portforward` in
//! [`super::pod_connect`]): the apiserver checks the request against the
//! virtual pod (it exists, the container is one of it, the options are
//! valid), then a [`PodConnector`]
//! registered after start ([`ApiServer::set_pod_connector`], by the syncer)
//! reaches where the pod really runs and streams the bytes back.
//!
//! This crate must not depend on the syncer: it only knows the trait. A
//! connector is called with the cluster the request was authorized in and
//! must only reach that cluster's pods.
//!
//! Without a connector, or for a pod not running anywhere (not synced, no
//! copy yet), the answer is what a kubelet answers for a container that has
//! not started: 400 `container "c" in pod "p" is waiting to start: <reason>`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

use super::handler::{ApiServer, Body};
use super::pod_connect::{StreamRequest, Upgraded};
use super::request::{RequestInfo, ResourceRequest};
use crate::error::{ApiError, FieldError, Subject};
use crate::registry::store::Target;

/// The options of `GET pods/{name}/log` (upstream's `PodLogOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// `container`: the container (defaulted by the apiserver when the pod
    /// has only one, so a connector always gets one).
    pub container: Option<String>,
    /// `follow`: stream until the container ends or the client goes.
    pub follow: bool,
    /// `previous`: the previous, terminated instance of the container.
    pub previous: bool,
    /// `tailLines`.
    pub tail_lines: Option<i64>,
    /// `sinceSeconds`.
    pub since_seconds: Option<i64>,
    /// `sinceTime` (RFC 3339, passed on as given).
    pub since_time: Option<String>,
    /// `timestamps`.
    pub timestamps: bool,
    /// `limitBytes`.
    pub limit_bytes: Option<i64>,
}

impl LogQuery {
    /// The query parameters of `pods/log`, each single-valued.
    pub const PARAMS: &[&str] = &[
        "container",
        "follow",
        "previous",
        "tailLines",
        "sinceSeconds",
        "sinceTime",
        "timestamps",
        "limitBytes",
    ];

    /// Refuses (400) a query string giving one of [`LogQuery::PARAMS`]
    /// more than once (see [`super::request::single_param`]).
    pub fn check_single_valued(query: Option<&str>) -> Result<(), ApiError> {
        let pairs = super::request::query_pairs(query);
        for name in Self::PARAMS {
            super::request::single_param(&pairs, name)?;
        }
        Ok(())
    }

    /// Reads and validates the query parameters (upstream's
    /// `ValidatePodLogOptions`).
    pub fn parse(info: &RequestInfo) -> Result<Self, ApiError> {
        let int = |name: &str| -> Result<Option<i64>, ApiError> {
            match info.param(name).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| ApiError::BadRequest(format!("invalid value for {name}: {v:?}"))),
            }
        };
        let flag = |name: &str| -> Result<bool, ApiError> {
            match info.param(name) {
                None | Some("") | Some("false") | Some("0") => Ok(false),
                Some("true") | Some("1") => Ok(true),
                Some(other) => Err(ApiError::BadRequest(format!(
                    "invalid value for {name}: {other:?}"
                ))),
            }
        };
        let q = Self {
            container: info
                .param("container")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            follow: flag("follow")?,
            previous: flag("previous")?,
            tail_lines: int("tailLines")?,
            since_seconds: int("sinceSeconds")?,
            since_time: info
                .param("sinceTime")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            timestamps: flag("timestamps")?,
            limit_bytes: int("limitBytes")?,
        };
        let mut errors = Vec::new();
        if let Some(t) = q.tail_lines.filter(|t| *t < 0) {
            errors.push(FieldError::invalid(
                "tailLines",
                t,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(b) = q.limit_bytes.filter(|b| *b < 1) {
            errors.push(FieldError::invalid(
                "limitBytes",
                b,
                "must be greater than 0",
            ));
        }
        if q.since_seconds.is_some() && q.since_time.is_some() {
            errors.push(FieldError::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        }
        if let Some(s) = q.since_seconds.filter(|s| *s < 1) {
            errors.push(FieldError::invalid(
                "sinceSeconds",
                s,
                "must be greater than 0",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::Invalid {
                subject: Subject {
                    group: String::new(),
                    kind: "PodLogOptions".into(),
                    name: String::new(),
                },
                errors,
            });
        }
        Ok(q)
    }

    /// The query string to send on (`container=main&follow=true`),
    /// percent-encoded, in upstream's parameter names.
    pub fn to_query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &self.container {
            pairs.push(("container", c.clone()));
        }
        if self.follow {
            pairs.push(("follow", "true".into()));
        }
        if self.previous {
            pairs.push(("previous", "true".into()));
        }
        if let Some(t) = self.tail_lines {
            pairs.push(("tailLines", t.to_string()));
        }
        if let Some(s) = self.since_seconds {
            pairs.push(("sinceSeconds", s.to_string()));
        }
        if let Some(t) = &self.since_time {
            pairs.push(("sinceTime", t.clone()));
        }
        if self.timestamps {
            pairs.push(("timestamps", "true".into()));
        }
        if let Some(b) = self.limit_bytes {
            pairs.push(("limitBytes", b.to_string()));
        }
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The bytes of a log, as they come (a stream error ends it).
pub type LogStream = BoxStream<'static, Bytes>;

/// Why a connector could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The pod runs nowhere this connector knows (its cluster is not
    /// synced, or its copy does not exist yet): answered as a container
    /// that has not started.
    #[error("the pod is not running anywhere yet")]
    NotRunning,
    /// Any other error, answered as it is.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What a `proxy` subresource forwards to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// `pods/<name>/proxy`.
    Pod,
    /// `services/<name>/proxy`.
    Service,
}

impl ProxyKind {
    /// The resource (`pods`, `services`).
    pub fn resource(self) -> &'static str {
        match self {
            Self::Pod => "pods",
            Self::Service => "services",
        }
    }

    /// Upstream's message when nothing runs behind `name`.
    pub fn not_running(self, name: &str) -> String {
        match self {
            Self::Pod => format!("pod \"{name}\" is not running"),
            Self::Service => format!("no endpoints available for service \"{name}\""),
        }
    }
}

/// A request to forward through a `proxy` subresource.
#[derive(Clone, Debug)]
pub struct ProxyRequest {
    /// Pod or Service.
    pub kind: ProxyKind,
    /// The name as given: `[scheme:]name[:port]`.
    pub name: String,
    /// The path after `proxy` (`/` when none).
    pub path: String,
    /// The query string as sent.
    pub query: Option<String>,
    /// The HTTP method.
    pub method: http::Method,
    /// `Content-Type` of the body.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// Reaches the containers of virtual pods (implemented by the syncer).
#[async_trait]
pub trait PodConnector: Send + Sync {
    /// Forwards `request` to the copy of pod or Service `namespace/<name>`
    /// of cluster `cluster` (same tenancy rule as [`PodConnector::log`]).
    /// Connectors that reach nothing answer [`ConnectError::NotRunning`].
    async fn proxy(
        &self,
        _cluster: &str,
        _namespace: &str,
        _request: &ProxyRequest,
    ) -> Result<Response<Body>, ConnectError> {
        Err(ConnectError::NotRunning)
    }

    /// The log of container `query.container` of pod `namespace/pod` of
    /// cluster `cluster` (an authorized request of that cluster; the
    /// connector must never reach another cluster's pods). With
    /// `query.follow` the stream must not end while the container runs.
    async fn log(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
        query: &LogQuery,
    ) -> Result<LogStream, ConnectError>;

    /// The far end of stream `request` (exec, attach, port-forward) to pod
    /// `namespace/pod` of cluster `cluster`, upgraded (same tenancy rule
    /// as [`PodConnector::log`]).
    async fn connect(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
        request: &StreamRequest,
    ) -> Result<Upgraded, ConnectError>;
}

/// Names of all containers of a pod (init, regular, ephemeral).
fn container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The container the log is of (upstream's `validateContainer`).
fn validate_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let all = container_names(pod);
    match asked {
        Some(c) if all.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let regular: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            match regular.as_slice() {
                [one] => Ok(one.to_string()),
                [] => Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}"
                ))),
                _ => Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                ))),
            }
        }
    }
}

/// A kubelet's answer for a container that has no log yet.
pub fn not_running(pod: &Value, name: &str, container: &str) -> ApiError {
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][*k].as_array().into_iter().flatten())
        .find(|s| s["name"] == container);
    let reason = status
        .and_then(|s| s["state"]["waiting"]["reason"].as_str())
        .filter(|r| !r.is_empty());
    ApiError::BadRequest(match reason {
        Some(r) => format!("container {container:?} in pod {name:?} is waiting to start: {r}"),
        None if status.is_some_and(|s| s["state"]["terminated"].is_object()) => {
            format!("container {container:?} in pod {name:?} is terminated")
        }
        None => format!(
            "container {container:?} in pod {name:?} is waiting to start: ContainerCreating"
        ),
    })
}

impl ApiServer {
    /// Registers who reaches the containers of virtual pods (replacing any
    /// earlier one).
    pub fn set_pod_connector(&self, connector: Arc<dyn PodConnector>) {
        *self
            .pod_connector
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(connector);
    }

    pub(super) fn pod_connector(&self) -> Option<Arc<dyn PodConnector>> {
        self.pod_connector
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `GET pods/{name}/log` (already authorized as `get pods/log`);
    /// `raw_query` is the request's query string as sent.
    pub(super) async fn pod_log(
        &self,
        info: &RequestInfo,
        rr: &ResourceRequest,
        raw_query: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        if rr.verb != "get" {
            return Err(ApiError::MethodNotAllowed);
        }
        let namespace = rr.namespace.as_deref().ok_or(ApiError::PathNotFound)?;
        let name = rr.name.as_deref().ok_or(ApiError::PathNotFound)?;
        let pods = self
            .catalog
            .get("", "v1", "pods")
            .ok_or(ApiError::PathNotFound)?;
        let target = Target {
            cluster: &info.cluster,
            resource: pods,
            namespace: Some(namespace),
        };
        // What goes on is rebuilt from the parsed, checked query
        // (`LogQuery::to_query_string`), never the client's.
        LogQuery::check_single_valued(raw_query)?;
        let mut query = LogQuery::parse(info)?;
        let pod = self.store.get(&target, name).await?;
        let container = validate_container(&pod, name, query.container.as_deref())?;
        query.container = Some(container.clone());
        let Some(connector) = self.pod_connector() else {
            return Err(not_running(&pod, name, &container));
        };
        let stream = match connector.log(&info.cluster, namespace, name, &query).await {
            Ok(s) => s,
            Err(ConnectError::NotRunning) => return Err(not_running(&pod, name, &container)),
            Err(ConnectError::Api(e)) => return Err(e),
        };
        // Through a channel: the body must be `Sync`, and a follow that
        // waits for a line must end as soon as the client goes.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            let mut stream = stream;
            loop {
                let chunk = tokio::select! {
                    _ = tx.closed() => break,
                    chunk = stream.next() => chunk,
                };
                let Some(chunk) = chunk else { break };
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        let frames = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_validated_as_upstream() {
        let one = json!({"spec": {"containers": [{"name": "main"}]}});
        assert_eq!(validate_container(&one, "p", None).unwrap(), "main");
        let e = validate_container(&one, "p", Some("x")).unwrap_err();
        assert_eq!(e.to_string(), "container x is not valid for pod p");
        assert_eq!(e.code(), 400);
        let two = json!({"spec": {"initContainers": [{"name": "init"}],
                                  "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(validate_container(&two, "p", Some("init")).unwrap(), "init");
        assert_eq!(
            validate_container(&two, "p", None).unwrap_err().to_string(),
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
    }

    #[test]
    fn a_pod_without_a_log_is_waiting() {
        let pod = json!({"status": {"containerStatuses": [
            {"name": "main", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(
            not_running(&pod, "p", "main").to_string(),
            "container \"main\" in pod \"p\" is waiting to start: ImagePullBackOff"
        );
        assert_eq!(
            not_running(&json!({}), "p", "main").to_string(),
            "container \"main\" in pod \"p\" is waiting to start: ContainerCreating"
        );
    }

    #[test]
    fn queries_round_trip() {
        let q = LogQuery {
            container: Some("main".into()),
            follow: true,
            tail_lines: Some(5),
            since_time: Some("2024-01-01T00:00:00+01:00".into()),
            ..Default::default()
        };
        assert_eq!(
            q.to_query_string(),
            "container=main&follow=true&tailLines=5&sinceTime=2024-01-01T00%3A00%3A00%2B01%3A00"
        );
        let info = RequestInfo {
            cluster: "root".into(),
            explicit_cluster: false,
            api: super::super::request::Api::NonResource(String::new()),
            query: super::super::request::parse_query(Some(&q.to_query_string())),
        };
        assert_eq!(LogQuery::parse(&info).unwrap(), q);
    }

    #[test]
    fn repeated_log_options_are_refused() {
        assert!(LogQuery::check_single_valued(Some("container=a&follow=true")).is_ok());
        for q in ["container=a&container=b", "tailLines=1&tailLines=2"] {
            let e = LogQuery::check_single_valued(Some(q)).unwrap_err();
            assert_eq!(e.code(), 400, "{q}");
        }
    }
}
