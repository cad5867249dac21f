//! The REST table: which endpoint serves each resource and subresource, as
//! upstream's `restStorageMap` does for an API group.
//!
//! Every catalog resource is served by [`generic::StoreRest`] (the generic
//! store, status and finalize subresources included) unless a row of
//! [`TABLE`] names another endpoint. An endpoint is one of:
//! - [`Endpoint::Connect`]: takes over the connection (`pods/exec`,
//!   `attach`, `portforward`);
//! - [`Endpoint::Whole`]: answers the request itself, before catalog look-up
//!   and negotiation (the review resources, `pods/log`);
//! - [`Endpoint::Rest`]: a [`Rest`] with one method per verb, reached after
//!   the generic checks of scope, served verbs and representation.
//!
//! Adding a subresource or a special resource is one row and one file here;
//! the handler holds no per-resource code. Custom resources, `proxy` and
//! webhook-served conversions plug in as rows (or as a catalog-driven
//! fallback) the same way.

mod binding;
mod eviction;
pub(crate) mod generic;
pub(crate) mod options;
mod pod_log;
mod proxy;
mod reviews;
mod scale;
mod served_rbac;
mod token;
mod watch;

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use serde_json::Value;

use super::handler::{ApiServer, Body};
use super::negotiate::{self, Output};
use super::pod_connect::Stream;
use super::pod_proxy::ProxyKind;
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::store::Target;
use crate::server::request::{RequestInfo, ResourceRequest};

/// A request for a catalog resource or subresource, after the generic
/// checks (scope, verbs, representation).
pub(crate) struct RestRequest<'a> {
    /// The server (store, catalog, clusters, ...).
    pub server: &'a ApiServer,
    /// The parsed request.
    pub info: &'a RequestInfo,
    /// Its resource part.
    pub rr: &'a ResourceRequest,
    /// The catalog entry of the resource.
    pub resource: Arc<ResourceInfo>,
    /// The negotiated representation.
    pub output: Output,
    /// `Content-Type` of the body.
    pub content_type: Option<&'a str>,
    /// The request body.
    pub body: &'a [u8],
}

impl RestRequest<'_> {
    /// The store target: this cluster, this resource, the request's namespace.
    pub fn target(&self) -> Target<'_> {
        Target {
            cluster: &self.info.cluster,
            resource: &self.resource,
            namespace: self.rr.namespace.as_deref(),
        }
    }

    /// The object's name (`""` for collections).
    pub fn name(&self) -> &str {
        self.rr.name.as_deref().unwrap_or("")
    }

    /// The body, decoded as its `Content-Type` says.
    pub fn decode_body(&self) -> Result<Value, ApiError> {
        negotiate::decode_body(self.content_type, self.body)
    }
}

/// An endpoint serving a resource or subresource, one method per verb;
/// a verb it does not serve is `405 MethodNotAllowed`.
#[async_trait]
pub(crate) trait Rest: Send + Sync {
    /// `GET` of one object.
    async fn get(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `GET` of a collection.
    async fn list(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `GET ?watch`.
    async fn watch(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `POST`.
    async fn create(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `PUT`.
    async fn update(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `PATCH`.
    async fn patch(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `DELETE` of one object.
    async fn delete(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `DELETE` of a collection.
    async fn delete_collection(&self, _req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
}

/// Serves `req` with the method of `rest` for its verb.
pub(crate) async fn serve(
    rest: &dyn Rest,
    req: &RestRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    match req.rr.verb {
        "get" => rest.get(req).await,
        "list" => rest.list(req).await,
        "watch" => rest.watch(req).await,
        "create" => rest.create(req).await,
        "update" => rest.update(req).await,
        "patch" => rest.patch(req).await,
        "delete" => rest.delete(req).await,
        "deletecollection" => rest.delete_collection(req).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// What a whole-request endpoint is given.
pub(crate) struct WholeRequest<'a> {
    /// The server.
    pub server: &'a ApiServer,
    /// The parsed request.
    pub info: &'a RequestInfo,
    /// Its resource part.
    pub rr: &'a ResourceRequest,
    /// Who asks (after impersonation).
    pub user: &'a UserInfo,
    /// The query string as sent.
    pub raw_query: Option<&'a str>,
    /// `Content-Type` of the body.
    pub content_type: Option<&'a str>,
    /// The request body.
    pub body: &'a [u8],
}

/// An endpoint that answers the whole request itself.
#[async_trait]
pub(crate) trait Whole: Send + Sync {
    /// Whether its responses stream for long (not counted as in flight).
    fn long_running(&self) -> bool {
        false
    }
    /// Serves the request.
    async fn serve(&self, req: WholeRequest<'_>) -> Result<Response<Body>, ApiError>;
}

/// How a resource or subresource is served.
pub(crate) enum Endpoint {
    /// Takes over the connection.
    Connect(Stream),
    /// Answers the whole request before catalog look-up and negotiation.
    Whole(&'static dyn Whole),
    /// Per verb, after the generic checks.
    Rest(&'static dyn Rest),
}

impl Endpoint {
    /// Whether requests to it are long-running (watches are decided by verb).
    pub fn long_running(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Whole(w) => w.long_running(),
            Self::Rest(_) => false,
        }
    }
}

/// One row: `group`/`resource`[/`subresource`] (`*` matches any) served by
/// `endpoint`.
struct Row {
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    endpoint: Endpoint,
}

const fn row(
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    endpoint: Endpoint,
) -> Row {
    Row {
        group,
        resource,
        subresource,
        endpoint,
    }
}

const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";
const RBAC: &str = "rbac.authorization.k8s.io";

/// Every endpoint that is not the generic store's.
static TABLE: &[Row] = &[
    row("", "pods", Some("exec"), Endpoint::Connect(Stream::Exec)),
    row(
        "",
        "pods",
        Some("attach"),
        Endpoint::Connect(Stream::Attach),
    ),
    row(
        "",
        "pods",
        Some("portforward"),
        Endpoint::Connect(Stream::PortForward),
    ),
    row("", "pods", Some("log"), Endpoint::Whole(&pod_log::PodLog)),
    row(
        "",
        "pods",
        Some("proxy"),
        Endpoint::Whole(&proxy::Proxy(ProxyKind::Pod)),
    ),
    row(
        "",
        "services",
        Some("proxy"),
        Endpoint::Whole(&proxy::Proxy(ProxyKind::Service)),
    ),
    row(
        "",
        "pods",
        Some("eviction"),
        Endpoint::Rest(&eviction::Eviction),
    ),
    row(
        "",
        "pods",
        Some("binding"),
        Endpoint::Rest(&binding::Binding),
    ),
    row(
        "",
        "serviceaccounts",
        Some("token"),
        Endpoint::Rest(&token::TokenRequest),
    ),
    row(
        AUTHN,
        "tokenreviews",
        None,
        Endpoint::Whole(&reviews::TokenReview),
    ),
    row(
        AUTHN,
        "selfsubjectreviews",
        None,
        Endpoint::Whole(&reviews::AccessReview),
    ),
    row(
        AUTHZ,
        "selfsubjectaccessreviews",
        None,
        Endpoint::Whole(&reviews::AccessReview),
    ),
    row(
        AUTHZ,
        "subjectaccessreviews",
        None,
        Endpoint::Whole(&reviews::AccessReview),
    ),
    row(
        AUTHZ,
        "localsubjectaccessreviews",
        None,
        Endpoint::Whole(&reviews::AccessReview),
    ),
    row(
        AUTHZ,
        "selfsubjectrulesreviews",
        None,
        Endpoint::Whole(&reviews::AccessReview),
    ),
    // The shared default ClusterRoles and -Bindings are served unless stored.
    row(
        RBAC,
        "clusterroles",
        None,
        Endpoint::Rest(&served_rbac::ServedDefaults),
    ),
    row(
        RBAC,
        "clusterrolebindings",
        None,
        Endpoint::Rest(&served_rbac::ServedDefaults),
    ),
    row("*", "*", Some("scale"), Endpoint::Rest(&scale::Scale)),
];

/// The generic store's endpoint.
static GENERIC: Endpoint = Endpoint::Rest(&generic::StoreRest);

/// The endpoint serving `rr`.
pub(crate) fn endpoint(rr: &ResourceRequest) -> &'static Endpoint {
    let matches = |want: &str, got: &str| want == "*" || want == got;
    TABLE
        .iter()
        .find(|r| {
            matches(r.group, &rr.group)
                && matches(r.resource, &rr.resource)
                && r.subresource == rr.subresource.as_deref()
        })
        .map_or(&GENERIC, |r| &r.endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(group: &str, resource: &str, sub: Option<&str>) -> ResourceRequest {
        ResourceRequest {
            group: group.into(),
            resource: resource.into(),
            name: Some("x".into()),
            subresource: sub.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn rows_are_found_and_the_rest_is_generic() {
        let exec = endpoint(&rr("", "pods", Some("exec")));
        assert!(matches!(exec, Endpoint::Connect(Stream::Exec)));
        let pf = endpoint(&rr("", "pods", Some("portforward")));
        assert!(matches!(pf, Endpoint::Connect(Stream::PortForward)));
        assert!(endpoint(&rr("", "pods", Some("log"))).long_running());
        assert!(!endpoint(&rr("apps", "deployments", Some("scale"))).long_running());
        // A look-alike in another group is not a pod.
        let other = endpoint(&rr("example.com", "pods", Some("exec")));
        assert!(std::ptr::eq(other, &GENERIC));
        assert!(std::ptr::eq(
            endpoint(&rr("", "configmaps", None)),
            &GENERIC
        ));
    }
}
