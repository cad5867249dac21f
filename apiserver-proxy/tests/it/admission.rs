//! Admission against a real server: the RuntimeClass policy, Pod Security
//! admission, the host-escape guard, ServiceAccount admission and the
//! VirtualCluster policy inheritance, each through the API with kube-rs
//! (allowed, refused with 403 and nothing stored, defaulted), and the
//! ReplicaSet controller's `ReplicaFailure` condition when admission refuses
//! its pods. Virtual clusters are made the way tenants make them, with a
//! VirtualCluster object; every wait is on a condition with a timeout.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::common::{Fixture, admin, child, virtual_clusters, wait_for};

const WAIT: Duration = Duration::from_secs(10);

/// Creates VirtualCluster `name` in namespace `default` of `parent` with
/// `spec`, waits until its cluster is served with that policy, and returns
/// an admin client of it.
pub(crate) async fn virtual_cluster(f: &Fixture, parent: &str, name: &str, spec: Value) -> Client {
    let client = admin(f, parent).await;
    let vc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap();
    let created = virtual_clusters(&client, "default")
        .create(&PostParams::default(), &vc)
        .await
        .expect("create VirtualCluster");
    let path = child(parent, name);
    let stored_spec = created.data["spec"].clone();
    wait_for("the child cluster with its policy", WAIT, || async {
        let cluster = f.running.api.clusters.get(&path)?;
        let placement = cluster.placement()?;
        (serde_json::to_value(&placement.spec).ok()? == stored_spec).then_some(())
    })
    .await;
    wait_for("the child's default namespace", WAIT, || async {
        let c = admin(f, &path).await;
        Api::<Namespace>::all(c).get("default").await.ok()
    })
    .await;
    admin(f, &path).await
}

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "nginx"}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// The error of a refused request: (code, reason, message).
fn refusal<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts a 403 Forbidden whose message contains every one of `parts`,
/// and that `name` was not stored.
async fn assert_forbidden<T: std::fmt::Debug>(
    r: Result<T, kube::Error>,
    pods: &Api<Pod>,
    name: &str,
    parts: &[&str],
) -> String {
    let (code, reason, message) = refusal(r);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{message}");
    for p in parts {
        assert!(message.contains(p), "{message:?} lacks {p:?}");
    }
    assert!(
        pods.get_opt(name).await.unwrap().is_none(),
        "a refused pod is not stored"
    );
    message
}

/// Waits for ReplicaSet `name`'s ReplicaFailure condition (status True,
/// reason FailedCreate); returns its message.
async fn replica_failure(rss: &Api<ReplicaSet>, name: &str) -> String {
    let cond = wait_for("the ReplicaFailure condition", WAIT, || async {
        let rs = serde_json::to_value(rss.get(name).await.ok()?).ok()?;
        rs["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure")
            .cloned()
    })
    .await;
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "FailedCreate");
    cond["message"].as_str().unwrap_or_default().to_string()
}

fn runtime_class(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.runtime_class_name.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_class_policy() {
    let f = Fixture::start().await;
    let c = virtual_cluster(
        &f,
        "root",
        "rc",
        json!({"isolation": {"runtimeClassName": "kata",
            "allowedRuntimeClassNames": ["kata", "gvisor"], "podSecurity": "privileged"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let pp = PostParams::default();

    // Defaulted at create, visible in the stored pod.
    let p = pods.create(&pp, &pod("plain", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&p), Some("kata"));
    let p = pods.get("plain").await.unwrap();
    assert_eq!(runtime_class(&p), Some("kata"));
    // Another allowed class is kept.
    let p = pods
        .create(&pp, &pod("g", json!({"runtimeClassName": "gvisor"})))
        .await
        .unwrap();
    assert_eq!(runtime_class(&p), Some("gvisor"));
    // A class outside the allowed set: 403, nothing stored.
    let r = pods
        .create(&pp, &pod("bad", json!({"runtimeClassName": "runc"})))
        .await;
    let msg = assert_forbidden(
        r,
        &pods,
        "bad",
        &["pods \"bad\" is forbidden: ", "\"runc\"", "kata, gvisor"],
    )
    .await;
    assert!(msg.contains("spec.runtimeClassName"), "{msg}");
    // Dry run is refused alike.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let r = pods
        .create(&dry, &pod("bad", json!({"runtimeClassName": "runc"})))
        .await;
    assert_forbidden(r, &pods, "bad", &["\"runc\""]).await;

    // A namespace narrows (its default and its allowed list).
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "narrow",
        "annotations": {"runtime.nestkube.io/allowed-classes": "gvisor",
                        "runtime.nestkube.io/default-class": "gvisor"}}}))
    .unwrap();
    namespaces.create(&pp, &ns).await.unwrap();
    let narrow: Api<Pod> = Api::namespaced(c.clone(), "narrow");
    let p = narrow.create(&pp, &pod("plain", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&p), Some("gvisor"));
    let r = narrow
        .create(&pp, &pod("k", json!({"runtimeClassName": "kata"})))
        .await;
    assert_forbidden(
        r,
        &narrow,
        "k",
        &["\"kata\"", "namespace \"narrow\"", "allowed: gvisor"],
    )
    .await;

    // ... but never widens: a namespace naming a class the cluster does not
    // allow is refused.
    let wide: Namespace = serde_json::from_value(json!({"metadata": {"name": "wide",
        "annotations": {"runtime.nestkube.io/allowed-classes": "kata, runc"}}}))
    .unwrap();
    let (code, _, msg) = refusal(namespaces.create(&pp, &wide).await);
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains("namespaces \"wide\" is forbidden") && msg.contains("\"runc\""),
        "{msg}"
    );

    // Templates are not judged; the ReplicaSet's pods are, and the refusal
    // shows in its ReplicaFailure condition.
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"runtimeClassName": "runc", "containers": [{"name": "c", "image": "nginx"}]}}}}))
    .unwrap();
    rss.create(&pp, &rs)
        .await
        .expect("templates are not judged");
    let m = replica_failure(&rss, "web").await;
    assert!(
        m.starts_with("pods \"web-\" is forbidden: ") && m.contains("\"runc\""),
        "{m}"
    );

    // ... and a Deployment's in its own ReplicaFailure condition.
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}},
                "spec": {"runtimeClassName": "runc", "containers": [{"name": "c", "image": "nginx"}]}}}}))
    .unwrap();
    deployments.create(&pp, &d).await.unwrap();
    let cond = wait_for("the Deployment's ReplicaFailure", WAIT, || async {
        let d = serde_json::to_value(deployments.get("app").await.ok()?).ok()?;
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure")
            .cloned()
    })
    .await;
    assert_eq!(cond["reason"], "FailedCreate");
    let m = cond["message"].as_str().unwrap_or_default();
    assert!(
        m.starts_with("pods \"app-") && m.contains("\"runc\""),
        "{m}"
    );

    // The root cluster has no policy.
    let root: Api<Pod> = Api::namespaced(f.root_client().await, "default");
    let p = root
        .create(&pp, &pod("any", json!({"runtimeClassName": "runc"})))
        .await
        .unwrap();
    assert_eq!(runtime_class(&p), Some("runc"));
    let p = root.create(&pp, &pod("none", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&p), None);
}

fn labeled_namespace(name: &str, level: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"pod-security.kubernetes.io/enforce": level}}}))
    .unwrap()
}

/// A pod that satisfies the restricted level.
fn hardened(name: &str) -> Pod {
    pod(
        name,
        json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "nginx", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_levels() {
    let f = Fixture::start().await;
    let pp = PostParams::default();

    // Restricted cluster: upstream's message, every failed check in order.
    let c = virtual_cluster(
        &f,
        "root",
        "psr",
        json!({"isolation": {"podSecurity": "restricted"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let r = pods.create(&pp, &pod("plain", json!({}))).await;
    let msg = assert_forbidden(r, &pods, "plain", &[]).await;
    assert_eq!(
        msg,
        "pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\": \
         allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    pods.create(&pp, &hardened("hard"))
        .await
        .expect("a restricted pod");
    // A namespace label cannot loosen the cluster's level.
    Api::<Namespace>::all(c.clone())
        .create(&pp, &labeled_namespace("loose", "privileged"))
        .await
        .unwrap();
    let loose: Api<Pod> = Api::namespaced(c.clone(), "loose");
    let r = loose.create(&pp, &pod("plain", json!({}))).await;
    assert_forbidden(
        r,
        &loose,
        "plain",
        &["violates PodSecurity \"restricted:latest\""],
    )
    .await;

    // Baseline (the default level).
    let c = virtual_cluster(&f, "root", "psb", json!({})).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    pods.create(&pp, &pod("plain", json!({})))
        .await
        .expect("baseline allows a plain pod");
    let admin_caps = json!({"containers": [{"name": "c", "image": "nginx",
        "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}}}]});
    let r = pods.create(&pp, &pod("caps", admin_caps.clone())).await;
    let msg = assert_forbidden(r, &pods, "caps", &[]).await;
    assert_eq!(
        msg,
        "pods \"caps\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities \
         (container \"c\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)"
    );
    // A namespace label tightens it.
    let namespaces: Api<Namespace> = Api::all(c.clone());
    namespaces
        .create(&pp, &labeled_namespace("tight", "restricted"))
        .await
        .unwrap();
    let tight: Api<Pod> = Api::namespaced(c.clone(), "tight");
    let r = tight.create(&pp, &pod("plain", json!({}))).await;
    assert_forbidden(
        r,
        &tight,
        "plain",
        &["violates PodSecurity \"restricted:latest\""],
    )
    .await;
    tight
        .create(&pp, &hardened("hard"))
        .await
        .expect("a restricted pod");
    // A ReplicaSet whose pods break the level gets ReplicaFailure.
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "caps"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "caps"}},
            "template": {"metadata": {"labels": {"app": "caps"}}, "spec": admin_caps}}}))
    .unwrap();
    rss.create(&pp, &rs)
        .await
        .expect("templates are not judged");
    let m = replica_failure(&rss, "caps").await;
    assert!(
        m.starts_with("pods \"caps-\" is forbidden: violates PodSecurity \"baseline:latest\""),
        "{m}"
    );

    // The root cluster: only namespace labels apply.
    let root = f.root_client().await;
    let pods: Api<Pod> = Api::namespaced(root.clone(), "default");
    pods.create(&pp, &pod("caps", admin_caps.clone()))
        .await
        .expect("no policy in root");
    Api::<Namespace>::all(root.clone())
        .create(&pp, &labeled_namespace("restricted", "restricted"))
        .await
        .unwrap();
    let restricted: Api<Pod> = Api::namespaced(root, "restricted");
    let r = restricted.create(&pp, &pod("plain", json!({}))).await;
    assert_forbidden(
        r,
        &restricted,
        "plain",
        &["violates PodSecurity \"restricted:latest\""],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_escapes_are_refused_in_virtual_clusters() {
    let f = Fixture::start().await;
    let pp = PostParams::default();
    let c = virtual_cluster(
        &f,
        "root",
        "he",
        json!({"isolation": {"podSecurity": "privileged"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let cases = [
        (
            json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
            "spec.volumes[0].hostPath",
        ),
        (json!({"hostNetwork": true}), "spec.hostNetwork"),
        (json!({"hostPID": true}), "spec.hostPID"),
        (json!({"hostIPC": true}), "spec.hostIPC"),
        (
            json!({"containers": [{"name": "c", "image": "nginx", "securityContext": {"privileged": true}}]}),
            "spec.containers[0].securityContext.privileged",
        ),
        (
            json!({"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
            "spec.containers[0].ports[0].hostPort",
        ),
        (json!({"nodeName": "node-1"}), "spec.nodeName"),
        (
            json!({"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}),
            "spec.tolerations[0]",
        ),
        (
            json!({"tolerations": [{"key": "node-role.kubernetes.io/master", "operator": "Exists"}]}),
            "spec.tolerations[0]",
        ),
        (
            json!({"priorityClassName": "system-cluster-critical"}),
            "spec.priorityClassName",
        ),
        (
            json!({"priorityClassName": "system-node-critical"}),
            "spec.priorityClassName",
        ),
    ];
    for (i, (spec, field)) in cases.into_iter().enumerate() {
        let name = format!("escape-{i}");
        let r = pods.create(&pp, &pod(&name, spec)).await;
        assert_forbidden(
            r,
            &pods,
            &name,
            &[&format!("pods \"{name}\" is forbidden: "), field],
        )
        .await;
    }
    pods.create(
        &pp,
        &pod(
            "fine",
            json!({"tolerations": [{"key": "gpu", "operator": "Exists"}]}),
        ),
    )
    .await
    .expect("an ordinary pod");

    // The root cluster is a plain cluster.
    let root: Api<Pod> = Api::namespaced(f.root_client().await, "default");
    root.create(
        &pp,
        &pod("host", json!({"hostNetwork": true, "nodeName": "node-1"})),
    )
    .await
    .expect("root is not guarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_admission() {
    let f = Fixture::start().await;
    let pp = PostParams::default();
    let client = f.root_client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "default");
    wait_for("the default ServiceAccount", WAIT, || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;

    // Defaulted ServiceAccount, token volume and mounts, as kube-apiserver.
    let p = pods
        .create(
            &pp,
            &pod(
                "p",
                json!({"initContainers": [{"name": "i", "image": "busybox"}],
                "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx"}]}),
            ),
        )
        .await
        .unwrap();
    let stored = serde_json::to_value(pods.get("p").await.unwrap()).unwrap();
    assert_eq!(serde_json::to_value(&p).unwrap()["spec"], stored["spec"]);
    let spec = &stored["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    let volume = &spec["volumes"][0];
    let name = volume["name"].as_str().unwrap();
    assert!(
        name.starts_with("kube-api-access-") && name.len() == 21,
        "{name}"
    );
    assert_eq!(
        volume["projected"],
        json!({"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}],
            "defaultMode": 420})
    );
    let mount = json!([{"name": name, "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
    assert_eq!(spec["containers"][0]["volumeMounts"], mount);
    assert_eq!(spec["containers"][1]["volumeMounts"], mount);

    // Opting out, on the pod or on the ServiceAccount (the pod wins).
    let p = pods
        .create(
            &pp,
            &pod("off", json!({"automountServiceAccountToken": false})),
        )
        .await
        .unwrap();
    assert!(p.spec.unwrap().volumes.is_none());
    let quiet: k8s_openapi::api::core::v1::ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "quiet"}, "automountServiceAccountToken": false,
        "imagePullSecrets": [{"name": "registry"}]}))
    .unwrap();
    sas.create(&pp, &quiet).await.unwrap();
    let p = serde_json::to_value(
        pods.create(&pp, &pod("quiet", json!({"serviceAccountName": "quiet"})))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(p["spec"].get("volumes").is_none(), "{p}");
    assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "registry"}]));
    let p = pods
        .create(
            &pp,
            &pod(
                "loud",
                json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().volumes.map(|v| v.len()), Some(1));

    // A ServiceAccount that does not exist: 403, nothing stored.
    let r = pods
        .create(&pp, &pod("lost", json!({"serviceAccountName": "missing"})))
        .await;
    let msg = assert_forbidden(r, &pods, "lost", &[]).await;
    assert_eq!(
        msg,
        "pods \"lost\" is forbidden: error looking up service account default/missing: serviceaccount \"missing\" not found"
    );

    // Virtual clusters alike.
    let c = virtual_cluster(&f, "root", "sa", json!({})).await;
    let vpods: Api<Pod> = Api::namespaced(c, "default");
    let p = vpods.create(&pp, &pod("p", json!({}))).await.unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert!(
        spec.volumes.unwrap()[0]
            .name
            .starts_with("kube-api-access-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_virtual_clusters_inherit_and_cannot_widen() {
    let f = Fixture::start().await;
    let pp = PostParams::default();
    virtual_cluster(
        &f,
        "root",
        "team-a",
        json!({"isolation": {"runtimeClassName": "kata", "allowedRuntimeClassNames": ["kata"],
            "podSecurity": "restricted"},
            "limits": {"maxObjects": 1000, "requestsPerSecond": 50}}),
    )
    .await;
    let team_a = admin(&f, "team-a").await;
    let vcs = virtual_clusters(&team_a, "default");
    let vc = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "tenancy.nestkube.io/v1alpha1",
            "kind": "VirtualCluster", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}))
        .unwrap()
    };
    let refused = |r: Result<DynamicObject, kube::Error>| {
        let (code, reason, message) = refusal(r);
        assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{message}");
        message
    };

    // Wider than the parent: every offending field is named; nothing stored.
    let m = refused(
        vcs.create(
            &pp,
            &vc(
                "wide",
                json!({"isolation": {"runtimeClassName": "kata",
                "allowedRuntimeClassNames": ["kata", "runc"], "podSecurity": "baseline"},
                "limits": {"maxObjects": 5000}}),
            ),
        )
        .await,
    );
    assert!(
        m.starts_with("virtualclusters.tenancy.nestkube.io \"wide\" is forbidden: "),
        "{m}"
    );
    for part in [
        "spec.isolation.allowedRuntimeClassNames[1]: \"runc\" is not allowed by the parent cluster \"team-a\" (allowed: kata)",
        "spec.isolation.podSecurity: \"baseline\" is less strict than the parent cluster \"team-a\"'s \"restricted\"",
        "spec.limits.maxObjects: 5000 exceeds the parent cluster \"team-a\"'s limit of 1000",
    ] {
        assert!(m.contains(part), "{m:?} lacks {part:?}");
    }
    assert!(vcs.get_opt("wide").await.unwrap().is_none());
    let m = refused(
        vcs.create(
            &pp,
            &vc(
                "runc",
                json!({"isolation": {"runtimeClassName": "runc", "podSecurity": "restricted"}}),
            ),
        )
        .await,
    );
    assert!(
        m.contains("spec.isolation.runtimeClassName: \"runc\" is not allowed"),
        "{m}"
    );

    // What the child leaves unset is inherited, visible in its spec.
    let dev = virtual_cluster(
        &f,
        "team-a",
        "dev",
        json!({"isolation": {"podSecurity": "restricted"}}),
    )
    .await;
    let stored = vcs.get("dev").await.unwrap();
    assert_eq!(stored.data["spec"]["isolation"]["runtimeClassName"], "kata");
    assert_eq!(
        stored.data["spec"]["isolation"]["allowedRuntimeClassNames"],
        json!(["kata"])
    );
    assert_eq!(
        stored.data["spec"]["limits"],
        json!({"maxObjects": 1000, "requestsPerSecond": 50})
    );
    // ... and enforced in the child's own pods.
    let pods: Api<Pod> = Api::namespaced(dev, "default");
    let p = pods
        .create(&pp, &hardened("p"))
        .await
        .expect("a restricted pod");
    assert_eq!(runtime_class(&p), Some("kata"));

    // An update that widens is refused too; one that narrows is not.
    let m = refused(
        vcs.patch(
            "dev",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"limits": {"requestsPerSecond": 500}}})),
        )
        .await,
    );
    assert!(
        m.contains("spec.limits.requestsPerSecond: 500 exceeds"),
        "{m}"
    );
    vcs.patch(
        "dev",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"limits": {"requestsPerSecond": 5}}})),
    )
    .await
    .expect("narrowing is allowed");

    // Nesting depth: team-a:dev:l3:l4 is the deepest (4 levels).
    let inherit_all = json!({"isolation": {"podSecurity": "restricted"}});
    virtual_cluster(&f, "team-a:dev", "l3", inherit_all.clone()).await;
    virtual_cluster(&f, "team-a:dev:l3", "l4", inherit_all.clone()).await;
    let deepest = admin(&f, "team-a:dev:l3:l4").await;
    let m = refused(
        virtual_clusters(&deepest, "default")
            .create(&pp, &vc("l5", inherit_all))
            .await,
    );
    assert!(
        m.contains(
            "\"team-a:dev:l3:l4:l5\" would be nested 5 levels deep, more than the maximum of 4"
        ),
        "{m}"
    );
}

/// The status of VirtualCluster `name` in namespace `default` of `client`'s
/// cluster once `ok` holds for it.
async fn vc_status(client: &Client, name: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let vcs = virtual_clusters(client, "default");
    wait_for(
        &format!("the status of VirtualCluster {name}"),
        WAIT,
        || async {
            let status = vcs.get(name).await.ok()?.data["status"].clone();
            ok(&status).then_some(status)
        },
    )
    .await
}

/// The condition `type_` of a VirtualCluster status.
fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tightened_policy_is_reported_and_new_pods_follow_it() {
    let f = Fixture::start().await;
    let pp = PostParams::default();
    let root = admin(&f, "root").await;
    let open = json!({"isolation": {"runtimeClassName": "runc",
        "allowedRuntimeClassNames": ["runc", "kata"]}});
    let a = virtual_cluster(&f, "root", "team-a", open.clone()).await;
    let a_pods: Api<Pod> = Api::namespaced(a.clone(), "default");
    let old = a_pods.create(&pp, &pod("old", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&old), Some("runc"));
    let dev = virtual_cluster(&f, "team-a", "dev", open.clone()).await;
    let dev_pods: Api<Pod> = Api::namespaced(dev.clone(), "default");
    dev_pods.create(&pp, &pod("old", json!({}))).await.unwrap();
    let compliant = |s: &Value| {
        condition(s, "PolicyCompliant")["status"] == "True" && s["nonCompliantPods"] == 0
    };
    vc_status(&root, "team-a", compliant).await;
    vc_status(&a, "dev", compliant).await;

    // team-a's owner tightens its policy to kata only.
    virtual_clusters(&root, "default")
        .patch(
            "team-a",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"isolation": {
                "runtimeClassName": "kata", "allowedRuntimeClassNames": ["kata"]}}})),
        )
        .await
        .unwrap();
    // team-a's running runc pod is counted, not moved.
    let status = vc_status(&root, "team-a", |s| s["nonCompliantPods"] == 1).await;
    let c = condition(&status, "PolicyCompliant");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("NonCompliantPods")),
        "{c}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert!(a_pods.get_opt("old").await.unwrap().is_some());
    // dev no longer fits inside team-a: its status names the fields.
    let status = vc_status(&a, "dev", |s| {
        condition(s, "PolicyCompliant")["reason"] == "ExceedsParentPolicy"
    })
    .await;
    let c = condition(&status, "PolicyCompliant");
    assert_eq!(c["status"], "False");
    let message = c["message"].as_str().unwrap();
    for part in [
        "spec.isolation.allowedRuntimeClassNames[0]: \"runc\" is not allowed by the parent cluster \"team-a\" (allowed: kata)",
        "spec.isolation.runtimeClassName: \"runc\" is not allowed",
    ] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert!(dev_pods.get_opt("old").await.unwrap().is_some());

    // New pods follow the tighter rule, in team-a and in dev below it.
    let runc = || pod("new-runc", json!({"runtimeClassName": "runc"}));
    assert_forbidden(
        a_pods.create(&pp, &runc()).await,
        &a_pods,
        "new-runc",
        &["RuntimeClass \"runc\" is not allowed", "(allowed: kata)"],
    )
    .await;
    assert_forbidden(
        dev_pods.create(&pp, &runc()).await,
        &dev_pods,
        "new-runc",
        &["RuntimeClass \"runc\" is not allowed", "(allowed: kata)"],
    )
    .await;
    let defaulted = dev_pods.create(&pp, &pod("new", json!({}))).await.unwrap();
    assert_eq!(runtime_class(&defaulted), Some("kata"));

    // dev's owner follows: compliant again.
    virtual_clusters(&a, "default")
        .patch(
            "dev",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"isolation": {
                "runtimeClassName": "kata", "allowedRuntimeClassNames": ["kata"]}}})),
        )
        .await
        .unwrap();
    let status = vc_status(&a, "dev", |s| {
        condition(s, "PolicyCompliant")["reason"] != "ExceedsParentPolicy"
    })
    .await;
    // Its own runc pod now counts against it.
    assert_eq!(status["nonCompliantPods"], 1, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_classes_are_read_only_for_tenants() {
    let f = Fixture::start().await;
    let pp = PostParams::default();
    let rc = |name: &str| -> k8s_openapi::api::node::v1::RuntimeClass {
        serde_json::from_value(json!({"metadata": {"name": name}, "handler": "kata"})).unwrap()
    };
    type Rc = k8s_openapi::api::node::v1::RuntimeClass;
    // The root cluster is a plain cluster.
    let root: Api<Rc> = Api::all(f.root_client().await);
    root.create(&pp, &rc("kata"))
        .await
        .expect("root admin writes RuntimeClasses");

    let c = virtual_cluster(&f, "root", "ro", json!({})).await;
    let tenant: Api<Rc> = Api::all(c);
    let (code, reason, m) = refusal(tenant.create(&pp, &rc("kata")).await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{m}");
    assert_eq!(
        m,
        "runtimeclasses.node.k8s.io \"kata\" is forbidden: runtimeclasses of virtual cluster \"ro\" are mirrored from its parent cluster and read-only"
    );
    // In-process components (the syncer's client) keep the mirror.
    let syncer: Api<Rc> = Api::all(f.running.api.client_for("ro"));
    syncer
        .create(&pp, &rc("kata"))
        .await
        .expect("in-process writes");
    assert!(tenant.get("kata").await.is_ok(), "tenants read them");
    let (code, ..) = refusal(
        tenant
            .patch(
                "kata",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
            )
            .await,
    );
    assert_eq!(code, 403);
    let (code, ..) = refusal(tenant.delete("kata", &Default::default()).await);
    assert_eq!(code, 403);
    syncer
        .delete("kata", &Default::default())
        .await
        .expect("in-process deletes");
}

/// POSTs `body` to `path` with `client`; returns the status and the
/// `Warning` headers' texts (unescaped).
async fn post_with_warnings(client: &Client, path: &str, body: Value) -> (u16, Vec<String>) {
    let req = http::Request::post(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let resp = client.send(req).await.expect("send");
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let text = v.strip_prefix("299 - \"").and_then(|t| t.strip_suffix('"'));
            text.unwrap_or(v)
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        })
        .collect();
    (resp.status().as_u16(), warnings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_warns_about_templates_and_warn_levels() {
    let f = Fixture::start().await;
    let c = virtual_cluster(
        &f,
        "root",
        "warn",
        json!({"isolation": {"podSecurity": "restricted"}}),
    )
    .await;
    let restricted_plain = "would violate PodSecurity \"restricted:latest\": \
        allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
        unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
        runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
        seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";
    // A Deployment whose pods would be refused: created, with a warning.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (code, warnings) = post_with_warnings(
        &c,
        "/apis/apps/v1/namespaces/default/deployments",
        deployment,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(warnings, [restricted_plain]);
    let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "nginx", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}}}}});
    let (code, warnings) =
        post_with_warnings(&c, "/apis/batch/v1/namespaces/default/cronjobs", cronjob).await;
    assert_eq!((code, warnings.len()), (201, 0), "{warnings:?}");

    // The warn label warns about pods the enforced level admits (root: no policy).
    let root = f.root_client().await;
    Api::<Namespace>::all(root.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "warned",
                "labels": {"pod-security.kubernetes.io/warn": "restricted"}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let (code, warnings) = post_with_warnings(&root, "/api/v1/namespaces/warned/pods", pod).await;
    assert_eq!(code, 201);
    assert_eq!(warnings, [restricted_plain]);
}
