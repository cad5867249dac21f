//! nestkube's DNS for tenant pods against a real server and real sockets on
//! 127.0.0.1 (standalone mode: VirtualClusters created in `root` sync their
//! pods into `root`, and the test plays the kubelet by writing the status
//! of root's copies, so the pod index is filled by the real sync path).
//!
//! The test's queries are sent from the loopback address it gave a pod as
//! its IP (any 127.x.y.z is local on Linux), as that pod's resolver would,
//! each FQDN a glibc resolver tries for a short name with the search path
//! and `ndots:5` the syncer wrote into the pod copy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, Server, virtual_cluster, wait_for};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use nestkube_syncer::dns::{self, DnsOptions, PodDns, PodIndex};
use nestkube_syncer::names;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

/// The pod IPs the test gives pods (and sends from).
const A_CLIENT: &str = "127.0.0.2";
const B_CLIENT: &str = "127.0.0.3";
const NOBODY: &str = "127.0.0.9";

/// One query `name`/`qtype` from `src` to `server`, over UDP or TCP.
async fn ask(src: &str, server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.metadata.recursion_desired = true;
    let bytes = m.to_vec().unwrap();
    let src: IpAddr = src.parse().unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        if tcp {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(src, 0)).unwrap();
            let mut stream = socket.connect(server).await.unwrap();
            stream
                .write_all(&(bytes.len() as u16).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&bytes).await.unwrap();
            let len = stream.read_u16().await.unwrap() as usize;
            let mut buf = vec![0; len];
            stream.read_exact(&mut buf).await.unwrap();
            buf
        } else {
            let socket = UdpSocket::bind(SocketAddr::new(src, 0)).await.unwrap();
            socket.send_to(&bytes, server).await.unwrap();
            let mut buf = vec![0; 65535];
            let (n, _) = socket.recv_from(&mut buf).await.unwrap();
            buf.truncate(n);
            buf
        }
    })
    .await
    .expect("a DNS reply");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, m.metadata.id);
    reply
}

/// The addresses of an answer.
fn addresses(m: &Message) -> Vec<IpAddr> {
    addresses_of(&m.answers)
}

fn addresses_of(records: &[hickory_proto::rr::Record]) -> Vec<IpAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// What a glibc stub resolver does for `name` with `search` and `ndots:5`:
/// the FQDNs it tries in order, and the first answer with addresses.
async fn resolve(
    src: &str,
    server: SocketAddr,
    name: &str,
    search: &[String],
) -> (Vec<String>, Option<Vec<IpAddr>>) {
    let mut tried = Vec::new();
    let mut candidates: Vec<String> = search.iter().map(|s| format!("{name}.{s}.")).collect();
    if name.matches('.').count() >= 5 {
        candidates.insert(0, format!("{name}."));
    } else {
        candidates.push(format!("{name}."));
    }
    for fqdn in candidates {
        tried.push(fqdn.clone());
        let reply = ask(src, server, &fqdn, RecordType::A, false).await;
        if reply.metadata.response_code == ResponseCode::NoError && !reply.answers.is_empty() {
            return (tried, Some(addresses(&reply)));
        }
    }
    (tried, None)
}

/// Plays the kubelet on root's copy of pod `name` of `cluster`: it runs,
/// ready, with address `ip`.
async fn run_copy(root: &Client, cluster: &str, name: &str, ip: &str) {
    let pods: Api<Pod> = Api::namespaced(root.clone(), "default");
    let hname = names::host_name(cluster, "default", name);
    wait_for("the pod copy in root", || async {
        pods.get(&hname).await.ok()
    })
    .await;
    let now = "2026-01-01T00:00:00Z";
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.0.7",
        "startTime": now,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    pods.patch_status(&hname, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("kubelet status");
}

async fn create_pod(client: &Client, name: &str, app: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

async fn create_service(client: &Client, name: &str, headless: bool) {
    let mut spec = json!({"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]});
    if headless {
        spec["clusterIP"] = json!("None");
    }
    let svc: Service =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

/// A fake upstream resolver: answers every query with 192.0.2.1.
async fn fake_upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 65535];
        while let Ok((n, src)) = socket.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.add_queries(q.queries.clone());
            let name = q.queries[0].name().clone();
            r.add_answer(hickory_proto::rr::Record::from_rdata(
                name,
                60,
                RData::A("192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into()),
            ));
            let _ = socket.send_to(&r.to_vec().unwrap(), src).await;
        }
    });
    addr
}

/// nestkube's DNS for the clusters `api` serves, on 127.0.0.1 (a free
/// port, UDP and TCP), forwarding to `upstreams`, with the pod index the
/// syncer fills.
async fn serve_dns(
    api: &Arc<nestkube_apiserver::server::ApiServer>,
    upstreams: Vec<std::net::SocketAddr>,
) -> (dns::DnsServer, Arc<PodIndex>) {
    let index = Arc::new(PodIndex::default());
    // Port 0 picks a free UDP port; TCP on the same port may be taken by
    // another test meanwhile: pick again (a few times) rather than fail.
    let mut attempts = 0;
    let server = loop {
        attempts += 1;
        match dns::serve(
            api.clone(),
            index.clone(),
            DnsOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                upstreams: upstreams.clone(),
                tcp: Default::default(),
            },
        )
        .await
        {
            Ok(server) => break server,
            Err(e) if attempts < 5 && format!("{e:?}").contains("AddrInUse") => continue,
            Err(e) => panic!("DNS server: {e:?}"),
        }
    };
    (server, index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_names_resolve_for_the_pods_own_cluster_only() {
    let server = Server::start().await;
    let api = server.running.api.clone();
    let upstream = fake_upstream().await;
    let (dns_server, index) = serve_dns(&api, vec![upstream]).await;
    let dns_addr = dns_server.udp_addr;
    assert_eq!(dns_server.tcp_addr.port(), dns_addr.port());
    nestkube_syncer::spawn_with(
        api.clone(),
        None,
        nestkube_syncer::Settings {
            dns: Some(PodDns {
                nameserver: dns_addr.ip(),
                index: index.clone(),
            }),
            ..Default::default()
        },
    );
    let (_, team_a) = virtual_cluster(&server.root, "team-a").await;
    let (_, team_b) = virtual_cluster(&server.root, "team-b").await;

    // A pod in each tenant; its copy resolves through nestkube with the
    // virtual search path.
    create_pod(&team_a, "client", "client").await;
    create_pod(&team_b, "client", "client").await;
    run_copy(&server.root, "team-a", "client", A_CLIENT).await;
    run_copy(&server.root, "team-b", "client", B_CLIENT).await;
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let copy = root_pods
        .get(&names::host_name("team-a", "default", "client"))
        .await
        .unwrap();
    let spec = copy.spec.unwrap();
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    let config = spec.dns_config.expect("dnsConfig");
    assert_eq!(config.nameservers, Some(vec!["127.0.0.1".to_string()]));
    let search = config.searches.clone().unwrap();
    assert_eq!(
        search,
        [
            "default.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local"
        ]
    );
    let ndots = config.options.unwrap();
    assert_eq!(ndots[0].name.as_deref(), Some("ndots"));
    assert_eq!(ndots[0].value.as_deref(), Some("5"));

    // Services created after the pod started resolve.
    create_service(&team_a, "web", false).await;
    let web_ip: IpAddr = wait_for("web's address from its copy in root", || async {
        let copy = Api::<Service>::namespaced(server.root.clone(), "default")
            .get(&names::host_name("team-a", "default", "web"))
            .await
            .ok()?;
        let parent_ip = copy.spec?.cluster_ip?;
        let vsvc = Api::<Service>::namespaced(team_a.clone(), "default")
            .get("web")
            .await
            .ok()?;
        (vsvc.spec?.cluster_ip? == parent_ip).then(|| parent_ip.parse().unwrap())
    })
    .await;
    let fqdn = "web.default.svc.cluster.local.";
    wait_for("web to resolve from team-a's pod", || async {
        let reply = ask(A_CLIENT, dns_addr, fqdn, RecordType::A, false).await;
        (addresses(&reply) == vec![web_ip]).then_some(())
    })
    .await;
    for name in [
        "web",
        "web.default",
        "web.default.svc",
        "web.default.svc.cluster.local",
    ] {
        let (tried, found) = resolve(A_CLIENT, dns_addr, name, &search).await;
        assert_eq!(found, Some(vec![web_ip]), "{name} (tried {tried:?})");
        assert_eq!(tried.last().unwrap(), fqdn, "{name} answered by {tried:?}");
        // Each FQDN tried before was a clean NXDOMAIN.
        for miss in &tried[..tried.len() - 1] {
            let reply = ask(A_CLIENT, dns_addr, miss, RecordType::A, false).await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NXDomain,
                "{miss}"
            );
            assert!(!reply.authorities.is_empty(), "SOA for negative caching");
        }
    }
    // The same over TCP; no IPv6 address: an empty NOERROR.
    let reply = ask(A_CLIENT, dns_addr, fqdn, RecordType::A, true).await;
    assert_eq!(addresses(&reply), vec![web_ip]);
    assert!(reply.metadata.authoritative);
    let reply = ask(A_CLIENT, dns_addr, fqdn, RecordType::AAAA, false).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    // SRV of a named port.
    let reply = ask(
        A_CLIENT,
        dns_addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        false,
    )
    .await;
    match reply.answers.first().map(|r| &r.data) {
        Some(RData::SRV(srv)) => {
            assert_eq!(srv.port, 80);
            assert_eq!(srv.target.to_ascii(), fqdn);
        }
        other => panic!("SRV answer: {other:?}"),
    }
    assert_eq!(addresses_of(&reply.additionals), vec![web_ip]);

    // Latency of an answer from the zone (sequential, cache warm and cold).
    let mut took = Vec::new();
    for i in 0..400 {
        let name = if i % 2 == 0 {
            fqdn
        } else {
            "nope.default.svc.cluster.local."
        };
        let started = std::time::Instant::now();
        ask(A_CLIENT, dns_addr, name, RecordType::A, false).await;
        took.push(started.elapsed());
    }
    took.sort();
    eprintln!(
        "DNS query over UDP on 127.0.0.1, 400 sequential: p50 {:?}, p99 {:?}",
        took[took.len() / 2],
        took[took.len() * 99 / 100]
    );

    // A headless Service answers its ready endpoints; a pod name its pod.
    create_service(&team_a, "db", true).await;
    create_pod(&team_a, "db-0", "db").await;
    run_copy(&server.root, "team-a", "db-0", "10.1.0.7").await;
    let db_ip: IpAddr = "10.1.0.7".parse().unwrap();
    wait_for("the headless Service's endpoint", || async {
        let reply = ask(
            A_CLIENT,
            dns_addr,
            "db.default.svc.cluster.local.",
            RecordType::A,
            false,
        )
        .await;
        (addresses(&reply) == vec![db_ip]).then_some(())
    })
    .await;
    let reply = ask(
        A_CLIENT,
        dns_addr,
        "10-1-0-7.db.default.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(addresses(&reply), vec![db_ip]);
    let reply = ask(
        A_CLIENT,
        dns_addr,
        "10-1-0-7.default.pod.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(addresses(&reply), vec![db_ip]);
    let reply = ask(
        A_CLIENT,
        dns_addr,
        "10-1-0-7.kube-system.pod.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);

    // Tenant B's pod does not see A's Service, nor A's pod.
    for name in [
        fqdn,
        "db.default.svc.cluster.local.",
        "10-1-0-7.default.pod.cluster.local.",
    ] {
        let reply = ask(B_CLIENT, dns_addr, name, RecordType::A, false).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NXDomain,
            "{name} from B"
        );
        assert!(reply.answers.is_empty());
    }
    // B's own `web` is B's.
    create_service(&team_b, "web", false).await;
    let b_web = wait_for("B's web to resolve from B's pod", || async {
        let reply = ask(B_CLIENT, dns_addr, fqdn, RecordType::A, false).await;
        addresses(&reply).first().copied()
    })
    .await;
    assert_ne!(b_web, web_ip);
    let reply = ask(A_CLIENT, dns_addr, fqdn, RecordType::A, false).await;
    assert_eq!(addresses(&reply), vec![web_ip]);

    // Names outside cluster.local go upstream, for tenant pods only.
    let reply = ask(A_CLIENT, dns_addr, "example.com.", RecordType::A, false).await;
    assert_eq!(
        addresses(&reply),
        vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
    );
    // An address of no pod is refused everything.
    for name in [fqdn, "example.com."] {
        for tcp in [false, true] {
            let reply = ask(NOBODY, dns_addr, name, RecordType::A, tcp).await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::Refused,
                "{name}"
            );
            assert!(reply.answers.is_empty());
        }
    }

    // A deleted pod's address is refused again.
    Api::<Pod>::namespaced(team_b.clone(), "default")
        .delete("client", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("B's deleted pod to be refused", || async {
        let reply = ask(B_CLIENT, dns_addr, fqdn, RecordType::A, false).await;
        (reply.metadata.response_code == ResponseCode::Refused).then_some(())
    })
    .await;
}

/// On the real host (kube-apiserver, scheduler, kwok): a Deployment's pods
/// behind a Service of a host-placed cluster run on the host with
/// nestkube as their nameserver and the virtual search path, their host
/// pod IPs are indexed as that cluster's, and `web` resolves to the
/// Service's host ClusterIP.
///
/// What it cannot prove: kwok's pods run nothing and their IPs
/// (10.244.x) exist on no interface, so no query can come from the host
/// pod itself. The last step registers a loopback address as a second pod
/// of the same cluster in the same index and resolves from it; the pod
/// index's real path (host status → syncer → index) is checked for the
/// host pods themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_resolves_by_name_for_a_host_pod() {
    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("dns");
    let host_client = common::host_admin(host).await;
    let server = Server::start().await;
    let api = server.running.api.clone();
    let (dns_server, index) = serve_dns(&api, Vec::new()).await;
    let dns_addr = dns_server.udp_addr;
    // What --dns-advertise would name on a real host: the ClusterIP of
    // nestkube's Service.
    let advertised: IpAddr = "10.96.0.53".parse().unwrap();
    let cluster = common::host_placed_cluster_with(
        &server,
        host_client.clone(),
        ns.name(),
        "dns",
        nestkube_syncer::Settings {
            dns: Some(PodDns {
                nameserver: advertised,
                index: index.clone(),
            }),
            ..Default::default()
        },
    )
    .await;
    let virt = api.client_for(&cluster);
    create_service(&virt, "web", false).await;
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "nginx"}]},
            },
        },
    }))
    .unwrap();
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(virt.clone(), "default")
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    // The Service's host copy has the host's ClusterIP; the virtual Service takes it.
    let host_services: Api<Service> = Api::namespaced(host_client.clone(), ns.name());
    let web_ip: IpAddr = common::wait_for_within("web's host ClusterIP", 60, || async {
        let copy = host_services
            .get(&names::host_name(&cluster, "default", "web"))
            .await
            .ok()?;
        let host_ip = copy.spec?.cluster_ip?;
        let vsvc = Api::<Service>::namespaced(virt.clone(), "default")
            .get("web")
            .await
            .ok()?;
        (vsvc.spec?.cluster_ip? == host_ip).then(|| host_ip.parse().unwrap())
    })
    .await;

    // Both pods run on the host, resolving through nestkube with the
    // virtual search path, and their host IPs are the cluster's.
    let vpods: Api<Pod> = Api::namespaced(virt.clone(), "default");
    let host_pods: Api<Pod> = Api::namespaced(host_client.clone(), ns.name());
    let running = common::wait_for_within("both pods running with an IP", 90, || async {
        let pods = vpods.list(&Default::default()).await.ok()?.items;
        let ips: Vec<(String, IpAddr)> = pods
            .iter()
            .filter_map(|p| {
                let st = p.status.as_ref()?;
                (st.phase.as_deref() == Some("Running")).then_some(())?;
                Some((p.metadata.name.clone()?, st.pod_ip.as_ref()?.parse().ok()?))
            })
            .collect();
        (ips.len() == 2).then_some(ips)
    })
    .await;
    eprintln!("host pods (virtual name, host pod IP): {running:?}; web's host ClusterIP: {web_ip}");
    for (name, ip) in &running {
        let hpod = host_pods
            .get(&names::host_name(&cluster, "default", name))
            .await
            .unwrap();
        assert_eq!(hpod.status.unwrap().pod_ip, Some(ip.to_string()));
        let spec = hpod.spec.unwrap();
        assert_eq!(spec.dns_policy.as_deref(), Some("None"), "{name}");
        let config = spec.dns_config.unwrap();
        assert_eq!(config.nameservers, Some(vec![advertised.to_string()]));
        assert_eq!(
            config.searches.unwrap(),
            [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        common::wait_for("the host pod's IP indexed as its cluster's", || async {
            match index.owner(*ip) {
                dns::Owner::Pod(p) if p.cluster == cluster && &p.name == name => Some(()),
                _ => None,
            }
        })
        .await;
    }

    // From an address of that cluster (standing in for the host pod's):
    // `web` resolves to the host ClusterIP through the search path.
    index.set(
        dns::PodRef {
            cluster: cluster.clone(),
            namespace: "default".into(),
            name: "probe".into(),
        },
        vec![A_CLIENT.parse().unwrap()],
    );
    let search = dns::search_path("default");
    for name in [
        "web",
        "web.default",
        "web.default.svc",
        "web.default.svc.cluster.local",
    ] {
        let (tried, found) = resolve(A_CLIENT, dns_addr, name, &search).await;
        assert_eq!(found, Some(vec![web_ip]), "{name} (tried {tried:?})");
    }
    let reply = ask(
        NOBODY,
        dns_addr,
        "web.default.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

/// A pod of a nested cluster (`a:b`, synced `a:b` → `a` → root) resolves
/// `a:b`'s names, not `a`'s: its address is the deepest cluster's, and the
/// copy in root keeps `a:b`'s search path through both hops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nested_clusters_pod_resolves_its_own_names() {
    let server = Server::start().await;
    let api = server.running.api.clone();
    let (dns_server, index) = serve_dns(&api, Vec::new()).await;
    let dns_addr = dns_server.udp_addr;
    nestkube_syncer::spawn_with(
        api.clone(),
        None,
        nestkube_syncer::Settings {
            dns: Some(PodDns {
                nameserver: dns_addr.ip(),
                index: index.clone(),
            }),
            ..Default::default()
        },
    );
    let (_, a) = virtual_cluster(&server.root, "a").await;
    let (_, b) = virtual_cluster(&a, "b").await;
    let shop: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(b.clone())
        .create(&PostParams::default(), &shop)
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "client"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    let bpods: Api<Pod> = Api::namespaced(b.clone(), "shop");
    // The namespace's default service account comes first (admission).
    wait_for("the pod in a:b to be created", || async {
        bpods.create(&PostParams::default(), &pod).await.ok()
    })
    .await;
    let in_a = names::host_name("a:b", "shop", "client");
    run_copy(&server.root, "a", &in_a, "127.0.0.4").await;
    let root_copy = Api::<Pod>::namespaced(server.root.clone(), "default")
        .get(&names::host_name("a", "default", &in_a))
        .await
        .unwrap();
    let config = root_copy.spec.unwrap().dns_config.unwrap();
    assert_eq!(config.searches.unwrap()[0], "shop.svc.cluster.local");

    // `web` in both a and a:b: the pod gets a:b's (its address, once the
    // virtual Service took its copy's).
    for (client, ns) in [(&a, "default"), (&b, "shop")] {
        let svc: Service = serde_json::from_value(
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap();
        Api::<Service>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &svc)
            .await
            .unwrap();
    }
    let b_services: Api<Service> = Api::namespaced(b.clone(), "shop");
    wait_for("web to resolve as a:b's from a:b's pod", || async {
        let reply = ask(
            "127.0.0.4",
            dns_addr,
            "web.shop.svc.cluster.local.",
            RecordType::A,
            false,
        )
        .await;
        let b_web: IpAddr = b_services
            .get("web")
            .await
            .ok()?
            .spec?
            .cluster_ip?
            .parse()
            .ok()?;
        (addresses(&reply) == vec![b_web]).then_some(())
    })
    .await;
    let reply = ask(
        "127.0.0.4",
        dns_addr,
        "web.default.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NXDomain,
        "a's web is not a:b's"
    );
    match index.owner("127.0.0.4".parse().unwrap()) {
        dns::Owner::Pod(p) => assert_eq!(
            (p.cluster.as_str(), p.namespace.as_str(), p.name.as_str()),
            ("a:b", "shop", "client")
        ),
        other => panic!("owner: {other:?}"),
    }
}

/// Replicas over one etcd: only the lease holder's syncer learns pod
/// addresses, yet a pod's query is answered by every replica's DNS (the
/// index is shared through the store), and refused by all of them once the
/// pod is gone.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_replica_answers_the_pods_of_the_lease_holder() {
    use nestkube_storage::{Backend, LocalEtcd};
    const CLIENT: &str = "127.0.0.5";
    let Some(etcd) = LocalEtcd::start_for_test().await else {
        return;
    };
    let mut replicas = Vec::new();
    for holder in ["replica-a", "replica-b"] {
        let server = Server::start_on(Backend::Etcd(etcd.config("/nestkube"))).await;
        let api = server.running.api.clone();
        let (dns_server, index) = serve_dns(&api, vec![]).await;
        nestkube_syncer::spawn_when_leader(
            api,
            None,
            nestkube_syncer::Settings {
                dns: Some(PodDns {
                    nameserver: dns_server.udp_addr.ip(),
                    index,
                }),
                ..Default::default()
            },
            holder.into(),
        );
        replicas.push((server, dns_server));
    }
    let root = replicas[0].0.root.clone();
    let (_, team) = virtual_cluster(&root, "team-a").await;
    create_pod(&team, "client", "client").await;
    create_service(&team, "web", false).await;
    run_copy(&root, "team-a", "client", CLIENT).await;
    let fqdn = "web.default.svc.cluster.local.";
    for (i, (_, dns_server)) in replicas.iter().enumerate() {
        wait_for(&format!("web to resolve through replica {i}"), || async {
            let reply = ask(CLIENT, dns_server.udp_addr, fqdn, RecordType::A, false).await;
            (reply.metadata.response_code == ResponseCode::NoError && !reply.answers.is_empty())
                .then_some(())
        })
        .await;
    }
    Api::<Pod>::namespaced(team.clone(), "default")
        .delete("client", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    for (i, (_, dns_server)) in replicas.iter().enumerate() {
        wait_for(&format!("replica {i} to refuse the gone pod"), || async {
            let reply = ask(CLIENT, dns_server.udp_addr, fqdn, RecordType::A, false).await;
            (reply.metadata.response_code == ResponseCode::Refused).then_some(())
        })
        .await;
    }
}
