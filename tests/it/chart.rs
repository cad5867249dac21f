//! The Helm chart (`charts/nestkube`) on the real e2e host: it lints, renders
//! objects the real kube-apiserver accepts, installs, upgrades and uninstalls
//! leaving only what docs/install.md says stays.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::support::{Kubectl, Server, tenant_kubectl};
use nestkube_e2e::{HostCluster, run, unique_name, wait_for};

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/nestkube")
}

/// Runs helm (v3, built by e2e/setup) as the host admin.
fn helm(host: &HostCluster, args: &[&str]) -> Output {
    let mut c = host.command(&host.bins().helm);
    c.args(args);
    run(c, None)
}

fn helm_ok(host: &HostCluster, args: &[&str]) -> String {
    let out = helm(host, args);
    assert!(
        out.status.success(),
        "helm {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn chart_lints_and_renders_what_the_apiserver_accepts() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    helm_ok(host, &["lint", chart]);
    let ns = host.namespace("chart-render");
    for extra in [
        &[][..],
        &["--set", &format!("rbac.namespaces={{{}}}", ns.name())][..],
        &[
            "--set",
            "storage.type=etcd",
            "--set",
            "storage.etcd.endpoints={https://etcd:2379}",
            "--set",
            "storage.etcd.tlsSecretName=etcd-tls",
            "--set",
            "replicas=3",
        ][..],
        &[
            "--set",
            "service.type=LoadBalancer",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "storage.embedded.persistence.enabled=false",
        ][..],
        &[
            "--set",
            "dns.enabled=true",
            "--set",
            "dns.clusterIP=10.96.0.53",
            "--set",
            "networkPolicy.enabled=true",
        ][..],
    ] {
        let release = unique_name("r");
        let mut args = vec![
            "template",
            &release,
            chart,
            "-n",
            ns.name(),
            "--include-crds",
        ];
        args.extend_from_slice(extra);
        let manifest = helm_ok(host, &args);
        let out = host.kubectl_stdin(
            &["apply", "--dry-run=server", "-n", ns.name(), "-f", "-"],
            Some(&manifest),
        );
        assert!(
            out.status.success(),
            "the real kube-apiserver refused the rendered chart ({extra:?}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // values.schema.json catches typos and wrong values, naming them.
    for (set, expect) in [
        ("storag.type=etcd", "storag"),
        ("storage.type=etc", "/storage/type"),
        ("replicas=0", "/replicas"),
        ("dns.enabled=true", "dns.clusterIP"),
    ] {
        let out = helm(host, &["template", "r", chart, "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr.contains(expect), "{set}: {stderr}");
    }
    // Two replicas on one embedded volume are refused with the reason.
    let out = helm(host, &["template", "r", chart, "--set", "replicas=2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage.type=etcd"));
}

#[test]
fn chart_installs_upgrades_and_uninstalls() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let ns = host.namespace("chart-install");
    let ns = ns.name();
    let release = unique_name("nk");
    let full = format!("{release}-nestkube");
    helm_ok(host, &["install", &release, chart, "-n", ns]);
    let status = helm_ok(host, &["status", &release, "-n", ns, "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["info"]["status"], "deployed");
    for kind in [
        "deployment",
        "service",
        "serviceaccount",
        "poddisruptionbudget",
        "persistentvolumeclaim",
    ] {
        host.kubectl_ok(&[
            "get",
            kind,
            &format!(
                "{full}{}",
                if kind == "persistentvolumeclaim" {
                    "-data"
                } else {
                    ""
                }
            ),
            "-n",
            ns,
        ]);
    }
    for kind in ["clusterrole", "clusterrolebinding"] {
        host.kubectl_ok(&["get", kind, &full]);
    }
    host.kubectl_ok(&["get", "crd", "virtualclusters.tenancy.nestkube.io"]);
    let deploy = host.get_json(&["deployment", &full, "-n", ns]);
    let pod = &deploy["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--host-in-cluster"), "{args:?}");
    assert!(
        args.contains(&format!("--advertise-url=https://{full}.{ns}.svc:443").as_str()),
        "{args:?}"
    );

    // Upgrade with changed values.
    helm_ok(
        host,
        &[
            "upgrade",
            &release,
            chart,
            "-n",
            ns,
            "--reuse-values",
            "--set",
            "service.type=NodePort",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "tenantEndpoint.url=https://tenants.example.com",
        ],
    );
    let svc = host.get_json(&["service", &full, "-n", ns]);
    assert_eq!(svc["spec"]["type"], "NodePort");
    host.kubectl_ok(&["get", "networkpolicy", &full, "-n", ns]);
    let deploy = host.get_json(&["deployment", &full, "-n", ns]);
    assert!(
        deploy["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&"--advertise-url=https://tenants.example.com".into())
    );

    // Uninstall: only the CRD and the data PVC stay (docs/install.md).
    helm_ok(host, &["uninstall", &release, "-n", ns, "--wait"]);
    for (kind, namespaced) in [
        ("deployment", true),
        ("service", true),
        ("serviceaccount", true),
        ("poddisruptionbudget", true),
        ("networkpolicy", true),
        ("clusterrole", false),
        ("clusterrolebinding", false),
    ] {
        let mut args = vec!["get", kind, &full, "--ignore-not-found", "-o", "name"];
        if namespaced {
            args.extend(["-n", ns]);
        }
        assert_eq!(
            host.kubectl_ok(&args).trim(),
            "",
            "{kind} left after uninstall"
        );
    }
    host.kubectl_ok(&["get", "crd", "virtualclusters.tenancy.nestkube.io"]);
    host.kubectl_ok(&["get", "pvc", &format!("{full}-data"), "-n", ns]);
}

/// A kubeconfig for the host that authenticates with `token`.
fn token_kubeconfig(host: &HostCluster, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: host\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: host\n  context: {{cluster: host, user: sa}}\ncurrent-context: host\n",
        host.server(),
        host.ca_file().display()
    )
}

/// Whether the chart's service account may `verb resource` (in `ns`, if given).
fn sa_can(host: &HostCluster, sa: &str, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb, resource, "--as", sa];
    match ns {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("--all-namespaces"),
    }
    let out = host.kubectl(&args);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// nestkube run with nothing but the chart's ServiceAccount token (as its pod
/// would; kwok nodes run no containers, so it runs on 127.0.0.1) provisions a
/// VirtualCluster and syncs its pod; the RBAC grants no more than that, and
/// taking a needed verb away stops the matching work until it is given back.
#[test]
fn nestkube_runs_with_the_charts_service_account() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let chart = chart();
    let ns = host.namespace("chart-sa");
    let ns = ns.name();
    let release = unique_name("nk");
    let full = format!("{release}-nestkube");
    // Least privilege: namespaced rules only in the namespace it serves.
    helm_ok(
        host,
        &[
            "install",
            &release,
            chart.to_str().unwrap(),
            "-n",
            ns,
            "--set",
            &format!("rbac.namespaces={{{ns}}}"),
        ],
    );
    let sa = format!("system:serviceaccount:{ns}:{full}");
    for (verb, resource, namespace, allowed) in [
        ("watch", "virtualclusters.tenancy.nestkube.io", None, true),
        (
            "patch",
            "virtualclusters.tenancy.nestkube.io/status",
            None,
            true,
        ),
        ("create", "pods", Some(ns), true),
        ("create", "secrets", Some(ns), true),
        ("create", "pods/exec", Some(ns), true),
        ("list", "nodes", None, true),
        ("get", "namespaces", None, true),
        ("create", "pods", Some("kube-system"), false),
        ("get", "secrets", Some("kube-system"), false),
        (
            "create",
            "virtualclusters.tenancy.nestkube.io",
            Some(ns),
            false,
        ),
        (
            "delete",
            "virtualclusters.tenancy.nestkube.io",
            Some(ns),
            false,
        ),
        ("create", "clusterroles", None, false),
        ("create", "rolebindings", Some(ns), false),
        ("delete", "nodes", None, false),
        ("create", "namespaces", None, false),
        ("*", "*", None, false),
    ] {
        assert_eq!(
            sa_can(host, &sa, verb, resource, namespace),
            allowed,
            "{sa} {verb} {resource} in {namespace:?}"
        );
    }

    let token = host
        .kubectl_ok(&["create", "token", &full, "-n", ns, "--duration=1h"])
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("chart-sa.kubeconfig");
    std::fs::write(&kubeconfig, token_kubeconfig(host, &token)).unwrap();
    let label = unique_name("chart");
    let selector = format!("e2e.nestkube.io/test={label}");
    // As the chart's deployment does with rbac.namespaces: the syncer
    // watches only there.
    let flags = [
        OsStr::new("--host-kubeconfig"),
        kubeconfig.as_os_str(),
        OsStr::new("--host-namespaces"),
        OsStr::new(ns),
        OsStr::new("--host-selector"),
        OsStr::new(&selector),
    ];
    let server = Server::start_with(&flags);

    let name = unique_name("vc");
    host.apply(&format!(
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    e2e.nestkube.io/test: {label}\nspec:\n  isolation:\n    runtimeClassName: runc\n"
    ));
    host.kubectl_ok(&[
        "wait",
        &format!("vc/{name}"),
        "-n",
        ns,
        "--for=condition=Ready",
        "--timeout=60s",
    ]);
    let admin = Kubectl {
        bin: host.bins().kubectl.clone(),
        kubeconfig: host.kubeconfig(),
    };
    let tenant = tenant_kubectl(&admin, &server.data_dir, ns, &name);
    let uid = host
        .kubectl_ok(&[
            "get",
            "vc",
            &name,
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .to_string();
    let host_pods = |phase: &str| {
        let out = host.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("tenancy.nestkube.io/vc-uid={uid}"),
            "-o",
            &format!("jsonpath={{range .items[?(@.status.phase==\"{phase}\")]}}{{.spec.runtimeClassName}} {{end}}"),
        ]);
        out.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    tenant.ok(&["run", "web", "--image=nginx", "-n", "default"]);
    let classes = wait_for(
        "the tenant pod Running on the host",
        Duration::from_secs(60),
        || Some(host_pods("Running")).filter(|p| !p.is_empty()),
    );
    assert_eq!(classes, vec!["runc".to_string()]);
    wait_for("the virtual pod Running", Duration::from_secs(30), || {
        (tenant.ok(&[
            "get",
            "pod",
            "web",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.phase}",
        ]) == "Running")
            .then_some(())
    });

    // Take `create pods` away: a new tenant pod cannot reach the host ...
    let role = host.get_json(&["role", &full, "-n", ns]);
    let original = serde_json::to_string(&role["rules"]).unwrap();
    let mut rules = role["rules"].clone();
    for rule in rules.as_array_mut().unwrap() {
        if rule["resources"]
            .as_array()
            .unwrap()
            .contains(&"pods".into())
        {
            let verbs = rule["verbs"].as_array_mut().unwrap();
            verbs.retain(|v| v != "create");
        }
    }
    let patch = |rules: &str| {
        host.kubectl_ok(&[
            "patch",
            "role",
            &full,
            "-n",
            ns,
            "--type=merge",
            "-p",
            &format!("{{\"rules\":{rules}}}"),
        ])
    };
    patch(&serde_json::to_string(&rules).unwrap());
    wait_for("RBAC to drop create pods", Duration::from_secs(10), || {
        (!sa_can(host, &sa, "create", "pods", Some(ns))).then_some(())
    });
    tenant.ok(&["run", "second", "--image=nginx", "-n", "default"]);
    // A bounded look (the syncer retries with backoff while it is refused).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(host_pods("Running").len() + host_pods("Pending").len(), 1);
    // ... and once the verb is back, the syncer's retry brings it there.
    patch(&original);
    wait_for(
        "the second pod on the host",
        Duration::from_secs(60),
        || (host_pods("Running").len() == 2).then_some(()),
    );
    host.kubectl_ok(&["delete", "vc", &name, "-n", ns, "--timeout=60s"]);
    helm_ok(host, &["uninstall", &release, "-n", ns]);
    drop(server);
}
