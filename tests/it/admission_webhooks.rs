//! A tenant's admission webhook behind a Service of its virtual cluster,
//! on the REAL e2e host: nestkube runs in host mode, the tenant runs the
//! webhook's pod and a Service selecting it, and a
//! `ValidatingWebhookConfiguration` and `MutatingWebhookConfiguration`
//! naming the Service. nestkube reaches the webhook through the host API
//! server's service proxy to the Service's copy, which (as upstream's proxy
//! does) dials only addresses of existing pods. The e2e host's pods are
//! simulated (kwok), so the test gives the pod copy's IP to one end of a
//! veth pair of this machine and serves the webhook there (never anything
//! outside this machine). Another tenant's requests never reach it. A CRD's
//! conversion webhook behind the same Service is reached the same way.

use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::support::{self, Kubectl, LocalAddress, Server, tenant_kubectl};
use nestkube_e2e::webhook::{DENY_MESSAGE, WebhookServer};
use nestkube_e2e::{HostCluster, wait_for};
use serde_json::Value;

const TEST_LABEL: &str = "e2e.nestkube.io/test";
const WAIT: Duration = Duration::from_secs(90);
/// The port the webhook's container serves on.
const WEBHOOK_PORT: u16 = 18443;

fn nestkube(host: &HostCluster, data: &Path, label: &str) -> Server {
    let selector = format!("{TEST_LABEL}={label}");
    let kubeconfig = host.kubeconfig();
    let flags: [&OsStr; 4] = [
        "--host-kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
        "--host-selector".as_ref(),
        selector.as_ref(),
    ];
    Server::start_at(data, support::free_address(), &flags)
}

/// VirtualCluster `name` on the host with `network` (YAML flow mapping),
/// Ready, and kubectl for it.
fn tenant(
    host: &HostCluster,
    dir: &Path,
    ns: &str,
    name: &str,
    label: &str,
    network: &str,
) -> Kubectl {
    host.apply(&format!(
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    {TEST_LABEL}: {label}\nspec:\n  network: {network}\n"
    ));
    wait_for(&format!("VirtualCluster {name} Ready"), WAIT, || {
        let out = host.kubectl(&["get", "vc", name, "-n", ns, "-o", "json"]);
        let vc: Value = serde_json::from_slice(&out.stdout).ok()?;
        (vc["status"]["phase"] == "Ready").then_some(())
    });
    let admin = Kubectl {
        bin: host.bins().kubectl.clone(),
        kubeconfig: host.kubeconfig(),
    };
    let kubectl = tenant_kubectl(&admin, dir, ns, name);
    wait_for("the default namespace", WAIT, || {
        kubectl
            .output(&["get", "serviceaccount", "default"])
            .status
            .success()
            .then_some(())
    });
    kubectl
}

fn webhook_configuration(kind: &str, path: &str, resource: &str) -> String {
    let name = kind.to_lowercase();
    format!(
        r#"{{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "{kind}", "metadata": {{"name": "{name}"}},
  "webhooks": [{{"name": "{name}.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 10,
    "clientConfig": {{"service": {{"namespace": "default", "name": "hook", "path": "{path}", "port": 443}}}},
    "rules": [{{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["{resource}"]}}]}}]}}"#
    )
}

#[test]
fn a_tenants_service_webhook_is_called_through_the_host() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let crd = Path::new(env!("CARGO_MANIFEST_DIR")).join(nestkube_tenant_crds::CRD_YAML_PATH);
    host.apply_crd(&crd, "virtualclusters.tenancy.nestkube.io");
    let dir = tempfile::tempdir().unwrap();
    let label = nestkube_e2e::unique_name("webhooks");
    let ns = host.namespace("webhooks");
    let _nestkube = nestkube(host, &dir.path().join("data"), &label);
    let a = tenant(host, dir.path(), ns.name(), "hooked", &label, "{}");
    let b = tenant(host, dir.path(), ns.name(), "other", &label, "{}");

    // The webhook's pod and Service.
    a.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hook", "namespace": "default", "labels": {"app": "hook"}},
  "spec": {"containers": [{"name": "hook", "image": "webhook"}]}}"#,
    );
    a.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "hook", "namespace": "default"}},
  "spec": {{"selector": {{"app": "hook"}}, "ports": [{{"port": 443, "targetPort": {WEBHOOK_PORT}, "protocol": "TCP"}}]}}}}"#
        ),
    );
    let pod_ip: IpAddr = wait_for("the webhook pod runs on the host", WAIT, || {
        let ip = a
            .output(&["get", "pod", "hook", "-o", "jsonpath={.status.podIP}"])
            .stdout;
        String::from_utf8_lossy(&ip).trim().parse().ok()
    });
    // The pod "runs" here: its address on this machine, the server on it.
    let Some(local) = LocalAddress::create("nkwh", pod_ip) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(WebhookServer::start(
            SocketAddr::new(local.ip, WEBHOOK_PORT),
            &["hook.default.svc"],
        ))
        .expect("webhook server");
    // The Service's copy on the host has the pod's endpoint.
    wait_for(
        "the Service's copy with its endpoint on the host",
        WAIT,
        || {
            let eps = host.get_json(&["endpoints", "-n", ns.name()]);
            eps["items"]
                .as_array()?
                .iter()
                .any(|e| e.to_string().contains(&local.ip.to_string()))
                .then_some(())
        },
    );

    // The Service proxy reaches the same server (what `kubectl proxy` uses).
    let answer = a.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/https:hook:443/proxy/allow",
    ]);
    assert!(answer.contains("AdmissionReview"), "{answer}");
    assert_eq!(server.calls("/allow"), 1);

    a.ok_stdin(
        &["apply", "-f", "-"],
        &webhook_configuration("ValidatingWebhookConfiguration", "/deny", "configmaps"),
    );
    a.ok_stdin(
        &["apply", "-f", "-"],
        &webhook_configuration("MutatingWebhookConfiguration", "/label", "secrets"),
    );
    // Refused by the tenant's own webhook, with its message.
    let refused = wait_for("the validating webhook refuses", WAIT, || {
        let out = a.output(&["create", "configmap", "bad"]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (!out.status.success() && stderr.contains("denied the request")).then_some(stderr)
    });
    assert!(
        refused.contains(&format!(
            "admission webhook \"validatingwebhookconfiguration.example.com\" denied the request: {DENY_MESSAGE}"
        )),
        "{refused}"
    );
    assert!(server.calls("/deny") >= 1);
    // Mutated by it.
    a.ok(&[
        "create",
        "secret",
        "generic",
        "patched",
        "--from-literal=k=v",
    ]);
    let labels = a.ok(&[
        "get",
        "secret",
        "patched",
        "-o",
        "jsonpath={.metadata.labels.webhook}",
    ]);
    assert_eq!(labels.trim(), "added");
    // Another tenant's requests never reach it.
    let calls = server.calls("/deny");
    b.ok(&["create", "configmap", "bad"]);
    assert_eq!(server.calls("/deny"), calls);

    // A CRD's conversion webhook behind the same Service: a CronTab stored
    // at v1 is read at v2 through it.
    a.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "crontabs.stable.example.com"},
  "spec": {"group": "stable.example.com", "scope": "Namespaced",
    "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
    "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
      "clientConfig": {"service": {"namespace": "default", "name": "hook", "path": "/convert", "port": 443}}}},
    "versions": [
      {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
      {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#,
    );
    wait_for("the CRD's v2 is served", WAIT, || {
        a.output(&["get", "crontabs.v2.stable.example.com"])
            .status
            .success()
            .then_some(())
    });
    a.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "nightly"},
  "spec": {"cronSpec": "0 3 * * *"}}"#,
    );
    let schedule = a.ok(&[
        "get",
        "crontabs.v2.stable.example.com",
        "nightly",
        "-o",
        "jsonpath={.spec.schedule}",
    ]);
    assert_eq!(schedule.trim(), "0 3 * * *");
    assert!(!server.reviews("/convert").is_empty());
    drop(runtime);
}
