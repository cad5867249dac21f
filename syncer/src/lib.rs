//! The syncer: what must really run is copied from each virtual cluster down
//! to its parent (the parent virtual cluster, `root` in standalone mode, or
//! the real host cluster), and status flows back up.
//!
//! One syncer serves every virtual cluster of the process (cluster-aware,
//! as the controllers): one storage watch over all clusters tells it what
//! changed in the virtual clusters, one watch per *parent* (shared by every
//! virtual cluster syncing into that parent, label
//! `tenancy.nestkube.io/managed-by=nestkube`) tells it what changed below,
//! and one work queue of keys reconciles both directions of one object at a
//! time (`down::*`). Parents are always reached as a Kubernetes API through
//! a `kube::Client`: the host's from its kubeconfig, a served cluster's
//! in-process ([`ApiServer::client_for`]).
//!
//! What is synced: pods (with the ConfigMaps and Secrets they reference and
//! a service-account token issued by the virtual cluster), pod status up,
//! Services (down, with the parent's cluster IP taken back up), the
//! Endpoints of selector-less Services,
//! PersistentVolumeClaims (down, status up), Ingresses (down, with the TLS
//! Secrets they name; load balancer status up) and NetworkPolicies (down,
//! selectors kept inside the tenant) when the VirtualCluster's `spec.sync`
//! enables them, the parent's RuntimeClasses, StorageClasses, the Nodes
//! pods are bound to and the PersistentVolumes claims are bound to mirrored
//! up ([`mirror`]), the parent's Events about copies of pods, claims and
//! Services told about the virtual objects ([`events`]). Every
//! VirtualCluster also gets a default NetworkPolicy in its parent that
//! isolates its pods from other tenants' ([`down::isolation`]). Cleanup:
//! a placement that disappears deletes everything labelled with its
//! VirtualCluster's uid ([`cleanup`]); every (re)start reconciles all, and
//! so does a parent that answers again after being unreachable (the
//! virtual clusters keep serving meanwhile; see [`parents`]).
//!
//! It owns the parent objects it creates (all labelled
//! [`names::MANAGED_BY_LABEL`]) and the status of virtual pods; it must
//! never touch a parent object owned by another virtual cluster, nor act in
//! a virtual cluster on behalf of another.

pub mod cleanup;
pub mod containers;
pub mod dns;
pub mod down;
pub mod events;
pub mod mirror;
pub mod names;
mod parents;
pub mod requests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use nestkube_apiserver::controllers::endpoints::ENDPOINTS_MANAGED_BY_LABEL;
use nestkube_apiserver::controllers::queue::WorkQueue;
use nestkube_apiserver::controllers::watch::{self, Change, ObjectKey};
use nestkube_apiserver::server::ApiServer;
use nestkube_apiserver::tenancy::{Parent, Placement};

pub use parents::ParentKey;
pub use requests::ParentRequests;

/// Errors of one reconcile (retried with backoff by the queue).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A call to a virtual cluster or a parent failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be converted.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The storage of the served clusters (binding).
    #[error("storage: {0}")]
    Storage(#[from] nestkube_storage::StorageError),
    /// A placement names the host cluster but none was configured.
    #[error("cluster {0} is placed on the host cluster, but no --host-kubeconfig was given")]
    NoHost(String),
    /// The parent did not finish the reconcile in time.
    #[error("no answer from the parent within {0:?}")]
    Timeout(Duration),
}

impl SyncError {
    /// Whether the parent may be unreachable (no answer, no connection).
    fn reaching(&self) -> bool {
        matches!(
            self,
            SyncError::Timeout(_)
                | SyncError::Kube(kube::Error::HyperError(_) | kube::Error::Service(_))
        )
    }
}

/// Longest reconcile against a parent: a request to a parent that stopped
/// answering (a partition: nothing resets the connection) would otherwise
/// wait for TCP to give up, many minutes.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(20);
/// When a reconcile runs again that found [`parents::PER_PARENT`]
/// reconciles of its parent running.
const PARENT_BUSY_RETRY: Duration = Duration::from_millis(500);
/// When a reconcile runs again that found its parent known unreachable: a
/// fixed short wait (not the failure backoff, up to 10 s), so it runs soon
/// after the parent answers again, whenever that is.
const PARENT_DOWN_RETRY: Duration = Duration::from_secs(1);

/// Kinds of virtual objects the syncer copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `v1/Pod`.
    Pod,
    /// `v1/Service`.
    Service,
    /// `v1/ConfigMap` (only those referenced by pods).
    ConfigMap,
    /// `v1/Secret` (only those referenced by pods).
    Secret,
    /// `v1/PersistentVolumeClaim`.
    PersistentVolumeClaim,
    /// `v1/Endpoints` (only those of selector-less Services).
    Endpoints,
    /// `networking.k8s.io/v1/Ingress` (when the VirtualCluster enables it).
    Ingress,
    /// `networking.k8s.io/v1/NetworkPolicy` (when the VirtualCluster
    /// enables it).
    NetworkPolicy,
}

impl Kind {
    /// The object kind (`Pod`, `Service`, ...).
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::Endpoints => "Endpoints",
            Kind::Ingress => "Ingress",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// The kind whose copies Events of the parent can be about, by an
    /// Event's `involvedObject.kind`.
    pub(crate) fn of_copy(kind: &str) -> Option<Self> {
        Some(match kind {
            "Pod" => Kind::Pod,
            "Service" => Kind::Service,
            "PersistentVolumeClaim" => Kind::PersistentVolumeClaim,
            _ => return None,
        })
    }

    fn from_segment(segment: &str) -> Option<Self> {
        Some(match segment {
            "core/pods" => Kind::Pod,
            "core/services" => Kind::Service,
            "core/configmaps" => Kind::ConfigMap,
            "core/secrets" => Kind::Secret,
            "core/persistentvolumeclaims" => Kind::PersistentVolumeClaim,
            "core/endpoints" => Kind::Endpoints,
            "networking.k8s.io/ingresses" => Kind::Ingress,
            "networking.k8s.io/networkpolicies" => Kind::NetworkPolicy,
            _ => return None,
        })
    }
}

/// One unit of work of the queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Item {
    /// Reconcile virtual object `namespace/name` of `cluster` (both ways).
    Object {
        kind: Kind,
        cluster: String,
        namespace: String,
        name: String,
    },
    /// Enqueue every object of `cluster` and of its copies in the parent.
    Resync { cluster: String },
    /// Reconcile every NetworkPolicy of `cluster` (its namespaces changed,
    /// which namespace selectors match).
    NetworkPolicies { cluster: String },
    /// Mirror the parent's RuntimeClasses and StorageClasses into `cluster`.
    Classes { cluster: String },
    /// Mirror the parent's Nodes `cluster`'s pods are bound to.
    Nodes { cluster: String },
    /// Bring virtual Event `namespace/name` of `cluster` in line with the
    /// parent Event it stands for (what to write waits in
    /// [`Syncer::outbox`]).
    Event {
        cluster: String,
        namespace: String,
        name: String,
    },
    /// Delete every parent object of VirtualCluster `uid`.
    Cleanup {
        parent: ParentKey,
        host_namespace: String,
        uid: String,
    },
    /// Delete parent objects whose virtual cluster is gone, in `namespace`
    /// of `parent` (`None`: all namespaces).
    Sweep {
        parent: ParentKey,
        namespace: Option<String>,
    },
}

/// What a reconcile of one cluster needs.
pub(crate) struct Ctx {
    /// The virtual cluster's path.
    pub cluster: String,
    /// Its placement.
    pub placement: Arc<Placement>,
    /// Client of the virtual cluster (in-process admin).
    pub virt: kube::Client,
    /// Client of the parent.
    pub parent: kube::Client,
}

/// The running syncer (shared by its tasks).
pub struct Syncer {
    pub(crate) api: Arc<ApiServer>,
    /// Where pods reach the API.
    pub(crate) endpoint: down::pod::Endpoint,
    host: Option<kube::Client>,
    /// In-process clients by cluster path.
    clients: Mutex<HashMap<String, kube::Client>>,
    /// Clients of the parents in use, requests counted.
    parent_clients: Mutex<HashMap<ParentKey, kube::Client>>,
    /// What the parent clients sent.
    requests: Arc<requests::Counters>,
    queue: OnceLock<Arc<WorkQueue<Item, SyncError>>>,
    /// The placements acted on, by cluster path.
    known: Mutex<HashMap<String, Arc<Placement>>>,
    /// One watch task per parent in use.
    parents: Mutex<HashMap<ParentKey, tokio::task::JoinHandle<()>>>,
    /// What is known of each parent's reachability.
    health: Mutex<HashMap<ParentKey, Arc<parents::Health>>>,
    /// The host namespaces the syncer may use (sorted; empty: all of them).
    host_namespaces: Vec<String>,
    /// Nestkube's DNS for pods, when it serves one.
    pub(crate) dns: Option<dns::PodDns>,
    /// Virtual Events waiting to be written (latest wish per Event).
    pub(crate) outbox: events::Outbox,
    /// The pods' token Secrets known current.
    pub(crate) tokens: down::token::Tokens,
    /// Each watched parent's index of copies (written by its watch task).
    copy_indexes: Mutex<HashMap<ParentKey, Arc<RwLock<parents::CopyIndex>>>>,
}

/// Settings of the syncer beyond its clients.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The URL pods reach nestkube at (`https://host:port`, e.g.
    /// `--advertise-url`), given to them as `KUBERNETES_SERVICE_HOST` and
    /// `_PORT`; default: the server's bound address.
    pub api_url: Option<String>,
    /// The only namespaces of the host cluster the syncer may use
    /// (`--host-namespaces`, for a service account granted namespaced
    /// rights only there): its host watches and listings are scoped to
    /// them, one watch per namespace, and a cluster placed in another host
    /// namespace is not synced (an error is logged). Empty: all namespaces
    /// (cluster-wide watches).
    pub host_namespaces: Vec<String>,
    /// When nestkube serves DNS (`--dns-listen`): every pod copy resolves
    /// through it with the virtual search path, and the pod index the
    /// server reads is filled ([`dns`]). `None`: pods keep their DNS
    /// settings (the parent's DNS, which knows no virtual name).
    pub dns: Option<dns::PodDns>,
}

/// Starts the syncer for every virtual cluster `api` serves; `host` is the
/// client of the real host cluster (`--host-kubeconfig`), needed by
/// placements with [`Parent::Host`].
pub fn spawn(api: Arc<ApiServer>, host: Option<kube::Client>) -> Arc<Syncer> {
    spawn_with(api, host, Settings::default())
}

/// Storage key of the syncer's lease (replicas sharing one store).
pub const SYNCER_LEASE: &str = "/_leases/syncer";

/// [`spawn_with`] on only one of several replicas sharing a store (etcd):
/// competes for [`SYNCER_LEASE`] and starts the syncer once this replica
/// holds it. Losing the lease ends the process, as losing the controllers'
/// lease does: this syncer may still be writing, and a supervisor restarts
/// the replica as a candidate. `holder` names this replica uniquely.
pub fn spawn_when_leader(
    api: Arc<ApiServer>,
    host: Option<kube::Client>,
    settings: Settings,
    holder: String,
) {
    use nestkube_storage::lease::{LeaderElection, LeaseConfig};
    let config = LeaseConfig {
        key: SYNCER_LEASE.to_string(),
        ..LeaseConfig::controllers(holder.clone())
    };
    // Logs are answered by every replica, leader or not.
    containers::register(&api, host.clone());
    let storage = api.store.storage().clone();
    tokio::spawn(async move {
        let mut election = LeaderElection::start(storage, config);
        if !election.acquired().await {
            return;
        }
        tracing::info!(holder = %holder, "holding the syncer's lease; starting the syncer");
        let _syncer = spawn_with(api, host, settings);
        election.lost().await;
        tracing::error!(holder = %holder, "lost the syncer's lease; exiting");
        std::process::exit(1);
    });
}

/// [`spawn`] with [`Settings`].
pub fn spawn_with(
    api: Arc<ApiServer>,
    host: Option<kube::Client>,
    settings: Settings,
) -> Arc<Syncer> {
    let endpoint = match &settings.api_url {
        Some(url) => down::pod::Endpoint::from_url(url),
        None => down::pod::Endpoint::parse(&api.server_address),
    };
    let mut host_namespaces: Vec<String> = settings
        .host_namespaces
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    host_namespaces.sort();
    host_namespaces.dedup();
    containers::register(&api, host.clone());
    let syncer = Arc::new(Syncer {
        api: api.clone(),
        endpoint,
        host,
        clients: Mutex::new(HashMap::new()),
        parent_clients: Mutex::new(HashMap::new()),
        requests: Arc::default(),
        queue: OnceLock::new(),
        known: Mutex::new(HashMap::new()),
        parents: Mutex::new(HashMap::new()),
        health: Mutex::new(HashMap::new()),
        host_namespaces,
        dns: settings.dns,
        outbox: events::Outbox::default(),
        tokens: Default::default(),
        copy_indexes: Mutex::new(HashMap::new()),
    });
    let s = syncer.clone();
    let queue = WorkQueue::new("syncer", move |item: Item| {
        let s = s.clone();
        async move { s.reconcile(item).await }
    });
    let _ = syncer.queue.set(queue);
    // Placements first, so the initial listing below finds them.
    syncer.placements_changed();
    let s = syncer.clone();
    tokio::spawn(async move {
        let mut changes = s.api.clusters.subscribe();
        while changes.changed().await.is_ok() {
            s.placements_changed();
        }
    });
    let s = syncer.clone();
    tokio::spawn(watch::run(api.store.clone(), "syncer", move |change| {
        s.virtual_change(&change)
    }));
    if syncer.dns.is_some() {
        // Addresses of pods that went while no syncer ran.
        let api = api.clone();
        tokio::spawn(async move {
            match dns::shared::sweep(&api).await {
                Ok(n) => tracing::debug!(removed = n, "DNS: swept the shared pod index"),
                Err(e) => tracing::warn!(error = %e, "DNS: could not sweep the shared pod index"),
            }
        });
    }
    syncer
}

impl Syncer {
    pub(crate) fn enqueue(&self, item: Item) {
        if let Some(q) = self.queue.get() {
            q.enqueue(item);
        }
    }

    /// Records in the DNS index, and in the index shared with the other
    /// replicas ([`dns::shared`]), the addresses the parent reports for
    /// `hpod`, the copy of virtual pod `vpod` of `cluster`.
    pub(crate) async fn observe_pod_ips(
        &self,
        cluster: &str,
        vpod: &serde_json::Value,
        hpod: &serde_json::Value,
    ) -> Result<(), SyncError> {
        let Some(dns) = &self.dns else {
            return Ok(());
        };
        let (pod, ips) = dns::PodIndex::addresses(cluster, vpod, hpod);
        self.share_pod_ips(dns, pod, ips).await
    }

    /// Makes `ips` the addresses of `pod` in `dns`'s index and, when that
    /// changes them, in the shared one (unchanged: the shared index has
    /// them already, or this replica's index would have followed it). A
    /// failed write puts the old addresses back, so a retry writes again.
    async fn share_pod_ips(
        &self,
        dns: &dns::PodDns,
        pod: dns::PodRef,
        ips: Vec<std::net::IpAddr>,
    ) -> Result<(), SyncError> {
        let old = dns.index.swap(pod.clone(), ips.clone());
        if old == ips {
            return Ok(());
        }
        if let Err(e) = dns::shared::publish(self.api.store.storage().as_ref(), &pod, &ips).await {
            dns.index.swap(pod, old);
            return Err(e.into());
        }
        Ok(())
    }

    /// Retries now every reconcile waiting to retry after a failure.
    pub(crate) fn retry_waiting(&self) {
        if let Some(q) = self.queue.get() {
            q.retry_waiting();
        }
    }

    /// Drops the pod addresses of virtual pod `ns/name` of `cluster` from
    /// the DNS index and the shared one (its copy is gone or going).
    pub(crate) async fn forget_pod_ips(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Result<(), SyncError> {
        let Some(dns) = &self.dns else {
            return Ok(());
        };
        let pod = dns::PodRef {
            cluster: cluster.into(),
            namespace: ns.into(),
            name: name.into(),
        };
        self.share_pod_ips(dns, pod, Vec::new()).await
    }

    pub(crate) fn enqueue_object(&self, kind: Kind, cluster: &str, namespace: &str, name: &str) {
        self.enqueue(Item::Object {
            kind,
            cluster: cluster.into(),
            namespace: namespace.into(),
            name: name.into(),
        });
    }

    /// The in-process client of served cluster `path` (cached).
    pub(crate) fn local_client(&self, path: &str) -> kube::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(path.to_string())
            .or_insert_with(|| self.api.client_for(path))
            .clone()
    }

    /// The client of `parent` (cached; its requests counted).
    pub(crate) fn parent_client(&self, parent: &ParentKey) -> Option<kube::Client> {
        let mut clients = self
            .parent_clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(parent) {
            return Some(c.clone());
        }
        let client = match parent {
            ParentKey::Cluster(p) => self.api.client_for(p),
            ParentKey::Host => self.host.clone()?,
        };
        let client = requests::counted(client, self.requests.clone());
        clients.insert(parent.clone(), client.clone());
        Some(client)
    }

    /// The requests sent to parents so far (all parents, since start).
    pub fn parent_requests(&self) -> ParentRequests {
        self.requests.read()
    }

    /// The namespaces of `parent` the syncer watches and lists: `None` for
    /// all of them (cluster-wide), else only these (`--host-namespaces`,
    /// host only).
    pub(crate) fn scope(&self, parent: &ParentKey) -> Option<&[String]> {
        match parent {
            ParentKey::Host if !self.host_namespaces.is_empty() => Some(&self.host_namespaces),
            _ => None,
        }
    }

    /// Whether `placement`'s host namespace is one the syncer may use in
    /// its parent.
    pub(crate) fn allowed(&self, placement: &Placement) -> bool {
        self.scope(&ParentKey::of(placement))
            .is_none_or(|ns| ns.contains(&placement.host_namespace))
    }

    /// The clusters syncing into `parent` now.
    pub(crate) fn children_of(&self, parent: &ParentKey) -> Vec<String> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .iter()
            .filter(|(_, p)| ParentKey::of(p) == *parent)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// The placement of `cluster` if it has one now.
    pub(crate) fn placement(&self, cluster: &str) -> Option<Arc<Placement>> {
        self.api.clusters.get(cluster)?.placement()
    }

    /// What reconciling in `cluster` needs (`None`: not synced, including
    /// a cluster placed in a host namespace outside `--host-namespaces`).
    pub(crate) fn ctx(&self, cluster: &str) -> Result<Option<Ctx>, SyncError> {
        let Some(placement) = self.placement(cluster).filter(|p| self.allowed(p)) else {
            return Ok(None);
        };
        let parent = self
            .parent_client(&ParentKey::of(&placement))
            .ok_or_else(|| SyncError::NoHost(cluster.into()))?;
        Ok(Some(Ctx {
            cluster: cluster.into(),
            virt: self.local_client(cluster),
            parent,
            placement,
        }))
    }

    /// A change in the storage of any served cluster.
    fn virtual_change(&self, change: &Change<'_>) {
        let Some(k) = change.key().and_then(ObjectKey::parse) else {
            return;
        };
        // Namespace labels decide what NetworkPolicies' namespace
        // selectors match.
        if k.segment == "core/namespaces" {
            if self
                .placement(k.cluster)
                .is_some_and(|p| p.syncs(Kind::NetworkPolicy))
                && !matches!(change, Change::Initial(_))
            {
                self.enqueue(Item::NetworkPolicies {
                    cluster: k.cluster.to_string(),
                });
            }
            return;
        }
        let Some(kind) = Kind::from_segment(k.segment) else {
            return;
        };
        // A Service copy in a served parent changed (its cluster IP): the
        // virtual Service it copies takes it up.
        if kind == Kind::Service
            && let Some(kv) = change.current()
            && watch::contains(&kv.value, names::CLUSTER_ANNOTATION.as_bytes())
            && let Some(obj) = change.object()
            && let Some(owner) = parents::owner_of(&obj)
        {
            self.enqueue_object(kind, &owner.cluster, &owner.namespace, &owner.name);
        }
        let Some(placement) = self.placement(k.cluster) else {
            return;
        };
        // A kind switched off has no copies (its switch's resync deleted them).
        if !placement.syncs(kind) {
            return;
        }
        // A pod that is gone may leave ConfigMaps and Secrets unreferenced.
        if kind == Kind::Pod
            && let Change::Delete { .. } = change
            && let Some(pod) = change.object()
        {
            for (kind, name) in down::pod::references(&pod) {
                self.enqueue_object(kind, k.cluster, k.namespace, &name);
            }
            if pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            {
                self.enqueue(Item::Nodes {
                    cluster: k.cluster.to_string(),
                });
            }
        }
        // Endpoints the endpoints controller writes are computed again in
        // the parent; only those a user manages are copied.
        if kind == Kind::Endpoints
            && let Some(kv) = change.current()
            && watch::contains(&kv.value, ENDPOINTS_MANAGED_BY_LABEL.as_bytes())
        {
            return;
        }
        // Referenced ConfigMaps and Secrets are synced by their pods'
        // reconciles; only their later changes need one of their own.
        let initial = matches!(change, Change::Initial(_));
        if initial && matches!(kind, Kind::ConfigMap | Kind::Secret) {
            return;
        }
        // A Service that gains or loses its selector changes whose its
        // Endpoints are (see `down::endpoints`).
        if kind == Kind::Service {
            self.enqueue_object(Kind::Endpoints, k.cluster, k.namespace, k.name);
        }
        self.enqueue_object(kind, k.cluster, k.namespace, k.name);
    }

    /// Clusters or placements changed: clean up after the ones gone,
    /// resync the new ones, and keep one watch per parent in use.
    fn placements_changed(self: &Arc<Self>) {
        let mut current = HashMap::new();
        for path in self.api.clusters.paths() {
            if let Some(p) = self.placement(&path) {
                current.insert(path, p);
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for (path, old) in known.iter() {
            // A placement never synced (host namespace not allowed) left nothing.
            if current.get(path).is_none_or(|new| !same_target(old, new)) && self.allowed(old) {
                tracing::info!(cluster = %path, uid = %old.uid, "placement gone: cleaning up its parent objects");
                self.enqueue(Item::Cleanup {
                    parent: ParentKey::of(old),
                    host_namespace: old.host_namespace.clone(),
                    uid: old.uid.clone(),
                });
            }
        }
        for (path, new) in current.iter() {
            // A kind switched on is copied, one switched off deleted; what
            // spec.network allows now is copied, what it no longer allows
            // deleted.
            if known.get(path).is_none_or(|old| {
                !same_target(old, new)
                    || old.spec.sync != new.spec.sync
                    || old.spec.network != new.spec.network
            }) {
                if !self.allowed(new) {
                    tracing::error!(
                        cluster = %path,
                        host_namespace = %new.host_namespace,
                        allowed = ?self.host_namespaces,
                        "cluster placed in a host namespace outside --host-namespaces: not syncing it (add the namespace to --host-namespaces, and grant nestkube's service account the namespaced rights there)"
                    );
                    continue;
                }
                self.enqueue(Item::Resync {
                    cluster: path.clone(),
                });
            }
        }
        let wanted: std::collections::HashSet<ParentKey> = current
            .values()
            .filter(|p| self.allowed(p))
            .map(|p| ParentKey::of(p))
            .collect();
        *known = current;
        drop(known);
        if let Some(dns) = &self.dns {
            let gone = dns.index.retain_clusters(|c| self.placement(c).is_some());
            if !gone.is_empty() {
                let storage = self.api.store.storage().clone();
                tokio::spawn(async move {
                    for cluster in gone {
                        if let Err(e) =
                            dns::shared::unpublish_cluster(storage.as_ref(), &cluster).await
                        {
                            tracing::warn!(cluster = %cluster, error = %e, "DNS: could not remove the shared addresses of a cluster gone");
                        }
                    }
                });
            }
        }
        {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            clients.retain(|path, _| self.api.clusters.contains(path));
            let mut parents = self
                .parent_clients
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            parents.retain(|key, _| match key {
                ParentKey::Cluster(path) => self.api.clusters.contains(path),
                ParentKey::Host => true,
            });
        }
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| wanted.contains(key));
        self.copy_indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| wanted.contains(key));
        let mut parents = self.parents.lock().unwrap_or_else(|e| e.into_inner());
        parents.retain(|key, task| {
            let keep = wanted.contains(key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for key in wanted {
            if parents.contains_key(&key) {
                continue;
            }
            let Some(client) = self.parent_client(&key) else {
                tracing::warn!(parent = ?key, "placements name the host cluster, but no host client was given");
                continue;
            };
            let task = tokio::spawn(parents::watch(self.clone(), key.clone(), client));
            parents.insert(key, task);
        }
    }

    /// A new, empty index of `parent`'s copies, replacing any earlier one
    /// (for its watch task to fill).
    pub(crate) fn fresh_copy_index(&self, parent: &ParentKey) -> Arc<RwLock<parents::CopyIndex>> {
        let index = Arc::new(RwLock::new(parents::CopyIndex::default()));
        self.copy_indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(parent.clone(), index.clone());
        index
    }

    /// Copy `name` of `kind` in `ctx`'s host namespace as its parent's watch
    /// last saw it; asks the parent when the watch cannot tell.
    pub(crate) async fn cached_copy(
        &self,
        ctx: &Ctx,
        kind: Kind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, SyncError> {
        let index = self
            .copy_indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ParentKey::of(&ctx.placement))
            .cloned();
        if let Some(index) = index {
            let lookup = index.read().unwrap_or_else(|e| e.into_inner()).object(
                kind,
                &ctx.placement.host_namespace,
                name,
            );
            match lookup {
                parents::Lookup::Present(o) => return Ok(Some(o)),
                parents::Lookup::Absent => return Ok(None),
                parents::Lookup::Unknown => {}
            }
        }
        down::get(
            &down::api(&ctx.parent, kind, &ctx.placement.host_namespace),
            name,
        )
        .await
    }

    /// The reachability of `parent` (shared by its watch task and its
    /// reconciles).
    pub(crate) fn health(&self, parent: &ParentKey) -> Arc<parents::Health> {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.entry(parent.clone()).or_default().clone()
    }

    /// The parent `item` acts in (`None`: only in a virtual cluster).
    fn parent_of(&self, item: &Item) -> Option<ParentKey> {
        match item {
            Item::Object { cluster, .. }
            | Item::Resync { cluster }
            | Item::Classes { cluster }
            | Item::NetworkPolicies { cluster }
            | Item::Nodes { cluster } => self.placement(cluster).map(|p| ParentKey::of(&p)),
            Item::Cleanup { parent, .. } | Item::Sweep { parent, .. } => Some(parent.clone()),
            Item::Event { .. } => None,
        }
    }

    /// Runs one item; one that acts in a parent waits without trying while
    /// that parent is known unreachable or [`parents::PER_PARENT`] others
    /// act there, and gives up after [`RECONCILE_TIMEOUT`] (see
    /// [`parents`]).
    async fn reconcile(self: Arc<Self>, item: Item) -> Result<Option<Duration>, SyncError> {
        let Some(parent) = self.parent_of(&item) else {
            return self.reconcile_item(item).await;
        };
        let health = self.health(&parent);
        if health.is_down() {
            return Ok(Some(PARENT_DOWN_RETRY));
        }
        // Waiting for a permit here would hold one of the queue's.
        let Ok(_permit) = health.permits.clone().try_acquire_owned() else {
            return Ok(Some(PARENT_BUSY_RETRY));
        };
        let result = tokio::time::timeout(RECONCILE_TIMEOUT, self.clone().reconcile_item(item))
            .await
            .unwrap_or(Err(SyncError::Timeout(RECONCILE_TIMEOUT)));
        if result.as_ref().is_err_and(SyncError::reaching) {
            health.suspect();
        }
        result
    }

    async fn reconcile_item(self: Arc<Self>, item: Item) -> Result<Option<Duration>, SyncError> {
        match item {
            Item::Object {
                kind,
                cluster,
                namespace,
                name,
            } => {
                let Some(ctx) = self.ctx(&cluster)? else {
                    return Ok(None);
                };
                let result = match kind {
                    Kind::Pod => down::pod::sync(&self, &ctx, &namespace, &name).await,
                    Kind::Service => down::service::sync(&self, &ctx, &namespace, &name).await,
                    Kind::ConfigMap | Kind::Secret => {
                        down::config::sync(&ctx, kind, &namespace, &name).await
                    }
                    Kind::PersistentVolumeClaim => down::pvc::sync(&ctx, &namespace, &name).await,
                    Kind::Endpoints => down::endpoints::sync(&ctx, &namespace, &name).await,
                    Kind::Ingress => down::ingress::sync(&self, &ctx, &namespace, &name).await,
                    Kind::NetworkPolicy if down::isolation::is_key(&namespace, &name) => {
                        down::isolation::sync(&self, &ctx).await
                    }
                    Kind::NetworkPolicy => {
                        down::network_policy::sync(&ctx, &namespace, &name).await
                    }
                };
                match result {
                    // The cluster went away during the reconcile: its
                    // copies are the cleanup's.
                    Err(SyncError::Kube(kube::Error::Api(s)))
                        if s.code == 401 && self.placement(&cluster).is_none() =>
                    {
                        Ok(None)
                    }
                    r => r,
                }
            }
            Item::Resync { cluster } => {
                self.enqueue(Item::Classes {
                    cluster: cluster.clone(),
                });
                self.enqueue(Item::Nodes {
                    cluster: cluster.clone(),
                });
                cleanup::resync(&self, &cluster).await.map(|()| None)
            }
            Item::NetworkPolicies { cluster } => match self.ctx(&cluster)? {
                Some(ctx) => cleanup::resync_kind(&self, &ctx, Kind::NetworkPolicy)
                    .await
                    .map(|()| None),
                None => Ok(None),
            },
            Item::Classes { cluster } => match self.ctx(&cluster)? {
                Some(ctx) => {
                    mirror::runtime_classes::sync(&ctx).await?;
                    mirror::storage::sync_classes(&ctx).await.map(|()| None)
                }
                None => Ok(None),
            },
            Item::Nodes { cluster } => match self.ctx(&cluster)? {
                Some(ctx) => mirror::nodes::sync(&ctx).await,
                None => Ok(None),
            },
            Item::Event {
                cluster,
                namespace,
                name,
            } => {
                let key = (cluster, namespace, name);
                let Some(wish) = self.outbox.take(&key) else {
                    return Ok(None);
                };
                if self.placement(&key.0).is_none() {
                    return Ok(None);
                }
                let virt = self.local_client(&key.0);
                match events::apply(&virt, &key.1, &key.2, &wish).await {
                    Ok(()) => Ok(None),
                    Err(e) => {
                        self.outbox.retry(key, wish);
                        Err(e)
                    }
                }
            }
            Item::Cleanup {
                parent,
                host_namespace,
                uid,
            } => cleanup::cleanup(&self, &parent, &host_namespace, &uid)
                .await
                .map(|()| None),
            Item::Sweep { parent, namespace } => {
                cleanup::sweep(&self, &parent, namespace.as_deref())
                    .await
                    .map(|()| None)
            }
        }
    }
}

/// What a placement's VirtualCluster asks to sync.
trait Syncs {
    /// Whether objects of `kind` are copied (the optional kinds only when
    /// `spec.sync` enables them).
    fn syncs(&self, kind: Kind) -> bool;
}

impl Syncs for Placement {
    fn syncs(&self, kind: Kind) -> bool {
        match kind {
            Kind::Ingress => self.spec.sync.ingresses,
            Kind::NetworkPolicy => self.spec.sync.network_policies,
            _ => true,
        }
    }
}

/// Whether two placements put objects in the same place for the same owner.
fn same_target(a: &Placement, b: &Placement) -> bool {
    a.uid == b.uid && a.parent == b.parent && a.host_namespace == b.host_namespace
}

impl ParentKey {
    /// The parent a placement syncs into.
    pub fn of(p: &Placement) -> Self {
        match &p.parent {
            Parent::Cluster(path) => ParentKey::Cluster(path.clone()),
            Parent::Host => ParentKey::Host,
        }
    }
}
