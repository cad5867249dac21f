//! Three levels of virtual clusters on the real host control plane
//! (kube-apiserver, kube-scheduler, kwok nodes), as issue 8 describes them:
//! host → `a` (a VirtualCluster on the host, `--host-kubeconfig`) → `a:b` →
//! `a:b:c` (VirtualClusters created inside, through each level's own API),
//! each level only tightening its parent's runtime classes. A Deployment of
//! `a:b:c` runs on the host under the class `a:b:c` defaults to, its status
//! comes up through every level, its log is the host pod's, the host pods
//! name their origin, each level refuses a child laxer than itself, and
//! deleting `a` leaves nothing of nestkube on the host.

use std::time::{Duration, Instant};

use crate::common::{self, client_for, js, virtual_clusters, wait_for_within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, LogParams, PostParams};
use kube::config::Kubeconfig;
use nestkube_syncer::names;
use serde_json::{Value, json};

/// The kubeconfig in Secret `<name>-kubeconfig` of `secrets`, as YAML.
async fn kubeconfig_of(secrets: &Api<Secret>, name: &str) -> String {
    let secret = wait_for_within("the kubeconfig Secret", 30, || async {
        secrets.get(&format!("{name}-kubeconfig")).await.ok()
    })
    .await;
    String::from_utf8(secret.data.expect("data")["value"].0.clone()).expect("utf-8")
}

/// A VirtualCluster `default/name` with `spec`.
fn vc(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .expect("VirtualCluster")
}

/// Creates VirtualCluster `default/name` with `spec` in `parent`, waits
/// until it is Ready; returns an admin client from its kubeconfig Secret
/// and how long create → Ready took.
async fn nested(parent: &Client, name: &str, spec: Value) -> (Client, Duration) {
    let vcs = virtual_clusters(parent, "default");
    let started = Instant::now();
    vcs.create(&PostParams::default(), &vc(name, spec))
        .await
        .expect("create VirtualCluster");
    wait_for_within("the nested VirtualCluster to be Ready", 30, || async {
        let vc = vcs.get(name).await.ok()?;
        (vc.data["status"]["phase"] == "Ready").then_some(())
    })
    .await;
    let ready = started.elapsed();
    let doc = kubeconfig_of(&Api::namespaced(parent.clone(), "default"), name).await;
    let client = client_for(Kubeconfig::from_yaml(&doc).expect("kubeconfig")).await;
    (client, ready)
}

/// Asserts that creating VirtualCluster `name` with `spec` in `parent` is
/// refused (403 or 422) with a message naming every one of `fields`.
async fn refused(parent: &Client, name: &str, spec: Value, fields: &[&str]) {
    let err = virtual_clusters(parent, "default")
        .create(&PostParams::default(), &vc(name, spec))
        .await
        .expect_err("a laxer child is refused");
    let status = match err {
        kube::Error::Api(status) => status,
        other => panic!("not a Status: {other:?}"),
    };
    assert!(matches!(status.code, 403 | 422), "{status:?}");
    for field in fields {
        assert!(
            status.message.contains(field),
            "{:?} lacks {field:?}",
            status.message
        );
    }
}

/// The two pods of `pods` matching `selector`, once both run.
async fn running(pods: &Api<Pod>, selector: &str) -> Option<Vec<Value>> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?;
    let items: Vec<Value> = list.items.iter().map(js).collect();
    (items.len() == 2 && items.iter().all(|p| p["status"]["phase"] == "Running")).then_some(items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_levels_run_on_the_host() {
    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("nesting");
    let dir = tempfile::tempdir().expect("tempdir");
    let (running_server, selector_value) =
        common::host_mode_server(host, dir.path(), "nesting").await;
    let api = running_server.api.clone();
    let host_client = common::host_admin(host).await;
    nestkube_syncer::spawn(api.clone(), Some(host_client.clone()));

    // Level 1: `a` on the host allows runc and kata, runc by default.
    let a_path = nestkube_e2e::unique_name("a");
    host.apply(&format!(
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {a_path}\n  namespace: {}\n  labels:\n    e2e.nestkube.io/test: {selector_value}\nspec:\n  isolation:\n    runtimeClassName: runc\n    allowedRuntimeClassNames: [runc, kata]\n",
        ns.name()
    ));
    let host_secrets: Api<Secret> = Api::namespaced(host_client.clone(), ns.name());
    let a = client_for(
        Kubeconfig::from_yaml(&kubeconfig_of(&host_secrets, &a_path).await).expect("kubeconfig"),
    )
    .await;
    let a_uid = host.get_json(&["vc", &a_path, "-n", ns.name()])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();

    // Level 2: `a:b` allows kata only; asking for gvisor is refused.
    refused(
        &a,
        "wide",
        json!({"isolation": {"allowedRuntimeClassNames": ["kata", "gvisor"]}}),
        &["spec.isolation.allowedRuntimeClassNames[1]", "\"gvisor\""],
    )
    .await;
    let (b, _) = nested(
        &a,
        "b",
        json!({"isolation": {"allowedRuntimeClassNames": ["kata"]}}),
    )
    .await;
    let b_path = format!("{a_path}:b");
    // Level 3: `a:b:c` runs kata by default; runc (allowed in `a` only)
    // and a weaker podSecurity are refused.
    refused(
        &b,
        "runc",
        json!({"isolation": {"runtimeClassName": "runc"}}),
        &["spec.isolation.runtimeClassName", "\"runc\""],
    )
    .await;
    let (c, _) = nested(&b, "c", json!({"isolation": {"runtimeClassName": "kata"}})).await;
    let c_path = format!("{b_path}:c");
    refused(
        &c,
        "lax",
        json!({"isolation": {"podSecurity": "privileged"}}),
        &["spec.isolation.podSecurity", "\"privileged\""],
    )
    .await;

    // A Deployment of a:b:c, with nothing about runtimes in it.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "nginx"}]},
            },
        },
    }))
    .unwrap();
    let started = Instant::now();
    Api::<Deployment>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create Deployment");

    // On the host: two kata pods, run by kwok, naming their origin.
    let host_pods: Api<Pod> = Api::namespaced(host_client.clone(), ns.name());
    // `app=web` as carried through three hops.
    let app = (0..3).fold("app".to_string(), |k, _| names::host_label_key(&k));
    let copies = format!("{},{app}=web", names::owner_selector(&a_uid));
    let on_host = wait_for_within("two Running pods on the host", 90, || async {
        running(&host_pods, &copies).await
    })
    .await;
    eprintln!(
        "a:b:c Deployment create -> 2 host pods Running: {:?}",
        started.elapsed()
    );
    let c_pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let virtual_pods = wait_for_within("the pods of a:b:c to run", 30, || async {
        running(&c_pods, "app=web").await
    })
    .await;
    for h in &on_host {
        assert_eq!(h["spec"]["runtimeClassName"], "kata", "{h}");
        let ann = &h["metadata"]["annotations"];
        assert_eq!(ann[names::ORIGIN_CLUSTER_ANNOTATION], c_path.as_str());
        assert_eq!(ann[names::ORIGIN_NAMESPACE_ANNOTATION], "default");
        let origin = ann[names::ORIGIN_NAME_ANNOTATION]
            .as_str()
            .expect("origin-name");
        let v = virtual_pods
            .iter()
            .find(|v| v["metadata"]["name"] == origin)
            .unwrap_or_else(|| panic!("{origin} is not a pod of {c_path}"));
        assert_eq!(ann[names::ORIGIN_UID_ANNOTATION], v["metadata"]["uid"]);
        // The chain of copies, by their names, with the status of the host
        // pod at every level.
        let in_b = names::host_name(&c_path, "default", origin);
        let in_a = names::host_name(&b_path, "default", &in_b);
        assert_eq!(
            h["metadata"]["name"],
            names::host_name(&a_path, "default", &in_a).as_str()
        );
        for (level, pods, name) in [
            (&c_path, &c_pods, origin.to_string()),
            (&b_path, &Api::namespaced(b.clone(), "default"), in_b),
            (&a_path, &Api::namespaced(a.clone(), "default"), in_a),
        ] {
            let p = wait_for_within(&format!("the status in {level}"), 30, || async {
                let p = js(&pods.get(&name).await.ok()?);
                (p["status"]["podIP"] == h["status"]["podIP"]
                    && p["spec"]["nodeName"] == h["spec"]["nodeName"])
                    .then_some(p)
            })
            .await;
            assert_eq!(p["status"]["phase"], "Running", "{level}: {p}");
            assert_eq!(p["spec"]["runtimeClassName"], "kata", "{level}");
        }
    }

    // What the tenant of a:b:c can do with its pod reaches the host pod.
    let pod = virtual_pods[0]["metadata"]["name"].as_str().unwrap();
    let log = c_pods
        .logs(pod, &LogParams::default())
        .await
        .expect("log through three levels");
    assert!(log.contains("hello from kwok"), "{log}");
    let kubeconfig = dir.path().join("c.kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig_of(&Api::namespaced(b.clone(), "default"), "c").await,
    )
    .expect("kubeconfig");
    let out = std::process::Command::new(&host.bins().kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["logs", pod, "-n", "default"])
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), log);
    // kubectl exec from a:b:c runs in the host pod (kwok runs it here with
    // NESTKUBE_E2E_EXEC=kwok), three upgrades deep.
    let out = std::process::Command::new(&host.bins().kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "exec",
            pod,
            "--",
            "sh",
            "-c",
            "echo exec-$NESTKUBE_E2E_EXEC",
        ])
        .output()
        .expect("kubectl exec");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "exec-kwok");

    // Deleting `a` on the host tears down all three levels and leaves
    // nothing of nestkube on the host.
    host.kubectl_ok(&["delete", "vc", &a_path, "-n", ns.name(), "--wait=false"]);
    let managed = ListParams::default().labels(&names::managed_selector());
    let host_ns = |c: &Client| {
        (
            Api::<Pod>::namespaced(c.clone(), ns.name()),
            Api::<Secret>::namespaced(c.clone(), ns.name()),
            Api::<ConfigMap>::namespaced(c.clone(), ns.name()),
            Api::<Service>::namespaced(c.clone(), ns.name()),
            Api::<PersistentVolumeClaim>::namespaced(c.clone(), ns.name()),
        )
    };
    let (pods, secrets, configmaps, services, claims) = host_ns(&host_client);
    wait_for_within("nothing of nestkube left on the host", 90, || async {
        let empty = pods.list(&managed).await.ok()?.items.is_empty()
            && secrets.list(&managed).await.ok()?.items.is_empty()
            && configmaps.list(&managed).await.ok()?.items.is_empty()
            && services.list(&managed).await.ok()?.items.is_empty()
            && claims.list(&managed).await.ok()?.items.is_empty()
            && host_secrets
                .get_opt(&format!("{a_path}-kubeconfig"))
                .await
                .ok()?
                .is_none();
        empty.then_some(())
    })
    .await;
    wait_for_within("the three levels to be gone", 30, || async {
        [&a_path, &b_path, &c_path]
            .iter()
            .all(|p| !api.clusters.contains(p))
            .then_some(())
    })
    .await;
    running_server.abort();
}
