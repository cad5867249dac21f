//! Shared support for the integration tests: a real server on 127.0.0.1 in
//! a temporary data directory, its clusters, certificates issued by their
//! client CAs, kube-rs clients presenting them, VirtualClusters as tenants
//! write them, and `wait_for` (the one polling helper: a condition and a
//! timeout, never a bare sleep). Never shares state between tests: every
//! helper works on the server it is given.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::{Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use nestkube_apiserver::auth::pki::CertPair;
use nestkube_apiserver::server::{RunningServer, ServeConfig};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

/// A running server and the temporary data directory it serves from (kept
/// alive, and removed, with the fixture).
pub struct Fixture {
    pub running: RunningServer,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts a server on an ephemeral port of 127.0.0.1 with the default
    /// backend in a fresh data directory.
    pub async fn start() -> Self {
        Self::start_with(Default::default()).await
    }

    /// [`Fixture::start`] with `options` (connection limits, say).
    pub async fn start_with(options: nestkube_apiserver::server::ServeOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = nestkube_apiserver::server::start_with(
            ServeConfig {
                data_dir: dir.path().to_path_buf(),
                listen: "127.0.0.1:0".parse().unwrap(),
                backend: Default::default(),
            },
            options,
        )
        .await
        .expect("start server");
        Self { running, dir }
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates the child cluster `path`.
    pub async fn create_cluster(&self, path: &str) {
        let api = &self.running.api;
        api.clusters
            .create(&api.store, &api.catalog, path)
            .await
            .expect("create cluster");
    }

    /// The server CA (it verifies the serving certificate), as PEM.
    pub fn server_ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir().join("pki/ca.crt")).expect("server CA")
    }

    /// A client certificate for `user` in `groups`, issued by `cluster`'s
    /// client CA.
    pub fn issue(&self, cluster: &str, user: &str, groups: &[&str]) -> CertPair {
        self.running
            .api
            .clusters
            .get(cluster)
            .expect("cluster")
            .client_ca
            .issue_client(user, groups)
            .expect("issue")
    }

    /// The URL of `cluster` (`https://<addr>/clusters/<cluster>`), or the
    /// bare server address for `None`.
    pub fn url(&self, cluster: Option<&str>) -> String {
        match cluster {
            Some(c) => format!("https://{}/clusters/{c}", self.running.local_addr),
            None => format!("https://{}", self.running.local_addr),
        }
    }

    /// A kubeconfig presenting `cert` at [`Fixture::url`]`(cluster)`.
    pub fn kubeconfig(&self, cluster: Option<&str>, cert: &CertPair) -> Kubeconfig {
        let doc = nestkube_apiserver::kubeconfig::render(
            "test",
            &self.url(cluster),
            &self.server_ca_pem(),
            cert,
        );
        Kubeconfig::from_yaml(&doc).expect("kubeconfig")
    }

    /// A client presenting `cert` at [`Fixture::url`]`(cluster)`.
    pub async fn client(&self, cluster: Option<&str>, cert: &CertPair) -> Client {
        client_for(self.kubeconfig(cluster, cert)).await
    }

    /// A client of `cluster`, at its URL, with a fresh certificate for
    /// `user` in `groups` issued by that cluster.
    pub async fn user_client(&self, cluster: &str, user: &str, groups: &[&str]) -> Client {
        let cert = self.issue(cluster, user, groups);
        self.client(Some(cluster), &cert).await
    }

    /// The root admin, from the server's `root.kubeconfig` as written.
    pub async fn root_client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.running.root_kubeconfig).expect("kubeconfig");
        client_for(kubeconfig).await
    }

    /// The root admin without kube-rs' default retries (it retries 429s,
    /// with backoff, so a test could never see one).
    pub async fn root_client_no_retry(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.running.root_kubeconfig).expect("kubeconfig");
        client_no_retry(kubeconfig).await
    }

    /// The root admin (`root.kubeconfig`) aimed at [`Fixture::url`]`(cluster)`.
    pub async fn root_client_at(&self, cluster: Option<&str>) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.running.root_kubeconfig).expect("kubeconfig");
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config");
        config.cluster_url = self.url(cluster).parse().unwrap();
        Client::try_from(config).expect("client")
    }

    /// A client without a certificate at [`Fixture::url`]`(cluster)`,
    /// trusting the server CA.
    pub fn anonymous(&self, cluster: Option<&str>) -> Client {
        let ca = rustls::pki_types::CertificateDer::pem_slice_iter(self.server_ca_pem().as_bytes())
            .map(|c| c.unwrap().to_vec())
            .collect();
        let mut config = Config::new(self.url(cluster).parse().unwrap());
        config.root_cert = Some(ca);
        Client::try_from(config).expect("client")
    }
}

/// A server started as [`Fixture::start`] starts it, taken apart for tests
/// that hold the pieces themselves: the server, its root admin (from
/// `root.kubeconfig`, via [`client_for`]) and its data directory (keep it
/// alive as long as the server).
pub async fn server() -> (RunningServer, Client, tempfile::TempDir) {
    let Fixture { running, dir } = Fixture::start().await;
    let kubeconfig = Kubeconfig::read_from(&running.root_kubeconfig).expect("kubeconfig");
    let client = client_for(kubeconfig).await;
    (running, client, dir)
}

/// The server CA as PEM, from the `certificate-authority-data` of the
/// server's `root.kubeconfig`.
pub fn server_ca(running: &RunningServer) -> String {
    let text = std::fs::read_to_string(&running.root_kubeconfig).expect("read kubeconfig");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let data = doc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("ca data");
    use base64::Engine;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64"),
    )
    .expect("utf8")
}

/// A kubeconfig of an admin of existing cluster `path` (`test-admin` in
/// `system:masters`, a certificate that cluster's client CA issued) at
/// `https://<addr>/clusters/<path>`.
pub fn cluster_admin_kubeconfig(running: &RunningServer, path: &str) -> Kubeconfig {
    let admin = running
        .api
        .clusters
        .get(path)
        .expect("cluster")
        .client_ca
        .issue_client("test-admin", &["system:masters"])
        .expect("issue");
    let doc = nestkube_apiserver::kubeconfig::render(
        path,
        &format!("https://{}/clusters/{path}", running.local_addr),
        &server_ca(running),
        &admin,
    );
    Kubeconfig::from_yaml(&doc).expect("kubeconfig")
}

/// An admin (`system:masters`) client of cluster `path`.
pub async fn admin(f: &Fixture, path: &str) -> Client {
    f.user_client(path, "test-admin", &["system:masters"]).await
}

/// The VirtualClusters of namespace `ns` of `client`'s cluster.
pub fn virtual_clusters(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("tenancy.nestkube.io", "v1alpha1", "VirtualCluster");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// VirtualCluster `name` in namespace `ns` with `spec`.
pub fn vc(ns: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap()
}

/// The path of VirtualCluster `name`'s cluster inside `parent`.
pub fn child(parent: &str, name: &str) -> String {
    if parent == "root" {
        name.to_string()
    } else {
        format!("{parent}:{name}")
    }
}

/// A kube-rs client for `kubeconfig` (its current context).
pub async fn client_for(kubeconfig: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// [`client_for`] without kube-rs' default retries (it retries 429s, after
/// their `Retry-After`, so a test could never see one).
pub async fn client_no_retry(kubeconfig: Kubeconfig) -> Client {
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.default_retry = false;
    Client::try_from(config).expect("client")
}

/// ConfigMap `name` with `data: {k: value}`.
pub fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": value},
    }))
    .unwrap()
}

/// Polls `check` every few milliseconds until it returns `Some`, or
/// panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Sends `method path` (relative to the client's URL) with `headers` and an
/// optional JSON body; returns the status and the JSON body (`Null` if the
/// body is not JSON).
pub async fn send(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(kube::client::Body::from(serde_json::to_vec(&b).unwrap())),
        None => req.body(kube::client::Body::empty()),
    }
    .unwrap();
    answer(client, req, TIMEOUT).await
}

/// Sends `body` as it is, with `content_type` (a patch, YAML, a hostile
/// body), allowing `timeout`; returns the status and the JSON answer.
pub async fn send_bytes(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body))
        .unwrap();
    answer(client, req, timeout).await
}

/// The status and JSON body (`Null` if not JSON) of `req`'s response.
async fn answer(
    client: &Client,
    req: http::Request<kube::client::Body>,
    timeout: Duration,
) -> (u16, Value) {
    let resp = tokio::time::timeout(timeout, client.send(req))
        .await
        .expect("timely")
        .expect("an answer (the server is up)");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Runs kubectl with `kubeconfig`; returns exit success and stdout+stderr.
pub fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Whether kubectl is installed (tests that need it skip, saying so, when not).
pub fn has_kubectl() -> bool {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok();
    if !found {
        eprintln!("note: kubectl not found; skipping");
    }
    found
}
