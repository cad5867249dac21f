//! In-process clients: a `kube::Client` whose transport is a call to
//! [`ApiServer::handle`], for components of this process (the syncer) that
//! must see a served cluster exactly as a remote client would: same
//! routing, authorization, admission, status subresources and streaming
//! watches, without sockets or TLS.
//!
//! Every request is sent to `/clusters/<path>/...` as the cluster admin
//! [`SYSTEM_USER`] (group `system:masters`) of that cluster, resolved per
//! request, so a client made before its cluster exists, or kept across a
//! cluster's re-creation, acts in the cluster currently served at the path.
//! This module must never let a client of one cluster act in another: the
//! path prefix and the identity always name the same cluster.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};

use super::handler::{ApiServer, Body, error_response};
use crate::auth::{Identity, UserInfo};
use crate::error::ApiError;

pub use crate::auth::SYSTEM_USER;

/// A `tower::Service` serving requests with [`ApiServer::handle`] in one
/// cluster, as that cluster's in-process admin.
#[derive(Clone)]
pub struct InProcess {
    api: Arc<ApiServer>,
    cluster: String,
    /// The User-Agent of requests that carry none (it names the field
    /// manager of their writes, as upstream derives it).
    user_agent: Option<http::HeaderValue>,
}

impl InProcess {
    /// The service for cluster `path`.
    pub fn new(api: Arc<ApiServer>, path: &str) -> Self {
        Self {
            api,
            cluster: path.to_string(),
            user_agent: None,
        }
    }

    /// This service, giving requests without a User-Agent `agent`.
    pub fn with_user_agent(mut self, agent: &str) -> Self {
        self.user_agent = http::HeaderValue::from_str(agent).ok();
        self
    }

    /// The request's URI with the cluster prefix (`/clusters/<path>/...`).
    fn routed(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Uri::builder()
            .path_and_query(format!("/clusters/{}{}", self.cluster, path_and_query))
            .build()
    }
}

impl tower::Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let api = self.api.clone();
        let routed = self.routed(req.uri());
        let cluster = self.api.clusters.get(&self.cluster);
        let user_agent = self.user_agent.clone();
        Box::pin(async move {
            let Some(cluster) = cluster else {
                return Ok(error_response(&ApiError::Unauthorized));
            };
            let Ok(uri) = routed else {
                return Ok(error_response(&ApiError::PathNotFound));
            };
            let identity = Identity::Cluster {
                cluster,
                user: UserInfo {
                    name: SYSTEM_USER.into(),
                    groups: vec!["system:masters".into(), "system:authenticated".into()],
                    ..Default::default()
                },
            };
            let (mut parts, body) = req.into_parts();
            parts.uri = uri;
            if let Some(agent) = user_agent {
                parts
                    .headers
                    .entry(http::header::USER_AGENT)
                    .or_insert(agent);
            }
            // The mark admission trusts for in-process writers (a user name
            // can be impersonated, this cannot).
            let handled = api.handle(Request::from_parts(parts, body), &identity);
            Ok(crate::admission::in_process(handled).await)
        })
    }
}

impl ApiServer {
    /// A `kube::Client` for cluster `path` served by this process, acting as
    /// its admin (see the module docs). Cheap: no connection, no task
    /// besides the client's request buffer.
    pub fn client_for(self: &Arc<Self>, path: &str) -> kube::Client {
        kube::Client::new(InProcess::new(self.clone(), path), "default")
    }

    /// [`ApiServer::client_for`] whose requests carry the User-Agent
    /// `agent` (the field manager of its writes in managedFields).
    pub fn client_for_agent(self: &Arc<Self>, path: &str, agent: &str) -> kube::Client {
        kube::Client::new(
            InProcess::new(self.clone(), path).with_user_agent(agent),
            "default",
        )
    }
}
