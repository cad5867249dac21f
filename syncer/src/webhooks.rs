//! Reaching the Services that a virtual cluster's admission webhooks (and
//! its CRDs' conversion webhooks) name:
//! the [`ServiceReach`] the syncer registers on the apiserver
//! ([`register`]). A virtual Service runs nowhere itself; its copy in the
//! parent does. So a call to Service `ns/name` of cluster `c` is
//! - for a cluster placed on the host: a POST through the host API server's
//!   service proxy, `services/https:<copy>:<port>/proxy<path>`, to the
//!   copy in the placement's host namespace (the host API server picks an
//!   endpoint and dials it; it does not verify the webhook's certificate,
//!   so `caBundle` is not checked on this path);
//! - for a nested cluster: the same call for the copy, one level down, in
//!   the parent cluster served by this process, until the host is reached.
//!
//! Tenancy: only the copy of `c`'s own Service is reached. A name proves
//! nothing (a host namespace may be shared), so the parent Service of that
//! name must carry the owner labels and annotations of exactly this
//! virtual Service and VirtualCluster; any other is answered as a Service
//! without endpoints. The syncer's own credential is used, never a
//! client's.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::BodyExt;
use nestkube_apiserver::admission::webhook::config::ServiceRef;
use nestkube_apiserver::admission::webhook::transport::{MAX_RESPONSE_BYTES, ServiceReach};
use nestkube_apiserver::server::ApiServer;
use nestkube_apiserver::tenancy::{Parent, Placement};

use crate::containers::is_copy_of;
use crate::names;

/// How long the host's API addresses are reused before being read again.
const RESERVED_TTL: Duration = Duration::from_secs(60);

/// The syncer's [`ServiceReach`].
pub struct Reach {
    api: Arc<ApiServer>,
    host: Option<kube::Client>,
    reserved: Mutex<Option<(Instant, Vec<IpAddr>)>>,
}

/// Registers the syncer's [`ServiceReach`] on `api` (`host`: the client of
/// the host cluster). Needs no running syncer: every replica admits writes.
pub fn register(api: &Arc<ApiServer>, host: Option<kube::Client>) {
    api.webhooks.set_service_reach(Arc::new(Reach {
        api: api.clone(),
        host,
        reserved: Mutex::new(None),
    }));
}

/// Upstream's answer for a Service nothing can be reached behind.
fn no_endpoints(name: &str) -> String {
    format!("no endpoints available for service \"{name}\"")
}

#[async_trait]
impl ServiceReach for Reach {
    async fn post(
        &self,
        cluster: &str,
        svc: &ServiceRef,
        query: &str,
        ca_bundle: Option<&[u8]>,
        body: Bytes,
    ) -> Result<Bytes, String> {
        let Some(placement) = self.api.clusters.get(cluster).and_then(|c| c.placement()) else {
            return Err(no_endpoints(&svc.name));
        };
        let copy = names::host_name(cluster, &svc.namespace, &svc.name);
        let parent = self.parent_client(&placement)?;
        self.check_copy(&parent, &placement, cluster, svc, &copy)
            .await?;
        let copy_ref = ServiceRef {
            namespace: placement.host_namespace.clone(),
            name: copy,
            path: svc.path.clone(),
            port: svc.port,
        };
        match &placement.parent {
            Parent::Cluster(path) => {
                Box::pin(self.post(path, &copy_ref, query, ca_bundle, body)).await
            }
            Parent::Host => proxy_post(&parent, &copy_ref, query, body).await,
        }
    }

    async fn reserved_addresses(&self, _cluster: &str) -> Vec<IpAddr> {
        if let Some((at, ips)) = &*self.reserved.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < RESERVED_TTL
        {
            return ips.clone();
        }
        let Some(host) = &self.host else {
            return Vec::new();
        };
        let ips = host_api_addresses(host).await;
        *self.reserved.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), ips.clone()));
        ips
    }
}

impl Reach {
    /// A client of the placement's parent (in-process for a served parent).
    fn parent_client(&self, placement: &Placement) -> Result<kube::Client, String> {
        match &placement.parent {
            Parent::Cluster(path) => Ok(self
                .api
                .client_for_agent(path, crate::syncer::SYNCER_MANAGER)),
            Parent::Host => self
                .host
                .clone()
                .ok_or_else(|| "no host client was given".to_string()),
        }
    }

    /// Reads parent Service `copy` and checks it is the copy of `svc` of
    /// `cluster`; anything else is a Service without endpoints.
    async fn check_copy(
        &self,
        parent: &kube::Client,
        placement: &Placement,
        cluster: &str,
        svc: &ServiceRef,
        copy: &str,
    ) -> Result<(), String> {
        let services: kube::Api<k8s_openapi::api::core::v1::Service> =
            kube::Api::namespaced(parent.clone(), &placement.host_namespace);
        let found = services
            .get_metadata_opt(copy)
            .await
            .map_err(|e| format!("reaching the parent of cluster {cluster}: {e}"))?;
        let meta = found
            .map(|f| serde_json::to_value(&f.metadata).unwrap_or_default())
            .unwrap_or_default();
        if is_copy_of(
            &meta,
            &placement.uid,
            cluster,
            &svc.namespace,
            &svc.name,
            None,
        ) {
            Ok(())
        } else {
            Err(no_endpoints(&svc.name))
        }
    }
}

/// POSTs `body` through the host API server's service proxy.
async fn proxy_post(
    host: &kube::Client,
    svc: &ServiceRef,
    query: &str,
    body: Bytes,
) -> Result<Bytes, String> {
    let path = svc.path.trim_start_matches('/');
    let mut uri = format!(
        "/api/v1/namespaces/{}/services/https:{}:{}/proxy/{path}",
        svc.namespace, svc.name, svc.port
    );
    if !query.is_empty() {
        uri = format!("{uri}?{query}");
    }
    let request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(body.to_vec()))
        .map_err(|e| e.to_string())?;
    let response = host.send(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    if !parts.status.is_success() {
        let status: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = status["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        // The copy's name is the parent's business.
        return Err(format!(
            "the server responded with the status code {}: {}",
            parts.status.as_u16(),
            message.replace(&svc.name, "the service")
        ));
    }
    Ok(bytes)
}

/// The host's API addresses: the cluster IPs of `default/kubernetes` and
/// the addresses of its Endpoints.
async fn host_api_addresses(host: &kube::Client) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(host.clone(), "default");
    if let Ok(Some(s)) = services.get_opt("kubernetes").await
        && let Some(spec) = s.spec
    {
        out.extend(
            spec.cluster_ips
                .unwrap_or_default()
                .iter()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    let endpoints: kube::Api<k8s_openapi::api::core::v1::Endpoints> =
        kube::Api::namespaced(host.clone(), "default");
    if let Ok(Some(ep)) = endpoints.get_opt("kubernetes").await {
        for s in ep.subsets.unwrap_or_default() {
            for a in s.addresses.unwrap_or_default() {
                if let Ok(ip) = a.ip.parse() {
                    out.push(ip);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
