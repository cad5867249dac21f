//! Third-party admission webhook servers serving a virtual cluster: the
//! servers of software no one here wrote, run as processes with the
//! virtual cluster's kubeconfig.
//!
//! cert-manager: the webhook is cert-manager's server (its admission chain: resource
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
//!
//! kubebuilder-style: controller-runtime's manager and webhook builder
//! with a typed `Defaulter` and `Validator` of a custom resource (the
//! client-go checker's `webhook` command), as every kubebuilder operator
//! generates them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use nestkube_e2e::tls::ServingCert;

use crate::support::{self, Kubectl, LocalAddress, Server, kubectl_with_stdin, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const DENIED: &str = r#"admission webhook "webhook.cert-manager.io" denied the request"#;

/// A webhook server process, killed on drop; its log goes to a file.
struct Webhook {
    child: Child,
    log: PathBuf,
}

impl Webhook {
    /// Starts `command` with its output in `log`.
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("webhook log");
        let child = command
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start the webhook server");
        Self { child, log }
    }

    /// cert-manager's webhook serving `cert` on every address at `port`
    /// (`/healthz` in plain HTTP on `healthz`), as a client of `kubeconfig`.
    fn cert_manager(
        bin: &Path,
        kubeconfig: &Path,
        dir: &Path,
        cert: &ServingCert,
        port: u16,
        healthz: u16,
    ) -> Self {
        let cert_file = dir.join("webhook.crt");
        let key_file = dir.join("webhook.key");
        std::fs::write(&cert_file, &cert.cert_pem).unwrap();
        std::fs::write(&key_file, &cert.key_pem).unwrap();
        let mut command = Command::new(bin);
        command
            .arg(format!("--secure-port={port}"))
            .arg(format!("--healthz-port={healthz}"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--tls-cert-file")
            .arg(&cert_file)
            .arg("--tls-private-key-file")
            .arg(&key_file);
        Self::spawn(command, dir.join("cert-manager-webhook.log"))
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

/// A webhook's address: one per test process and `test` (0, 1, ...), in
/// a range this machine does not otherwise use.
fn webhook_ip(test: u8) -> IpAddr {
    let n = std::process::id();
    IpAddr::V4(Ipv4Addr::new(
        10,
        254 - test,
        (n >> 8) as u8,
        (n % 250) as u8 + 2,
    ))
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
    let Some(address) = LocalAddress::create("nkcm", webhook_ip(0)) else {
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
    let cert = ServingCert::issue(&[], &[address.ip]).expect("cert");
    let mut webhook = Webhook::cert_manager(
        &bin,
        &certs.kubeconfig,
        &server.data_dir,
        &cert,
        port,
        healthz,
    );
    assert!(
        wait_for(WAIT, || healthy(healthz)),
        "cert-manager's webhook did not start:\n{}",
        webhook.log()
    );

    // The chart's configurations, with the CA injected.
    let configurations = chart_webhooks(&bins.helm, &chart, &format!("{}:{port}", address.ip));
    certs.ok_stdin(&["apply", "-f", "-"], &configurations);
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&cert.ca_pem);
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

/// upstream's CronTab CRD (one version, `stable.example.com/v1`).
const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
              replicas: {type: integer}
"#;

/// The webhook configurations kubebuilder generates for a type with a
/// defaulter and a validator (`config/webhook/manifests.yaml`), at `url`.
fn kubebuilder_configurations(base: &str, ca_bundle: &str) -> [String; 2] {
    let hook = |kind: &str, name: &str, path: &str| {
        let config = if kind.starts_with("Mutating") {
            "mutating-webhook-configuration"
        } else {
            "validating-webhook-configuration"
        };
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": config},
            "webhooks": [{"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": {"url": format!("{base}{path}"), "caBundle": ca_bundle},
                "rules": [{"apiGroups": ["stable.example.com"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["crontabs"]}]}]})
        .to_string()
    };
    [
        hook(
            "MutatingWebhookConfiguration",
            "mcrontab-v1.kb.io",
            "/mutate-stable-example-com-v1-crontab",
        ),
        hook(
            "ValidatingWebhookConfiguration",
            "vcrontab-v1.kb.io",
            "/validate-stable-example-com-v1-crontab",
        ),
    ]
}

fn crontab(name: &str, cron_spec: &str) -> String {
    json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"cronSpec": cron_spec, "image": "busybox"}})
    .to_string()
}

#[test]
fn a_kubebuilder_style_webhook_defaults_and_validates_a_custom_resource() {
    if nestkube_e2e::e2e_disabled() {
        eprintln!("SKIPPED: NESTKUBE_E2E=0 (the checker is built by e2e/setup)");
        return;
    }
    let bins = nestkube_e2e::Binaries::locate().expect("e2e binaries (run e2e/setup)");
    let Some(address) = LocalAddress::create("nkkb", webhook_ip(1)) else {
        return;
    };
    let server = Server::start();
    let spec = format!("{{network: {{allowedCIDRs: [{}/32]}}}}", address.ip);
    let k = support::virtual_cluster(&server, "operators", &spec);
    k.ok_stdin(&["apply", "-f", "-"], CRONTAB_CRD);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=30s",
    ]);

    // The operator's webhook server, as kubebuilder's main.go starts it.
    let cert = ServingCert::issue(&[], &[address.ip]).expect("cert");
    let cert_dir = server.data_dir.join("webhook-certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::write(cert_dir.join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(cert_dir.join("tls.key"), &cert.key_pem).unwrap();
    let port = support::free_address().port();
    let mut command = Command::new(&bins.checker);
    command
        .args(["webhook", "--kubeconfig"])
        .arg(&k.kubeconfig)
        .args([
            "--host",
            &address.ip.to_string(),
            "--port",
            &port.to_string(),
        ])
        .arg("--cert-dir")
        .arg(&cert_dir);
    let webhook = Webhook::spawn(command, server.data_dir.join("kubebuilder-webhook.log"));
    assert!(
        wait_for(WAIT, || std::net::TcpStream::connect((address.ip, port))
            .is_ok()),
        "the webhook server did not start:\n{}",
        webhook.log()
    );
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&cert.ca_pem);
    for configuration in
        kubebuilder_configurations(&format!("https://{}:{port}", address.ip), &ca_bundle)
    {
        k.ok_stdin(&["apply", "-f", "-"], &configuration);
    }

    // Defaulted by the mutating webhook (controller-runtime computes the
    // JSONPatch from the typed object it defaulted).
    let created = create(&k, &crontab("nightly", "0 3 * * *")).expect("a valid CronTab");
    assert_eq!(created["spec"]["replicas"], 1, "{created}");
    assert_eq!(
        created["metadata"]["labels"]["defaulted-by"], "controller-runtime",
        "{created}"
    );
    // Refused by the validating webhook, in its words.
    let refusal = create(&k, &crontab("broken", "every night")).expect_err("an invalid CronTab");
    assert!(
        refusal.contains(
            r#"admission webhook "vcrontab-v1.kb.io" denied the request: spec.cronSpec must have 5 fields, not 2"#
        ),
        "{refusal}\nwebhook log:\n{}",
        webhook.log()
    );
    assert!(!k.output(&["get", "crontab", "broken"]).status.success());
    // An update: validated again, with the validator's warning.
    let out = k.output(&[
        "patch",
        "crontab",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"alpine"}}"#,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("updated by a kubebuilder-style webhook"),
        "{out:?}"
    );
}
