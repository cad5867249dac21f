//! The HTTP handler: one function from a request (with its authenticated
//! user) to a response, for every cluster and every resource.
//!
//! Filters first, as upstream's handler chain: authentication (the
//! request's credential names its cluster), the cluster's request limits,
//! fair scheduling between tenants ([`super::flowcontrol`]), authorization
//! (RBAC, impersonation). Then discovery and non-resource
//! paths, or the resource's endpoint in the REST table ([`super::rest`]),
//! which reads options, calls the store and renders the result. It holds
//! no per-resource code: that lives in the table, its endpoints and the
//! registry's strategies.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Frame;
use nestkube_patch::PatchSchema;
use serde_json::json;

use super::flowcontrol::FlowControl;
use super::negotiate::{self, Offers, Output};
use super::request::{self, Api, RequestInfo, ResourceRequest};
use super::response::{full, respond, text, too_many_requests};
use super::rest::{self, Endpoint, RestRequest, WholeRequest};
use crate::auth::{self, Identity, access, rbac, tokens};
use crate::discovery;
use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::managed_fields;
use crate::registry::store::Store;
use crate::registry::table::IncludeObject;
use crate::tenancy::{Cluster, Clusters};

/// Largest request body accepted (upstream: 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub use super::response::{Body, error_response};

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
    /// The admission webhooks (to register who reaches the Services they
    /// name: [`crate::admission::webhook::Webhooks::set_service_reach`]).
    pub webhooks: Arc<crate::admission::webhook::Webhooks>,
    /// The seats requests are served in, shared fairly between tenants.
    pub flow_control: Arc<FlowControl>,
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
        let (identity, info) = self
            .authenticate(req.method(), req.uri(), req.headers(), identity)
            .await?;
        let Some(cluster) = Self::cluster_of(&identity, &info)? else {
            // Anonymous, public: no limits, no authorization, no stream.
            let user = identity.user();
            return self.dispatch(info, user, req, None, None).await;
        };
        // The cluster's request limits (after authentication, before
        // authorization, as upstream's max-inflight filter). The permit is
        // held until the response is built; a watch's stream outlives it, as
        // watches do not count as in flight.
        let long_running = matches!(&info.api, Api::Resource(r)
            if r.verb == "watch" || rest::endpoint(r).long_running());
        let _permit = match cluster.limits.admit(long_running) {
            Ok(permit) => permit,
            Err(throttled) => return Ok(too_many_requests(throttled)),
        };
        // Then a seat, in turn with the other tenants (in `dispatch`, once
        // the body is read), as the request's credential's user.
        let holder = identity.user().name;
        let flow = (!long_running && !exempt_from_flow_control(&identity, &info))
            .then_some((cluster.path.as_str(), holder.as_str()));
        let user = match self
            .authorize(&identity, &info, req.method(), req.headers())
            .await?
        {
            Ok(user) => user,
            Err(denied) => return Ok(denied),
        };
        let resp = self
            .dispatch(info, user, req, Some(Box::pin(cluster.retired())), flow)
            .await?;
        Ok(ends_when_retired(resp, &cluster))
    }

    /// Who asks, in which cluster: the request's credential (its bearer
    /// token if any, else the connection's certificate) and the path decide
    /// the cluster alone, before anything is looked up (see `auth::access`).
    async fn authenticate(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        identity: &Identity,
    ) -> Result<(Identity, RequestInfo), ApiError> {
        let bearer = access::bearer_token(headers);
        let claimed = bearer.map(tokens::claimed_cluster);
        let credential = access::request_credential(
            claimed.as_ref().map(Option::as_deref),
            identity.credential(),
        );
        let access = access::decide(uri.path(), credential).map_err(|_| ApiError::Unauthorized)?;
        let identity = match bearer {
            None => identity.clone(),
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
                Identity::Cluster {
                    user: auth.claims.user(),
                    cluster: auth.cluster,
                }
            }
        };
        if !identity.is_current(&self.clusters) {
            // Its cluster was removed (or re-created) since the handshake.
            return Err(ApiError::Unauthorized);
        }
        let mut info =
            request::parse(method, uri.path(), uri.query()).map_err(|_| ApiError::PathNotFound)?;
        // The parser and the decision must name the same cluster; the parser
        // says root for the bare path, which is routed by credential.
        if info.explicit_cluster != access.explicit
            || (info.explicit_cluster && info.cluster != access.cluster)
        {
            return Err(ApiError::Unauthorized);
        }
        info.cluster = access.cluster;
        Ok((identity, info))
    }

    /// The cluster instance the request is for (`None`: an anonymous
    /// request for a public path). It is the instance the credential was
    /// verified against, not a fresh look-up that could already name a
    /// re-created cluster: what the request streams ends with it.
    fn cluster_of(
        identity: &Identity,
        info: &RequestInfo,
    ) -> Result<Option<Arc<Cluster>>, ApiError> {
        match identity {
            // Public endpoints are the same for every cluster and are
            // answered without looking the cluster up, so anonymous callers
            // cannot probe cluster names either.
            Identity::Anonymous => {
                let public = matches!(&info.api, Api::NonResource(p) if auth::is_public_path(p));
                if public {
                    Ok(None)
                } else {
                    Err(ApiError::Unauthorized)
                }
            }
            Identity::Cluster { cluster, .. } if cluster.path == info.cluster => {
                Ok(Some(cluster.clone()))
            }
            // Unreachable for a current credential; kept as a last guard.
            _ => Err(ApiError::Unauthorized),
        }
    }

    /// Who acts (after impersonation) and whether they may: RBAC over this
    /// cluster's policy only (see `auth::rbac`). `Err` inside: the 403.
    async fn authorize(
        &self,
        identity: &Identity,
        info: &RequestInfo,
        method: &Method,
        headers: &http::HeaderMap,
    ) -> Result<Result<auth::UserInfo, Response<Body>>, ApiError> {
        let decision = self
            .authorizer
            .authorize_request(info, identity.user(), method, headers)
            .await;
        match decision {
            Ok(user) => Ok(Ok(user)),
            Err(rbac::RequestDenied::Forbidden(f)) => Ok(Err(respond(
                StatusCode::FORBIDDEN,
                &f.to_status(),
                Output::Json,
            ))),
            Err(rbac::RequestDenied::Other(e)) => Err(e),
        }
    }

    /// Serves an authenticated, authorized request. `retired` resolves when
    /// the request's cluster instance stops being served (`None`: public
    /// endpoints); streams that take over the connection end with it.
    /// `flow` (cluster, user): the request is served in a seat of
    /// [`super::flowcontrol`], taken once its body is read (a slow upload
    /// holds none) and held until the response is built.
    async fn dispatch<B>(
        &self,
        info: RequestInfo,
        user: auth::UserInfo,
        req: Request<B>,
        retired: Option<Retired>,
        flow: Option<(&str, &str)>,
    ) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = req.into_parts();
        // Streams (exec, attach, port-forward) take over the connection.
        if let Api::Resource(rr) = &info.api
            && let Endpoint::Connect(stream) = rest::endpoint(rr)
        {
            let stream = *stream;
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
        let seat = match flow {
            Some((cluster, user)) => match self.flow_control.acquire(cluster, user).await {
                Ok(seat) => seat,
                Err(throttled) => return Ok(too_many_requests(throttled)),
            },
            None => None,
        };
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
            Api::NonResource(path) => self.non_resource(path, &info.cluster, &prefix, accept),
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
                        discovery::aggregated(&self.catalog.view(&info.cluster), *legacy)
                    }
                    (true, _, _) => discovery::legacy_versions(&self.server_address),
                    (false, None, _) => discovery::group_list(&self.catalog.view(&info.cluster)),
                    (false, Some(g), _) => discovery::group(&self.catalog.view(&info.cluster), g)
                        .ok_or(ApiError::PathNotFound)?,
                };
                Ok(respond(StatusCode::OK, &value, output))
            }
            Api::GroupVersion { group, version } => {
                let output = negotiate::negotiate(accept, Offers::default(), IncludeObject::None)?;
                let value =
                    discovery::resource_list(&self.catalog.view(&info.cluster), group, version)
                        .ok_or(ApiError::PathNotFound)?;
                Ok(respond(StatusCode::OK, &value, output))
            }
            Api::Resource(rr) => {
                // Writes record their fields under the request's manager.
                let user_agent = parts
                    .headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok());
                let manager =
                    managed_fields::manager_or_user_agent(info.param("fieldManager"), user_agent);
                let serve = managed_fields::with_manager(
                    manager.into(),
                    self.resource(
                        &info,
                        rr,
                        user,
                        parts.uri.query(),
                        accept,
                        content_type,
                        &body,
                    ),
                );
                // Its seat is lent while its writes wait on the disk.
                match &seat {
                    Some(seat) => nestkube_storage::lend::lending(seat.lender(), serve).await,
                    None => serve.await,
                }
            }
        }
    }

    /// A resource request: its endpoint in the REST table, after the
    /// generic checks (served version, scope, verbs, representation).
    #[allow(clippy::too_many_arguments)]
    async fn resource(
        &self,
        info: &RequestInfo,
        rr: &ResourceRequest,
        user: auth::UserInfo,
        raw_query: Option<&str>,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let rest = match rest::endpoint(rr) {
            Endpoint::Rest(rest) => *rest,
            Endpoint::Whole(whole) => {
                let req = WholeRequest {
                    server: self,
                    info,
                    rr,
                    user: &user,
                    raw_query,
                    content_type,
                    body,
                };
                return whole.serve(req).await;
            }
            // Answered before the body is read (`dispatch`).
            Endpoint::Connect(_) => return Err(ApiError::MethodNotAllowed),
        };
        let r = self
            .catalog
            .resolve(&info.cluster, &rr.group, &rr.version, &rr.resource)
            .ok_or(ApiError::PathNotFound)?;
        let deprecation = self.custom_resource_checks(info, rr, &r)?;
        // A watch of a custom resource ends when its CRD changes or goes.
        let definition_retired = r
            .custom
            .as_ref()
            .filter(|_| rr.verb == "watch")
            .and_then(|_| {
                let c = self.catalog.custom.cluster(&info.cluster)?;
                Some(c.installed_for(&rr.group, &rr.resource)?.retired())
            });
        let include = IncludeObject::parse(info.param("includeObject"));
        let output = negotiate::negotiate(
            accept,
            Offers {
                resource_views: true,
                aggregated_discovery: false,
            },
            include,
        )?;
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
        let verbs = match rr.subresource.as_deref() {
            None => &r.verbs,
            Some(s) => &r.subresource(s).ok_or(ApiError::PathNotFound)?.verbs,
        };
        if !verbs.iter().any(|v| v == rr.verb) {
            return Err(ApiError::MethodNotAllowed);
        }
        let req = RestRequest {
            server: self,
            info,
            rr,
            resource: r,
            output,
            content_type,
            body,
        };
        // Admission sees who asked (writes by controllers have no user).
        let mut resp = crate::admission::with_user(Arc::new(user), rest::serve(rest, &req)).await?;
        if let Some(warning) = deprecation {
            super::response::add_warnings(&mut resp, &[warning]);
        }
        Ok(match definition_retired {
            Some(retired) => ends_when(resp, Box::pin(retired)),
            None => resp,
        })
    }

    /// What upstream's CRD handler checks before serving a custom
    /// resource: a terminating CRD takes no new objects (405). Returns the
    /// deprecation warning of the version, if any.
    fn custom_resource_checks(
        &self,
        info: &RequestInfo,
        rr: &ResourceRequest,
        r: &crate::registry::catalog::ResourceInfo,
    ) -> Result<Option<String>, ApiError> {
        let Some(custom) = &r.custom else {
            return Ok(None);
        };
        let terminating = self
            .catalog
            .custom
            .cluster(&info.cluster)
            .and_then(|c| {
                c.installed_for(&rr.group, &rr.resource)
                    .map(|i| i.terminating)
            })
            .unwrap_or(false);
        if terminating && rr.verb == "create" {
            return Err(ApiError::Other {
                code: 405,
                reason: "MethodNotAllowed",
                message: "create not allowed while custom resource definition is terminating"
                    .into(),
                causes: Vec::new(),
            });
        }
        Ok(custom.deprecation_warning.clone())
    }

    fn non_resource(
        &self,
        path: &str,
        cluster: &str,
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
                let doc = discovery::openapi_v2_for(&self.catalog.view(cluster))
                    .ok_or(ApiError::PathNotFound)?;
                let mut resp = Response::new(full(doc));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(resp)
            }
            "/openapi/v3" => Ok(respond(
                StatusCode::OK,
                &discovery::openapi_v3_index(&self.catalog.view(cluster), prefix),
                Output::Json,
            )),
            p if p.starts_with("/openapi/v3/") => {
                let doc =
                    discovery::openapi_v3(&self.catalog.view(cluster), &p["/openapi/v3/".len()..])
                        .ok_or(ApiError::PathNotFound)?;
                let mut resp = Response::new(full(doc));
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
}

/// Whether a request skips the fair scheduling of [`super::flowcontrol`],
/// as upstream's `exempt` priority level: health checks, the root
/// cluster's `system:masters` (the operator) and this process's own
/// in-process clients (the syncer). A tenant's admins are `system:masters`
/// of their cluster only, and are scheduled like every tenant user.
fn exempt_from_flow_control(identity: &Identity, info: &RequestInfo) -> bool {
    let health = matches!(&info.api, Api::NonResource(p)
    if ["/healthz", "/livez", "/readyz"].iter().any(|h| {
        p.strip_prefix(h).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }));
    let operator = info.cluster == request::ROOT_CLUSTER
        && identity
            .user()
            .groups
            .iter()
            .any(|g| g == rbac::MASTERS_GROUP);
    health || operator || crate::admission::is_in_process()
}

/// Resolves when a cluster instance stops being served ([`Cluster::retired`]).
pub(super) type Retired = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// `resp`, whose body (when it streams: a watch, `logs -f`) ends when
/// `cluster` is removed or re-created, so no stream opened for one tenant
/// carries the next tenant's data at the same path. Bodies of a known size
/// are complete already and left alone.
fn ends_when_retired(resp: Response<Body>, cluster: &Cluster) -> Response<Body> {
    ends_when(resp, Box::pin(cluster.retired()))
}

/// `resp`, whose streaming body ends once `retired` resolves.
fn ends_when(resp: Response<Body>, retired: Retired) -> Response<Body> {
    use hyper::body::Body as _;
    if resp.body().size_hint().exact().is_some() {
        return resp;
    }
    resp.map(|body| {
        BodyExt::boxed(EndsWhen {
            body,
            retired: std::sync::Mutex::new(retired),
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
