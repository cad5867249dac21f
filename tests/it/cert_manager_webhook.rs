//! cert-manager's own admission webhook serving a virtual cluster.
//!
//! The webhook is cert-manager's server (its admission chain: resource
//! validation, CertificateRequest identity and approval, on
//! controller-runtime's webhook server; built by `e2e/setup
//! cert-manager-webhook`), run as a process with the virtual cluster's
//! kubeconfig. Its `ValidatingWebhookConfiguration` and
//! `MutatingWebhookConfiguration` are rendered from cert-manager's own Helm
//! chart (`webhook.url.host`), and the CA is put into their `caBundle` as
//! cert-manager's cainjector would.
//!
//! A tenant may not name loopback addresses, so the webhook listens on an
//! address of this machine on a veth pair made for the test, which the
//! VirtualCluster's `spec.network.allowedCIDRs` allows. Another virtual
//! cluster, without the configurations, is never subject to the webhook.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{self, Kubectl, LocalAddress, Server, kubectl_with_stdin, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const DENIED: &str = r#"admission webhook "webhook.cert-manager.io" denied the request"#;

/// The cert-manager webhook process, killed on drop; its log goes to a file.
struct Webhook {
    child: Child,
    log: PathBuf,
}

impl Webhook {
    /// Starts the webhook serving `cert` on every address at `port`
    /// (`/healthz` in plain HTTP on `healthz`), as a client of `kubeconfig`.
    fn start(bin: &Path, kubeconfig: &Path, dir: &Path, port: u16, healthz: u16) -> (Self, String) {
        let cert = nestkube_e2e::tls::ServingCert::issue(&[], &[webhook_ip()]).expect("cert");
        let cert_file = dir.join("webhook.crt");
        let key_file = dir.join("webhook.key");
        std::fs::write(&cert_file, &cert.cert_pem).unwrap();
        std::fs::write(&key_file, &cert.key_pem).unwrap();
        let log = dir.join("cert-manager-webhook.log");
        let file = std::fs::File::create(&log).expect("webhook log");
        let child = Command::new(bin)
            .arg(format!("--secure-port={port}"))
            .arg(format!("--healthz-port={healthz}"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--tls-cert-file")
            .arg(&cert_file)
            .arg("--tls-private-key-file")
            .arg(&key_file)
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start cert-manager's webhook");
        (Self { child, log }, cert.ca_pem)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The webhook's address: one per test process, in a range this machine
/// does not otherwise use.
fn webhook_ip() -> IpAddr {
    let n = std::process::id();
    IpAddr::V4(Ipv4Addr::new(10, 254, (n >> 8) as u8, (n % 250) as u8 + 2))
}

/// Whether the webhook answers `/healthz` (plain HTTP on loopback).
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

/// The chart's two webhook configurations for a webhook at `host`
/// (`ip:port`), as `helm template` renders them.
fn chart_webhooks(helm: &Path, chart: &Path, host: &str) -> String {
    let out = Command::new(helm)
        .args(["template", "cm"])
        .arg(chart)
        .args([
            "--namespace",
            "cert-manager",
            "--kube-version",
            "1.37.2",
            "--set",
            &format!("webhook.url.host={host}"),
            "--show-only",
            "templates/webhook-validating-webhook.yaml",
            "--show-only",
            "templates/webhook-mutating-webhook.yaml",
        ])
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Applies cert-manager's CRDs, unmodified, and waits until they serve.
fn install_crds(k: &Kubectl, crds: &Path) {
    k.ok(&["apply", "-f", crds.to_str().unwrap()]);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/certificates.cert-manager.io",
        "crd/certificaterequests.cert-manager.io",
        "--timeout=30s",
    ]);
}

fn certificate(name: &str, private_key: Value) -> String {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "secretName": format!("{name}-tls"),
            "dnsNames": ["app.example.com"],
            "issuerRef": {"name": "ca"},
            "privateKey": private_key,
        },
    })
    .to_string()
}

/// `kubectl create -f -` of `manifest`: Ok(stdout JSON) or Err(stderr).
fn create(k: &Kubectl, manifest: &str) -> Result<Value, String> {
    let (ok, out, err) = kubectl_with_stdin(
        k.bin.to_str().unwrap(),
        &k.kubeconfig,
        &["create", "-o", "json", "-f", "-"],
        manifest,
    );
    if ok { Ok(out) } else { Err(err) }
}

#[test]
fn cert_managers_webhook_validates_and_mutates_in_its_virtual_cluster_only() {
    if nestkube_e2e::e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0 (cert-manager's webhook is built by e2e/setup)");
        return;
    }
    let bins = nestkube_e2e::Binaries::locate().expect("e2e binaries (run e2e/setup)");
    let bin = nestkube_e2e::artifact("NESTKUBE_E2E_CERT_MANAGER_WEBHOOK")
        .expect("cert-manager's webhook (run e2e/setup cert-manager-webhook)");
    let chart = nestkube_e2e::artifact("NESTKUBE_E2E_CERT_MANAGER_CHART")
        .expect("cert-manager's chart (run e2e/setup cert-manager-webhook)");
    let Some(address) = LocalAddress::create("nkcm", webhook_ip()) else {
        return;
    };
    let server = Server::start();
    let spec = format!("{{network: {{allowedCIDRs: [{}/32]}}}}", address.ip);
    let certs = support::virtual_cluster(&server, "certs", &spec);
    let plain = support::virtual_cluster(&server, "plain", "{}");
    let crds = bins.crds.join("cert-manager");
    install_crds(&certs, &crds);
    install_crds(&plain, &crds);

    let port = support::free_address().port();
    let healthz = support::free_address().port();
    let (mut webhook, ca_pem) =
        Webhook::start(&bin, &certs.kubeconfig, &server.data_dir, port, healthz);
    assert!(
        wait_for(WAIT, || healthy(healthz)),
        "cert-manager's webhook did not start:\n{}",
        webhook.log()
    );

    // The chart's configurations, with the CA injected.
    let configurations = chart_webhooks(&bins.helm, &chart, &format!("{}:{port}", address.ip));
    certs.ok_stdin(&["apply", "-f", "-"], &configurations);
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&ca_pem);
    let inject =
        json!([{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": ca_bundle}]);
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        certs.ok(&[
            "patch",
            kind,
            "cm-cert-manager-webhook",
            "--type=json",
            "-p",
            &inject.to_string(),
        ]);
    }

    // cert-manager's validation refuses what its CRD schema lets through.
    let bad = certificate("weak", json!({"algorithm": "RSA", "size": 1024}));
    let mut refusal = String::new();
    assert!(
        wait_for(WAIT, || {
            refusal = create(&certs, &bad).err().unwrap_or_default();
            refusal.contains(DENIED)
        }),
        "{refusal}\nwebhook log:\n{}",
        webhook.log()
    );
    assert!(refusal.contains("spec.privateKey.size"), "{refusal}");
    assert!(
        !certs
            .output(&["get", "certificate", "weak"])
            .status
            .success()
    );
    let good = create(
        &certs,
        &certificate("app", json!({"algorithm": "ECDSA", "size": 256})),
    )
    .expect("a valid Certificate");
    assert_eq!(good["metadata"]["name"], "app");

    // Its mutating identity plugin stamps who asked into a
    // CertificateRequest, from the AdmissionReview's userInfo.
    let whoami = certs.ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    let csr = nestkube_e2e::tls::csr_pem("app.example.com").unwrap();
    let request = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": "app-1", "namespace": "default"},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(csr),
            "issuerRef": {"name": "ca"},
        },
    });
    let created = create(&certs, &request.to_string()).expect("a CertificateRequest");
    assert_eq!(created["spec"]["username"], whoami.trim(), "{created}");
    assert!(
        created["spec"]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "system:authenticated")),
        "{created}"
    );

    // The other cluster has no such configuration: the webhook never sees
    // its objects.
    create(&plain, &bad).expect("no webhook in the other virtual cluster");

    // With the webhook gone, `failurePolicy: Fail` refuses as upstream.
    webhook.stop();
    let err = create(&certs, &certificate("later", json!({}))).expect_err("the webhook is down");
    assert!(
        err.contains(r#"failed calling webhook "webhook.cert-manager.io""#),
        "{err}"
    );
    assert!(err.contains("InternalError"), "{err}");
}
