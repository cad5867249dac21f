//! Connection exhaustion of DNS over TCP: connections that send nothing
//! are closed after the idle timeout, a source over its cap is closed at
//! once, and a client from another address is still answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use nestkube_apiserver::server::connections::Caps;
use nestkube_syncer::dns::{self, DnsOptions, PodIndex, TcpLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::Server;

const EVENTUALLY: Duration = Duration::from_secs(60);

async fn tcp_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    let source: IpAddr = source.parse().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(server).await.expect("connect")
}

/// Whether the server closes `stream` by [`EVENTUALLY`].
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(EVENTUALLY, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A query for `web.default.svc.cluster.local` A, written by hand.
fn query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["web", "default", "svc", "cluster", "local"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_surplus_tcp_connections_are_closed() {
    let server = Server::start().await;
    let cap = 4;
    let dns = dns::serve(
        server.running.api.clone(),
        Arc::new(PodIndex::default()),
        DnsOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstreams: vec!["127.0.0.1:9".parse().unwrap()],
            tcp: TcpLimits {
                caps: Caps {
                    max_connections: 0,
                    max_per_source: cap,
                },
                idle_timeout: Duration::from_secs(1),
                query_timeout: Duration::from_secs(1),
            },
        },
    )
    .await
    .expect("DNS server");
    let addr = dns.tcp_addr;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(tcp_from("127.0.0.1", addr).await);
    }
    let mut over = tcp_from("127.0.0.1", addr).await;
    assert!(
        closed(&mut over).await,
        "a connection over the cap was let in"
    );
    // Another source is answered (REFUSED: it is no pod's, but answered).
    let mut other = tcp_from("127.0.0.2", addr).await;
    let q = query();
    other
        .write_all(&(q.len() as u16).to_be_bytes())
        .await
        .unwrap();
    other.write_all(&q).await.unwrap();
    let len = tokio::time::timeout(EVENTUALLY, other.read_u16())
        .await
        .expect("an answer")
        .expect("length");
    let mut reply = vec![0; len as usize];
    other.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[..2], &[0x12, 0x34], "the answer to our query");
    // The connections that never sent a query are closed.
    for (i, conn) in held.iter_mut().enumerate() {
        assert!(closed(conn).await, "silent connection {i} is still open");
    }
    // Half a query: the rest never comes.
    let mut partial = tcp_from("127.0.0.1", addr).await;
    partial.write_all(&[0, 40, 0x12]).await.unwrap();
    assert!(
        closed(&mut partial).await,
        "a partial query kept its connection"
    );
}
