//! Parity with the real kube-apiserver (the e2e host, v1.37.2): the same
//! manifests created with `--dry-run=server` on both must come back with the
//! same defaults, and the same invalid manifests must fail with the same
//! status code and field causes.
//!
//! Fields that only the host's admission chain or allocators set (default
//! tolerations, cluster IPs) are outside the API core and normalised away
//! here; they are listed in `ADMISSION_ONLY`. The ServiceAccount admission
//! (service account, token volume and mounts) is compared, with the random
//! suffix of the `kube-api-access-*` volume normalised; Pod Security
//! refusals are compared in labelled namespaces.

use std::process::{Command, Stdio};

use crate::support::Server;
use nestkube_e2e::HostCluster;
use serde_json::Value;

const MANIFESTS: &[(&str, &str)] = &[
    (
        "pod",
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80}],
        "env":[{"name":"X","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
        "readinessProbe":{"httpGet":{"path":"/","port":80}},
        "volumeMounts":[{"name":"cfg","mountPath":"/cfg"}]}],
        "volumes":[{"name":"cfg","configMap":{"name":"x"}},{"name":"s","secret":{"secretName":"y"}},{"name":"e","emptyDir":{}}]}}"#,
    ),
    (
        "deployment",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"nginx:1.27","resources":{"limits":{"cpu":"1"}}}]}}}}"#,
    ),
    (
        "statefulset",
        r#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"s"},
        "spec":{"serviceName":"s","selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"nginx"}]}},
        "volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]}}"#,
    ),
    (
        "daemonset",
        r#"{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"ds"},
        "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#,
    ),
    (
        "job",
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},
        "spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}"#,
    ),
    (
        "cronjob",
        r#"{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"cj"},
        "spec":{"schedule":"*/5 * * * *","jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"OnFailure",
        "containers":[{"name":"c","image":"busybox"}]}}}}}}"#,
    ),
    (
        "service",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},
        "spec":{"selector":{"a":"b"},"ports":[{"port":80,"targetPort":8080,"name":"http"}]}}"#,
    ),
    (
        "configmap",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"a":"b"}}"#,
    ),
    (
        "secret",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"sec"},"stringData":{"a":"b"}}"#,
    ),
    (
        "serviceaccount",
        r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"}}"#,
    ),
    (
        "pvc",
        r#"{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"pvc"},
        "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}"#,
    ),
    (
        "role",
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r"},
        "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#,
    ),
    (
        "rolebinding",
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"rb"},
        "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"},
        "subjects":[{"kind":"ServiceAccount","name":"default","namespace":"default"},{"kind":"User","name":"alice"}]}"#,
    ),
    (
        "ingress",
        r#"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"ing"},
        "spec":{"rules":[{"host":"a.example.com","http":{"paths":[{"path":"/","pathType":"Prefix",
        "backend":{"service":{"name":"svc","port":{"number":80}}}}]}}]}}"#,
    ),
    (
        "networkpolicy",
        r#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"np"},
        "spec":{"podSelector":{},"ingress":[{"ports":[{"port":80}]}]}}"#,
    ),
    (
        "pdb",
        r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"pdb"},
        "spec":{"minAvailable":1,"selector":{"matchLabels":{"a":"b"}}}}"#,
    ),
    (
        "hpa",
        r#"{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"hpa"},
        "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"d"},"maxReplicas":5,
        "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":50}}}]}}"#,
    ),
    (
        "lease",
        r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l"},
        "spec":{"holderIdentity":"me","leaseDurationSeconds":15}}"#,
    ),
    (
        "runtimeclass",
        r#"{"apiVersion":"node.k8s.io/v1","kind":"RuntimeClass","metadata":{"name":"parity-rc"},"handler":"runc"}"#,
    ),
    (
        "priorityclass",
        r#"{"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass","metadata":{"name":"parity-pc"},"value":1000}"#,
    ),
    (
        "storageclass",
        r#"{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"parity-sc"},"provisioner":"x.io/y"}"#,
    ),
    (
        "namespace",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"parity-ns"}}"#,
    ),
];

/// Paths set by the host's admission plugins or allocators, not by the API core.
const ADMISSION_ONLY: &[&str] = &[
    "spec.clusterIP",
    "spec.clusterIPs",
    "spec.tolerations",
    "spec.priority",
    "spec.enableServiceLinks",
    "spec.preemptionPolicy",
    "spec.storageClassName",
    // StorageObjectInUseProtection admission (and its controller) come with the syncer.
    "metadata.finalizers",
];

fn create_dry_run(
    kubectl: &str,
    kubeconfig: &std::path::Path,
    manifest: &str,
) -> (bool, Value, String) {
    create_dry_run_in(kubectl, kubeconfig, "default", manifest)
}

fn create_dry_run_in(
    kubectl: &str,
    kubeconfig: &std::path::Path,
    namespace: &str,
    manifest: &str,
) -> (bool, Value, String) {
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "create",
            "--dry-run=server",
            "-n",
            namespace,
            "-o",
            "json",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), manifest.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("kubectl");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn normalise(v: &mut Value) {
    let uid = v["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(m) = v["metadata"].as_object_mut() {
        for f in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
        ] {
            m.remove(f);
        }
    }
    replace_uid(v, &uid);
}

/// Values derived from the object's uid (a Job's selector labels) differ by
/// construction; compare them as `<uid>`. The token volume's random name
/// suffix too, as `kube-api-access-<random>`.
fn replace_uid(v: &mut Value, uid: &str) {
    match v {
        Value::String(s) if !uid.is_empty() && s == uid => *s = "<uid>".into(),
        Value::String(s) if s.starts_with("kube-api-access-") && s.len() == 21 => {
            *s = "kube-api-access-<random>".into()
        }
        Value::Object(m) => m.values_mut().for_each(|x| replace_uid(x, uid)),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_uid(x, uid)),
        _ => {}
    }
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if ADMISSION_ONLY
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}.")))
    {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                diff(
                    &format!("{path}[{i}]"),
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: upstream {a} / nestkube {b}")),
    }
}

#[test]
fn defaults_match_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let kubectl = host.bins().kubectl.to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for (name, manifest) in MANIFESTS {
        let (ok_up, mut up, err_up) = create_dry_run(&kubectl, &host.kubeconfig(), manifest);
        assert!(ok_up, "upstream refused {name}: {err_up}");
        let (ok_nk, mut nk, err_nk) = create_dry_run(&kubectl, &server.kubeconfig, manifest);
        if !ok_nk {
            failures.push(format!("{name}: nestkube refused: {err_nk}"));
            continue;
        }
        normalise(&mut up);
        normalise(&mut nk);
        let mut diffs = Vec::new();
        diff("", &up, &nk, &mut diffs);
        failures.extend(diffs.into_iter().map(|d| format!("{name}: {d}")));
    }
    assert!(
        failures.is_empty(),
        "differences from kube-apiserver:\n{}",
        failures.join("\n")
    );
}

const INVALID: &[(&str, &str)] = &[
    (
        "pod without containers",
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":{"containers":[]}}"#,
    ),
    (
        "bad name",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
    ),
    (
        "selector mismatch",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"c"}},
        "spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#,
    ),
    (
        "service without ports",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"selector":{"a":"b"}}}"#,
    ),
    (
        "bad label",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"a":"-bad-"}}}"#,
    ),
    (
        "missing service account",
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
        "spec":{"serviceAccountName":"missing","containers":[{"name":"c","image":"nginx"}]}}"#,
    ),
    (
        "invalid pod-security labels",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"parity-bad-psa","labels":{
        "pod-security.kubernetes.io/enforce":"strict","pod-security.kubernetes.io/enforce-version":"v2",
        "pod-security.kubernetes.io/warn":"x"}}}"#,
    ),
];

/// Pods judged by Pod Security admission at baseline and restricted.
const POD_SECURITY: &[&str] = &[
    r#"{"containers":[{"name":"c","image":"nginx"}]}"#,
    r#"{"hostNetwork":true,"hostPID":true,"hostIPC":true,"containers":[{"name":"c","image":"nginx"}]}"#,
    r#"{"volumes":[{"name":"h","hostPath":{"path":"/"}},{"name":"n","nfs":{"server":"s","path":"/"}}],
    "initContainers":[{"name":"i","image":"x","securityContext":{"privileged":true,"capabilities":{"add":["NET_ADMIN","CHOWN"]}}}],
    "containers":[{"name":"c","image":"nginx","securityContext":{"capabilities":{"add":["SYS_ADMIN"]},
    "seLinuxOptions":{"type":"spc_t","user":"root","role":"r"},"seccompProfile":{"type":"Unconfined"}}}]}"#,
    r#"{"securityContext":{"sysctls":[{"name":"kernel.msgmax","value":"1"}],"seccompProfile":{"type":"Unconfined"},
    "runAsUser":0,"runAsNonRoot":false},"containers":[{"name":"c","image":"nginx","securityContext":{
    "appArmorProfile":{"type":"Unconfined"},"runAsUser":0,"allowPrivilegeEscalation":true,"seccompProfile":{"type":"RuntimeDefault"}}},
    {"name":"d","image":"nginx","livenessProbe":{"httpGet":{"host":"1.2.3.4","port":80}},
    "lifecycle":{"preStop":{"tcpSocket":{"host":"5.6.7.8","port":80}}}}]}"#,
    r#"{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"c","image":"nginx",
    "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE","SYS_TIME"]}}}]}"#,
];

#[test]
fn pod_security_matches_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let kubectl = host.bins().kubectl.to_string_lossy().into_owned();
    let nk = |args: &[&str]| {
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut failures = Vec::new();
    for level in ["baseline", "restricted"] {
        let ns = host.namespace(&format!("parity-{level}"));
        let label = format!("pod-security.kubernetes.io/enforce={level}");
        host.kubectl_ok(&["label", "namespace", ns.name(), &label]);
        nk(&["create", "namespace", ns.name()]);
        nk(&["label", "namespace", ns.name(), &label]);
        for (i, spec) in POD_SECURITY.iter().enumerate() {
            let manifest = format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p{i}"}},"spec":{spec}}}"#
            );
            let (ok_up, _, err_up) =
                create_dry_run_in(&kubectl, &host.kubeconfig(), ns.name(), &manifest);
            let (ok_nk, _, err_nk) =
                create_dry_run_in(&kubectl, &server.kubeconfig, ns.name(), &manifest);
            if ok_up != ok_nk || err_up.trim() != err_nk.trim() {
                failures.push(format!(
                    "pod {i} at {level}:\n  upstream: {}\n  nestkube: {}",
                    if ok_up { "accepted" } else { err_up.trim() },
                    if ok_nk { "accepted" } else { err_nk.trim() },
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "Pod Security differs from kube-apiserver:\n{}",
        failures.join("\n")
    );
}

#[test]
fn validation_errors_match_kube_apiserver() {
    let Some(host) = HostCluster::shared() else {
        return;
    };
    let server = Server::start();
    let kubectl = host.bins().kubectl.to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for (name, manifest) in INVALID {
        let (ok_up, _, err_up) = create_dry_run(&kubectl, &host.kubeconfig(), manifest);
        let (ok_nk, _, err_nk) = create_dry_run(&kubectl, &server.kubeconfig, manifest);
        assert!(!ok_up, "upstream accepted {name}");
        if ok_nk {
            failures.push(format!(
                "{name}: nestkube accepted it; upstream said: {err_up}"
            ));
        } else if err_up.trim() != err_nk.trim() {
            failures.push(format!(
                "{name}:\n  upstream: {}\n  nestkube: {}",
                err_up.trim(),
                err_nk.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "validation differs from kube-apiserver:\n{}",
        failures.join("\n")
    );
}
