//! Connection exhaustion before authentication: a client that opens
//! connections and says nothing (no TLS ClientHello, or no request after
//! the handshake), or opens more than its share, must not keep the server
//! from serving everyone else. Each test would hang or fail on a server
//! without the handshake timeout, the idle timeout or the per-source cap.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use nestkube_apiserver::server::ServeOptions;
use nestkube_apiserver::server::connections::{Caps, Limits};

use super::support::{closed_within, http1, tcp_from, tls};
use crate::common::Fixture;

const LOCAL: &str = "127.0.0.1";
/// Another loopback address: another client, as far as the server can tell.
const OTHER: &str = "127.0.0.2";
/// How long the tests wait for what must happen eventually.
const EVENTUALLY: Duration = Duration::from_secs(60);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn server(limits: Limits) -> Fixture {
    Fixture::start_with(ServeOptions {
        connections: limits,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_handshake_timeout() {
    let f = server(Limits {
        handshake_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    // Connections that never send a ClientHello.
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(tcp_from(ip(LOCAL), f.running.local_addr).await);
    }
    // A legitimate client is served while they are open.
    let root = f.root_client().await;
    let namespaces: Api<Namespace> = Api::all(root);
    namespaces
        .list(&ListParams::default())
        .await
        .expect("served while silent connections are open");
    for (i, conn) in silent.iter_mut().enumerate() {
        assert!(
            closed_within(conn, EVENTUALLY).await,
            "silent connection {i} is still open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_a_watch_is_not() {
    let f = server(Limits {
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let root = f.root_client().await;
    let namespaces: Api<Namespace> = Api::all(root);
    let rv = namespaces
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("resourceVersion");
    let mut watch = Box::pin(
        namespaces
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .expect("watch"),
    );
    // A connection that completes the handshake and then says nothing.
    let tcp = tcp_from(ip(LOCAL), f.running.local_addr).await;
    let mut idle = tls(tcp, &f.server_ca_pem(), None).await;
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(EVENTUALLY, async {
        use tokio::io::AsyncReadExt;
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle connection was never closed");
    // The watch outlived the idle timeout: it still streams.
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "after-idle"}}))
                .unwrap(),
        )
        .await
        .expect("create");
    use futures::StreamExt;
    let seen = tokio::time::timeout(EVENTUALLY, async {
        while let Some(event) = watch.next().await {
            if let Ok(WatchEvent::Added(ns)) = event
                && ns.metadata.name.as_deref() == Some("after-idle")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the watch was cut by the idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_its_cap_is_refused_while_others_connect() {
    let cap = 8;
    let f = server(Limits {
        caps: Caps {
            max_connections: 0,
            max_per_source: cap,
        },
        handshake_timeout: Duration::from_secs(120),
        ..Default::default()
    })
    .await;
    let addr = f.running.local_addr;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(tcp_from(ip(LOCAL), addr).await);
    }
    // Accepted in order: the one over the cap is closed at once.
    let mut over = tcp_from(ip(LOCAL), addr).await;
    assert!(
        closed_within(&mut over, EVENTUALLY).await,
        "connection {} from {LOCAL} was let in",
        cap + 1
    );
    // Another source is served.
    let mut other = tls(tcp_from(ip(OTHER), addr).await, &f.server_ca_pem(), None).await;
    let (code, body) = http1(&mut other, "GET", "/healthz", &[]).await;
    assert_eq!(code, 200, "{body}");
    // The connections within the cap were kept: one of them is served too.
    let first = held.remove(0);
    let mut first = tls(first, &f.server_ca_pem(), None).await;
    let (code, _) = http1(&mut first, "GET", "/healthz", &[]).await;
    assert_eq!(code, 200);
}
