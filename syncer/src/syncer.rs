//! The [`Syncer`] type, its [`Settings`] and its start-up ([`spawn`],
//! [`spawn_with`], [`spawn_when_leader`]): the work queue, the virtual
//! watch, the placements' subscription; and what every part of the syncer
//! asks of it: the clients of the served clusters and of the parents, the
//! placements, the host namespaces it may use, the pods' DNS addresses.
//!
//! This module starts tasks and hands out clients; it never writes an
//! object of a cluster itself (only the pods' DNS addresses, [`dns`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use nestkube_apiserver::controllers::queue::WorkQueue;
use nestkube_apiserver::controllers::watch;
use nestkube_apiserver::server::ApiServer;
use nestkube_apiserver::tenancy::Placement;

use crate::kinds::Kind;
use crate::{
    Ctx, Item, ParentKey, ParentRequests, SyncError, containers, dns, down, events, parents,
    requests,
};

/// The User-Agent of the syncer's in-process clients: what it writes into
/// virtual clusters (status, Events, bindings) is owned by this manager in
/// managedFields.
pub const SYNCER_MANAGER: &str = "nestkube-syncer";

/// The running syncer (shared by its tasks).
pub struct Syncer {
    pub(crate) api: Arc<ApiServer>,
    /// Where pods reach the API.
    pub(crate) endpoint: down::pod::Endpoint,
    pub(crate) host: Option<kube::Client>,
    /// In-process clients by cluster path.
    pub(crate) clients: Mutex<HashMap<String, kube::Client>>,
    /// Clients of the parents in use, requests counted.
    pub(crate) parent_clients: Mutex<HashMap<ParentKey, kube::Client>>,
    /// What the parent clients sent.
    pub(crate) requests: Arc<requests::Counters>,
    pub(crate) queue: OnceLock<Arc<WorkQueue<Item, SyncError>>>,
    /// The placements acted on, by cluster path.
    pub(crate) known: Mutex<HashMap<String, Arc<Placement>>>,
    /// One watch task per parent in use.
    pub(crate) parents: Mutex<HashMap<ParentKey, tokio::task::JoinHandle<()>>>,
    /// What is known of each parent's reachability.
    pub(crate) health: Mutex<HashMap<ParentKey, Arc<parents::Health>>>,
    /// The host namespaces the syncer may use (sorted; empty: all of them).
    pub(crate) host_namespaces: Vec<String>,
    /// Nestkube's DNS for pods, when it serves one.
    pub(crate) dns: Option<dns::PodDns>,
    /// Virtual Events waiting to be written (latest wish per Event).
    pub(crate) outbox: events::Outbox,
    /// The pods' token Secrets known current.
    pub(crate) tokens: down::token::Tokens,
    /// Each watched parent's index of copies (written by its watch task).
    pub(crate) copy_indexes: Mutex<HashMap<ParentKey, Arc<RwLock<parents::CopyIndex>>>>,
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
    // Logs are answered, and webhooks called, by every replica, leader or not.
    containers::register(&api, host.clone());
    crate::webhooks::register(&api, host.clone());
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
    crate::webhooks::register(&api, host.clone());
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
    /// Queues `item` (once: an item already waiting is not queued again).
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

    /// Queues the reconcile of virtual object `namespace/name` of `kind` in
    /// `cluster`.
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
            .or_insert_with(|| self.api.client_for_agent(path, SYNCER_MANAGER))
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
            ParentKey::Cluster(p) => self.api.client_for_agent(p, SYNCER_MANAGER),
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
}
