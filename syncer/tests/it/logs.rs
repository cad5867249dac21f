//! `kubectl logs` through the virtual API (`pods/log`): errors are proper
//! `Status`es (unknown pod, bad container, a pod that runs nowhere); a
//! follow streams chunk by chunk; against the real host (kwok serves a
//! simulated CRI log for every container), a virtual pod's log is its host
//! pod's, through kube-rs and through `kubectl logs` over TLS.

use std::sync::{Arc, Mutex};

use crate::common::{self, Server, js, virtual_cluster, wait_for, wait_for_within};
use async_trait::async_trait;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use nestkube_apiserver::server::pod_connect::{StreamRequest, Upgraded};
use nestkube_apiserver::server::pod_proxy::{ConnectError, LogQuery, LogStream, PodConnector};
use nestkube_syncer::names;
use serde_json::json;

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap()
}

/// The `Status` of a failed call.
fn status(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not a Status: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_statuses_when_the_pod_runs_nowhere() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, team) = virtual_cluster(&server.root, "logs-a").await;
    let vpods: Api<Pod> = Api::namespaced(team.clone(), "default");
    wait_for("the virtual pod to be created", || async {
        vpods.create(&PostParams::default(), &pod("web")).await.ok()
    })
    .await;
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let copy = names::host_name("logs-a", "default", "web");
    wait_for("the copy in root", || async {
        root_pods.get(&copy).await.ok()
    })
    .await;

    // Root has no kubelet: its copy waits, and so does the virtual pod,
    // under its own name.
    let (code, reason, message) = status(
        vpods
            .logs("web", &LogParams::default())
            .await
            .expect_err("no log"),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        message,
        "container \"main\" in pod \"web\" is waiting to start: ContainerCreating"
    );
    // The same answer from root for the copy.
    let (code, _, message) = status(
        root_pods
            .logs(&copy, &LogParams::default())
            .await
            .expect_err("no log"),
    );
    assert_eq!(code, 400);
    assert!(message.contains(&format!("pod \"{copy}\"")), "{message}");

    let (code, _, message) = status(
        vpods
            .logs("missing", &LogParams::default())
            .await
            .expect_err("no pod"),
    );
    assert_eq!(
        (code, message.as_str()),
        (404, "pods \"missing\" not found")
    );
    let bad = LogParams {
        container: Some("nope".into()),
        ..Default::default()
    };
    let (code, _, message) = status(vpods.logs("web", &bad).await.expect_err("no container"));
    assert_eq!(
        (code, message.as_str()),
        (400, "container nope is not valid for pod web")
    );
    let negative = LogParams {
        tail_lines: Some(-1),
        ..Default::default()
    };
    let (code, reason, _) = status(vpods.logs("web", &negative).await.expect_err("invalid"));
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    // Nested: logs-a:inner -> logs-a -> root, the same answer under the
    // name of the nested pod.
    let (_, inner) = virtual_cluster(&team, "inner").await;
    let ipods: Api<Pod> = Api::namespaced(inner, "default");
    wait_for("the nested pod to be created", || async {
        ipods
            .create(&PostParams::default(), &pod("deep"))
            .await
            .ok()
    })
    .await;
    let copy2 = names::host_name(
        "logs-a",
        "default",
        &names::host_name("logs-a:inner", "default", "deep"),
    );
    wait_for("the nested pod's copy in root", || async {
        root_pods.get(&copy2).await.ok()
    })
    .await;
    let (code, _, message) = status(
        ipods
            .logs("deep", &LogParams::default())
            .await
            .expect_err("no log"),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "container \"main\" in pod \"deep\" is waiting to start: ContainerCreating"
        )
    );
}

/// A connector whose log is what the test sends, one chunk at a time.
struct Scripted {
    chunks: Mutex<Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>>,
    asked: Mutex<Vec<(String, String, String, LogQuery)>>,
}

#[async_trait]
impl PodConnector for Scripted {
    async fn log(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
        query: &LogQuery,
    ) -> Result<LogStream, ConnectError> {
        self.asked.lock().unwrap().push((
            cluster.into(),
            namespace.into(),
            pod.into(),
            query.clone(),
        ));
        let mut rx = self
            .chunks
            .lock()
            .unwrap()
            .take()
            .ok_or(ConnectError::NotRunning)?;
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }

    async fn connect(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &StreamRequest,
    ) -> Result<Upgraded, ConnectError> {
        Err(ConnectError::NotRunning)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_streams_chunk_by_chunk() {
    let server = Server::start().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let connector = Arc::new(Scripted {
        chunks: Mutex::new(Some(rx)),
        asked: Mutex::new(Vec::new()),
    });
    server.running.api.set_pod_connector(connector.clone());
    let pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    wait_for("the pod to be created", || async {
        pods.create(&PostParams::default(), &pod("tail")).await.ok()
    })
    .await;
    let params = LogParams {
        follow: true,
        tail_lines: Some(10),
        timestamps: true,
        ..Default::default()
    };
    tx.send("one\n".into()).await.unwrap();
    let mut lines = pods.log_stream("tail", &params).await.expect("log").lines();
    // The first line arrives while the stream is still open.
    assert_eq!(lines.next().await.unwrap().unwrap(), "one");
    tx.send("two\n".into()).await.unwrap();
    assert_eq!(lines.next().await.unwrap().unwrap(), "two");
    drop(tx);
    assert!(lines.next().await.is_none());
    let asked = connector.asked.lock().unwrap().clone();
    let (cluster, namespace, name, query) = &asked[0];
    assert_eq!(
        (cluster.as_str(), namespace.as_str(), name.as_str()),
        ("root", "default", "tail")
    );
    // The container is defaulted; the options are passed on.
    assert_eq!(query.container.as_deref(), Some("main"));
    assert!(query.follow && query.timestamps);
    assert_eq!(query.tail_lines, Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_come_from_the_host_pod() {
    let Some(common::HostPlaced {
        host,
        ns,
        host_client,
        server,
        cluster,
        virt,
    }) = common::host_placed("syncer-logs", "logs").await
    else {
        return;
    };
    let api = server.running.api.clone();

    let vpods: Api<Pod> = Api::namespaced(virt.clone(), "default");
    wait_for_within("the virtual pod to be created", 30, || async {
        vpods.create(&PostParams::default(), &pod("web")).await.ok()
    })
    .await;
    wait_for_within("the virtual pod to run", 60, || async {
        let p = js(&vpods.get("web").await.ok()?);
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;
    let host_pods: Api<Pod> = Api::namespaced(host_client.clone(), ns.name());
    let copy = names::host_name(&cluster, "default", "web");
    let want = host_pods
        .logs(&copy, &LogParams::default())
        .await
        .expect("host log");
    assert!(want.contains("hello from kwok"), "{want}");
    let got = vpods
        .logs("web", &LogParams::default())
        .await
        .expect("virtual log");
    assert_eq!(got, want);
    let tail = LogParams {
        tail_lines: Some(1),
        ..Default::default()
    };
    assert_eq!(
        vpods.logs("web", &tail).await.expect("tail"),
        host_pods.logs(&copy, &tail).await.expect("host tail")
    );
    let bad = LogParams {
        container: Some("nope".into()),
        ..Default::default()
    };
    let (code, _, message) = status(vpods.logs("web", &bad).await.expect_err("no container"));
    assert_eq!(
        (code, message.as_str()),
        (400, "container nope is not valid for pod web")
    );

    // kubectl, over TLS, as the cluster's admin.
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = common::admin_kubeconfig(&server, &cluster, dir.path());
    let out = std::process::Command::new(&host.bins().kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["logs", "web", "-n", "default"])
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let out = std::process::Command::new(&host.bins().kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["logs", "web", "--tail", "1"])
        .output()
        .expect("kubectl");
    // kubectl checks the container itself; tailLines is passed on.
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        host_pods.logs(&copy, &tail).await.expect("host tail")
    );
    api.clusters.remove(&cluster).await.expect("remove");
}
