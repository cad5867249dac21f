//! What a TCP listener lets in before any request is read: accepting with
//! back-off when the process runs out of descriptors ([`accept`]), caps on
//! the connections open at once, in all and per source address ([`Gate`]),
//! and the timeouts that end a connection that says nothing: the TLS
//! handshake, the HTTP/1 request head and an idle connection ([`Limits`],
//! [`InFlight`]).
//!
//! Used by the API server's listener ([`super`]) and by the syncer's DNS
//! server over TCP. An idle timeout ends only connections with no request in
//! flight: a watch, a followed log or an upgraded stream (exec, attach,
//! port-forward) is never cut by it.
//!
//! This module must never read or judge a request: it only decides whether
//! a connection may be accepted and how long one that does nothing may stay.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use tokio::net::{TcpListener, TcpStream};

/// Caps on the connections a listener keeps open at once (0: no cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one source (an IPv4 address, or
    /// an IPv6 /64: one host's share of addresses).
    pub max_per_source: usize,
}

/// What the API server's listener allows a connection
/// (`nestkube serve --max-connections ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connection caps.
    pub caps: Caps,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest wait for a whole HTTP/1 request head (upstream's
    /// `ReadHeaderTimeout`).
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open
    /// (upstream's `IdleTimeout`); also the HTTP/2 keep-alive ping interval
    /// that finds dead peers of long requests.
    pub idle_timeout: Duration,
}

impl Limits {
    /// Default of [`Caps::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// Default of [`Caps::max_per_source`]: generous, as clients behind one
    /// NAT or proxy share an address (raise it, or 0, behind a proxy that
    /// does not keep client addresses).
    pub const DEFAULT_MAX_PER_SOURCE: usize = 1_000;
    /// Default TLS handshake timeout.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// kube-apiserver's `ReadHeaderTimeout`.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(32);
    /// kube-apiserver's `IdleTimeout` (Go's client keep-alive timeout).
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            caps: Caps {
                max_connections: Self::DEFAULT_MAX_CONNECTIONS,
                max_per_source: Self::DEFAULT_MAX_PER_SOURCE,
            },
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The key a source is counted under: an IPv4 address (also when mapped
/// into IPv6), or the /64 of an IPv6 address.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Counts the connections open, in all and per source, against [`Caps`].
#[derive(Debug)]
pub struct Gate {
    caps: Caps,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// [`Caps::max_connections`] are open.
    #[error("too many connections")]
    Total,
    /// [`Caps::max_per_source`] are open from this source.
    #[error("too many connections from this source")]
    Source,
}

impl Gate {
    /// A gate holding connections to `caps`.
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            open: Mutex::new(Open::default()),
        })
    }

    /// Counts a connection from `peer` if the caps allow it; it is counted
    /// until the [`Permit`] is dropped.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let source = source_of(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.caps.max_connections > 0 && open.total >= self.caps.max_connections {
            return Err(Refused::Total);
        }
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        if self.caps.max_per_source > 0 && from_source >= self.caps.max_per_source {
            return Err(Refused::Source);
        }
        open.total += 1;
        open.by_source.insert(source, from_source + 1);
        Ok(Permit {
            gate: self.clone(),
            source,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.total).unwrap_or(0)
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

/// The delay before accepting again after an error, as Go's `net/http`:
/// 5 ms, doubled on each error in a row up to 1 s, reset by a success.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Option<Duration>,
    last_log: Option<Instant>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// The next delay after an error.
    fn next(&mut self) -> Duration {
        let d = match self.delay {
            None => Self::FIRST,
            Some(d) => (d * 2).min(Self::MAX),
        };
        self.delay = Some(d);
        d
    }

    /// Whether to log this error: the first of a run, then once a second.
    fn should_log(&mut self) -> bool {
        let now = Instant::now();
        let log = self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if log {
            self.last_log = Some(now);
        }
        log
    }
}

/// The next connection of `listener`. An error that belongs to one
/// connection (reset or aborted before it was accepted) is skipped; any
/// other (out of descriptors: `EMFILE`, `ENFILE`, `ENOBUFS`...) waits per
/// `backoff` before trying again, logging at most once a second, so a
/// process at its limit neither spins nor floods its log.
pub async fn accept(listener: &TcpListener, backoff: &mut Backoff) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                backoff.delay = None;
                return conn;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                let delay = backoff.next();
                if backoff.should_log() {
                    tracing::warn!(error = %e, retry_in = ?delay, "accept failed; backing off");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The requests in flight on one connection: a request counts from when
/// its handler is called until its response body ends or is dropped (a
/// watch or a followed log counts for as long as it streams).
#[derive(Clone, Debug)]
pub struct InFlight(Arc<tokio::sync::watch::Sender<usize>>);

impl Default for InFlight {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(0)))
    }
}

/// One request in flight; dropping it ends it.
#[derive(Debug)]
pub struct Request(InFlight);

impl Drop for Request {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n -= 1);
    }
}

impl InFlight {
    /// Counts a request until the returned guard is dropped.
    pub fn start(&self) -> Request {
        self.0.send_modify(|n| *n += 1);
        Request(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout` in a row.
    pub async fn idle_for(&self, timeout: Duration) {
        let mut rx = self.0.subscribe();
        loop {
            if rx.wait_for(|n| *n == 0).await.is_err() {
                return std::future::pending().await;
            }
            match tokio::time::timeout(timeout, rx.changed()).await {
                Err(_) if *rx.borrow() == 0 => return,
                Err(_) | Ok(Ok(())) => continue,
                Ok(Err(_)) => return std::future::pending().await,
            }
        }
    }
}

/// A response body that keeps its request in flight ([`InFlight`]) until it
/// ends or is dropped.
pub struct Tracked<B> {
    inner: B,
    _request: Request,
}

impl<B> Tracked<B> {
    /// `inner`, counted as `request` until it ends.
    pub fn new(inner: B, request: Request) -> Self {
        Self {
            inner,
            _request: request,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_source_and_in_all() {
        let gate = Gate::new(Caps {
            max_connections: 3,
            max_per_source: 2,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refused::Source);
        // The same IPv4 address mapped into IPv6 is the same source.
        assert_eq!(
            gate.admit("::ffff:10.0.0.1".parse().unwrap()).unwrap_err(),
            Refused::Source
        );
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).unwrap_err(), Refused::Total);
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _a3 = gate.admit(a).unwrap();
    }

    #[test]
    fn ipv6_sources_are_counted_per_64() {
        let gate = Gate::new(Caps {
            max_connections: 0,
            max_per_source: 1,
        });
        let _p = gate.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(gate.admit("2001:db8:1:2::ffff".parse().unwrap()).is_err());
        assert!(gate.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn backoff_doubles_to_a_second() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..10).map(|_| b.next()).collect();
        assert_eq!(delays[0], Duration::from_millis(5));
        assert_eq!(delays[1], Duration::from_millis(10));
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(1));
        assert!(b.should_log());
        assert!(!b.should_log(), "at most once a second");
    }

    #[tokio::test]
    async fn idle_waits_for_requests_to_end() {
        let inflight = InFlight::default();
        let request = inflight.start();
        let idle = inflight.idle_for(Duration::from_millis(50));
        tokio::pin!(idle);
        // A request in flight for longer than the timeout: not idle.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), idle.as_mut())
                .await
                .is_err()
        );
        drop(request);
        tokio::time::timeout(Duration::from_secs(30), idle)
            .await
            .expect("idle once the request ended");
    }
}
