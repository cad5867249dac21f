//! `services/<name>/proxy/<path>` and `pods/<name>/proxy/<path>`: the
//! request forwarded to the object's copy where it runs (the parent), as
//! `kubectl get --raw .../services/https:web:443/proxy/healthz` and
//! `kubectl proxy` expect. The far end is the [`PodConnector`] (the
//! syncer), the same path admission webhooks take to their Services.
//!
//! The object must exist in the requesting cluster; only its own copy is
//! reached, with the connector's credential, never the client's.
//!
//! [`PodConnector`]: crate::server::pod_proxy::PodConnector

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;

use super::{Whole, WholeRequest};
use crate::error::ApiError;
use crate::registry::store::Target;
use crate::server::handler::Body;
use crate::server::pod_proxy::{ConnectError, ProxyKind, ProxyRequest};

/// `services/proxy` and `pods/proxy`.
pub(crate) struct Proxy(pub ProxyKind);

/// `[scheme:]name[:port]`, as upstream's `ResourceLocation` splits a proxy
/// name; the name part.
fn object_name(spec: &str) -> &str {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name] | [name, _] => name,
        [_, name, _] => name,
        _ => spec,
    }
}

fn unavailable(message: String) -> ApiError {
    ApiError::Other {
        code: 503,
        reason: "ServiceUnavailable",
        message,
        causes: Vec::new(),
    }
}

#[async_trait]
impl Whole for Proxy {
    fn long_running(&self) -> bool {
        true
    }

    async fn serve(&self, req: WholeRequest<'_>) -> Result<Response<Body>, ApiError> {
        let rr = req.rr;
        let namespace = rr.namespace.as_deref().ok_or(ApiError::PathNotFound)?;
        let spec = rr.name.as_deref().ok_or(ApiError::PathNotFound)?;
        let name = object_name(spec);
        let method = match rr.verb {
            "get" => http::Method::GET,
            "create" => http::Method::POST,
            "update" => http::Method::PUT,
            "patch" => http::Method::PATCH,
            "delete" => http::Method::DELETE,
            _ => return Err(ApiError::MethodNotAllowed),
        };
        let resource = req
            .server
            .catalog
            .get("", "v1", self.0.resource())
            .ok_or(ApiError::PathNotFound)?;
        let target = Target {
            cluster: &req.info.cluster,
            resource,
            namespace: Some(namespace),
        };
        // 404 for an object this cluster does not have, as upstream.
        req.server.store.get(&target, name).await?;
        let path = rr.proxy_path.clone().unwrap_or_else(|| "/".into());
        // CONNECT admission, as upstream's connect handler.
        let mut options = serde_json::json!({"apiVersion": "v1", "path": path,
        "kind": match self.0 {
            ProxyKind::Pod => "PodProxyOptions",
            ProxyKind::Service => "ServiceProxyOptions",
        }});
        req.server
            .store
            .admit_connect(&target, spec, "proxy", &mut options)
            .await?;
        let Some(connector) = req.server.pod_connector() else {
            return Err(unavailable(self.0.not_running(name)));
        };
        let request = ProxyRequest {
            kind: self.0,
            name: spec.to_string(),
            path,
            query: req.raw_query.map(str::to_string),
            method,
            content_type: req.content_type.map(str::to_string),
            body: Bytes::copy_from_slice(req.body),
        };
        match connector
            .proxy(&req.info.cluster, namespace, &request)
            .await
        {
            Ok(resp) => Ok(resp),
            Err(ConnectError::NotRunning) => Err(unavailable(self.0.not_running(name))),
            Err(ConnectError::Api(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_upstream_splits_them() {
        assert_eq!(object_name("web"), "web");
        assert_eq!(object_name("web:8080"), "web");
        assert_eq!(object_name("https:web:443"), "web");
        assert_eq!(object_name("https:web:"), "web");
    }
}
