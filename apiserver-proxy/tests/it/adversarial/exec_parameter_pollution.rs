//! Parameter pollution of the pod subresources that reach a container
//! (exec, attach, port-forward, log): the apiserver checks one value (say,
//! `container`), so nothing below it may read another. A repeated
//! single-valued parameter is refused, and what reaches the connector is a
//! query rebuilt from the checked values, never the client's.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use nestkube_apiserver::server::pod_connect::{StreamRequest, Upgraded};
use nestkube_apiserver::server::pod_proxy::{ConnectError, LogQuery, LogStream, PodConnector};
use serde_json::json;

use super::support::{http1, tcp_from, tls};
use crate::common::Fixture;

/// A connector that records what it is asked and answers every stream
/// with an upgraded in-memory pipe.
#[derive(Default)]
struct Recorder {
    streams: Mutex<Vec<String>>,
    logs: Mutex<Vec<LogQuery>>,
}

#[async_trait]
impl PodConnector for Recorder {
    async fn log(
        &self,
        _: &str,
        _: &str,
        _: &str,
        query: &LogQuery,
    ) -> Result<LogStream, ConnectError> {
        self.logs.lock().unwrap().push(query.clone());
        Ok(Box::pin(futures::stream::empty()))
    }

    async fn connect(
        &self,
        _: &str,
        _: &str,
        _: &str,
        request: &StreamRequest,
    ) -> Result<Upgraded, ConnectError> {
        self.streams.lock().unwrap().push(request.query());
        let (near, _far) = tokio::io::duplex(64);
        let mut headers = http::HeaderMap::new();
        headers.insert("upgrade", "websocket".parse().unwrap());
        headers.insert("connection", "Upgrade".parse().unwrap());
        Ok(Upgraded::new(&headers, near))
    }
}

const UPGRADE: &[(&str, &str)] = &[
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
];

struct Setup {
    f: Fixture,
    recorder: Arc<Recorder>,
    admin: nestkube_apiserver::auth::pki::CertPair,
}

impl Setup {
    async fn start() -> Self {
        let f = Fixture::start().await;
        let recorder = Arc::new(Recorder::default());
        f.running.api.set_pod_connector(recorder.clone());
        let pods: Api<Pod> = Api::namespaced(f.root_client().await, "default");
        for (name, containers) in [("two", vec!["app", "other"]), ("solo", vec!["main"])] {
            let containers: Vec<_> = containers
                .iter()
                .map(|c| json!({"name": c, "image": "busybox"}))
                .collect();
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"nodeName": "node-1", "containers": containers},
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod)
                .await
                .expect("pod");
        }
        let admin = f.issue("root", "adversary-admin", &["system:masters"]);
        Self { f, recorder, admin }
    }

    /// `method` on pod subresource `path` (`two/exec?...`) with `headers`.
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let tcp = tcp_from("127.0.0.1".parse().unwrap(), self.f.running.local_addr).await;
        let mut conn = tls(tcp, &self.f.server_ca_pem(), Some(&self.admin)).await;
        http1(
            &mut conn,
            method,
            &format!("/api/v1/namespaces/default/pods/{path}"),
            headers,
        )
        .await
    }

    fn streams(&self) -> Vec<String> {
        self.recorder.streams.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_container_is_refused() {
    let s = Setup::start().await;
    for path in [
        // Checked: the first or the last; either way refused.
        "two/exec?container=app&container=sidecar&command=ls&stdout=true",
        "two/exec?container=sidecar&container=app&command=ls&stdout=true",
        "two/attach?container=app&container=sidecar&stdout=true",
        "two/exec?container=app&stdin=true&stdin=false&command=ls",
    ] {
        let (code, body) = s.send("GET", path, UPGRADE).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains("may be given only once"), "{path}: {body}");
    }
    assert!(s.streams().is_empty(), "nothing was connected");
    let (code, body) = s
        .send("GET", "two/log?container=app&container=sidecar", &[])
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(s.recorder.logs.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_goes_on_is_rebuilt_from_the_checked_values() {
    let s = Setup::start().await;
    let cases = [
        (
            "POST",
            "two/exec?command=sh&command=-c&command=echo%20hi&container=other&stdout=1&bogus=x&ports=80",
            "container=other&command=sh&command=-c&command=echo%20hi&stdout=true",
        ),
        // The container is defaulted as upstream does, so the copy's own
        // containers (a sidecar the parent injected) are never chosen.
        (
            "GET",
            "solo/attach?stdin=true&tty=true",
            "container=main&stdin=true&tty=true",
        ),
        (
            "GET",
            "solo/portforward?ports=8080,9090&container=x",
            "ports=8080&ports=9090",
        ),
    ];
    for (method, path, _) in cases {
        let (code, body) = s.send(method, path, UPGRADE).await;
        assert_eq!(code, 101, "{path}: {body}");
    }
    let want: Vec<_> = cases.iter().map(|(_, _, q)| q.to_string()).collect();
    assert_eq!(s.streams(), want);
    // Port-forward ports are numbers in range.
    let (code, body) = s
        .send("GET", "solo/portforward?ports=80,http", UPGRADE)
        .await;
    assert_eq!(code, 400, "{body}");
}
