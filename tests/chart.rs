//! The Helm chart (`charts/nestkube`) on the real e2e host: it lints, renders
//! objects the real kube-apiserver accepts, installs, upgrades and uninstalls
//! leaving only what docs/install.md says stays.

use std::path::PathBuf;
use std::process::Output;

use nestkube_e2e::{HostCluster, run, unique_name};

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
