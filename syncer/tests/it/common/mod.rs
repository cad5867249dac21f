//! Shared support of the syncer tests: a real server in a temporary data
//! directory, VirtualClusters created through the API as a tenant operator
//! would, clients from their kubeconfig Secrets, and polling with a timeout.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use nestkube_apiserver::server::{RunningServer, ServeConfig, start};
use serde_json::{Value, json};

/// Longest wait for one condition.
pub const WAIT: Duration = Duration::from_secs(15);

/// A running server and its data directory.
pub struct Server {
    /// The server.
    pub running: RunningServer,
    /// The root cluster's admin.
    pub root: Client,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server on 127.0.0.1:0 in a fresh directory.
    pub async fn start() -> Self {
        Self::start_on(Default::default()).await
    }

    /// [`Server::start`] over `backend` (e.g. one etcd several servers
    /// share, as replicas do).
    pub async fn start_on(backend: nestkube_storage::Backend) -> Self {
        // Logs with NESTKUBE_LOG=... (e.g. nestkube_syncer=debug).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("NESTKUBE_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let running = start(ServeConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            backend,
        })
        .await
        .expect("start server");
        let kubeconfig = Kubeconfig::read_from(&running.root_kubeconfig).expect("kubeconfig");
        let root = client_for(kubeconfig).await;
        Self {
            running,
            root,
            _dir: dir,
        }
    }
}

/// A kube-rs client for `kubeconfig`.
pub async fn client_for(kubeconfig: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// VirtualClusters of `namespace` in the cluster `client` talks to.
pub fn virtual_clusters(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("tenancy.nestkube.io", "v1alpha1", "VirtualCluster");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Creates VirtualCluster `default/name` through `parent`, waits until it
/// is Ready; returns its uid and a client from its kubeconfig Secret.
pub async fn virtual_cluster(parent: &Client, name: &str) -> (String, Client) {
    virtual_cluster_with(parent, name, json!({})).await
}

/// [`virtual_cluster`] with `spec`.
pub async fn virtual_cluster_with(parent: &Client, name: &str, spec: Value) -> (String, Client) {
    let vcs = virtual_clusters(parent, "default");
    let vc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap();
    let created = vcs
        .create(&PostParams::default(), &vc)
        .await
        .expect("create VirtualCluster");
    let uid = created.metadata.uid.clone().expect("uid");
    wait_for("the VirtualCluster to be Ready", || async {
        let vc = vcs.get(name).await.ok()?;
        (vc.data["status"]["phase"] == "Ready").then_some(())
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(parent.clone(), "default");
    let secret = wait_for("the kubeconfig Secret", || async {
        secrets.get(&format!("{name}-kubeconfig")).await.ok()
    })
    .await;
    let doc = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .expect("value");
    let kubeconfig = Kubeconfig::from_yaml(std::str::from_utf8(&doc.0).unwrap()).expect("yaml");
    (uid, client_for(kubeconfig).await)
}

/// Creates `obj` (JSON) of `K` in namespace `ns` of `client`.
pub async fn create<K>(client: &Client, ns: &str, obj: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(obj).expect("object"),
        )
        .await
        .expect("create")
}

/// Polls `check` until it returns `Some`, or panics after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(what, WAIT.as_secs(), check).await
}

/// Polls `check` until it returns `Some`, or panics after `secs` seconds.
pub async fn wait_for_within<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until `name` is gone from `api` (or panics after [`WAIT`]).
pub async fn wait_gone<K>(what: &str, api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(what, || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await
}

/// The e2e host's admin client.
pub async fn host_admin(host: &nestkube_e2e::HostCluster) -> Client {
    client_for(Kubeconfig::read_from(host.kubeconfig()).expect("host kubeconfig")).await
}

/// What a test on the e2e host starts from: a fresh host namespace, the
/// host's admin client, a server and a cluster of it placed in that
/// namespace with the syncer running ([`host_placed_cluster`]).
pub struct HostPlaced {
    /// The e2e host.
    pub host: &'static nestkube_e2e::HostCluster,
    /// The host namespace the cluster is placed in (deleted on drop).
    pub ns: nestkube_e2e::TestNamespace<'static>,
    /// The host's admin.
    pub host_client: Client,
    /// The nestkube server.
    pub server: Server,
    /// The placed cluster's path.
    pub cluster: String,
    /// The placed cluster's in-process admin.
    pub virt: Client,
}

/// A [`HostPlaced`] cluster `<name>-<unique>` in a host namespace
/// `<prefix>-<unique>`; `None` when no e2e host is configured.
pub async fn host_placed(prefix: &str, name: &str) -> Option<HostPlaced> {
    let host = nestkube_e2e::HostCluster::shared()?;
    let ns = host.namespace(prefix);
    let host_client = host_admin(host).await;
    let server = Server::start().await;
    let cluster = host_placed_cluster(&server, host_client.clone(), ns.name(), name).await;
    let virt = server.running.api.client_for(&cluster);
    Some(HostPlaced {
        host,
        ns,
        host_client,
        server,
        cluster,
        virt,
    })
}

/// `obj` as JSON.
pub fn js<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).unwrap()
}

/// A served cluster `<prefix>-<unique>` placed on the real host in
/// `namespace` (as the host provisioner would place it), with the syncer
/// running against `host`; returns the cluster's path.
pub async fn host_placed_cluster(
    server: &Server,
    host: Client,
    namespace: &str,
    prefix: &str,
) -> String {
    host_placed_cluster_with(server, host, namespace, prefix, Default::default()).await
}

/// [`host_placed_cluster`] with the syncer's `settings`.
pub async fn host_placed_cluster_with(
    server: &Server,
    host: Client,
    namespace: &str,
    prefix: &str,
    settings: nestkube_syncer::Settings,
) -> String {
    host_placed_cluster_with_spec(server, host, namespace, prefix, settings, json!({})).await
}

/// [`host_placed_cluster_with`], the VirtualCluster's spec being `spec`.
pub async fn host_placed_cluster_with_spec(
    server: &Server,
    host: Client,
    namespace: &str,
    prefix: &str,
    settings: nestkube_syncer::Settings,
    spec: Value,
) -> String {
    let api = server.running.api.clone();
    let cluster = nestkube_e2e::unique_name(prefix);
    api.clusters
        .create(&api.store, &api.catalog, &cluster)
        .await
        .expect("cluster");
    let placement = nestkube_apiserver::tenancy::Placement::new(
        nestkube_apiserver::tenancy::Parent::Host,
        namespace,
        &cluster,
        &format!("uid-{cluster}"),
        serde_json::from_value(spec).expect("spec"),
    );
    api.clusters
        .set_placement(&cluster, placement)
        .await
        .expect("placement");
    nestkube_syncer::spawn_with(api, Some(host), settings);
    cluster
}

/// Writes a kubeconfig in `dir` naming cluster `cluster` of `server` at
/// its `/clusters/<path>` URL, with a fresh `system:masters` client
/// certificate of that cluster (for real kubectl over TLS); returns its path.
pub fn admin_kubeconfig(
    server: &Server,
    cluster: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let api = &server.running.api;
    let admin = api
        .clusters
        .get(cluster)
        .expect("cluster")
        .client_ca
        .issue_client("admin", &["system:masters"])
        .expect("client certificate");
    let server_ca = api
        .clusters
        .get("root")
        .expect("root")
        .client_ca
        .pair
        .cert_pem
        .clone();
    let path = dir.join(format!("{}.kubeconfig", cluster.replace(':', "_")));
    std::fs::write(
        &path,
        nestkube_apiserver::kubeconfig::render(
            cluster,
            &format!("https://{}/clusters/{cluster}", server.running.local_addr),
            &server_ca,
            &admin,
        ),
    )
    .expect("kubeconfig");
    path
}

/// A server in host mode against `host` (as `nestkube serve
/// --host-kubeconfig`), provisioning only the host's VirtualClusters
/// labelled `e2e.nestkube.io/test=<the returned value>` (unique, from
/// `prefix`), with its data in `dir`; the VirtualCluster CRD is installed
/// on the host first.
pub async fn host_mode_server(
    host: &nestkube_e2e::HostCluster,
    dir: &std::path::Path,
    prefix: &str,
) -> (RunningServer, String) {
    let crd = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(nestkube_tenant_crds::CRD_YAML_PATH);
    host.apply_crd(&crd, "virtualclusters.tenancy.nestkube.io");
    let selector_value = nestkube_e2e::unique_name(prefix);
    let running = nestkube_apiserver::server::start_with(
        ServeConfig {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            backend: Default::default(),
        },
        nestkube_apiserver::server::ServeOptions {
            host_kubeconfig: Some(host.kubeconfig()),
            host_selector: Some(format!("e2e.nestkube.io/test={selector_value}")),
            ..Default::default()
        },
    )
    .await
    .expect("start in host mode");
    (running, selector_value)
}
