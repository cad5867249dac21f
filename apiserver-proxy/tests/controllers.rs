//! Controllers against a real server: ServiceAccounts and the root CA
//! ConfigMap in every namespace of every cluster, the garbage collector and
//! the ReplicaSet controller. Every wait is on a condition with a timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use nestkube_apiserver::server::{RunningServer, ServeConfig, start};

async fn server() -> (RunningServer, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(ServeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        backend: Default::default(),
    })
    .await
    .expect("start server");
    let kubeconfig = Kubeconfig::read_from(&running.root_kubeconfig).expect("kubeconfig");
    let client = client_for(kubeconfig).await;
    (running, client, dir)
}

async fn client_for(kubeconfig: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// An admin client of cluster `path` (a certificate its client CA issued).
async fn cluster_client(running: &RunningServer, path: &str) -> Client {
    let cluster = running.api.clusters.get(path).expect("cluster");
    let admin = cluster
        .client_ca
        .issue_client("test-admin", &["system:masters"])
        .expect("issue");
    let doc = nestkube_apiserver::kubeconfig::render(
        path,
        &format!("https://{}/clusters/{path}", running.local_addr),
        &server_ca(running),
        &admin,
    );
    client_for(Kubeconfig::from_yaml(&doc).expect("kubeconfig")).await
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const WAIT: Duration = Duration::from_secs(10);

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

/// The namespace gets `default` and `kube-root-ca.crt`; returns the latency.
async fn expect_defaults(client: &Client, ns: &str, ca_pem: &str) -> Duration {
    let start = Instant::now();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    wait_for("default ServiceAccount", WAIT, || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = wait_for("kube-root-ca.crt", WAIT, || async {
        cms.get_opt("kube-root-ca.crt").await.ok().flatten()
    })
    .await;
    assert_eq!(cm.data.unwrap()["ca.crt"], ca_pem);
    start.elapsed()
}

fn server_ca(running: &RunningServer) -> String {
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

#[tokio::test]
async fn every_namespace_gets_default_service_account_and_root_ca() {
    let (running, client, _dir) = server().await;
    let ca = server_ca(&running);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        expect_defaults(&client, ns, &ca).await;
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    let created = Instant::now();
    nss.create(&PostParams::default(), &namespace("team"))
        .await
        .expect("create namespace");
    expect_defaults(&client, "team", &ca).await;
    eprintln!(
        "namespace create -> default SA + root CA: {:?}",
        created.elapsed()
    );

    // Deleted: re-created. Tampered: repaired.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    let old_uid = sas.get("default").await.unwrap().metadata.uid;
    sas.delete("default", &DeleteParams::default())
        .await
        .expect("delete sa");
    wait_for("re-created ServiceAccount", WAIT, || async {
        sas.get_opt("default")
            .await
            .ok()
            .flatten()
            .filter(|s| s.metadata.uid != old_uid)
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let mut cm = cms.get("kube-root-ca.crt").await.unwrap();
    cm.data = Some([("ca.crt".to_string(), "bogus".to_string())].into());
    cms.replace("kube-root-ca.crt", &PostParams::default(), &cm)
        .await
        .expect("tamper");
    wait_for("repaired root CA", WAIT, || async {
        cms.get("kube-root-ca.crt")
            .await
            .ok()
            .filter(|c| c.data.as_ref().is_some_and(|d| d["ca.crt"] == ca))
    })
    .await;
    cms.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .expect("delete cm");
    expect_defaults(&client, "team", &ca).await;
}

#[tokio::test]
async fn child_cluster_namespaces_get_service_accounts_within_milliseconds() {
    let (running, _client, _dir) = server().await;
    let ca = server_ca(&running);
    let created = Instant::now();
    running
        .api
        .clusters
        .create(&running.api.store, &running.api.catalog, "t1")
        .await
        .expect("create cluster");
    let client = cluster_client(&running, "t1").await;
    let mut worst = Duration::ZERO;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        worst = worst.max(expect_defaults(&client, ns, &ca).await);
    }
    eprintln!(
        "child cluster create -> default SAs in its 4 namespaces: {:?}",
        created.elapsed()
    );
    assert!(created.elapsed() < Duration::from_secs(5));
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&PostParams::default(), &namespace("apps"))
        .await
        .expect("create namespace in t1");
    expect_defaults(&client, "apps", &ca).await;
}
