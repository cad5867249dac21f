//! The HTTP handler: one function from a request (with its authenticated
//! user) to a response, for every cluster and every resource.
//!
//! It resolves the [`RequestInfo`] against the catalog, reads query
//! parameters into typed options, calls the generic store, and renders the
//! result in the negotiated representation. It holds no per-resource code:
//! that lives in strategies.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use nestkube_patch::{PatchSchema, PatchType};
use serde_json::{Value, json};

use super::negotiate::{self, Offers, Output};
use super::request::{self, Api, RequestInfo, ResourceRequest};
use crate::auth::{self, Identity, access, tokens, tokens_api};
use crate::auth::{rbac, rbac_escalation, rbac_review, rbac_served};
use crate::discovery;
use crate::error::{ApiError, Subject};
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::meta;
use crate::registry::selector::{FieldSelector, LabelSelector};
use crate::registry::store::{
    self, DeleteOptions, Deleted, FieldValidation, ListOptions, Store, Target, WriteOptions,
};
use crate::registry::table::{self, IncludeObject};
use crate::registry::watch::{Event, Watch, WatchOptions};
use crate::tenancy::limits::{self, Throttled};
use crate::tenancy::{Cluster, Clusters};

/// Largest request body accepted (upstream: 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How often a watch with `allowWatchBookmarks` gets a bookmark.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// Everything a request needs, shared by all connections and clusters.
pub struct ApiServer {
    /// Served resources.
    pub catalog: Arc<Catalog>,
    /// The generic store.
    pub store: Store,
    /// Served clusters.
    pub clusters: Arc<Clusters>,
    /// Strategic-merge-patch metadata (from the embedded OpenAPI v2 document).
    pub patch_schema: Option<Arc<PatchSchema>>,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
    /// RBAC, per cluster.
    pub authorizer: Arc<rbac::Authorizer>,
    /// Reaches the containers of pods (`pods/log`), registered after start
    /// ([`ApiServer::set_pod_connector`]).
    pub(crate) pod_connector: std::sync::RwLock<Option<Arc<dyn super::pod_proxy::PodConnector>>>,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn respond(status: StatusCode, value: &Value, output: Output) -> Response<Body> {
    let (bytes, content_type) = negotiate::encode(value, output);
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The `Status` response for an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, &e.to_status(), Output::Json)
}

/// 429 for a request refused by its cluster's limits: a `Status` with
/// upstream's message and a `Retry-After` header.
fn too_many_requests(throttled: Throttled) -> Response<Body> {
    let seconds = throttled.retry_after_seconds;
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": limits::TOO_MANY_REQUESTS,
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": seconds},
        "code": 429,
    });
    let mut resp = respond(StatusCode::TOO_MANY_REQUESTS, &status, Output::Json);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn add_warnings(resp: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}

fn patch_error(e: nestkube_patch::PatchError) -> ApiError {
    ApiError::Other {
        code: e.status_code(),
        reason: e.reason(),
        message: e.status_message(),
        causes: e.causes(),
    }
}

fn bool_param(info: &RequestInfo, name: &str) -> Result<Option<bool>, ApiError> {
    match info.param(name) {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid value for {name}: {other:?}"
        ))),
    }
}

fn write_options(info: &RequestInfo) -> Result<WriteOptions, ApiError> {
    let dry_run = match info.param("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_validation: FieldValidation::parse(info.param("fieldValidation"))?,
        exempt_from_limits: false,
    })
}

fn list_options(info: &RequestInfo) -> Result<ListOptions, ApiError> {
    let label_selector = LabelSelector::parse(info.param("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let field_selector = FieldSelector::parse(info.param("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = match info.param("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("invalid limit: {l:?}")))?
            .max(0) as usize,
    };
    let rv_match = info
        .param("resourceVersionMatch")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    validate_list_options(info, rv_match.as_deref())?;
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: info.param("continue").map(str::to_string),
        resource_version: info.param("resourceVersion").map(str::to_string),
        resource_version_match: rv_match,
    })
}

/// Upstream's `ValidateListOptions` for the resourceVersion parameters.
fn validate_list_options(info: &RequestInfo, rv_match: Option<&str>) -> Result<(), ApiError> {
    let subject = || Subject {
        group: "meta.k8s.io".into(),
        kind: "ListOptions".into(),
        name: String::new(),
    };
    let forbidden = |field: &str, detail: &str| {
        ApiError::invalid(
            subject(),
            crate::error::FieldError::forbidden(field, detail),
        )
    };
    let is_watch = matches!(info.api, Api::Resource(ref r) if r.verb == "watch");
    let rv_empty = info.param("resourceVersion").unwrap_or("").is_empty();
    if bool_param(info, "sendInitialEvents")?.is_some() {
        if !is_watch {
            return Err(forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        if rv_match != Some("NotOlderThan") {
            return Err(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if bool_param(info, "allowWatchBookmarks")? != Some(true) {
            return Err(forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        return Ok(());
    }
    match rv_match {
        None => Ok(()),
        Some(_) if is_watch => Err(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch",
        )),
        Some(_) if rv_empty => Err(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        Some("Exact" | "NotOlderThan") => Ok(()),
        Some(other) => Err(ApiError::invalid(
            subject(),
            crate::error::FieldError::not_supported(
                "resourceVersionMatch",
                other,
                &["Exact", "NotOlderThan"],
            ),
        )),
    }
}

fn delete_options(
    info: &RequestInfo,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !body.is_empty() {
        let v = negotiate::decode_body(content_type, body)?;
        opts.grace_period_seconds = v["gracePeriodSeconds"].as_i64();
        opts.propagation = v["propagationPolicy"].as_str().map(str::to_string);
        opts.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        opts.precondition_resource_version = v["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        if v["orphanDependents"].as_bool() == Some(true) && opts.propagation.is_none() {
            opts.propagation = Some("Orphan".into());
        }
        opts.dry_run = v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All"));
    }
    if let Some(g) = info.param("gracePeriodSeconds").filter(|s| !s.is_empty()) {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds: {g:?}")))?,
        );
    }
    if let Some(p) = info.param("propagationPolicy").filter(|s| !s.is_empty()) {
        opts.propagation = Some(p.to_string());
    }
    if bool_param(info, "orphanDependents")? == Some(true) && opts.propagation.is_none() {
        opts.propagation = Some("Orphan".into());
    }
    if let Some(p) = &opts.propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::BadRequest(format!(
            "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Orphan\", \"Background\", \"Foreground\""
        )));
    }
    opts.dry_run |= write_options(info)?.dry_run;
    Ok(opts)
}

/// `autoscaling/v1 Scale` view of an object with `spec.replicas`.
fn to_scale(obj: &Value) -> Value {
    let selector = selector_string(&obj["spec"]["selector"]);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta::name(obj),
            "namespace": meta::namespace(obj),
            "uid": meta::uid(obj),
            "resourceVersion": meta::resource_version(obj),
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// A label selector (`LabelSelector` object or a plain map) in string form.
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    let labels = sel.get("matchLabels").unwrap_or(sel);
    if let Some(m) = labels.as_object() {
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e["operator"].as_str() {
            Some("In") => parts.push(format!("{key} in ({})", values.join(","))),
            Some("NotIn") => parts.push(format!("{key} notin ({})", values.join(","))),
            Some("Exists") => parts.push(key.to_string()),
            Some("DoesNotExist") => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

impl ApiServer {
    /// Serves one request from a connection's identity (computed once per
    /// connection by [`auth::x509::authenticate`]).
    pub async fn handle<B>(&self, req: Request<B>, identity: &Identity) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let result = self.route(req, identity).await;
        let resp = result.unwrap_or_else(|e| error_response(&e));
        tracing::debug!(%method, %path, user = %identity.user().name, status = resp.status().as_u16(), "request");
        resp
    }

    async fn route<B>(
        &self,
        req: Request<B>,
        identity: &Identity,
    ) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // The request's credential: its bearer token if any, else the
        // connection's certificate. Which cluster, decided from the path and
        // the credential alone, before anything is looked up (see
        // `auth::access`).
        let bearer = access::bearer_token(req.headers()).map(str::to_string);
        let claimed = bearer.as_deref().map(tokens::claimed_cluster);
        let credential = access::request_credential(
            claimed.as_ref().map(Option::as_deref),
            identity.credential(),
        );
        let access =
            access::decide(req.uri().path(), credential).map_err(|_| ApiError::Unauthorized)?;
        let token_identity;
        let identity = match bearer.as_deref() {
            None => identity,
            Some(token) => {
                let audiences = [tokens::API_AUDIENCE.to_string()];
                let auth = tokens::authenticate(
                    &self.clusters,
                    &self.store,
                    &self.catalog,
                    &access.cluster,
                    token,
                    &audiences,
                )
                .await
                .map_err(|e| {
                    tracing::debug!(error = %e, "bearer token rejected");
                    ApiError::Unauthorized
                })?;
                token_identity = Identity::Cluster {
                    user: auth.claims.user(),
                    cluster: auth.cluster,
                };
                &token_identity
            }
        };
        if !identity.is_current(&self.clusters) {
            // Its cluster was removed (or re-created) since the handshake.
            return Err(ApiError::Unauthorized);
        }
        let mut info = request::parse(req.method(), req.uri().path(), req.uri().query())
            .map_err(|_| ApiError::PathNotFound)?;
        // The parser and the decision must name the same cluster; the parser
        // says root for the bare path, which is routed by credential.
        if info.explicit_cluster != access.explicit
            || (info.explicit_cluster && info.cluster != access.cluster)
        {
            return Err(ApiError::Unauthorized);
        }
        info.cluster = access.cluster;
        let mut _permit = None;
        // The instance of the cluster this request is for: what it streams
        // ends when that instance is removed or re-created.
        let mut incarnation = None;
        if let Identity::Anonymous = identity {
            // Public endpoints are the same for every cluster and are answered
            // without looking the cluster up, so anonymous callers cannot
            // probe cluster names either.
            let public = matches!(&info.api, Api::NonResource(p) if auth::is_public_path(p));
            if !public {
                return Err(ApiError::Unauthorized);
            }
        } else {
            // The instance the credential was verified against (not a fresh
            // look-up, which could already name a re-created cluster): what
            // this request streams ends with it.
            let cluster = match identity {
                Identity::Cluster { cluster, .. } if cluster.path == info.cluster => {
                    cluster.clone()
                }
                // Unreachable for a current credential; kept as a last guard.
                _ => return Err(ApiError::Unauthorized),
            };
            // The cluster's request limits (after authentication, before
            // authorization, as upstream's max-inflight filter). The permit
            // is held until the response is built; a watch's stream outlives
            // it, as watches do not count as in flight.
            let long_running = matches!(&info.api, Api::Resource(r)
                if r.verb == "watch" || super::pod_proxy::is_log(r)
                    || super::pod_connect::stream_of(r).is_some());
            match cluster.limits.admit(long_running) {
                Ok(permit) => _permit = permit,
                Err(throttled) => return Ok(too_many_requests(throttled)),
            }
            incarnation = Some(cluster);
        }
        // Who acts (after impersonation) and whether they may: RBAC over
        // this cluster's policy only (see `auth::rbac`).
        let user = if let Identity::Anonymous = identity {
            identity.user()
        } else {
            let decision = self
                .authorizer
                .authorize_request(&info, identity.user(), req.method(), req.headers())
                .await;
            match decision {
                Ok(user) => user,
                Err(rbac::RequestDenied::Forbidden(f)) => {
                    return Ok(respond(StatusCode::FORBIDDEN, &f.to_status(), Output::Json));
                }
                Err(rbac::RequestDenied::Other(e)) => return Err(e),
            }
        };
        let Some(incarnation) = incarnation else {
            return self.dispatch(info, user, req, None).await;
        };
        let resp = self
            .dispatch(info, user, req, Some(Box::pin(incarnation.retired())))
            .await?;
        Ok(ends_when_retired(resp, &incarnation))
    }

    /// Serves an authenticated, authorized request. `retired` resolves when
    /// the request's cluster instance stops being served (`None`: public
    /// endpoints); streams that take over the connection end with it.
    async fn dispatch<B>(
        &self,
        info: RequestInfo,
        user: auth::UserInfo,
        req: Request<B>,
        retired: Option<Retired>,
    ) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = req.into_parts();
        // Streams (exec, attach, port-forward) take over the connection.
        if let Api::Resource(rr) = &info.api
            && let Some(stream) = super::pod_connect::stream_of(rr)
        {
            let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
            let retired = retired.ok_or(ApiError::Unauthorized)?;
            return self
                .pod_stream(&info, rr, stream, &parts, on_upgrade, retired)
                .await;
        }
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ApiError::RequestEntityTooLarge(MAX_BODY_BYTES)
                } else {
                    ApiError::BadRequest(format!("reading request body: {e}"))
                }
            })?
            .to_bytes();
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let prefix = if info.explicit_cluster {
            format!("/clusters/{}", info.cluster)
        } else {
            String::new()
        };
        match &info.api {
            Api::NonResource(path) => self.non_resource(path, &prefix, accept),
            Api::Root { legacy, group } => {
                if parts.method != Method::GET {
                    return Err(ApiError::MethodNotAllowed);
                }
                let output = negotiate::negotiate(
                    accept,
                    Offers {
                        resource_views: false,
                        aggregated_discovery: group.is_none(),
                    },
                    IncludeObject::None,
                )?;
                let value = match (legacy, group, output) {
                    (_, None, Output::AggregatedDiscovery) => {
                        discovery::aggregated(&self.catalog, *legacy)
                    }
                    (true, _, _) => discovery::legacy_versions(&self.server_address),
                    (false, None, _) => discovery::group_list(&self.catalog),
                    (false, Some(g), _) => {
                        discovery::group(&self.catalog, g).ok_or(ApiError::PathNotFound)?
                    }
                };
                Ok(respond(StatusCode::OK, &value, output))
            }
            Api::GroupVersion { group, version } => {
                let output = negotiate::negotiate(accept, Offers::default(), IncludeObject::None)?;
                let value = discovery::resource_list(&self.catalog, group, version)
                    .ok_or(ApiError::PathNotFound)?;
                Ok(respond(StatusCode::OK, &value, output))
            }
            Api::Resource(rr)
                if rr.group == "authentication.k8s.io" && rr.resource == "tokenreviews" =>
            {
                if rr.version != "v1" {
                    return Err(ApiError::PathNotFound);
                }
                if rr.verb != "create" || rr.namespace.is_some() {
                    return Err(ApiError::MethodNotAllowed);
                }
                let review = tokens_api::token_review(
                    &self.clusters,
                    &self.store,
                    &self.catalog,
                    &info.cluster,
                    negotiate::decode_body(content_type, &body)?,
                )
                .await?;
                Ok(respond(StatusCode::CREATED, &review, Output::Json))
            }
            // Answered from where the pod runs, in text, before negotiation.
            Api::Resource(rr) if super::pod_proxy::is_log(rr) => {
                self.pod_log(&info, rr, parts.uri.query()).await
            }
            Api::Resource(rr) if rbac_review::is_review(rr) => {
                let review =
                    rbac_review::review(&self.authorizer, &info.cluster, &user, rr, || {
                        negotiate::decode_body(content_type, &body)
                    })
                    .await?;
                Ok(respond(StatusCode::CREATED, &review, Output::Json))
            }
            Api::Resource(rr) => {
                let r = self
                    .catalog
                    .get(&rr.group, &rr.version, &rr.resource)
                    .ok_or(ApiError::PathNotFound)?
                    .clone();
                let include = IncludeObject::parse(info.param("includeObject"));
                let output = negotiate::negotiate(
                    accept,
                    Offers {
                        resource_views: true,
                        aggregated_discovery: false,
                    },
                    include,
                )?;
                if rbac_escalation::guards(&user, rr) {
                    let proposed = self
                        .proposed_object(&info, rr, &r, content_type, &body)
                        .await?;
                    let checked = rbac_escalation::confirm(
                        &self.authorizer,
                        &info.cluster,
                        &user,
                        rr,
                        &proposed,
                    )
                    .await;
                    match checked {
                        Ok(()) => {}
                        Err(rbac::RequestDenied::Forbidden(f)) => {
                            return Ok(respond(
                                StatusCode::FORBIDDEN,
                                &f.to_status(),
                                Output::Json,
                            ));
                        }
                        Err(rbac::RequestDenied::Other(e)) => return Err(e),
                    }
                }
                // Admission sees who asked (writes by controllers have no user).
                crate::admission::with_user(
                    std::sync::Arc::new(user),
                    self.resource(&info, rr, r, output, content_type, &body),
                )
                .await
            }
        }
    }

    /// The object a create, update or patch would write (for checks that
    /// judge the result, such as RBAC escalation); the write itself still
    /// goes through the store.
    async fn proposed_object(
        &self,
        info: &RequestInfo,
        rr: &ResourceRequest,
        r: &ResourceInfo,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        if rr.verb != "patch" {
            return negotiate::decode_body(content_type, body);
        }
        let target = Target {
            cluster: &info.cluster,
            resource: r,
            namespace: rr.namespace.as_deref(),
        };
        // A server-side apply may create: patch an empty object then.
        let old = match self
            .store
            .get(&target, rr.name.as_deref().unwrap_or(""))
            .await
        {
            Ok(old) => old,
            Err(ApiError::NotFound(_)) => json!({}),
            Err(e) => return Err(e),
        };
        let schema = self.schema_root(&r.group, &r.version, &r.kind);
        nestkube_patch::apply_patch(&old, body, self.patch_type(content_type)?, schema)
            .map_err(patch_error)
    }

    fn non_resource(
        &self,
        path: &str,
        prefix: &str,
        accept: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let path = path.trim_end_matches('/');
        match path {
            "/healthz" | "/livez" | "/readyz" => Ok(text(StatusCode::OK, "ok")),
            p if p.starts_with("/healthz/")
                || p.starts_with("/livez/")
                || p.starts_with("/readyz/") =>
            {
                Ok(text(StatusCode::OK, "ok"))
            }
            "/version" => Ok(respond(StatusCode::OK, &discovery::version(), Output::Json)),
            "/openapi/v2" => {
                // Only JSON is served; client-go's protobuf-only request gets 406.
                negotiate::negotiate(accept, Offers::default(), IncludeObject::None)?;
                let doc = discovery::openapi_v2().ok_or(ApiError::PathNotFound)?;
                let mut resp = Response::new(full(Bytes::from_static(doc)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(resp)
            }
            "/openapi/v3" => Ok(respond(
                StatusCode::OK,
                &discovery::openapi_v3_index(&self.catalog, prefix),
                Output::Json,
            )),
            p if p.starts_with("/openapi/v3/") => {
                let doc = discovery::openapi_v3(&self.catalog, &p["/openapi/v3/".len()..])
                    .ok_or(ApiError::PathNotFound)?;
                let mut resp = Response::new(full(Bytes::from_static(doc)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                resp.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, immutable"),
                );
                Ok(resp)
            }
            "" | "/" => {
                let paths = json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]});
                Ok(respond(StatusCode::OK, &paths, Output::Json))
            }
            _ => Err(ApiError::PathNotFound),
        }
    }

    fn render(&self, r: &ResourceInfo, obj: Value, output: Output) -> Value {
        match output {
            Output::Table(include) => {
                let rv = meta::resource_version(&obj).to_string();
                table::table(r, &[obj], json!({"resourceVersion": rv}), include, true)
            }
            Output::PartialMetadata => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            }),
            _ => obj,
        }
    }

    /// The response to a successful write: the object as rendered for the
    /// client, with `Warning` headers for what decoding dropped.
    fn written(
        &self,
        r: &ResourceInfo,
        status: StatusCode,
        written: store::Written,
        output: Output,
    ) -> Response<Body> {
        let mut resp = respond(status, &self.render(r, written.object, output), output);
        add_warnings(&mut resp, &written.warnings);
        resp
    }

    async fn resource(
        &self,
        info: &RequestInfo,
        rr: &ResourceRequest,
        r: Arc<ResourceInfo>,
        output: Output,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        if !r.namespaced && rr.namespace.is_some() {
            return Err(ApiError::PathNotFound);
        }
        if r.namespaced && rr.namespace.is_none() && !matches!(rr.verb, "list" | "watch") {
            return Err(if rr.verb == "create" {
                ApiError::MethodNotAllowed
            } else {
                ApiError::PathNotFound
            });
        }
        let sub = rr.subresource.as_deref();
        let verbs = match sub {
            None => &r.verbs,
            Some(s) => &r.subresource(s).ok_or(ApiError::PathNotFound)?.verbs,
        };
        if !verbs.iter().any(|v| v == rr.verb) {
            return Err(ApiError::MethodNotAllowed);
        }
        let target = Target {
            cluster: &info.cluster,
            resource: &r,
            namespace: rr.namespace.as_deref(),
        };
        let name = rr.name.as_deref().unwrap_or("");
        let subject = Subject {
            group: r.group.clone(),
            kind: r.resource.clone(),
            name: name.to_string(),
        };
        match (rr.verb, sub) {
            ("create", Some("token")) => {
                let cluster = self
                    .clusters
                    .get(&info.cluster)
                    .ok_or(ApiError::Unauthorized)?;
                let value = tokens_api::token_request(
                    &self.store,
                    &self.catalog,
                    &cluster,
                    rr.namespace.as_deref().unwrap_or(""),
                    name,
                    negotiate::decode_body(content_type, body)?,
                )
                .await?;
                Ok(respond(StatusCode::CREATED, &value, output_plain(output)))
            }
            ("create", Some("eviction")) => {
                let value = crate::registry::eviction::evict(
                    &self.store,
                    &self.catalog,
                    &target,
                    name,
                    negotiate::decode_body(content_type, body)?,
                )
                .await?;
                Ok(respond(StatusCode::CREATED, &value, output_plain(output)))
            }
            ("get", Some("scale")) => {
                let obj = self.store.get(&target, name).await?;
                Ok(respond(
                    StatusCode::OK,
                    &to_scale(&obj),
                    output_plain(output),
                ))
            }
            ("get", _) => {
                // The shared default ClusterRoles/-Bindings, unless stored.
                let obj = match self.store.get(&target, name).await {
                    Err(ApiError::NotFound(m)) => {
                        rbac_served::get(&r, name).ok_or(ApiError::NotFound(m))?
                    }
                    other => other?,
                };
                Ok(respond(
                    StatusCode::OK,
                    &self.render(&r, obj, output),
                    output,
                ))
            }
            ("list", _) => {
                let opts = list_options(info)?;
                let mut page = self.store.list(&target, &opts).await?;
                rbac_served::merge_list(&self.store, &target, &opts, &mut page).await?;
                let mut list_meta = json!({"resourceVersion": page.resource_version.to_string()});
                if let Some(c) = &page.continue_token {
                    list_meta["continue"] = c.clone().into();
                }
                if let Some(n) = page.remaining {
                    list_meta["remainingItemCount"] = n.into();
                }
                let value = match output {
                    Output::Table(include) => {
                        table::table(&r, &page.items, list_meta, include, true)
                    }
                    Output::PartialMetadata => json!({
                        "kind": "PartialObjectMetadataList",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": list_meta,
                        "items": page.items.iter().map(|o| json!({
                            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"],
                        })).collect::<Vec<_>>(),
                    }),
                    _ => json!({
                        "kind": format!("{}List", r.kind),
                        "apiVersion": r.api_version(),
                        "metadata": list_meta,
                        "items": page.items,
                    }),
                };
                Ok(respond(StatusCode::OK, &value, output))
            }
            ("watch", _) => self.watch(info, &target, r.clone(), output).await,
            ("create", None) => {
                let obj = negotiate::decode_body(content_type, body)?;
                let written = self
                    .store
                    .create(&target, obj, write_options(info)?)
                    .await?;
                Ok(self.written(&r, StatusCode::CREATED, written, output))
            }
            ("update", Some("scale")) | ("patch", Some("scale")) => {
                let opts = write_options(info)?;
                let is_patch = rr.verb == "patch";
                let patch_type = if is_patch {
                    Some(self.patch_type(content_type)?)
                } else {
                    None
                };
                let body_value = if is_patch {
                    Value::Null
                } else {
                    negotiate::decode_body(content_type, body)?
                };
                let written = self
                    .store
                    .update_with(&target, name, Some("scale"), opts, |old| {
                        let scale_in = match patch_type {
                            Some(pt) => {
                                let schema = self.schema_root("autoscaling", "v1", "Scale");
                                nestkube_patch::apply_patch(&to_scale(old), body, pt, schema)
                                    .map_err(patch_error)?
                            }
                            None => body_value.clone(),
                        };
                        let (scale, warnings) = store::decode_body(
                            &r,
                            "autoscaling",
                            "v1",
                            "Scale",
                            scale_in,
                            opts.field_validation,
                        )?;
                        let mut obj = old.clone();
                        obj["spec"]["replicas"] =
                            scale["spec"]["replicas"].as_i64().unwrap_or(0).into();
                        let rv = meta::resource_version(&scale);
                        meta::set(&mut obj, "resourceVersion", Some(rv.into()));
                        Ok((obj, warnings))
                    })
                    .await?;
                let mut resp = respond(
                    StatusCode::OK,
                    &to_scale(&written.object),
                    output_plain(output),
                );
                add_warnings(&mut resp, &written.warnings);
                Ok(resp)
            }
            ("update", _) => {
                let obj = negotiate::decode_body(content_type, body)?;
                let written = self
                    .store
                    .update(&target, name, sub, obj, write_options(info)?)
                    .await?;
                Ok(self.written(&r, StatusCode::OK, written, output))
            }
            ("patch", _) => {
                let opts = write_options(info)?;
                let pt = self.patch_type(content_type)?;
                let schema = self.schema_root(&r.group, &r.version, &r.kind);
                let written = self
                    .store
                    .update_with(&target, name, sub, opts, |old| {
                        let patched = nestkube_patch::apply_patch(old, body, pt, schema)
                            .map_err(patch_error)?;
                        store::decode_body(
                            &r,
                            &r.group,
                            &r.version,
                            &r.kind,
                            patched,
                            opts.field_validation,
                        )
                    })
                    .await?;
                Ok(self.written(&r, StatusCode::OK, written, output))
            }
            ("delete", None) => {
                let opts = delete_options(info, content_type, body)?;
                match self.store.delete(&target, name, &opts).await? {
                    Deleted::Pending(obj) => {
                        let status = if opts.propagation.as_deref() == Some("Foreground") {
                            StatusCode::ACCEPTED
                        } else {
                            StatusCode::OK
                        };
                        Ok(respond(status, &self.render(&r, obj, output), output))
                    }
                    Deleted::Gone(obj) => {
                        let mut details = json!({"name": subject.name, "kind": subject.kind, "uid": meta::uid(&obj)});
                        if !subject.group.is_empty() {
                            details["group"] = subject.group.clone().into();
                        }
                        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                            "status": "Success", "details": details});
                        Ok(respond(StatusCode::OK, &status, output_plain(output)))
                    }
                }
            }
            ("deletecollection", None) => {
                let list = list_options(info)?;
                let opts = delete_options(info, content_type, body)?;
                let items = self.store.delete_collection(&target, &list, &opts).await?;
                let value = json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
                                   "metadata": {}, "items": items});
                Ok(respond(StatusCode::OK, &value, output_plain(output)))
            }
            _ => Err(ApiError::MethodNotAllowed),
        }
    }

    fn patch_type(&self, content_type: Option<&str>) -> Result<PatchType, ApiError> {
        content_type
            .and_then(PatchType::from_content_type)
            .ok_or_else(|| patch_error(PatchType::unsupported_media_type()))
    }

    fn schema_root(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<nestkube_patch::TypeRef<'_>> {
        self.patch_schema
            .as_ref()
            .and_then(|s| s.root(group, version, kind))
    }

    async fn watch(
        &self,
        info: &RequestInfo,
        target: &Target<'_>,
        r: Arc<ResourceInfo>,
        output: Output,
    ) -> Result<Response<Body>, ApiError> {
        let list = list_options(info)?;
        let send_initial_events = bool_param(info, "sendInitialEvents")?;
        let allow_bookmarks = bool_param(info, "allowWatchBookmarks")?.unwrap_or(false);
        let timeout = match info.param("timeoutSeconds").filter(|s| !s.is_empty()) {
            Some(t) => Duration::from_secs(
                t.parse::<u64>()
                    .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds: {t:?}")))?,
            ),
            // Upstream picks a random duration in [minRequestTimeout, 2x]; 30-60 minutes.
            None => Duration::from_secs(1800 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 7),
        };
        // The shared default ClusterRoles/-Bindings join the initial events.
        let mut defaults: std::collections::VecDeque<Event> = if send_initial_events == Some(true) {
            rbac_served::initial_events(
                &self.store,
                target,
                &list.label_selector,
                &list.field_selector,
            )
            .await?
            .into_iter()
            .map(Event::Added)
            .collect()
        } else {
            Default::default()
        };
        let mut watch = Watch::open(
            &self.store,
            target,
            r.clone(),
            WatchOptions {
                label_selector: list.label_selector,
                field_selector: list.field_selector,
                resource_version: list.resource_version,
                send_initial_events,
                allow_bookmarks,
                oldest_revision: self
                    .clusters
                    .get(target.cluster)
                    .map_or(0, |c| c.created_revision()),
            },
        )
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
        tokio::spawn(async move {
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut bookmarks = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_INTERVAL,
                BOOKMARK_INTERVAL,
            );
            let mut first_table = true;
            loop {
                let event = if let Some(added) = defaults.pop_front() {
                    Some(added)
                } else {
                    tokio::select! {
                    _ = tx.closed() => break,
                    _ = &mut deadline => break,
                    _ = bookmarks.tick(), if allow_bookmarks => { watch.request_bookmark(); continue; }
                    event = watch.next() => event,
                    }
                };
                let Some(event) = event else { break };
                if matches!(event, Event::Bookmark { .. }) && !allow_bookmarks {
                    continue;
                }
                let is_error = matches!(event, Event::Error(_));
                let json = event.to_json(&r, |obj| match output {
                    Output::Table(include) => {
                        let rv = meta::resource_version(obj).to_string();

                        table::table(
                            &r,
                            std::slice::from_ref(obj),
                            json!({"resourceVersion": rv}),
                            include,
                            first_table,
                        )
                    }
                    Output::PartialMetadata => {
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                      "metadata": obj["metadata"]})
                    }
                    _ => obj.clone(),
                });
                if matches!(output, Output::Table(_))
                    && !matches!(event, Event::Bookmark { .. } | Event::Error(_))
                {
                    first_table = false;
                }
                let mut line = match output {
                    Output::Yaml => serde_yaml::to_string(&json)
                        .unwrap_or_default()
                        .into_bytes(),
                    _ => serde_json::to_vec(&json).unwrap_or_default(),
                };
                line.push(b'\n');
                if tx.send(Ok(Frame::data(Bytes::from(line)))).await.is_err() || is_error {
                    break;
                }
            }
        });
        let stream = tokio_stream_from(rx);
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        let ct = if output == Output::Yaml {
            "application/yaml"
        } else {
            "application/json"
        };
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }
}

/// Resolves when a cluster instance stops being served ([`Cluster::retired`]).
pub(super) type Retired = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// `resp`, whose body (when it streams: a watch, `logs -f`) ends when
/// `cluster` is removed or re-created, so no stream opened for one tenant
/// carries the next tenant's data at the same path. Bodies of a known size
/// are complete already and left alone.
fn ends_when_retired(resp: Response<Body>, cluster: &Cluster) -> Response<Body> {
    use hyper::body::Body as _;
    if resp.body().size_hint().exact().is_some() {
        return resp;
    }
    resp.map(|body| {
        BodyExt::boxed(EndsWhen {
            body,
            retired: std::sync::Mutex::new(Box::pin(cluster.retired())),
        })
    })
}

/// A body that ends (cleanly, as a watch's timeout does) once `retired` resolves.
struct EndsWhen {
    body: Body,
    /// Behind a mutex only to be `Sync` (as boxed bodies must be); polled
    /// through `get_mut`, never locked.
    retired: std::sync::Mutex<Retired>,
}

impl hyper::body::Body for EndsWhen {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Ok(retired) = this.retired.get_mut()
            && retired.as_mut().poll(cx).is_ready()
        {
            return std::task::Poll::Ready(None);
        }
        std::pin::Pin::new(&mut this.body).poll_frame(cx)
    }
}

/// Responses of subresources and statuses are plain objects even when a
/// table was asked for.
fn output_plain(output: Output) -> Output {
    match output {
        Output::Yaml => Output::Yaml,
        _ => Output::Json,
    }
}

fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
