//! Kernel-level host escapes in a `privileged` virtual cluster: everything
//! the Pod Security baseline forbids reaches the parent's nodes, so it is
//! refused in every virtual cluster whatever its level, unless its
//! VirtualCluster (and every one above it) allows it in
//! `spec.isolation.allowedHostEscapes`; a nested VirtualCluster cannot
//! allow more than its parent, and narrowing the parent holds pods below it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::vcs::{forbidden, virtual_cluster, wait_for_policy};
use crate::common::{Fixture, admin, vc, virtual_clusters};

fn pod(name: &str, metadata: Value, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "nginx"}]);
    }
    let mut metadata = metadata;
    metadata["name"] = json!(name);
    serde_json::from_value(json!({"metadata": metadata, "spec": spec})).unwrap()
}

/// A container named `c` with `securityContext`.
fn with_sc(sc: Value) -> Value {
    json!({"containers": [{"name": "c", "image": "nginx", "securityContext": sc}]})
}

/// Asserts `spec` (with `metadata`) is refused naming `fields`, and not stored.
async fn refused(pods: &Api<Pod>, name: &str, metadata: Value, spec: Value, fields: &[&str]) {
    let r = pods
        .create(&PostParams::default(), &pod(name, metadata, spec))
        .await;
    let prefix = format!("pods \"{name}\" is forbidden: ");
    let mut parts = vec![prefix.as_str()];
    parts.extend(fields);
    forbidden(r, &parts);
    assert!(pods.get_opt(name).await.unwrap().is_none(), "{name} stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_escapes_are_refused_in_privileged_clusters() {
    let f = Fixture::start().await;
    let c = virtual_cluster(
        &f,
        "root",
        "kern",
        json!({"isolation": {"podSecurity": "privileged"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c, "default");
    let none = json!({});
    refused(
        &pods,
        "caps",
        none.clone(),
        with_sc(json!({"capabilities": {"add":
            ["CHOWN", "SYS_ADMIN", "SYS_MODULE", "BPF", "NET_ADMIN", "SYS_PTRACE", "CAP_SYS_ADMIN", "ALL"]}})),
        &[
            "spec.containers[0].securityContext.capabilities.add[1]: adding the capability \"SYS_ADMIN\" is not allowed",
            "capabilities.add[2]: adding the capability \"SYS_MODULE\"",
            "capabilities.add[3]: adding the capability \"BPF\"",
            "capabilities.add[4]: adding the capability \"NET_ADMIN\"",
            "capabilities.add[5]: adding the capability \"SYS_PTRACE\"",
            "capabilities.add[6]: adding the capability \"CAP_SYS_ADMIN\"",
            "capabilities.add[7]: adding the capability \"ALL\"",
        ],
    )
    .await;
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "seccomp-pod",
            none.clone(),
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
            "spec.securityContext.seccompProfile.type: the seccomp profile \"Unconfined\" is not allowed",
        ),
        (
            "seccomp-container",
            none.clone(),
            with_sc(json!({"seccompProfile": {"type": "Unconfined"}})),
            "spec.containers[0].securityContext.seccompProfile.type",
        ),
        (
            "seccomp-annotation",
            json!({"annotations": {"container.seccomp.security.alpha.kubernetes.io/c": "unconfined"}}),
            json!({}),
            "metadata.annotations[container.seccomp.security.alpha.kubernetes.io/c]",
        ),
        (
            "apparmor",
            none.clone(),
            with_sc(json!({"appArmorProfile": {"type": "Unconfined"}})),
            "spec.containers[0].securityContext.appArmorProfile.type: the AppArmor profile \"Unconfined\" is not allowed",
        ),
        (
            "apparmor-annotation",
            json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}}),
            json!({}),
            "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]",
        ),
        (
            "selinux-type",
            none.clone(),
            with_sc(json!({"seLinuxOptions": {"type": "spc_t"}})),
            "spec.containers[0].securityContext.seLinuxOptions.type: the SELinux type \"spc_t\" is not allowed",
        ),
        (
            "selinux-user",
            none.clone(),
            json!({"securityContext": {"seLinuxOptions": {"user": "system_u", "role": "system_r"}}}),
            "spec.securityContext.seLinuxOptions.user",
        ),
        (
            "procmount",
            none.clone(),
            with_sc(json!({"procMount": "Unmasked"})),
            "spec.containers[0].securityContext.procMount: procMount \"Unmasked\" is not allowed",
        ),
        (
            "sysctl",
            none.clone(),
            json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                                   {"name": "kernel.core_pattern", "value": "|/x"}]}}),
            "spec.securityContext.sysctls[1].name: the sysctl \"kernel.core_pattern\" is not allowed",
        ),
        (
            "hostprocess",
            none.clone(),
            with_sc(json!({"windowsOptions": {"hostProcess": true}})),
            "spec.containers[0].securityContext.windowsOptions.hostProcess",
        ),
        (
            "probe-host",
            none.clone(),
            json!({"containers": [{"name": "c", "image": "nginx",
                "livenessProbe": {"httpGet": {"host": "169.254.169.254", "path": "/latest/meta-data/", "port": 80}}}]}),
            "spec.containers[0].livenessProbe.httpGet.host: a probe or lifecycle handler host (\"169.254.169.254\") is not allowed",
        ),
        (
            "lifecycle-host",
            none.clone(),
            json!({"initContainers": [{"name": "i", "image": "busybox",
                "lifecycle": {"preStop": {"tcpSocket": {"host": "10.96.0.1", "port": 443}}}}]}),
            "spec.initContainers[0].lifecycle.preStop.tcpSocket.host",
        ),
        (
            "critical-addons",
            none.clone(),
            json!({"tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}]}),
            "spec.tolerations[0]: tolerating the protected taint \"CriticalAddonsOnly\" is not allowed",
        ),
        (
            "everything",
            none.clone(),
            json!({"tolerations": [{"operator": "Exists", "effect": "NoSchedule"}]}),
            "spec.tolerations[0]: tolerating every taint",
        ),
    ];
    for (name, metadata, spec, field) in cases {
        refused(&pods, name, metadata, spec, &[field]).await;
    }
    // What baseline allows still passes in a privileged cluster.
    pods.create(
        &PostParams::default(),
        &pod(
            "fine",
            json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}}),
            json!({"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}],
                                       "seccompProfile": {"type": "RuntimeDefault"}},
                   "tolerations": [{"key": "gpu", "operator": "Exists"}],
                   "containers": [{"name": "c", "image": "nginx", "securityContext": {
                       "capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]},
                       "seLinuxOptions": {"type": "container_t", "level": "s0:c1"}},
                       "readinessProbe": {"httpGet": {"port": 80}}}]}),
        ),
    )
    .await
    .expect("what baseline allows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowances_come_from_the_parent_and_never_widen() {
    let f = Fixture::start().await;
    let pp = PostParams::default();
    let allowed = json!({"isolation": {"podSecurity": "privileged", "allowedHostEscapes": {
        "capabilities": ["NET_ADMIN", "SYS_PTRACE"], "probeHosts": true,
        "tolerations": ["CriticalAddonsOnly"], "sysctls": ["net.core.somaxconn"]}}});
    let a = virtual_cluster(&f, "root", "team-a", allowed).await;
    let net_admin = || {
        pod(
            "net-admin",
            json!({}),
            json!({"tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
                "containers": [{"name": "c", "image": "nginx",
                "securityContext": {"capabilities": {"add": ["CAP_NET_ADMIN"]}},
                "startupProbe": {"tcpSocket": {"host": "10.0.0.1", "port": 80}}}]}),
        )
    };
    let a_pods: Api<Pod> = Api::namespaced(a.clone(), "default");
    a_pods
        .create(&pp, &net_admin())
        .await
        .expect("what team-a's VirtualCluster allows");
    refused(
        &a_pods,
        "sys-admin",
        json!({}),
        with_sc(json!({"capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}})),
        &["capabilities.add[1]: adding the capability \"SYS_ADMIN\""],
    )
    .await;

    // A nested VirtualCluster may not ask for more than team-a allows.
    let vcs = virtual_clusters(&admin(&f, "team-a").await, "default");
    let m = forbidden(
        vcs.create(
            &pp,
            &vc(
                "default",
                "wide",
                json!({"isolation": {"podSecurity": "privileged", "allowedHostEscapes": {
                "capabilities": ["NET_ADMIN", "SYS_ADMIN"], "seccompUnconfined": true}}}),
            ),
        )
        .await,
        &[
            "spec.isolation.allowedHostEscapes.capabilities[1]: \"SYS_ADMIN\" is not allowed by the parent cluster \"team-a\"",
            "spec.isolation.allowedHostEscapes.seccompUnconfined: true is not allowed by the parent cluster \"team-a\"",
        ],
    );
    assert!(!m.contains("NET_ADMIN"), "{m}");
    assert!(vcs.get_opt("wide").await.unwrap().is_none());

    // Not inherited: a child that does not ask gets nothing beyond baseline.
    let plain = virtual_cluster(
        &f,
        "team-a",
        "plain",
        json!({"isolation": {"podSecurity": "privileged"}}),
    )
    .await;
    refused(
        &Api::namespaced(plain, "default"),
        "net-admin",
        json!({}),
        with_sc(json!({"capabilities": {"add": ["NET_ADMIN"]}})),
        &["adding the capability \"NET_ADMIN\""],
    )
    .await;
    // A child asking for part of it gets that part.
    let dev = virtual_cluster(
        &f,
        "team-a",
        "dev",
        json!({"isolation": {"podSecurity": "privileged", "allowedHostEscapes": {
            "capabilities": ["NET_ADMIN"], "probeHosts": true,
            "tolerations": ["CriticalAddonsOnly"], "sysctls": ["net.core.somaxconn"]}}}),
    )
    .await;
    let dev_pods: Api<Pod> = Api::namespaced(dev, "default");
    dev_pods
        .create(&pp, &net_admin())
        .await
        .expect("what dev and team-a allow");

    // team-a's owner narrows team-a: dev's pods follow at once.
    let root_vcs = virtual_clusters(&f.root_client().await, "default");
    let narrowed = root_vcs
        .patch(
            "team-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"isolation": {"allowedHostEscapes": {
                "capabilities": ["SYS_PTRACE"]}}}})),
        )
        .await
        .unwrap();
    wait_for_policy(&f, "team-a", &narrowed.data["spec"]).await;
    refused(
        &dev_pods,
        "net-admin-again",
        json!({}),
        with_sc(json!({"capabilities": {"add": ["NET_ADMIN"]}})),
        &["adding the capability \"NET_ADMIN\""],
    )
    .await;
}
