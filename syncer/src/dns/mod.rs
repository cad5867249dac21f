//! DNS for virtual Service names: nestkube answers the queries of tenant
//! pods itself (UDP and TCP, `nestkube serve --dns-listen`), each from the
//! `cluster.local` zone of the pod's **own** virtual cluster, so `web`,
//! `web.default`, `web.default.svc` and `web.default.svc.cluster.local`
//! resolve for a pod of that cluster through the search path the syncer
//! writes into every pod copy ([`pod_dns_config`]).
//!
//! Why a server and not rewritten pod DNS config (hostAliases or
//! `/etc/hosts`): a pod's files are fixed when it starts, so they cannot
//! follow Services created, re-addressed or deleted later, nor answer
//! headless Services, SRV or `svc.ns.svc.cluster.local` of a virtual name.
//!
//! The tenancy rule: a query is answered only for the virtual cluster
//! owning the pod address it comes from ([`index::PodIndex::owner`], filled
//! from the copies' status as their parent reports it); an address no
//! synced pod has, or one claimed by unrelated clusters, gets `REFUSED`:
//! nothing of any cluster, and no forwarding (never an open resolver). A
//! name of another tenant is simply not in the zone the query is answered
//! from (`NXDOMAIN`). The server never writes anything.
//!
//! Names outside `cluster.local` go to the upstream resolvers ([`forward`]).
//!
//! Replicas: the syncer runs on the lease holder only, and shares the pod
//! addresses it learns through the store; every replica's server follows
//! them ([`shared`]), so any replica answers a pod alike.

pub mod forward;
pub mod index;
pub mod records;
pub mod shared;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nestkube_apiserver::server::ApiServer;
use nestkube_apiserver::server::connections::{self, Caps};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub use index::{Owner, PodIndex, PodRef};
use records::{Answer, CLUSTER_DOMAIN, Zone};

/// What the syncer needs when nestkube serves DNS: the address pods use as
/// their nameserver, and the pod index to fill.
#[derive(Clone, Debug)]
pub struct PodDns {
    /// The nameserver of every pod copy (`--dns-advertise`: the address
    /// the parent's pods reach nestkube's DNS at, e.g. the ClusterIP of
    /// nestkube's Service on the host).
    pub nameserver: IpAddr,
    /// Filled by the syncer, read by the server.
    pub index: Arc<PodIndex>,
}

/// Where and how the server answers.
#[derive(Clone, Debug)]
pub struct DnsOptions {
    /// UDP and TCP address to listen on (port 0: a free port, the same
    /// for both when possible is not guaranteed; see [`DnsServer`]).
    pub listen: SocketAddr,
    /// Resolvers for names outside `cluster.local` (default: the
    /// `nameserver`s of `/etc/resolv.conf`).
    pub upstreams: Vec<SocketAddr>,
    /// What a TCP connection may cost.
    pub tcp: TcpLimits,
}

/// Caps and timeouts of DNS over TCP (RFC 7766 asks servers to bound
/// both); the defaults are CoreDNS's timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connection caps (in all, per source address).
    pub caps: Caps,
    /// How long a connection may wait between queries.
    pub idle_timeout: Duration,
    /// How long the rest of a query may take to arrive once its length
    /// has, and an answer to be written.
    pub query_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            caps: Caps {
                max_connections: 1_000,
                max_per_source: 100,
            },
            idle_timeout: Duration::from_secs(10),
            query_timeout: Duration::from_secs(5),
        }
    }
}

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A socket could not be bound.
    #[error("DNS: binding {proto} {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running DNS server (stops when dropped).
pub struct DnsServer {
    /// The bound UDP address.
    pub udp_addr: SocketAddr,
    /// The bound TCP address.
    pub tcp_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The search path of a pod of namespace `ns` (virtual names, as a
/// kubelet writes for ClusterFirst).
pub fn search_path(ns: &str) -> Vec<String> {
    vec![
        format!("{ns}.svc.{CLUSTER_DOMAIN}"),
        format!("svc.{CLUSTER_DOMAIN}"),
        CLUSTER_DOMAIN.to_string(),
    ]
}

/// Gives pod copy `spec` (of a virtual pod of namespace `ns`) nestkube's
/// DNS, as a kubelet applies `dnsPolicy`:
/// - `ClusterFirst` (the default) and `ClusterFirstWithHostNet`: policy
///   `None` with `nameserver` and the virtual search path, `ndots:5`; a
///   `dnsConfig` of the tenant is merged as a kubelet merges it (its
///   nameservers and searches after ours, its options win);
/// - `Default` (the node's resolver) and `None` (the tenant's own config,
///   also what a nested syncer already wrote): kept as they are;
/// - a `hostNetwork` pod (when its VirtualCluster allows it): kept as it
///   is, since its queries come from the node's address, which is no
///   pod's (the parent's own DNS policy applies, as upstream).
pub fn pod_dns_config(spec: &mut Value, ns: &str, nameserver: IpAddr) {
    let policy = spec["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
    if matches!(policy, "Default" | "None") || spec["hostNetwork"] == true {
        return;
    }
    let tenant = spec["dnsConfig"].take();
    let mut nameservers = vec![nameserver.to_string()];
    let mut searches = search_path(ns);
    for (list, key) in [
        (&mut nameservers, "nameservers"),
        (&mut searches, "searches"),
    ] {
        for v in tenant[key].as_array().into_iter().flatten() {
            if let Some(s) = v.as_str()
                && !list.iter().any(|x| x == s)
            {
                list.push(s.to_string());
            }
        }
    }
    // As the kubelet: at most 3 nameservers, 32 search domains.
    nameservers.truncate(3);
    searches.truncate(32);
    let mut options = vec![json!({"name": "ndots", "value": "5"})];
    for o in tenant["options"].as_array().into_iter().flatten() {
        options.retain(|x| x["name"] != o["name"]);
        options.push(o.clone());
    }
    spec["dnsPolicy"] = json!("None");
    spec["dnsConfig"] = json!({
        "nameservers": nameservers,
        "searches": searches,
        "options": options,
    });
}

/// Starts answering on `options.listen` (UDP and TCP) for the clusters
/// `api` serves, with the pods of `index`.
pub async fn serve(
    api: Arc<ApiServer>,
    index: Arc<PodIndex>,
    options: DnsOptions,
) -> Result<DnsServer, DnsError> {
    let udp = UdpSocket::bind(options.listen)
        .await
        .map_err(|source| DnsError::Bind {
            proto: "udp",
            addr: options.listen,
            source,
        })?;
    let udp_addr = udp.local_addr().map_err(|source| DnsError::Bind {
        proto: "udp",
        addr: options.listen,
        source,
    })?;
    // The same port for TCP as for UDP (a resolver retries a truncated
    // answer on the port it asked).
    let tcp_want = SocketAddr::new(options.listen.ip(), udp_addr.port());
    let tcp = TcpListener::bind(tcp_want)
        .await
        .map_err(|source| DnsError::Bind {
            proto: "tcp",
            addr: tcp_want,
            source,
        })?;
    let tcp_addr = tcp.local_addr().map_err(|source| DnsError::Bind {
        proto: "tcp",
        addr: tcp_want,
        source,
    })?;
    let upstreams = if options.upstreams.is_empty() {
        forward::system_nameservers()
    } else {
        options.upstreams
    };
    // The index the lease holder's syncer shares through the store.
    let follow_task = tokio::spawn(shared::follow(api.store.storage().clone(), index.clone()));
    let handler = Arc::new(Handler {
        zone: Zone::new(api.clone()),
        api,
        index,
        upstreams,
    });
    let udp = Arc::new(udp);
    let h = handler.clone();
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, src) = match udp.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors of earlier replies surface here; go on.
                    tracing::debug!(error = %e, "DNS: udp receive");
                    continue;
                }
            };
            let query = buf[..n].to_vec();
            let (h, udp) = (h.clone(), udp.clone());
            tokio::spawn(async move {
                if let Some(reply) = h.handle(src.ip(), &query, false).await {
                    let _ = udp.send_to(&reply, src).await;
                }
            });
        }
    });
    let h = handler;
    let limits = options.tcp;
    let tcp_task = tokio::spawn(async move {
        let gate = connections::Gate::new(limits.caps);
        let mut backoff = connections::Backoff::default();
        loop {
            let (stream, src) = connections::accept(&tcp, &mut backoff).await;
            let Ok(permit) = gate.admit(src.ip()) else {
                continue; // Closed at once.
            };
            let h = h.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = h.serve_tcp(stream, src.ip(), &limits).await;
            });
        }
    });
    tracing::info!(%udp_addr, %tcp_addr, "serving DNS for virtual clusters");
    Ok(DnsServer {
        udp_addr,
        tcp_addr,
        tasks: vec![udp_task, tcp_task, follow_task],
    })
}

struct Handler {
    api: Arc<ApiServer>,
    zone: Zone,
    index: Arc<PodIndex>,
    upstreams: Vec<SocketAddr>,
}

impl Handler {
    /// Queries of one TCP connection (length-prefixed), answered in order;
    /// it is closed when it waits longer than `limits` allow.
    async fn serve_tcp(
        &self,
        mut stream: TcpStream,
        src: IpAddr,
        limits: &TcpLimits,
    ) -> std::io::Result<()> {
        let timed_out = |_| std::io::Error::from(std::io::ErrorKind::TimedOut);
        loop {
            let len = match tokio::time::timeout(limits.idle_timeout, stream.read_u16()).await {
                Ok(Ok(l)) => l as usize,
                Ok(Err(_)) | Err(_) => return Ok(()),
            };
            let mut query = vec![0u8; len];
            tokio::time::timeout(limits.query_timeout, stream.read_exact(&mut query))
                .await
                .map_err(timed_out)??;
            let Some(reply) = self.handle(src, &query, true).await else {
                return Ok(());
            };
            let len = u16::try_from(reply.len()).map_err(std::io::Error::other)?;
            let mut framed = Vec::with_capacity(reply.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&reply);
            tokio::time::timeout(limits.query_timeout, stream.write_all(&framed))
                .await
                .map_err(timed_out)??;
        }
    }

    /// The reply to `query` from `src` (`None`: not even a header to
    /// answer to).
    async fn handle(&self, src: IpAddr, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let request = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) => {
                let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .ok();
            }
        };
        let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.add_queries(request.queries.iter().cloned());
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            reply.set_edns(edns);
        }
        let code = self.answer(src, &request, query, tcp, &mut reply).await;
        match code {
            Ok(code) => reply.metadata.response_code = code,
            // Relayed from upstream as it is.
            Err(raw) => return Some(raw),
        }
        let bytes = reply.to_vec().ok()?;
        if !tcp && bytes.len() > request.max_payload() as usize {
            return reply.truncate().to_vec().ok();
        }
        Some(bytes)
    }

    /// Fills `reply` and returns its code, or `Err` with an upstream's
    /// raw answer to relay.
    async fn answer(
        &self,
        src: IpAddr,
        request: &Message,
        raw: &[u8],
        tcp: bool,
        reply: &mut Message,
    ) -> Result<ResponseCode, Vec<u8>> {
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            return Ok(ResponseCode::NotImp);
        }
        let [question] = request.queries.as_slice() else {
            return Ok(ResponseCode::FormErr);
        };
        let cluster = match self.index.owner(src) {
            Owner::Pod(p) if self.api.clusters.contains(&p.cluster) => p.cluster,
            owner => {
                tracing::debug!(%src, ?owner, "DNS query from an address of no (single) tenant pod: refused");
                return Ok(ResponseCode::Refused);
            }
        };
        match self
            .zone
            .answer(
                &cluster,
                &self.index,
                question.name(),
                question.query_type(),
            )
            .await
        {
            Answer::Records {
                mut answers,
                additionals,
            } => {
                reply.metadata.authoritative = true;
                if answers.is_empty() {
                    reply.add_authority(records::soa());
                }
                // An ExternalName's CNAME: a stub resolver expects the
                // target's addresses in the same answer, as CoreDNS gives.
                if let Some(target) = cname_target(&answers)
                    && question.query_type() != RecordType::CNAME
                {
                    let chased = self
                        .chase(&cluster, &target, question.query_type(), tcp)
                        .await;
                    answers.extend(chased);
                }
                reply.add_answers(answers);
                reply.add_additionals(additionals);
                Ok(ResponseCode::NoError)
            }
            Answer::NxDomain => {
                reply.metadata.authoritative = true;
                reply.add_authority(records::soa());
                Ok(ResponseCode::NXDomain)
            }
            Answer::ServFail => Ok(ResponseCode::ServFail),
            Answer::Outside => match forward::forward(&self.upstreams, raw, tcp).await {
                Some(answer) => Err(answer),
                None => Ok(ResponseCode::ServFail),
            },
        }
    }
}

impl Handler {
    /// The records of `target` of type `qtype`: from the same cluster's
    /// zone (one level, no further CNAME), or from the upstreams.
    async fn chase(
        &self,
        cluster: &str,
        target: &Name,
        qtype: RecordType,
        tcp: bool,
    ) -> Vec<Record> {
        match self.zone.answer(cluster, &self.index, target, qtype).await {
            Answer::Records { answers, .. } => answers
                .into_iter()
                .filter(|r| r.record_type() != RecordType::CNAME)
                .collect(),
            Answer::Outside => {
                let mut query = Message::query();
                query.metadata.recursion_desired = true;
                query.add_query(Query::query(target.clone(), qtype));
                let Ok(bytes) = query.to_vec() else {
                    return Vec::new();
                };
                forward::forward(&self.upstreams, &bytes, tcp)
                    .await
                    .and_then(|raw| Message::from_vec(&raw).ok())
                    .map(|m| m.answers)
                    .unwrap_or_default()
            }
            Answer::NxDomain | Answer::ServFail => Vec::new(),
        }
    }
}

/// The target of the last CNAME of `answers`, if any.
fn cname_target(answers: &[Record]) -> Option<Name> {
    answers.iter().rev().find_map(|r| match &r.data {
        RData::CNAME(c) => Some(c.0.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_dns_follows_the_policy() {
        let ns: IpAddr = "10.96.0.53".parse().unwrap();
        let mut spec = json!({"containers": []});
        pod_dns_config(&mut spec, "shop", ns);
        assert_eq!(spec["dnsPolicy"], "None");
        assert_eq!(
            spec["dnsConfig"],
            json!({
                "nameservers": ["10.96.0.53"],
                "searches": ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"],
                "options": [{"name": "ndots", "value": "5"}],
            })
        );
        // The tenant's additions are merged, its options win.
        let mut spec = json!({"dnsPolicy": "ClusterFirst", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["corp.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}});
        pod_dns_config(&mut spec, "default", ns);
        assert_eq!(
            spec["dnsConfig"]["nameservers"],
            json!(["10.96.0.53", "1.1.1.1"])
        );
        assert_eq!(spec["dnsConfig"]["searches"][3], "corp.example");
        assert_eq!(
            spec["dnsConfig"]["options"],
            json!([{"name": "ndots", "value": "2"}, {"name": "edns0"}])
        );
        // The tenant's own config, and the node's resolver, are kept.
        for policy in ["None", "Default"] {
            let original = json!({"dnsPolicy": policy, "dnsConfig": {"nameservers": ["9.9.9.9"]}});
            let mut spec = original.clone();
            pod_dns_config(&mut spec, "default", ns);
            assert_eq!(spec, original);
        }
    }
}

/// Bounded fuzzing of the DNS server's wire handling (any host that can
/// reach `--dns-listen` sends it anything, unauthenticated): every packet
/// gets no reply or a well-formed one with the query's id, never a panic; an
/// address no tenant pod has never gets a record; a tenant pod never gets
/// another cluster's records. Runs [`Handler::handle`] against a real
/// in-process server (two clusters, each with a Service `web`); no
/// upstream resolvers, so nothing leaves the process. Seeds:
/// `tests/fuzz-corpus/dns` (query packets), replayed first, then mutated,
/// then generated queries. Longer runs: `docs/fuzzing.md`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use nestkube_apiserver::server::request::ROOT_CLUSTER;
    use nestkube_apiserver::server::{RunningServer, ServeConfig};
    use nestkube_fuzz_support as fuzz;
    use proptest::prelude::*;

    const DIR: &str = env!("CARGO_MANIFEST_DIR");
    /// The address of a pod of the root cluster, and of nothing.
    const POD: [u8; 4] = [127, 0, 0, 2];
    const NOBODY: [u8; 4] = [127, 0, 0, 9];
    /// ClusterIPs of `web` in the root cluster and in `other`.
    const ROOT_WEB: &str = "10.96.100.1";
    const OTHER_WEB: &str = "10.96.200.2";

    struct World {
        rt: tokio::runtime::Runtime,
        handler: Handler,
        _server: RunningServer,
        _dir: tempfile::TempDir,
    }

    fn world() -> &'static World {
        static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
        WORLD.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let dir = tempfile::tempdir().expect("tempdir");
            let (server, handler) = rt.block_on(async {
                let server = nestkube_apiserver::server::start(ServeConfig {
                    data_dir: dir.path().to_path_buf(),
                    listen: "127.0.0.1:0".parse().unwrap(),
                    backend: Default::default(),
                })
                .await
                .expect("server");
                let api = server.api.clone();
                api.clusters
                    .create(&api.store, &api.catalog, "other")
                    .await
                    .expect("cluster");
                for (cluster, ip) in [(ROOT_CLUSTER, ROOT_WEB), ("other", OTHER_WEB)] {
                    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
                        kube::Api::namespaced(
                            api.client_for_agent(cluster, crate::syncer::SYNCER_MANAGER),
                            "default",
                        );
                    let svc = serde_json::from_value(json!({
                        "metadata": {"name": "web"},
                        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]},
                    }))
                    .unwrap();
                    services
                        .create(&Default::default(), &svc)
                        .await
                        .expect("service");
                }
                let index = Arc::new(PodIndex::default());
                index.set(
                    PodRef {
                        cluster: ROOT_CLUSTER.into(),
                        namespace: "default".into(),
                        name: "client".into(),
                    },
                    vec![IpAddr::from(POD)],
                );
                let handler = Handler {
                    zone: Zone::new(api.clone()),
                    api,
                    index,
                    upstreams: Vec::new(),
                };
                (server, handler)
            });
            World {
                rt,
                handler,
                _server: server,
                _dir: dir,
            }
        })
    }

    fn addresses(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .chain(&m.additionals)
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                RData::AAAA(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The properties of one packet, from each source, over UDP and TCP.
    fn check(query: &[u8]) {
        let w = world();
        for src in [POD, NOBODY] {
            for tcp in [false, true] {
                let reply =
                    w.rt.block_on(w.handler.handle(IpAddr::from(src), query, tcp));
                let Some(reply) = reply else {
                    assert!(query.len() < 2, "no reply to a packet with an id");
                    continue;
                };
                let m = Message::from_vec(&reply).expect("a well-formed reply");
                assert_eq!(m.metadata.id.to_be_bytes(), query[..2], "reply id");
                assert!(tcp || reply.len() <= 65_535);
                if src == NOBODY {
                    assert!(
                        matches!(
                            m.metadata.response_code,
                            ResponseCode::Refused | ResponseCode::FormErr | ResponseCode::NotImp
                        ),
                        "{:?} to an address of no pod",
                        m.metadata.response_code
                    );
                    assert!(m.answers.is_empty() && m.additionals.is_empty());
                } else {
                    let found = addresses(&m);
                    assert!(
                        !found.iter().any(|a| a == OTHER_WEB),
                        "another cluster's address: {found:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn corpus() {
        for seed in fuzz::corpus(DIR, "dns") {
            check(&seed.bytes);
        }
        // The zone answers the root pod with its own cluster's Service.
        let seed = fuzz::corpus(DIR, "dns")
            .into_iter()
            .find(|s| s.name == "a-service-fqdn.bin")
            .expect("seed");
        let w = world();
        let reply =
            w.rt.block_on(w.handler.handle(IpAddr::from(POD), &seed.bytes, false))
                .expect("reply");
        assert_eq!(addresses(&Message::from_vec(&reply).unwrap()), [ROOT_WEB]);
    }

    /// Queries for names of the zone (and around it), of any type.
    fn query() -> impl Strategy<Value = Vec<u8>> {
        let label = prop::sample::select(vec![
            "web",
            "other",
            "default",
            "kube-system",
            "svc",
            "pod",
            "cluster",
            "local",
            "_http",
            "_tcp",
            "_udp",
            "127-0-0-2",
            "10-96-200-2",
            "fd00--5",
            "Web",
            "a-",
            "xn--",
            "*",
        ]);
        (
            prop::collection::vec(label, 0..7),
            any::<bool>(),
            prop::sample::select(vec![1u16, 28, 5, 33, 6, 12, 16, 255, 0, 65535]),
            any::<u16>(),
            any::<bool>(),
        )
            .prop_map(|(labels, in_zone, qtype, id, edns)| {
                let mut name = labels.join(".");
                if in_zone {
                    name.push_str(if name.is_empty() { "" } else { "." });
                    name.push_str(CLUSTER_DOMAIN);
                }
                let mut m = Message::query();
                m.metadata.id = id;
                m.metadata.recursion_desired = true;
                if let Ok(n) = Name::from_ascii(format!("{name}.")) {
                    m.add_query(Query::query(n, RecordType::from(qtype)));
                }
                if edns {
                    m.set_edns(Edns::new());
                }
                m.to_vec().unwrap_or_default()
            })
    }

    proptest! {
        #![proptest_config(fuzz::config(DIR, "dns", 1000))]

        #[test]
        fn generated_queries(q in query()) {
            check(&q);
        }

        #[test]
        fn mutated_packets(q in fuzz::mutated(
            fuzz::corpus(DIR, "dns").into_iter().map(|s| s.bytes).collect(),
            6,
        )) {
            check(&q);
        }

        #[test]
        fn arbitrary_packets(q in prop::collection::vec(any::<u8>(), 0..96)) {
            check(&q);
        }
    }
}
