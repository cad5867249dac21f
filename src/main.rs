//! `nestkube`: parses flags and wires the crates together. No logic lives here.

mod cli;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use nestkube_apiserver::admission::AdmissionConfig;
use nestkube_apiserver::server::connections::{Caps, Limits};
use nestkube_apiserver::server::flowcontrol::Config as FlowControlConfig;
use nestkube_apiserver::server::{self, ServeConfig, ServeOptions};

/// Virtual Kubernetes clusters, many per process.
#[derive(Parser, Debug)]
#[command(name = "nestkube", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: `text` or `json`.
    #[arg(
        long,
        global = true,
        default_value = "text",
        env = "NESTKUBE_LOG_FORMAT"
    )]
    log_format: String,
}

// Parsed once per process: the size of `Serve` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the root cluster and every virtual cluster (standalone mode: no
    /// parent cluster given), persisted in the data directory.
    Serve {
        /// Where objects, keys and kubeconfigs live.
        #[arg(long, default_value = ".nestkube")]
        data_dir: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Storage backend: `redb` (default) or `sled` (embedded, in the data
        /// directory), or `etcd` (shared by several replicas; see `--etcd-*`).
        #[arg(long, default_value = "redb")]
        storage_backend: nestkube_storage::Backend,
        #[command(flatten)]
        etcd: EtcdArgs,
        /// Host mode: provision the VirtualClusters created in the host
        /// cluster this kubeconfig names (the VirtualCluster CRD must be
        /// installed there).
        #[arg(long, env = "NESTKUBE_HOST_KUBECONFIG")]
        host_kubeconfig: Option<PathBuf>,
        /// Host mode inside a pod of the host cluster: use the pod's
        /// service account instead of a kubeconfig.
        #[arg(long, conflicts_with = "host_kubeconfig")]
        host_in_cluster: bool,
        /// Host mode: provision only the VirtualClusters matching this label
        /// selector (for several nestkube installs sharing one host).
        #[arg(long)]
        host_selector: Option<String>,
        /// Host mode: the only host namespaces tenant objects are synced
        /// into (comma-separated), for a service account with namespaced
        /// rights only there: the syncer then watches each of them instead
        /// of the whole host. Default: all namespaces.
        #[arg(long, value_delimiter = ',')]
        host_namespaces: Vec<String>,
        /// URL clients reach this server at, written into VirtualCluster
        /// endpoints and kubeconfigs (default: https://<listen address>).
        #[arg(long)]
        advertise_url: Option<String>,
        /// Another DNS name or IP address for the serving certificate
        /// (repeatable).
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        #[command(flatten)]
        dns: DnsArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        connections: ConnectionArgs,
        #[command(flatten)]
        flow_control: FlowControlArgs,
    },
    /// Run nestkube on this machine: `serve` with data in ./.nestkube on
    /// 127.0.0.1:6443, create the VirtualCluster `demo`, then print how to use both.
    Up {
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Manage VirtualClusters (tenancy.nestkube.io) through the API.
    Vc {
        #[command(subcommand)]
        command: VcCommand,
        /// Kubeconfig of the cluster holding the VirtualClusters.
        #[arg(long, global = true, default_value = ".nestkube/root.kubeconfig")]
        kubeconfig: PathBuf,
        /// Namespace of the VirtualCluster.
        #[arg(short, long, global = true, default_value = "default")]
        namespace: String,
    },
}

/// Policy every virtual cluster is held to (`serve` and `up`).
#[derive(clap::Args, Debug)]
struct PolicyArgs {
    /// Most levels of a virtual-cluster path (`a:b:c` has 3): a
    /// VirtualCluster whose cluster would be deeper is refused (403).
    #[arg(long, default_value_t = AdmissionConfig::DEFAULT_MAX_NESTING_DEPTH,
          value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    max_nesting_depth: usize,
}

impl PolicyArgs {
    fn admission(&self) -> AdmissionConfig {
        AdmissionConfig {
            max_nesting_depth: self.max_nesting_depth,
        }
    }
}

/// What a client connection may cost before and between its requests
/// (the API listener; `--dns-tcp-*` for DNS over TCP).
#[derive(clap::Args, Debug)]
struct ConnectionArgs {
    /// Most client connections open at once (0: no cap); more are closed
    /// as soon as they are accepted.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most client connections open at once from one address (IPv6: one
    /// /64); 0: no cap. Raise it behind a proxy that hides client addresses.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_PER_SOURCE)]
    max_connections_per_source: usize,
    /// Longest TLS handshake (e.g. `10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    tls_handshake_timeout: Duration,
    /// Longest wait for an HTTP/1 request's head.
    #[arg(long, default_value = "32s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open (a
    /// watch, a followed log or exec is a request in flight).
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Most DNS-over-TCP connections open at once (0: no cap).
    #[arg(long, default_value_t = 1_000)]
    dns_tcp_max_connections: usize,
    /// Most DNS-over-TCP connections open at once from one address.
    #[arg(long, default_value_t = 100)]
    dns_tcp_max_connections_per_source: usize,
}

impl ConnectionArgs {
    fn limits(&self) -> Limits {
        Limits {
            caps: Caps {
                max_connections: self.max_connections,
                max_per_source: self.max_connections_per_source,
            },
            handshake_timeout: self.tls_handshake_timeout,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    fn dns(&self) -> nestkube_syncer::dns::TcpLimits {
        nestkube_syncer::dns::TcpLimits {
            caps: Caps {
                max_connections: self.dns_tcp_max_connections,
                max_per_source: self.dns_tcp_max_connections_per_source,
            },
            ..Default::default()
        }
    }
}

/// How requests share the server between tenants (fair queuing per
/// virtual cluster, on by default; a cluster's `spec.limits` are upper
/// bounds on top).
#[derive(clap::Args, Debug)]
struct FlowControlArgs {
    /// Requests served at once, shared fairly between tenants (watches and
    /// other long-running requests excluded); 0 turns fair scheduling off.
    /// Default: 8 per core.
    #[arg(long)]
    max_requests_inflight: Option<usize>,
    /// Most of those one tenant holds at once (the rest stay free for the
    /// others). Default: half of `--max-requests-inflight`.
    #[arg(long)]
    max_requests_inflight_per_tenant: Option<usize>,
    /// Most requests of one tenant (a top-level virtual cluster and the
    /// clusters nested in it) waiting for a seat; more are refused with 429.
    #[arg(long, default_value_t = FlowControlConfig::DEFAULT_QUEUE_LENGTH)]
    max_queued_requests_per_tenant: usize,
    /// Longest wait for a seat before a request is refused with 429.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    request_queue_wait: Duration,
}

impl FlowControlArgs {
    fn config(&self) -> FlowControlConfig {
        let seats = self
            .max_requests_inflight
            .unwrap_or_else(FlowControlConfig::default_seats);
        FlowControlConfig {
            seats,
            per_tenant: self
                .max_requests_inflight_per_tenant
                .unwrap_or_else(|| FlowControlConfig::default_per_tenant(seats)),
            queue_length: self.max_queued_requests_per_tenant,
            queue_wait: self.request_queue_wait,
        }
    }
}

/// A duration as `90s`, `500ms` or `2m` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s, 500ms or 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?} is not a duration like 10s, 500ms or 2m")),
    }
    .and_then(|d| {
        if d.is_zero() {
            Err("a timeout must be greater than 0".into())
        } else {
            Ok(d)
        }
    })
}

/// Raises this process's open-file soft limit to its hard limit: every
/// client connection, watch and storage file is a descriptor, and the soft
/// limit (often 1024) would run out long before the connection caps. The
/// `rlimit` crate is used rather than raw `setrlimit` because it knows each
/// platform's ceiling (macOS refuses more than `kern.maxfilesperproc` even
/// with an unlimited hard limit).
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Where `--storage-backend etcd` stores objects.
#[derive(clap::Args, Debug)]
struct EtcdArgs {
    /// etcd client URLs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// Prefix of every key in etcd; installations sharing one etcd use distinct prefixes.
    #[arg(long, default_value = "/nestkube")]
    etcd_prefix: String,
    /// CA bundle of etcd's serving certificate (`https://` endpoints).
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long, requires = "etcd_keyfile")]
    etcd_certfile: Option<PathBuf>,
    /// Private key of `--etcd-certfile`.
    #[arg(long, requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
}

impl EtcdArgs {
    fn config(self) -> nestkube_storage::EtcdConfig {
        let tls = (self.etcd_cafile.is_some() || self.etcd_certfile.is_some()).then_some(
            nestkube_storage::EtcdTls {
                ca_file: self.etcd_cafile,
                cert_file: self.etcd_certfile,
                key_file: self.etcd_keyfile,
            },
        );
        nestkube_storage::EtcdConfig {
            endpoints: self.etcd_endpoints,
            prefix: self.etcd_prefix,
            tls,
            ..nestkube_storage::EtcdConfig::default()
        }
    }
}

/// DNS for tenant pods (virtual Service names), served by nestkube.
#[derive(clap::Args, Debug)]
struct DnsArgs {
    /// Serve DNS for tenant pods on this address (UDP and TCP), answering
    /// each pod from its own virtual cluster's `cluster.local`; every pod
    /// copy then gets `dnsPolicy: None` with nestkube as its nameserver and
    /// the virtual search path. Default: off (pods keep the parent's DNS).
    #[arg(long)]
    dns_listen: Option<SocketAddr>,
    /// The address pods use as their nameserver (port 53), e.g. the
    /// ClusterIP of the host Service exposing `--dns-listen`. Default: the
    /// IP of `--dns-listen` unless it is a wildcard address.
    #[arg(long, requires = "dns_listen")]
    dns_advertise: Option<IpAddr>,
    /// Resolvers for names outside `cluster.local` (comma-separated
    /// `ip:port`). Default: the nameservers of /etc/resolv.conf.
    #[arg(long, value_delimiter = ',', requires = "dns_listen")]
    dns_upstream: Vec<SocketAddr>,
}

#[derive(Subcommand, Debug)]
enum VcCommand {
    /// Create a VirtualCluster and wait until it is Ready.
    Create {
        /// Its name (also its cluster path: /clusters/<name>).
        name: String,
        /// Default RuntimeClass of the tenant's pods.
        #[arg(long)]
        runtime_class: Option<String>,
    },
    /// List VirtualClusters of the namespace.
    List {
        /// List every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Print a VirtualCluster as YAML.
    Get {
        /// Its name.
        name: String,
    },
    /// Delete a VirtualCluster and wait until its cluster is torn down.
    Delete {
        /// Its name.
        name: String,
    },
    /// Print a VirtualCluster's admin kubeconfig.
    Kubeconfig {
        /// Its name.
        name: String,
    },
}

/// Name of the VirtualCluster `nestkube up` creates.
const DEMO: &str = "demo";

async fn run_vc(command: VcCommand, kubeconfig: &Path, ns: &str) -> anyhow::Result<()> {
    let client = cli::vc::client(kubeconfig).await?;
    match command {
        VcCommand::Create {
            name,
            runtime_class,
        } => {
            let vc = cli::vc::create(&client, ns, &name, runtime_class).await?;
            let endpoint = vc.status.and_then(|s| s.endpoint).unwrap_or_default();
            println!("virtualcluster {ns}/{name} ready at {endpoint}");
        }
        VcCommand::List { all_namespaces } => {
            let ns = (!all_namespaces).then_some(ns);
            print!("{}", cli::vc::list(&client, ns).await?);
        }
        VcCommand::Get { name } => print!("{}", cli::vc::get(&client, ns, &name).await?),
        VcCommand::Delete { name } => {
            cli::vc::delete(&client, ns, &name).await?;
            println!("virtualcluster {ns}/{name} deleted");
        }
        VcCommand::Kubeconfig { name } => {
            print!("{}", cli::vc::kubeconfig(&client, ns, &name).await?)
        }
    }
    Ok(())
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NESTKUBE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    raise_fd_limit();
    let mut options = ServeOptions::default();
    let mut dns_tcp = nestkube_syncer::dns::TcpLimits::default();
    let mut host_namespaces = Vec::new();
    let mut dns_args = None;
    let (config, up) = match cli.command {
        Command::Serve {
            data_dir,
            listen,
            storage_backend,
            etcd,
            host_kubeconfig,
            host_in_cluster,
            host_selector,
            host_namespaces: namespaces,
            advertise_url,
            tls_sans,
            dns,
            policy,
            connections,
            flow_control,
        } => {
            host_namespaces = namespaces;
            dns_args = dns.dns_listen.is_some().then_some(dns);
            options = ServeOptions {
                host_kubeconfig,
                host_in_cluster,
                host_selector,
                advertise_url,
                tls_sans,
                admission: policy.admission(),
                connections: connections.limits(),
                flow_control: flow_control.config(),
            };
            dns_tcp = connections.dns();
            (
                ServeConfig {
                    data_dir,
                    listen,
                    backend: storage_backend.with_etcd_config(etcd.config()),
                },
                false,
            )
        }
        Command::Vc {
            command,
            kubeconfig,
            namespace,
        } => return run_vc(command, &kubeconfig, &namespace).await,
        Command::Up { policy } => {
            options.admission = policy.admission();
            (
                ServeConfig {
                    data_dir: PathBuf::from(".nestkube"),
                    listen: "127.0.0.1:6443".parse()?,
                    backend: nestkube_storage::Backend::default(),
                },
                true,
            )
        }
    };
    let api_url = options.advertise_url.clone();
    let running = server::start_with(config.clone(), options)
        .await
        .with_context(|| {
            format!(
                "starting nestkube with data in {}",
                config.data_dir.display()
            )
        })?;
    // DNS for tenant pods: the server answers from the pod index the
    // syncer fills.
    let (dns_server, pod_dns) = match dns_args {
        Some(args) => {
            let (server, pod_dns) = start_dns(&running.api, args, dns_tcp).await?;
            (Some(server), Some(pod_dns))
        }
        None => (None, None),
    };
    // Copies what must run from each virtual cluster down to its parent
    // (a served cluster, or the host of --host-kubeconfig/--host-in-cluster).
    let settings = nestkube_syncer::Settings {
        api_url,
        host_namespaces,
        dns: pod_dns,
    };
    if matches!(config.backend, nestkube_storage::Backend::Etcd(_)) {
        // Replicas share the store: only the holder of the syncer's lease syncs.
        let holder = format!(
            "{}/{}/{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "nestkube".to_string()),
            running.local_addr,
            std::process::id()
        );
        nestkube_syncer::spawn_when_leader(
            running.api.clone(),
            running.host.clone(),
            settings,
            holder,
        );
    } else {
        nestkube_syncer::spawn_with(running.api.clone(), running.host.clone(), settings);
    }
    eprintln!("nestkube is serving on https://{}", running.local_addr);
    eprintln!(
        "root cluster kubeconfig: {}",
        running.root_kubeconfig.display()
    );
    if up {
        let demo = config.data_dir.join(format!("{DEMO}.kubeconfig"));
        cli::vc::up_demo(&running.root_kubeconfig, DEMO, &demo)
            .await
            .context("creating the demo virtual cluster")?;
        println!(
            "\nTry it:\n  kubectl --kubeconfig {} get namespaces            # the root cluster\n  kubectl --kubeconfig {} get namespaces    # virtual cluster {DEMO}\n",
            running.root_kubeconfig.display(),
            demo.display()
        );
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("shutting down"),
        _ = running.wait() => {}
    }
    drop(dns_server);
    Ok(())
}

/// Starts the DNS server of `--dns-listen`; returns it and what the syncer
/// needs to point pods at it.
async fn start_dns(
    api: &Arc<nestkube_apiserver::server::ApiServer>,
    args: DnsArgs,
    tcp: nestkube_syncer::dns::TcpLimits,
) -> anyhow::Result<(
    nestkube_syncer::dns::DnsServer,
    nestkube_syncer::dns::PodDns,
)> {
    use nestkube_syncer::dns;
    let listen = args.dns_listen.context("--dns-listen")?;
    let nameserver = match args.dns_advertise {
        Some(ip) => ip,
        None if !listen.ip().is_unspecified() => listen.ip(),
        None => anyhow::bail!(
            "--dns-listen {listen} is a wildcard address: give --dns-advertise, the address pods reach it at"
        ),
    };
    let index = Arc::new(dns::PodIndex::default());
    let server = dns::serve(
        api.clone(),
        index.clone(),
        dns::DnsOptions {
            listen,
            upstreams: args.dns_upstream,
            tcp,
        },
    )
    .await?;
    eprintln!(
        "nestkube serves DNS for tenant pods on {} (udp) and {} (tcp); pods use nameserver {nameserver}",
        server.udp_addr, server.tcp_addr
    );
    Ok((server, dns::PodDns { nameserver, index }))
}
