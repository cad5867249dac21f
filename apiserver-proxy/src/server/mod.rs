//! The network edge: TLS listener, the caller's identity (once per
//! connection, from its client certificate), HTTP/1.1 and HTTP/2, and the
//! standalone server assembly
//! (data directory, PKI, storage, root kubeconfig). What a connection may
//! cost before and between requests (caps, timeouts, accept back-off) is
//! [`connections`]'.

pub mod bounded_value;
pub mod connections;
pub mod flowcontrol;
pub mod handler;
pub mod inprocess;
pub mod negotiate;
pub mod pki;
pub mod pod_connect;
pub mod pod_proxy;
pub mod response;
pub(crate) mod rest;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::pki::{Ca, CertPair, PkiError};
use crate::auth::x509::{ClientCertRequest, authenticate};
use crate::kubeconfig;
use crate::registry::catalog::{Catalog, CatalogError};
use crate::registry::store::Store;
use crate::tenancy::Clusters;
pub use handler::ApiServer;
pub use nestkube_api::request;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// TLS configuration.
    #[error("tls: {0}")]
    Tls(String),
    /// Socket or file I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] nestkube_storage::StorageError),
    /// The embedded API catalog is broken.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The root cluster's service-account signing key.
    #[error("service-account key: {0}")]
    Tokens(#[from] crate::auth::tokens::TokenError),
    /// Bootstrapping the root cluster failed.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] crate::error::ApiError),
    /// The PKI shared through the store (`--storage-backend etcd`).
    #[error("shared pki: {0}")]
    SharedPki(#[from] pki::SharedPkiError),
    /// The host cluster (host mode) cannot be reached.
    #[error(transparent)]
    Host(#[from] crate::controllers::host_virtualcluster::HostError),
}

/// How to run a standalone server.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Data directory (storage, PKI, kubeconfigs).
    pub data_dir: PathBuf,
    /// Listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Embedded storage backend.
    pub backend: nestkube_storage::Backend,
}

/// Optional settings of [`start_with`] beyond [`ServeConfig`].
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Host mode: provision the VirtualClusters of the host cluster this
    /// kubeconfig names ([`crate::controllers::host_virtualcluster`]).
    pub host_kubeconfig: Option<PathBuf>,
    /// Host mode with the pod's in-cluster identity (service-account token
    /// and `KUBERNETES_SERVICE_*`) instead of a kubeconfig.
    pub host_in_cluster: bool,
    /// Host mode: provision only the VirtualClusters matching this label
    /// selector (several installs sharing one host).
    pub host_selector: Option<String>,
    /// The URL clients reach this server at, written into VirtualCluster
    /// endpoints and kubeconfigs (default `https://<bound address>`); its
    /// host is added to the serving certificate.
    pub advertise_url: Option<String>,
    /// More DNS names or IP addresses for the serving certificate (e.g. a
    /// Service's names in a host cluster).
    pub tls_sans: Vec<String>,
    /// Tunables of the admission chain (`--max-nesting-depth`).
    pub admission: crate::admission::AdmissionConfig,
    /// Connection caps and timeouts of the listener (`--max-connections`,
    /// `--tls-handshake-timeout`...).
    pub connections: connections::Limits,
    /// How requests share the server between tenants
    /// (`--max-requests-inflight`...).
    pub flow_control: flowcontrol::Config,
}

/// A running server.
pub struct RunningServer {
    /// The bound address.
    pub local_addr: SocketAddr,
    /// Path of the root cluster's admin kubeconfig.
    pub root_kubeconfig: PathBuf,
    /// The shared request handler (for in-process clients).
    pub api: Arc<ApiServer>,
    /// A client of the host cluster in host mode (for the syncer).
    pub host: Option<kube::Client>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Waits until the accept loop ends (it runs until the process stops).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stops accepting connections.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// TLS with an optional client certificate: the handshake proves the client
/// holds its key; which cluster issued it is decided after the handshake
/// ([`crate::auth::x509::authenticate`]), so clusters created after start
/// are recognised and an unknown CA is answered with 401.
fn tls_config(serving: &CertPair) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let tls = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ClientCertRequest::new(&provider));
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The host part of a URL (`https://name:443/x` -> `name`).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

fn serving_names(listen: &SocketAddr) -> (Vec<String>, Vec<IpAddr>) {
    let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")];
    if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    let mut names = vec!["localhost".to_string(), "nestkube".to_string()];
    if let Ok(host) = std::env::var("HOSTNAME") {
        names.push(host);
    }
    (names, ips)
}

/// Starts a standalone server: opens storage in `data_dir`, creates the PKI
/// on first start, bootstraps the root cluster, binds, and writes
/// `data_dir/root.kubeconfig` naming the bound address.
pub async fn start(config: ServeConfig) -> Result<RunningServer, ServeError> {
    start_with(config, ServeOptions::default()).await
}

/// [`start`] with [`ServeOptions`]: in host mode, also connects to the host
/// cluster (failing if its kubeconfig is unusable) and provisions its
/// VirtualClusters.
pub async fn start_with(
    config: ServeConfig,
    options: ServeOptions,
) -> Result<RunningServer, ServeError> {
    let host_client = match &options.host_kubeconfig {
        Some(path) => Some(crate::controllers::host_virtualcluster::connect(path).await?),
        None if options.host_in_cluster => {
            Some(crate::controllers::host_virtualcluster::connect_in_cluster().await?)
        }
        None => None,
    };
    std::fs::create_dir_all(&config.data_dir)?;
    let pki_dir = config.data_dir.join("pki");
    let storage = config.backend.open(config.data_dir.join("storage"))?;
    // The server CA also issues the root cluster's client certificates; the
    // root cluster's service-account signing key lives beside it. Replicas
    // sharing a store share them through it; otherwise they are files in
    // the data directory.
    let shared = matches!(config.backend, nestkube_storage::Backend::Etcd(_));
    let (ca, root_sa_key) = if shared {
        let pki::SharedPki { ca, sa_key } = pki::load_or_create(storage.as_ref(), &pki_dir).await?;
        (ca, sa_key)
    } else {
        (
            Ca::load_or_create(&pki_dir, "ca", "nestkube-ca")?,
            crate::auth::tokens::SigningKey::load_or_create(&pki_dir, "sa")?,
        )
    };
    let (mut names, mut ips) = serving_names(&config.listen);
    let advertised = options.advertise_url.as_deref().and_then(url_host);
    for host in advertised
        .into_iter()
        .chain(options.tls_sans.iter().map(String::as_str))
    {
        match host.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !names.iter().any(|n| n == host) => names.push(host.to_string()),
            Err(_) => {}
        }
    }
    let serving = ca.issue_serving(&names, &ips)?;
    let admin = if shared {
        // Issued by the shared CA on every start; the data directory (an
        // emptyDir, say) keeps no key of it.
        ca.issue_client("nestkube-admin", &["system:masters"])?
    } else {
        ca.load_or_issue_client(
            &pki_dir,
            "root-admin",
            "nestkube-admin",
            &["system:masters"],
        )?
    };

    let catalog = Arc::new(Catalog::builtin()?);
    let store = Store::new(storage.clone());
    let root_ca = Ca::from_pem(ca.pair.clone())?;
    let clusters = Arc::new(Clusters::load(storage, root_ca, root_sa_key).await?);
    if shared {
        // Clusters created or removed through another replica.
        clusters.clone().follow();
    }
    Clusters::bootstrap(&store, &catalog, request::ROOT_CLUSTER).await?;
    // RBAC only reads the store; the escalation check in admission asks it.
    let authorizer = crate::auth::rbac::Authorizer::start(store.clone(), catalog.clone());
    // Every write after bootstrap passes the admission chain, and every
    // create and removal is counted against the clusters' object limits.
    let admission = crate::admission::Admission::with_config(
        clusters.clone(),
        &catalog,
        options.admission.clone(),
    )
    .with_plugin(Box::new(
        crate::admission::rbac_escalation::RbacEscalation::new(authorizer.clone()),
    ));
    let webhooks = admission.webhooks().clone();
    // CRD conversion webhooks share the admission webhooks' transport.
    let converter = admission.converter();
    let patch_schema = load_patch_schema();
    let store = store
        .with_admission(Arc::new(admission))
        .with_converter(converter)
        .with_object_limits(clusters.clone())
        .with_field_schema(patch_schema.clone());

    let listener = TcpListener::bind(config.listen).await?;
    let local_addr = listener.local_addr()?;
    let root_kubeconfig = config.data_dir.join("root.kubeconfig");
    write_kubeconfig(
        &root_kubeconfig,
        "nestkube-root",
        &format!("https://{}", display_addr(&local_addr)),
        &ca,
        &admin,
    )?;

    let api = Arc::new(ApiServer {
        authorizer,
        catalog,
        store,
        clusters,
        patch_schema,
        server_address: display_addr(&local_addr),
        pod_connector: Default::default(),
        webhooks,
        flow_control: flowcontrol::FlowControl::new(options.flow_control.clone()),
    });
    let base_url = options
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", display_addr(&local_addr)));
    // Every replica serves the custom resources of established CRDs.
    crate::controllers::customresourcedefinition::serve(&api.store, api.catalog.clone());
    let controllers = Controllers {
        api: api.clone(),
        server_ca_pem: ca.pair.cert_pem.clone(),
        base_url,
        host: host_client.clone(),
        host_selector: options.host_selector.clone(),
    };
    if matches!(config.backend, nestkube_storage::Backend::Etcd(_)) {
        // Replicas share the store: only the holder of the controllers'
        // lease runs them.
        spawn_controllers_when_leader(controllers, &local_addr);
    } else {
        controllers.spawn();
    }
    let acceptor = TlsAcceptor::from(tls_config(&serving)?);
    let task = tokio::spawn(accept_loop(
        listener,
        acceptor,
        api.clone(),
        options.connections,
    ));
    tracing::info!(address = %local_addr, kubeconfig = %root_kubeconfig.display(), "nestkube API serving");
    Ok(RunningServer {
        local_addr,
        root_kubeconfig,
        api,
        host: host_client,
        task,
    })
}

/// What the controllers need; started on every server, or with a shared
/// store (etcd) only on the replica holding the controllers' lease.
struct Controllers {
    api: Arc<ApiServer>,
    server_ca_pem: String,
    base_url: String,
    host: Option<kube::Client>,
    host_selector: Option<String>,
}

impl Controllers {
    fn spawn(self) {
        use crate::controllers::*;
        let ctx = runtime::ControllerContext {
            store: self.api.store.clone(),
            catalog: self.api.catalog.clone(),
            clusters: self.api.clusters.clone(),
        };
        namespace::spawn(&ctx);
        customresourcedefinition::spawn(&ctx);
        let provisioner = provision::Provisioner::new(
            &ctx,
            self.server_ca_pem.clone(),
            self.base_url,
            provision::Claims::new(),
        );
        virtualcluster::spawn(provisioner.clone());
        if let Some(client) = self.host {
            host_virtualcluster::spawn(provisioner, client, self.host_selector);
        }
        serviceaccount::spawn(&ctx, self.server_ca_pem);
        garbagecollector::spawn(&ctx);
        replicaset::spawn(&ctx);
        deployment::spawn(&ctx);
        job::spawn(&ctx);
        cronjob::spawn(&ctx);
        endpoints::spawn(&ctx);
        statefulset::spawn(&ctx);
        daemonset::spawn(&ctx);
        disruption::spawn(&ctx);
        resourcequota::spawn(&ctx);
    }
}

/// Competes for the controllers' lease in the shared store
/// (`nestkube_storage::lease`) and starts the controllers once this replica
/// holds it. Losing the lease ends the process (as kube-controller-manager
/// does): its controllers may still be acting, and a supervisor restarts it
/// as a candidate.
fn spawn_controllers_when_leader(controllers: Controllers, local_addr: &SocketAddr) {
    use nestkube_storage::lease::{LeaderElection, LeaseConfig};
    let holder = format!(
        "{}/{}/{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "nestkube".to_string()),
        local_addr,
        uuid::Uuid::new_v4()
    );
    let storage = controllers.api.store.storage().clone();
    tokio::spawn(async move {
        let mut election = LeaderElection::start(storage, LeaseConfig::controllers(holder.clone()));
        if !election.acquired().await {
            return;
        }
        tracing::info!(holder = %holder, "holding the controllers' lease; starting controllers");
        controllers.spawn();
        election.lost().await;
        tracing::error!(holder = %holder, "lost the controllers' lease; exiting");
        std::process::exit(1);
    });
}

fn display_addr(addr: &SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Writes a kubeconfig atomically with owner-only permissions.
pub fn write_kubeconfig(
    path: &Path,
    context: &str,
    server: &str,
    ca: &Ca,
    client: &CertPair,
) -> std::io::Result<()> {
    let doc = kubeconfig::render(context, server, &ca.pair.cert_pem, client);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}

/// Patch metadata from the embedded OpenAPI v2 document (with the
/// defaults of the v3 documents, for server-side apply's list-map keys),
/// parsed once per process.
fn load_patch_schema() -> Option<Arc<nestkube_patch::PatchSchema>> {
    static SCHEMA: std::sync::OnceLock<Option<Arc<nestkube_patch::PatchSchema>>> =
        std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let bytes = crate::discovery::openapi_v2()?;
            let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
            match nestkube_patch::PatchSchema::from_openapi_v2(&doc) {
                Ok(mut s) => {
                    for (_, v3) in crate::discovery::openapi_v3_documents() {
                        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(v3) {
                            s.add_v3_defaults(&doc);
                        }
                    }
                    Some(Arc::new(s))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "strategic merge patch metadata unavailable");
                    None
                }
            }
        })
        .clone()
}

/// Accepts connections for as long as the server runs: each within the
/// caps of `limits`, its TLS handshake and requests bounded by its timeouts
/// ([`connections`]).
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    api: Arc<ApiServer>,
    limits: connections::Limits,
) {
    let gate = connections::Gate::new(limits.caps);
    let mut backoff = connections::Backoff::default();
    loop {
        let (socket, peer) = connections::accept(&listener, &mut backoff).await;
        let permit = match gate.admit(peer.ip()) {
            Ok(p) => p,
            Err(refused) => {
                // Closed at once, before any TLS work.
                tracing::debug!(%peer, reason = %refused, "connection refused");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(socket))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            // Once per connection: the issuing cluster and user, or anonymous.
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first());
            let identity = authenticate(
                &api.clusters,
                leaf.map(|c| c.as_ref()),
                std::time::SystemTime::now(),
            );
            let in_flight = connections::InFlight::default();
            let requests = in_flight.clone();
            let service = service_fn(move |req| {
                let api = api.clone();
                let identity = identity.clone();
                let request = requests.start();
                async move {
                    let resp = api.handle(req, &identity).await;
                    Ok::<_, std::convert::Infallible>(
                        resp.map(|body| connections::Tracked::new(body, request)),
                    )
                }
            });
            serve_connection(TokioIo::new(tls), service, &in_flight, &limits).await;
            tracing::debug!(%peer, "connection ended");
        });
    }
}

/// Serves HTTP/1.1 or HTTP/2 on `io` until the client goes, or until no
/// request has been in flight for `limits.idle_timeout` (then it is shut
/// down gracefully, and dropped if it still lingers idle as long again).
/// An upgraded stream leaves this connection and is not bound by it.
async fn serve_connection<S, B>(
    io: TokioIo<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    service: S,
    in_flight: &connections::InFlight,
    limits: &connections::Limits,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::TokioTimer;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = in_flight.idle_for(limits.idle_timeout) => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                _ = in_flight.idle_for(limits.idle_timeout) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://tenants.example.com"),
            Some("tenants.example.com")
        );
        assert_eq!(url_host("https://10.0.0.1:6443/x"), Some("10.0.0.1"));
        assert_eq!(url_host("https://[::1]:6443"), Some("::1"));
        assert_eq!(url_host("https://"), None);
    }
}
