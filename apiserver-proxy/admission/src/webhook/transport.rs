//! Calling a webhook: one HTTPS POST of an `AdmissionReview`, bounded in
//! time and size.
//!
//! - A `url` webhook is dialled here. Its host is resolved once and the
//!   address dialled is the one checked: a tenant's cluster may reach only
//!   addresses inside its VirtualCluster's `spec.network.allowedCIDRs` (and
//!   every enclosing cluster's), never loopback, link-local (the metadata
//!   service), unspecified or multicast addresses, nor the parent's API
//!   ([`nestkube_tenant_crds::refused_address`]). The root cluster, which
//!   only the platform writes, may call any address.
//! - A `service` webhook is reached through its cluster's parent, by the
//!   [`ServiceReach`] the syncer registers (the Service's copy in the
//!   parent); without one (no parent) the call fails as upstream's does for
//!   a Service without endpoints.
//!
//! The serving certificate is verified against the webhook's `caBundle`
//! (the system's roots when it has none) for the URL's host, or
//! `<service>.<namespace>.svc`, as upstream.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

use super::config::ServiceRef;
use crate::tenancy::Placement;

/// Largest answer read from a webhook (upstream's client has no smaller
/// bound than the request size limit).
pub const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// Reaches the Services of virtual clusters in their parents (implemented
/// by the syncer, which knows where each cluster's copies live).
#[async_trait]
pub trait ServiceReach: Send + Sync {
    /// POSTs `body` (JSON) to path `svc.path` (with `query`) of Service
    /// `svc` of cluster `cluster` and returns the answer's body; the
    /// certificate is checked against `ca_bundle` for
    /// [`ServiceRef::server_name`] where the transport ends TLS itself. Must
    /// never reach another cluster's Service.
    async fn post(
        &self,
        cluster: &str,
        svc: &ServiceRef,
        query: &str,
        ca_bundle: Option<&[u8]>,
        body: Bytes,
    ) -> Result<Bytes, String>;

    /// The parent's API addresses, which no `url` webhook of `cluster` may
    /// reach whatever its VirtualCluster allows.
    async fn reserved_addresses(&self, cluster: &str) -> Vec<IpAddr>;
}

/// The shared means of calling webhooks.
#[derive(Default)]
pub struct Transport {
    service: OnceLock<Arc<dyn ServiceReach>>,
    tls: Mutex<HashMap<Option<Vec<u8>>, Arc<ClientConfig>>>,
}

/// Most distinct CA bundles whose TLS configuration is kept.
const MAX_TLS_CONFIGS: usize = 256;

impl Transport {
    /// Registers who reaches Services (once; later calls are ignored).
    pub fn set_service_reach(&self, reach: Arc<dyn ServiceReach>) {
        let _ = self.service.set(reach);
    }

    /// POSTs `body` to Service `svc` of `cluster`.
    pub async fn post_service(
        &self,
        cluster: &str,
        svc: &ServiceRef,
        query: &str,
        ca_bundle: Option<&[u8]>,
        body: Bytes,
    ) -> Result<Bytes, String> {
        match self.service.get() {
            Some(reach) => reach.post(cluster, svc, query, ca_bundle, body).await,
            None => Err(format!(
                "service \"{}/{}\" is not reachable: the cluster has no parent to run it in",
                svc.namespace, svc.name
            )),
        }
    }

    /// POSTs `body` to `url` (with `query` appended) for a webhook of
    /// `cluster`, whose VirtualCluster (and those above it) bound the
    /// addresses it may reach (`placements`; empty for the root cluster).
    pub async fn post_url(
        &self,
        cluster: &str,
        placements: &[Arc<Placement>],
        url: &str,
        query: &str,
        ca_bundle: Option<&[u8]>,
        body: Bytes,
    ) -> Result<Bytes, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("invalid URL {url:?}: the scheme must be https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("invalid URL {url:?}: no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let addr = self.resolve(cluster, placements, &host, port).await?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = join_query(path, query);
        let tls = self.tls_config(ca_bundle)?;
        post(addr, &host, &uri_authority(&host, port), &path, tls, body).await
    }

    /// Why a tenant's cluster may not name `url` in a webhook configuration
    /// (`None`: it may, as far as can be told before calling it): an
    /// address its VirtualCluster does not allow, or `localhost`. A host
    /// name is checked again, resolved, at every call.
    pub async fn refused_url(
        &self,
        cluster: &str,
        placements: &[Arc<Placement>],
        url: &str,
    ) -> Option<String> {
        if placements.is_empty() {
            return None;
        }
        let uri: http::Uri = url.parse().ok()?;
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let lower = host.to_ascii_lowercase();
        if lower == "localhost" || lower.ends_with(".localhost") {
            return Some(format!(
                "{host:?} may not be in the loopback range (127.0.0.0/8, ::1/128)"
            ));
        }
        let ip = host.parse::<IpAddr>().ok()?;
        let reserved = match self.service.get() {
            Some(reach) => reach.reserved_addresses(cluster).await,
            None => Vec::new(),
        };
        refused(placements, ip, &reserved)
    }

    /// The one address a `url` webhook is dialled at: the first of its
    /// host's addresses the cluster may reach.
    async fn resolve(
        &self,
        cluster: &str,
        placements: &[Arc<Placement>],
        host: &str,
        port: u16,
    ) -> Result<SocketAddr, String> {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
                .collect(),
        };
        if placements.is_empty() {
            return addrs
                .first()
                .copied()
                .ok_or_else(|| format!("dial tcp: lookup {host}: no such host"));
        }
        let reserved = match self.service.get() {
            Some(reach) => reach.reserved_addresses(cluster).await,
            None => Vec::new(),
        };
        let mut why = None;
        for a in &addrs {
            match refused(placements, a.ip(), &reserved) {
                None => return Ok(*a),
                Some(w) => why = why.or(Some(w)),
            }
        }
        Err(why.unwrap_or_else(|| format!("dial tcp: lookup {host}: no such host")))
    }

    /// The TLS configuration verifying with `ca_bundle` (the system's
    /// roots when `None`), built once per distinct bundle.
    fn tls_config(&self, ca_bundle: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
        let key = ca_bundle.map(<[u8]>::to_vec);
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let mut roots = RootCertStore::empty();
        match ca_bundle {
            Some(pem) => {
                let mut reader = std::io::BufReader::new(pem);
                for cert in rustls_pemfile::certs(&mut reader) {
                    let cert = cert.map_err(|e| format!("invalid caBundle: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("invalid caBundle: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("invalid caBundle: no certificate in it".into());
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let config = Arc::new(config);
        if cache.len() >= MAX_TLS_CONFIGS {
            cache.clear();
        }
        cache.insert(key, config.clone());
        Ok(config)
    }
}

/// Why `ip` may not be called by a webhook of a cluster under `placements`
/// (its own VirtualCluster first, then those above it).
pub fn refused(placements: &[Arc<Placement>], ip: IpAddr, reserved: &[IpAddr]) -> Option<String> {
    placements.iter().find_map(|p| {
        let allowed = nestkube_tenant_crds::parse_cidrs(&p.spec.network.allowed_cidrs);
        nestkube_tenant_crds::refused_address(&ip.to_string(), &allowed, reserved)
            .map(|why| format!("address {ip} {why}"))
    })
}

fn join_query(path: &str, query: &str) -> String {
    match (query.is_empty(), path.contains('?')) {
        (true, _) => path.to_string(),
        (false, true) => format!("{path}&{query}"),
        (false, false) => format!("{path}?{query}"),
    }
}

fn uri_authority(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// One HTTP/1.1 POST over TLS to `addr`, verifying the certificate for
/// `server_name`.
pub async fn post(
    addr: SocketAddr,
    server_name: &str,
    authority: &str,
    path: &str,
    tls: Arc<ClientConfig>,
    body: Bytes,
) -> Result<Bytes, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: connect: {}", go_io_error(&e)))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("invalid server name {server_name:?}: {e}"))?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .header(http::header::USER_AGENT, "nestkube-apiserver")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        ));
    }
    Ok(bytes)
}

/// An I/O error as Go's net package words it (`connection refused`, not
/// `Connection refused (os error 111)`), so messages read as upstream's.
fn go_io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset by peer".into(),
        ErrorKind::TimedOut => "i/o timeout".into(),
        ErrorKind::HostUnreachable => "no route to host".into(),
        ErrorKind::NetworkUnreachable => "network is unreachable".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_lowercase(),
                None => text,
            }
        }
    }
}

/// Waits `timeout` for `call`, failing as a Go client whose context expired.
pub async fn with_timeout<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err("context deadline exceeded".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_authorities() {
        assert_eq!(join_query("/v", "timeout=10s"), "/v?timeout=10s");
        assert_eq!(join_query("/v?a=1", "timeout=10s"), "/v?a=1&timeout=10s");
        assert_eq!(uri_authority("h", 443), "h");
        assert_eq!(uri_authority("::1", 8443), "[::1]:8443");
    }
}
