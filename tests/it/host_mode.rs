//! Host mode end to end (`nestkube serve --host-kubeconfig FILE`) against the
//! REAL e2e host cluster: a VirtualCluster applied on the host with kubectl
//! becomes Ready, its kubeconfig Secret on the host works against nestkube,
//! a second VirtualCluster of the same name waits (NameTaken) until the
//! first is deleted, and deleting tears everything down (the Secret, the
//! synced objects labelled with the VirtualCluster's uid, the virtual
//! cluster's storage).
//!
//! Each test runs its own nestkube restricted (`--host-selector`) to the
//! VirtualClusters it labels, so tests and other installs sharing the host
//! never provision each other's VirtualClusters.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Kubectl, Server, keys_under, tenant_kubectl};
use nestkube_e2e::HostCluster;

/// Label every VirtualCluster of one test carries (its value unique).
const TEST_LABEL: &str = "e2e.nestkube.io/test";

fn crd_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(nestkube_tenant_crds::CRD_YAML_PATH)
}

/// Installs the VirtualCluster CRD on the host (once per test process;
/// another process may be installing it too) and waits until it is served.
fn install_crd(host: &HostCluster) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| host.apply_crd(&crd_path(), "virtualclusters.tenancy.nestkube.io"));
}

/// `nestkube serve` flags provisioning the host's VirtualClusters labelled
/// `label=value`.
fn host_mode_flags(host: &HostCluster, value: &str) -> Vec<std::ffi::OsString> {
    vec![
        "--host-kubeconfig".into(),
        host.kubeconfig().into(),
        "--host-selector".into(),
        format!("{TEST_LABEL}={value}").into(),
    ]
}

/// A nestkube server provisioning the host's VirtualClusters labelled `label=value`.
fn host_mode_server(host: &HostCluster, value: &str) -> Server {
    let flags = host_mode_flags(host, value);
    Server::start_with(&flags.iter().map(|f| f.as_os_str()).collect::<Vec<_>>())
}

fn vc_manifest(ns: &str, name: &str, label: &str) -> String {
    format!(
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    {TEST_LABEL}: {label}\nspec: {{}}\n"
    )
}

/// The VirtualCluster `ns/name` on the host, if it exists.
fn get_vc(host: &HostCluster, ns: &str, name: &str) -> Option<serde_json::Value> {
    let out = host.kubectl(&["get", "vc", name, "-n", ns, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// The Ready condition of `vc`: (status, reason).
fn ready(vc: &serde_json::Value) -> Option<(String, String)> {
    vc["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn wait_condition(host: &HostCluster, ns: &str, name: &str, status: &str, reason: &str) {
    nestkube_e2e::wait_for(
        &format!("VirtualCluster {ns}/{name} Ready={status} ({reason})"),
        Duration::from_secs(30),
        || {
            get_vc(host, ns, name)
                .and_then(|vc| ready(&vc))
                .filter(|(s, r)| s == status && r == reason)
        },
    );
}

/// kubectl (v1.37.2, built by e2e/setup) as the host's admin.
fn host_kubectl(host: &HostCluster) -> Kubectl {
    Kubectl {
        bin: host.bins().kubectl.clone(),
        kubeconfig: host.kubeconfig(),
    }
}

/// One test's share of the host: the CRD installed, a namespace, a label
/// value for its VirtualClusters and a nestkube provisioning just those.
struct Fixture {
    host: &'static HostCluster,
    ns: nestkube_e2e::TestNamespace<'static>,
    label: String,
    server: Server,
}

impl Fixture {
    /// `None` when e2e tests are switched off.
    fn new(prefix: &str) -> Option<Self> {
        let host = HostCluster::shared()?;
        install_crd(host);
        let label = nestkube_e2e::unique_name(prefix);
        Some(Self {
            host,
            ns: host.namespace(prefix),
            server: host_mode_server(host, &label),
            label,
        })
    }
}

#[test]
fn host_virtual_cluster_lifecycle() {
    let Some(Fixture {
        host,
        ns,
        label,
        mut server,
    }) = Fixture::new("hostmode")
    else {
        return;
    };
    let other = host.namespace("hostmode-b");
    let name = nestkube_e2e::unique_name("vc");

    host.apply(&vc_manifest(ns.name(), &name, &label));
    wait_condition(host, ns.name(), &name, "True", "Provisioned");
    let vc = get_vc(host, ns.name(), &name).expect("vc");
    let uid = vc["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(vc["status"]["phase"], "Ready");
    assert_eq!(
        vc["status"]["observedGeneration"],
        vc["metadata"]["generation"]
    );
    assert!(
        vc["status"]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/clusters/{name}")),
        "{vc}"
    );
    assert_eq!(
        vc["status"]["kubeconfigSecretRef"],
        serde_json::json!({"name": format!("{name}-kubeconfig"), "key": "value"})
    );
    assert_eq!(
        vc["metadata"]["finalizers"],
        serde_json::json!(["tenancy.nestkube.io/teardown"])
    );
    let secret = host.get_json(&["secret", &format!("{name}-kubeconfig"), "-n", ns.name()]);
    assert_eq!(
        secret["metadata"]["labels"]["tenancy.nestkube.io/virtual-cluster"],
        name.as_str()
    );
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str()
    );

    // The tenant's kubeconfig works against nestkube.
    let tenant = tenant_kubectl(&host_kubectl(host), &server.data_dir, ns.name(), &name);
    tenant.ok(&["create", "namespace", "team"]);
    tenant.ok(&[
        "create",
        "configmap",
        "c",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    assert_eq!(
        tenant.ok(&[
            "get",
            "configmap",
            "c",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.k}"
        ]),
        "v"
    );

    // A second VirtualCluster of the same name elsewhere on the host waits.
    host.apply(&vc_manifest(other.name(), &name, &label));
    wait_condition(host, other.name(), &name, "False", "NameTaken");
    let waiting = get_vc(host, other.name(), &name).expect("second vc");
    assert!(waiting["metadata"]["finalizers"].is_null(), "{waiting}");

    // What a syncer put into the host namespace for this VirtualCluster.
    host.kubectl_ok(&["create", "configmap", "synced", "-n", ns.name()]);
    host.kubectl_ok(&[
        "label",
        "configmap",
        "synced",
        "-n",
        ns.name(),
        &format!("tenancy.nestkube.io/vc-uid={uid}"),
    ]);
    host.kubectl_ok(&["create", "configmap", "unrelated", "-n", ns.name()]);

    host.kubectl_ok(&["delete", "vc", &name, "-n", ns.name(), "--timeout=30s"]);
    assert!(get_vc(host, ns.name(), &name).is_none());
    let left = host.kubectl_ok(&["get", "configmaps,secrets", "-n", ns.name(), "-o", "name"]);
    assert!(
        !left.contains(&format!("secret/{name}-kubeconfig")),
        "{left}"
    );
    assert!(!left.contains("configmap/synced"), "{left}");
    assert!(left.contains("configmap/unrelated"), "{left}");
    // The old kubeconfig no longer reaches anything.
    let err = tenant.fails(&["get", "namespaces"]);
    assert!(
        err.contains("Unauthorized") || err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );

    // The waiting VirtualCluster takes the released path.
    wait_condition(host, other.name(), &name, "True", "Provisioned");
    let second = tenant_kubectl(&host_kubectl(host), &server.data_dir, other.name(), &name);
    let namespaces = second.ok(&["get", "namespaces", "-o", "name"]);
    assert!(!namespaces.contains("namespace/team"), "{namespaces}");
    host.kubectl_ok(&["delete", "vc", &name, "-n", other.name(), "--timeout=30s"]);

    server.kill();
    assert_eq!(
        keys_under(&server.data_dir, &format!("/{name}/")),
        Vec::<String>::new()
    );
    assert_eq!(
        keys_under(&server.data_dir, &format!("/_clusters/{name}")),
        Vec::<String>::new()
    );
}

#[test]
fn invalid_spec_is_reported() {
    let Some(Fixture {
        host,
        ns,
        label,
        server: _server,
    }) = Fixture::new("hostmode-invalid")
    else {
        return;
    };
    let name = nestkube_e2e::unique_name("vc");
    // Passes the host's CRD schema, fails `validate`: a negative quota.
    let manifest = vc_manifest(ns.name(), &name, &label).replace(
        "spec: {}",
        "spec:\n  limits:\n    syncedQuota:\n      hard:\n        pods: \"-1\"",
    );
    host.apply(&manifest);
    wait_condition(host, ns.name(), &name, "False", "InvalidSpec");
    host.kubectl_ok(&["delete", "vc", &name, "-n", ns.name(), "--timeout=30s"]);
}

/// A restarted nestkube keeps serving a host VirtualCluster (same
/// kubeconfig, same data), keeps its claim on the path, and still tears it
/// down on delete.
#[test]
fn host_virtual_cluster_survives_a_restart() {
    let Some(Fixture {
        host,
        ns,
        label,
        mut server,
    }) = Fixture::new("hostmode-restart")
    else {
        return;
    };
    let other = host.namespace("hostmode-restart-b");
    let name = nestkube_e2e::unique_name("vc");
    host.apply(&vc_manifest(ns.name(), &name, &label));
    wait_condition(host, ns.name(), &name, "True", "Provisioned");
    let tenant = tenant_kubectl(&host_kubectl(host), &server.data_dir, ns.name(), &name);
    tenant.ok(&["create", "configmap", "kept", "-n", "default"]);

    server.kill();
    // While it is down, a rival of the same name appears.
    host.apply(&vc_manifest(other.name(), &name, &label));
    let flags = host_mode_flags(host, &label);
    let mut restarted = Server::start_in_with(
        &server.data_dir,
        &flags.iter().map(|f| f.as_os_str()).collect::<Vec<_>>(),
    );
    wait_condition(host, other.name(), &name, "False", "NameTaken");
    wait_condition(host, ns.name(), &name, "True", "Provisioned");
    // The restarted server listens elsewhere (port 0): the Secret follows,
    // the cluster's data and CA are the same.
    let restarted_url = std::fs::read_to_string(&restarted.kubeconfig).expect("root kubeconfig");
    let port = restarted_url
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .expect("server line")
        .to_string();
    let tenant = nestkube_e2e::wait_for(
        "the Secret to name the new address",
        Duration::from_secs(30),
        || {
            let t = tenant_kubectl(&host_kubectl(host), &server.data_dir, ns.name(), &name);
            let config = std::fs::read_to_string(&t.kubeconfig).unwrap_or_default();
            config
                .contains(&format!("127.0.0.1:{port}/clusters/"))
                .then_some(t)
        },
    );
    assert_eq!(
        tenant
            .ok(&["get", "configmap", "kept", "-n", "default", "-o", "name"])
            .trim(),
        "configmap/kept"
    );

    host.kubectl_ok(&["delete", "vc", &name, "-n", ns.name(), "--timeout=30s"]);
    wait_condition(host, other.name(), &name, "True", "Provisioned");
    host.kubectl_ok(&["delete", "vc", &name, "-n", other.name(), "--timeout=30s"]);
    restarted.kill();
    assert_eq!(
        keys_under(&server.data_dir, &format!("/{name}/")),
        Vec::<String>::new()
    );
}

/// Create -> Ready latency on the real host over 20 VirtualClusters
/// (created one after another, each awaited), printed as p50/p99.
#[test]
fn create_to_ready_latency() {
    let Some(Fixture {
        host,
        ns,
        label,
        server: _server,
    }) = Fixture::new("hostmode-latency")
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut samples = rt.block_on(async {
        let client = host_client(host).await;
        let api: kube::Api<nestkube_tenant_crds::VirtualCluster> =
            kube::Api::namespaced(client, ns.name());
        let create_ready = |name: String| {
            let api = api.clone();
            let label = label.clone();
            async move {
                let mut vc = nestkube_tenant_crds::VirtualCluster::new(&name, Default::default());
                vc.metadata.labels = Some([(TEST_LABEL.to_string(), label)].into());
                let started = Instant::now();
                api.create(&Default::default(), &vc)
                    .await
                    .expect("create vc");
                await_vc(&api, &name, |v| {
                    v.and_then(|v| v.status.as_ref())
                        .is_some_and(|s| s.is_ready())
                })
                .await;
                started.elapsed()
            }
        };
        // The first one also waits for the provisioner's host watch to start
        // (the server is ready before that): reported apart.
        let cold = create_ready(format!("{label}-warmup")).await;
        eprintln!("host mode: first VirtualCluster after server start Ready in {cold:?}");
        let mut samples = Vec::new();
        for i in 0..20 {
            samples.push(create_ready(format!("{label}-{i}")).await);
        }
        let names: Vec<String> = (0..20)
            .map(|i| format!("{label}-{i}"))
            .chain([format!("{label}-warmup")])
            .collect();
        for name in &names {
            api.delete(name, &Default::default())
                .await
                .expect("delete vc");
        }
        for name in &names {
            await_vc(&api, name, |v| v.is_none()).await;
        }
        samples
    });
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    eprintln!(
        "host mode create -> Ready over {} VirtualClusters: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
    assert!(pick(0.99) < Duration::from_secs(5), "{samples:?}");
}

/// Waits (30 s at most) until VirtualCluster `name` meets `condition`.
async fn await_vc(
    api: &kube::Api<nestkube_tenant_crds::VirtualCluster>,
    name: &str,
    condition: impl Fn(Option<&nestkube_tenant_crds::VirtualCluster>) -> bool,
) {
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(api.clone(), name, condition),
    )
    .await
    .unwrap_or_else(|_| panic!("VirtualCluster {name}: condition not met within 30s"))
    .expect("watch");
}

async fn host_client(host: &HostCluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(host.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}
