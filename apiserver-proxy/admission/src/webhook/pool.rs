//! Keep-alive for `url` webhooks: an HTTP/1.1 connection that answered is
//! kept idle and reused by the next call to the same webhook, as upstream's
//! Go client (`http.Transport`) does, so a call costs one round trip
//! instead of a TCP and TLS handshake.
//!
//! A connection is reused only by the same cluster, for the same address,
//! server name and CA bundle it was verified with: nothing one cluster
//! opened carries another's requests. What is kept is bounded (a few idle
//! connections per key, a bounded number of keys) and expires after
//! [`IDLE_TIMEOUT`] without a timer: stale entries are dropped when the key
//! is next used.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, pki_types::ServerName};

use super::transport::MAX_RESPONSE_BYTES;

/// How long an idle connection is kept (Go's `DefaultTransport`: 90 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per key (Go's `MaxIdleConnsPerHost` is 2; calls
/// of one cluster run in parallel, so a few more).
const MAX_IDLE_PER_KEY: usize = 4;
/// Keys kept; beyond it a new key's connections are not kept.
const MAX_KEYS: usize = 256;

/// Who may reuse a connection.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    cluster: String,
    addr: SocketAddr,
    server_name: String,
    ca_bundle: Option<Vec<u8>>,
}

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// One webhook call's destination.
pub struct Target<'a> {
    /// The cluster whose webhook is called.
    pub cluster: &'a str,
    /// The address dialled (already checked against the cluster's rules).
    pub addr: SocketAddr,
    /// The name the certificate must carry.
    pub server_name: &'a str,
    /// The `Host` header.
    pub authority: &'a str,
    /// The CA bundle `tls` verifies with (part of the reuse key).
    pub ca_bundle: Option<&'a [u8]>,
    /// The TLS configuration for a new connection.
    pub tls: Arc<ClientConfig>,
}

/// The idle connections of every cluster's `url` webhooks.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
}

impl Pool {
    /// POSTs `body` (JSON) to `path` of `target` on an idle connection of
    /// the same key, or a new one; returns the answer's body.
    pub async fn post(
        &self,
        target: &Target<'_>,
        path: &str,
        body: Bytes,
    ) -> Result<Bytes, String> {
        let key = Key {
            cluster: target.cluster.to_string(),
            addr: target.addr,
            server_name: target.server_name.to_string(),
            ca_bundle: target.ca_bundle.map(<[u8]>::to_vec),
        };
        if let Some(mut sender) = self.checkout(&key) {
            match send(&mut sender, target.authority, path, body.clone()).await {
                Ok(answer) => {
                    self.checkin(key, sender);
                    return answer;
                }
                // The server closed the idle connection before reading
                // the request: try once on a new one, as Go's transport
                // retries a request on a reused connection.
                Err(e) if e.is_canceled() || e.is_closed() || e.is_incomplete_message() => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut sender = connect(target).await?;
        let answer = send(&mut sender, target.authority, path, body)
            .await
            .map_err(|e| e.to_string())?;
        self.checkin(key, sender);
        answer
    }

    /// An idle, ready connection of `key`, dropping the stale ones.
    fn checkout(&self, key: &Key) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < IDLE_TIMEOUT
                && !entry.sender.is_closed()
                && entry.sender.is_ready()
            {
                found = Some(entry.sender);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keeps `sender` for the next call of `key`, within the bounds.
    fn checkin(&self, key: Key, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !idle.contains_key(&key) && idle.len() >= MAX_KEYS {
            idle.retain(|_, list| {
                list.retain(|e| e.since.elapsed() < IDLE_TIMEOUT && !e.sender.is_closed());
                !list.is_empty()
            });
            if idle.len() >= MAX_KEYS {
                return;
            }
        }
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_KEY {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections kept (for tests).
    pub fn idle_connections(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}

/// A new TLS connection to `target`, verified for its server name.
async fn connect(target: &Target<'_>) -> Result<SendRequest<Full<Bytes>>, String> {
    let addr = target.addr;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: connect: {}", go_errno(&e)))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(target.server_name.to_string())
        .map_err(|e| format!("invalid server name {:?}: {e}", target.server_name))?;
    let stream = TlsConnector::from(target.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One POST on `sender`. The outer error is the connection's (retryable
/// on a reused connection); the inner one the answer's.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    path: &str,
    body: Bytes,
) -> Result<Result<Bytes, String>, hyper::Error> {
    let request = match http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .header(http::header::USER_AGENT, "nestkube-apiserver")
        .body(Full::new(body))
    {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = match Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(Err(format!("reading the response: {e}"))),
    };
    if !status.is_success() {
        return Ok(Err(format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        )));
    }
    Ok(Ok(bytes))
}

/// An I/O error worded as Go's `syscall.Errno` strings (`connection
/// refused`), which upstream's messages carry.
fn go_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        std::io::ErrorKind::HostUnreachable => "no route to host".into(),
        std::io::ErrorKind::NetworkUnreachable => "network is unreachable".into(),
        std::io::ErrorKind::TimedOut => "connection timed out".into(),
        _ => e.to_string(),
    }
}
