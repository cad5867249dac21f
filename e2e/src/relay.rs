//! A TCP relay to put between a client and a server (e.g. nestkube and the
//! shared host's kube-apiserver) to simulate the server being unreachable
//! or restarted, without touching the server other tests share.
//!
//! Bytes pass through untouched (TLS included: the client still verifies
//! the server's certificate, which must name the relay's address too; the
//! e2e host's covers `127.0.0.1`).
//!
//! - [`Relay::cut`] resets every open connection and every new one at once
//!   (as a stopped server, or a firewall sending RSTs: clients fail fast).
//! - [`Relay::black_hole`] stops moving bytes: open connections go silent
//!   and new ones are accepted but never answered (as a network partition:
//!   clients hang until their own timeouts). What was sent meanwhile is
//!   delivered once restored, as TCP retransmits after a partition heals.
//! - [`Relay::restore`] relays again.
//! - [`Relay::reset_connections`] resets the open connections only (a
//!   restart: watches break mid-stream, the next connection works).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let relay = nestkube_e2e::relay::Relay::start("127.0.0.1:6443".parse().unwrap()).await?;
//! // point the client at relay.addr() ...
//! relay.cut();
//! relay.restore();
//! # Ok(()) }
//! ```
//!
//! It owns its listener and connection tasks (on the caller's tokio
//! runtime); dropping it stops them all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running relay (see the module docs); stopped on drop.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// Whether new connections are reset instead of relayed.
    cut: AtomicBool,
    /// Whether bytes move (`false`: black-holed).
    flowing: watch::Sender<bool>,
    /// Bumped to end every open connection.
    epoch: watch::Sender<u64>,
    /// Connections relayed so far.
    relayed: AtomicUsize,
}

impl Relay {
    /// Listens on a free port of 127.0.0.1 and relays every connection to
    /// `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            flowing: watch::Sender::new(true),
            epoch: watch::Sender::new(0),
            relayed: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if s.cut.load(Ordering::SeqCst) {
                    reset(client);
                    continue;
                }
                s.relayed.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(relay(
                    client,
                    upstream,
                    s.epoch.subscribe(),
                    s.flowing.subscribe(),
                ));
            }
        });
        Ok(Relay {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<addr>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Makes the upstream unreachable: resets every open connection, and
    /// every new one until [`Relay::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.reset_connections();
    }

    /// Makes the upstream silent: no byte moves either way, on open
    /// connections or new ones, until [`Relay::restore`].
    pub fn black_hole(&self) {
        self.shared.flowing.send_replace(false);
    }

    /// Relays again (after [`Relay::cut`] or [`Relay::black_hole`]).
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
        self.shared.flowing.send_replace(true);
    }

    /// Resets every open connection (new ones are relayed, unless cut).
    pub fn reset_connections(&self) {
        self.shared.epoch.send_modify(|e| *e += 1);
    }

    /// Connections relayed so far (not counting those reset while cut).
    pub fn relayed(&self) -> usize {
        self.shared.relayed.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_connections();
    }
}

/// Closes `s` with a RST (no FIN: the peer sees "connection reset").
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

/// Relays `client` to `upstream` until either side closes or the epoch
/// changes (then both are reset), moving bytes only while `flowing`.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    mut epoch: watch::Receiver<u64>,
    flowing: watch::Receiver<bool>,
) {
    epoch.mark_unchanged();
    let server = tokio::select! {
        s = TcpStream::connect(upstream) => match s {
            Ok(s) => s,
            Err(_) => return reset(client),
        },
        _ = epoch.changed() => return reset(client),
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let ended = tokio::select! {
        _ = async {
            tokio::join!(
                pipe(&mut cr, &mut sw, flowing.clone()),
                pipe(&mut sr, &mut cw, flowing),
            )
        } => false,
        _ = epoch.changed() => true,
    };
    if ended && let (Ok(c), Ok(s)) = (cr.reunite(cw), sr.reunite(sw)) {
        reset(c);
        reset(s);
    }
}

/// Copies `from` to `to` until EOF or an error, holding every chunk while
/// not `flowing`; shuts `to` down at the end.
async fn pipe(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    mut flowing: watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if flowing.wait_for(|f| *f).await.is_err() {
            break;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if flowing.wait_for(|f| *f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
