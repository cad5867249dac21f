//! The generated CRD against the real kube-apiserver (the e2e host): it is
//! accepted, the sample is stored, `kubectl get vc` prints the columns, and
//! invalid VirtualClusters are refused. `NESTKUBE_E2E=0` skips it.

use nestkube_e2e::{HostCluster, wait_for};
use std::time::Duration;

const CRD_NAME: &str = "virtualclusters.tenancy.nestkube.io";

/// Deletes the VirtualCluster CRD (and so every VirtualCluster) when dropped.
struct DeleteCrdOnDrop(&'static HostCluster);

impl Drop for DeleteCrdOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kubectl(&["delete", "crd", CRD_NAME, "--wait=false"]);
    }
}

fn vc(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\n\
         metadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

#[test]
fn crd_on_real_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    // The CRD is cluster-scoped: when this test creates it, it deletes it at
    // the end (even on failure); one that already existed (a reused host) is
    // only re-applied. Everything else lives in a namespace deleted on drop.
    let existed = host
        .kubectl(&["get", "crd", CRD_NAME, "-o", "name"])
        .status
        .success();
    host.apply(&nestkube_tenant_crds::crd_yaml());
    // `then`, not `then_some`: the guard must not even be built (and dropped,
    // deleting the CRD) when the CRD was already there.
    let _crd = (!existed).then(|| DeleteCrdOnDrop(host));
    host.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{CRD_NAME}"),
        "--timeout=60s",
    ]);
    let test_ns = host.namespace("tenant-crds");
    let ns = test_ns.name();

    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/virtualcluster.yaml"),
    )
    .unwrap();
    let sample = sample.replace("namespace: default\n", &format!("namespace: {ns}\n"));
    let out = host.kubectl_stdin(&["apply", "-f", "-"], Some(&sample));
    assert!(
        out.status.success(),
        "sample refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Discovery of a fresh CRD can lag in kubectl's cache; wait on the short name.
    let table = wait_for("kubectl get vc", Duration::from_secs(30), || {
        let o = host.kubectl(&["get", "vc", "-n", ns, "-o", "wide"]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    let header: Vec<_> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "PHASE", "RUNTIME", "AGE", "ENDPOINT"]
    );
    assert!(table.lines().nth(1).unwrap().contains("kata"), "{table}");

    // Stored object round-trips into the Rust type, with defaults applied by the server.
    let json = host.get_json(&["vc", "team-a", "-n", ns]);
    let stored: nestkube_tenant_crds::VirtualCluster = serde_json::from_value(json).unwrap();
    assert_eq!(nestkube_tenant_crds::validate(&stored.spec), vec![]);
    let minimal = host.kubectl_stdin(&["apply", "-f", "-"], Some(&vc("minimal", ns, "{}")));
    assert!(minimal.status.success());
    let json = host.get_json(&["vc", "minimal", "-n", ns]);
    assert_eq!(json["spec"]["isolation"]["podSecurity"], "baseline");

    // Invalid objects are refused by the server, as by `validate`.
    for (name, spec, want) in [
        (
            "bad-pod-security",
            "{isolation: {podSecurity: superuser}}",
            r#"spec.isolation.podSecurity: Unsupported value: "superuser""#,
        ),
        (
            "bad-runtime",
            "{isolation: {runtimeClassName: runc, allowedRuntimeClassNames: [kata, gvisor]}}",
            "spec.isolation.runtimeClassName: Invalid value: must be one of spec.isolation.allowedRuntimeClassNames",
        ),
        (
            "bad-limits",
            "{limits: {requestsPerSecond: 0}}",
            "spec.limits.requestsPerSecond: Invalid value: 0",
        ),
        (
            "bad-duplicate",
            "{isolation: {allowedRuntimeClassNames: [kata, kata]}}",
            r#"spec.isolation.allowedRuntimeClassNames[1]: Duplicate value: "kata""#,
        ),
    ] {
        let manifest = vc(name, ns, spec);
        let out = host.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(stderr.contains(want), "{name}: want {want:?} in:\n{stderr}");
        // The Rust rules refuse it too.
        let parsed: Result<nestkube_tenant_crds::VirtualCluster, _> =
            serde_yaml::from_str(&manifest);
        if let Ok(obj) = parsed {
            assert!(
                !nestkube_tenant_crds::validate(&obj.spec).is_empty(),
                "{name}"
            );
        }
    }
    host.kubectl_ok(&["delete", "vc", "--all", "-n", ns, "--wait=false"]);
}
