//! The syncer in standalone mode against a real server: a VirtualCluster
//! created in `root` syncs its pods (with the ConfigMaps they reference and
//! a token issued by the virtual cluster), Services and status through
//! root; a nested one syncs through two hops; deleting a VirtualCluster
//! leaves nothing of it in its parent; a restarted syncer creates what is
//! missing and deletes orphans. The test plays the kubelet by writing the
//! status of root's pods.

use std::time::Instant;

use crate::common::{
    self, Server, js, virtual_cluster, virtual_cluster_with, virtual_clusters, wait_for,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nestkube_syncer::names;
use serde_json::{Value, json};

fn pod(name: &str, configmap: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [{
                "name": "main", "image": "busybox",
                "envFrom": [{"configMapRef": {"name": configmap}}],
                "env": [{"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            }],
            "volumes": [
                {"name": "settings", "configMap": {"name": configmap}},
                // What upstream's ServiceAccount admission mounts.
                {"name": "kube-api-access", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                ]}},
            ],
        },
    }))
    .unwrap()
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

/// Plays the kubelet: the pod `name` of `client` runs.
async fn run_pod(client: &Client, name: &str, ip: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let now = "2026-01-01T00:00:00Z";
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.0.7",
        "startTime": now,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "image": "busybox",
            "imageID": "", "started": true, "state": {"running": {"startedAt": now}}}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("kubelet status");
}

/// Everything in `client`'s namespace `ns` labelled with VirtualCluster `uid`.
async fn owned(client: &Client, uid: &str) -> Vec<String> {
    let lp = ListParams::default().labels(&names::owner_selector(uid));
    let mut out = Vec::new();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    out.extend(
        pods.list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| format!("pod/{}", o.metadata.name.unwrap())),
    );
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    out.extend(
        svcs.list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| format!("service/{}", o.metadata.name.unwrap())),
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    out.extend(
        cms.list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| format!("configmap/{}", o.metadata.name.unwrap())),
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    out.extend(
        secrets
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| format!("secret/{}", o.metadata.name.unwrap())),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_services_and_status_through_root() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (uid, team) = virtual_cluster(&server.root, "team-a").await;

    // A ConfigMap and a pod using it: the copy appears in root.
    Api::<ConfigMap>::namespaced(team.clone(), "default")
        .create(&PostParams::default(), &configmap("settings"))
        .await
        .unwrap();
    let vpods: Api<Pod> = Api::namespaced(team.clone(), "default");
    let started = Instant::now();
    let vpod = vpods
        .create(&PostParams::default(), &pod("web", "settings"))
        .await
        .unwrap();
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let hname = names::host_name("team-a", "default", "web");
    assert_eq!(hname, "web-x-default-x-team-a");
    let hpod = wait_for("the copy in root", || async {
        root_pods.get(&hname).await.ok()
    })
    .await;
    eprintln!("virtual create -> parent pod: {:?}", started.elapsed());
    let h = js(&hpod);
    let labels = &h["metadata"]["labels"];
    assert_eq!(labels[names::MANAGED_BY_LABEL], "nestkube");
    assert_eq!(labels[names::VC_UID_LABEL], uid.as_str());
    assert_eq!(labels[names::NAMESPACE_LABEL], "default");
    assert_eq!(labels[names::NAME_LABEL], "web");
    assert_eq!(labels["label.tenancy.nestkube.io/app"], "web");
    let ann = &h["metadata"]["annotations"];
    assert_eq!(ann[names::CLUSTER_ANNOTATION], "team-a");
    assert_eq!(ann[names::NAME_ANNOTATION], "web");
    assert_eq!(
        ann[names::UID_ANNOTATION],
        vpod.metadata.uid.clone().unwrap().as_str()
    );
    // References translated, the ConfigMap copied, no parent credential.
    let spec = &h["spec"];
    let cm_copy = names::host_name("team-a", "default", "settings");
    assert!(
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"] == cm_copy.as_str()),
        "{spec}"
    );
    let c = &spec["containers"][0];
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], cm_copy.as_str());
    assert_eq!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "MY_NAME")
            .unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['tenancy.nestkube.io/origin-name']"
    );
    let address = &server.running.api.server_address;
    let env_value = |n: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        env_value("KUBERNETES_SERVICE_PORT"),
        Some(json!(address.rsplit_once(':').unwrap().1))
    );
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert!(spec["serviceAccountName"].is_null() || spec["serviceAccountName"] == "default");
    assert!(spec["nodeName"].is_null());
    let root_cms: Api<ConfigMap> = Api::namespaced(server.root.clone(), "default");
    let copied = root_cms.get(&cm_copy).await.expect("ConfigMap copy");
    assert_eq!(copied.data.unwrap()["k"], "v");
    // The projected token comes from a Secret holding a token the virtual
    // cluster issued, bound to the virtual pod.
    let token_secret = format!("{hname}.sa-token");
    let projected = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["projected"].is_object())
        .unwrap();
    let sources = projected["projected"]["sources"].as_array().unwrap();
    assert_eq!(
        sources[0]["secret"]["name"],
        token_secret.as_str(),
        "{projected}"
    );
    assert_eq!(sources[0]["secret"]["items"][0]["key"], "token");
    assert_eq!(
        sources[1]["secret"]["name"],
        token_secret.as_str(),
        "{projected}"
    );
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.annotations['tenancy.nestkube.io/origin-namespace']"
    );
    let secrets: Api<Secret> = Api::namespaced(server.root.clone(), "default");
    let secret = wait_for("the token Secret", || async {
        secrets.get(&token_secret).await.ok()
    })
    .await;
    let data = secret.data.unwrap();
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    let claims = server
        .running
        .api
        .clusters
        .get("team-a")
        .unwrap()
        .sa_key
        .verify(
            &token,
            &[nestkube_apiserver::auth::tokens::API_AUDIENCE.to_string()],
        )
        .expect("a token of the virtual cluster");
    assert_eq!(claims.kubernetes.pod.unwrap().name, "web");
    let ca = String::from_utf8(data["ca.crt"].0.clone()).unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");
    assert_eq!(data["namespace"].0, b"default");

    // The kubelet reports: the virtual pod follows.
    let started = Instant::now();
    run_pod(&server.root, &hname, "10.244.0.5").await;
    let v = wait_for("the virtual pod to be Running", || async {
        let p = js(&vpods.get("web").await.ok()?);
        (p["status"]["phase"] == "Running").then_some(p)
    })
    .await;
    eprintln!("parent status -> virtual status: {:?}", started.elapsed());
    assert_eq!(v["status"]["podIP"], "10.244.0.5");
    assert_eq!(v["status"]["hostIP"], "192.168.0.7");
    // The status the syncer wrote is its own in managedFields.
    let managers: Vec<&str> = v["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subresource"] == "status")
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"nestkube-syncer"), "{managers:?}");
    assert_eq!(v["status"]["containerStatuses"][0]["ready"], true);

    // A Service: copied with a translated selector; the virtual one takes
    // root's cluster IP.
    let vsvcs: Api<Service> = Api::namespaced(team.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    vsvcs.create(&PostParams::default(), &svc).await.unwrap();
    let root_svcs: Api<Service> = Api::namespaced(server.root.clone(), "default");
    let hsvc = wait_for("the Service copy", || async {
        root_svcs.get(&hname).await.ok()
    })
    .await;
    let hs = js(&hsvc);
    assert_eq!(
        hs["spec"]["selector"]["label.tenancy.nestkube.io/app"],
        "web"
    );
    assert_eq!(hs["spec"]["selector"][names::VC_UID_LABEL], uid.as_str());
    assert_eq!(hs["spec"]["selector"][names::NAMESPACE_LABEL], "default");
    // The selector selects the pod's copy.
    let sel = hs["spec"]["selector"].as_object().unwrap();
    assert!(
        sel.iter().all(|(k, v)| labels[k] == *v),
        "{sel:?} vs {labels}"
    );
    let ip = hs["spec"]["clusterIP"].as_str().unwrap().to_string();
    wait_for("the virtual Service to take root's cluster IP", || async {
        let s = js(&vsvcs.get("web").await.ok()?);
        (s["spec"]["clusterIP"] == ip.as_str()).then_some(())
    })
    .await;

    // Deleting the virtual pod deletes its copy and the unreferenced ConfigMap copy.
    vpods.delete("web", &DeleteParams::default()).await.unwrap();
    common::wait_gone("the copy to go", &root_pods, &hname).await;
    common::wait_gone("the ConfigMap copy to go", &root_cms, &cm_copy).await;

    // Deleting the VirtualCluster leaves nothing of it in root.
    vpods
        .create(&PostParams::default(), &pod("again", "settings"))
        .await
        .unwrap();
    let again = names::host_name("team-a", "default", "again");
    wait_for("the second copy", || async {
        root_pods.get(&again).await.ok()
    })
    .await;
    // A copy deleted below a started pod (an eviction): the virtual pod
    // goes too, as vcluster does; a pod that never started gets a new copy.
    run_pod(&server.root, &again, "10.244.0.6").await;
    wait_for("the second pod to run", || async {
        (js(&vpods.get("again").await.ok()?)["status"]["phase"] == "Running").then_some(())
    })
    .await;
    root_pods
        .delete(&again, &DeleteParams::default())
        .await
        .unwrap();
    common::wait_gone("the evicted virtual pod to go", &vpods, "again").await;
    vpods
        .create(&PostParams::default(), &pod("fresh", "settings"))
        .await
        .unwrap();
    let fresh = names::host_name("team-a", "default", "fresh");
    let first = wait_for("the copy of a fresh pod", || async {
        root_pods.get(&fresh).await.ok()
    })
    .await;
    root_pods
        .delete(&fresh, &DeleteParams::default())
        .await
        .unwrap();
    wait_for("a new copy of the pod that never started", || async {
        let p = root_pods.get(&fresh).await.ok()?;
        (p.metadata.uid != first.metadata.uid).then_some(())
    })
    .await;
    assert!(vpods.get_opt("fresh").await.unwrap().is_some());
    virtual_clusters(&server.root, "default")
        .delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("nothing labelled with the VirtualCluster's uid", || async {
        owned(&server.root, &uid).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_cluster_syncs_through_two_hops() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "a").await;
    let (b_uid, b) = virtual_cluster(&a, "b").await;
    assert!(server.running.api.clusters.contains("a:b"));

    Api::<ConfigMap>::namespaced(b.clone(), "default")
        .create(&PostParams::default(), &configmap("cfg"))
        .await
        .unwrap();
    let bpods: Api<Pod> = Api::namespaced(b.clone(), "default");
    let started = Instant::now();
    bpods
        .create(&PostParams::default(), &pod("p", "cfg"))
        .await
        .unwrap();
    let in_a = names::host_name("a:b", "default", "p");
    assert_eq!(in_a, "p-x-default-x-a-x-b");
    let in_root = names::host_name("a", "default", &in_a);
    let apods: Api<Pod> = Api::namespaced(a.clone(), "default");
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    wait_for("the copy in a", || async { apods.get(&in_a).await.ok() }).await;
    let h = wait_for("the copy of the copy in root", || async {
        root_pods.get(&in_root).await.ok()
    })
    .await;
    eprintln!(
        "two hops, virtual create -> root pod: {:?}",
        started.elapsed()
    );
    let h = js(&h);
    // The owner annotations name the level just above; the origin ones
    // (also what the workload's downward API reads) the pod of a:b.
    let ann = &h["metadata"]["annotations"];
    assert_eq!(ann[names::CLUSTER_ANNOTATION], "a");
    assert_eq!(ann[names::NAME_ANNOTATION], in_a.as_str());
    assert_eq!(ann[names::ORIGIN_CLUSTER_ANNOTATION], "a:b", "{ann}");
    assert_eq!(ann[names::ORIGIN_NAMESPACE_ANNOTATION], "default");
    assert_eq!(ann[names::ORIGIN_NAME_ANNOTATION], "p");
    let p_uid = bpods.get("p").await.unwrap().metadata.uid.unwrap();
    assert_eq!(ann[names::ORIGIN_UID_ANNOTATION], p_uid.as_str());
    assert_eq!(
        ann[nestkube_syncer::down::pod::SERVICE_ACCOUNT_ANNOTATION],
        "default"
    );
    // The ConfigMap went down both hops too.
    let cm_root = names::host_name("a", "default", &names::host_name("a:b", "default", "cfg"));
    assert!(
        h["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"] == cm_root.as_str())
    );
    Api::<ConfigMap>::namespaced(server.root.clone(), "default")
        .get(&cm_root)
        .await
        .expect("ConfigMap in root");

    let started = Instant::now();
    run_pod(&server.root, &in_root, "10.244.1.9").await;
    wait_for("the pod of a:b to be Running", || async {
        let p = js(&bpods.get("p").await.ok()?);
        (p["status"]["phase"] == "Running" && p["status"]["podIP"] == "10.244.1.9").then_some(())
    })
    .await;
    eprintln!(
        "two hops, root status -> virtual status: {:?}",
        started.elapsed()
    );

    // A tenant may write any annotation on its pods: an origin outside
    // its own subtree is not believed, at either hop.
    let mut forged = pod("forged", "cfg");
    forged.metadata.annotations = Some(
        [
            (names::ORIGIN_CLUSTER_ANNOTATION, "z"),
            (names::ORIGIN_NAMESPACE_ANNOTATION, "kube-system"),
            (names::ORIGIN_NAME_ANNOTATION, "victim"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    bpods.create(&PostParams::default(), &forged).await.unwrap();
    let forged_root = names::host_name(
        "a",
        "default",
        &names::host_name("a:b", "default", "forged"),
    );
    let h = wait_for("the forged pod's copy in root", || async {
        root_pods.get(&forged_root).await.ok()
    })
    .await;
    let ann = &js(&h)["metadata"]["annotations"];
    assert_eq!(ann[names::ORIGIN_CLUSTER_ANNOTATION], "a:b", "{ann}");
    assert_eq!(ann[names::ORIGIN_NAMESPACE_ANNOTATION], "default");
    assert_eq!(ann[names::ORIGIN_NAME_ANNOTATION], "forged");
    bpods
        .delete("forged", &DeleteParams::default())
        .await
        .unwrap();

    bpods.delete("p", &DeleteParams::default()).await.unwrap();
    wait_for("both copies to go", || async {
        (apods.get_opt(&in_a).await.unwrap().is_none()
            && root_pods.get_opt(&in_root).await.unwrap().is_none())
        .then_some(())
    })
    .await;
    virtual_clusters(&a, "default")
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("nothing of b left in a", || async {
        owned(&a, &b_uid).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_started_syncer_creates_what_is_missing_and_deletes_orphans() {
    let server = Server::start().await;
    let (uid, team) = virtual_cluster(&server.root, "team-a").await;
    let vpods: Api<Pod> = Api::namespaced(team.clone(), "default");
    Api::<ConfigMap>::namespaced(team.clone(), "default")
        .create(&PostParams::default(), &configmap("settings"))
        .await
        .unwrap();
    vpods
        .create(&PostParams::default(), &pod("kept", "settings"))
        .await
        .unwrap();
    // An orphan: a copy whose virtual pod does not exist.
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let orphan_name = names::host_name("team-a", "default", "gone");
    let mut labels = names::owner_labels(&uid, "default", "gone");
    labels.insert("label.tenancy.nestkube.io/app".into(), "gone".into());
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": orphan_name, "labels": labels,
            "annotations": names::owner_annotations("team-a", "default", "gone", "uid-of-gone")},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    root_pods
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    // A copy of a cluster that does not exist any more.
    let stale_name = names::host_name("team-z", "default", "x");
    let stale: Pod = serde_json::from_value(json!({
        "metadata": {"name": stale_name, "labels": names::owner_labels("uid-of-team-z", "default", "x"),
            "annotations": names::owner_annotations("team-z", "default", "x", "uid-x")},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    root_pods
        .create(&PostParams::default(), &stale)
        .await
        .unwrap();

    nestkube_syncer::spawn(server.running.api.clone(), None);
    let kept = names::host_name("team-a", "default", "kept");
    wait_for("the missing copy", || async {
        root_pods.get(&kept).await.ok()
    })
    .await;
    wait_for("the orphans to go", || async {
        (root_pods.get_opt(&orphan_name).await.unwrap().is_none()
            && root_pods.get_opt(&stale_name).await.unwrap().is_none())
        .then_some(())
    })
    .await;
    // Exactly one copy per virtual pod.
    let copies = root_pods
        .list(&ListParams::default().labels(&names::owner_selector(&uid)))
        .await
        .unwrap();
    let names: Vec<Value> = copies
        .items
        .iter()
        .map(|p| json!(p.metadata.name))
        .collect();
    assert_eq!(names, vec![json!(kept)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_classes_are_mirrored_from_the_parent() {
    use k8s_openapi::api::node::v1::RuntimeClass;
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let root_rcs: Api<RuntimeClass> = Api::all(server.root.clone());
    let rc = |name: &str, handler: &str| -> RuntimeClass {
        serde_json::from_value(json!({"metadata": {"name": name}, "handler": handler})).unwrap()
    };
    root_rcs
        .create(&PostParams::default(), &rc("kata", "kata"))
        .await
        .unwrap();
    let (_, team) = virtual_cluster(&server.root, "team-a").await;
    let (_, dev) = virtual_cluster(&team, "dev").await;
    let team_rcs: Api<RuntimeClass> = Api::all(team.clone());
    let dev_rcs: Api<RuntimeClass> = Api::all(dev.clone());
    wait_for("kata in team-a and team-a:dev", || async {
        (team_rcs.get("kata").await.ok()?.handler == "kata"
            && dev_rcs.get("kata").await.ok()?.handler == "kata")
            .then_some(())
    })
    .await;
    // Later changes of the parent follow, through both levels.
    root_rcs
        .create(&PostParams::default(), &rc("gvisor", "runsc"))
        .await
        .unwrap();
    root_rcs
        .delete("kata", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("gvisor in, kata out", || async {
        let names = |l: kube::core::ObjectList<RuntimeClass>| -> Vec<String> {
            l.items
                .into_iter()
                .filter_map(|r| r.metadata.name)
                .collect()
        };
        let team = names(team_rcs.list(&ListParams::default()).await.ok()?);
        let dev = names(dev_rcs.list(&ListParams::default()).await.ok()?);
        (team == ["gvisor"] && dev == ["gvisor"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_classes_mirror_only_what_the_virtual_cluster_allows() {
    use k8s_openapi::api::node::v1::RuntimeClass;
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let root_rcs: Api<RuntimeClass> = Api::all(server.root.clone());
    for (name, handler) in [("kata", "kata"), ("gvisor", "runsc"), ("runc", "runc")] {
        let rc: RuntimeClass =
            serde_json::from_value(json!({"metadata": {"name": name}, "handler": handler}))
                .unwrap();
        root_rcs.create(&PostParams::default(), &rc).await.unwrap();
    }
    let (_, team) = virtual_cluster_with(
        &server.root,
        "team-a",
        json!({"isolation": {"runtimeClassName": "kata",
                             "allowedRuntimeClassNames": ["kata", "gvisor"]}}),
    )
    .await;
    let (_, dev) = virtual_cluster_with(
        &team,
        "dev",
        json!({"isolation": {"runtimeClassName": "kata"}}),
    )
    .await;
    let names = |l: kube::core::ObjectList<RuntimeClass>| -> Vec<String> {
        let mut n: Vec<String> = l
            .items
            .into_iter()
            .filter_map(|r| r.metadata.name)
            .collect();
        n.sort();
        n
    };
    let (team_rcs, dev_rcs): (Api<RuntimeClass>, Api<RuntimeClass>) =
        (Api::all(team.clone()), Api::all(dev.clone()));
    wait_for("team-a: kata and gvisor; team-a:dev: kata", || async {
        let t = names(team_rcs.list(&ListParams::default()).await.ok()?);
        let d = names(dev_rcs.list(&ListParams::default()).await.ok()?);
        (t == ["gvisor", "kata"] && d == ["kata"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_with_the_same_names_stay_apart_and_changes_follow() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (uid_a, a) = virtual_cluster(&server.root, "team-a").await;
    let (uid_b, b) = virtual_cluster(&server.root, "team-b").await;
    for c in [&a, &b] {
        Api::<ConfigMap>::namespaced(c.clone(), "default")
            .create(&PostParams::default(), &configmap("settings"))
            .await
            .unwrap();
        Api::<Pod>::namespaced(c.clone(), "default")
            .create(&PostParams::default(), &pod("web", "settings"))
            .await
            .unwrap();
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }))
        .unwrap();
        Api::<Service>::namespaced(c.clone(), "default")
            .create(&PostParams::default(), &svc)
            .await
            .unwrap();
    }
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let root_svcs: Api<Service> = Api::namespaced(server.root.clone(), "default");
    let (pa, pb) = (
        names::host_name("team-a", "default", "web"),
        names::host_name("team-b", "default", "web"),
    );
    let (hpa, hpb, sa) = wait_for("both tenants' copies", || async {
        Some((
            js(&root_pods.get(&pa).await.ok()?),
            js(&root_pods.get(&pb).await.ok()?),
            js(&root_svcs.get(&pa).await.ok()?),
        ))
    })
    .await;
    assert_eq!(
        hpa["metadata"]["labels"][names::VC_UID_LABEL],
        uid_a.as_str()
    );
    assert_eq!(
        hpb["metadata"]["labels"][names::VC_UID_LABEL],
        uid_b.as_str()
    );
    // team-a's Service selects team-a's copy and not team-b's.
    let selects = |sel: &Value, pod: &Value| {
        sel.as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| pod["metadata"]["labels"][k] == *v)
    };
    assert!(selects(&sa["spec"]["selector"], &hpa));
    assert!(!selects(&sa["spec"]["selector"], &hpb));

    // Label, image and ConfigMap changes follow the virtual objects.
    let vpods: Api<Pod> = Api::namespaced(a.clone(), "default");
    vpods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    vpods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}),
            ),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(a.clone(), "default")
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .unwrap();
    let root_cms: Api<ConfigMap> = Api::namespaced(server.root.clone(), "default");
    let cm_a = names::host_name("team-a", "default", "settings");
    let cm_b = names::host_name("team-b", "default", "settings");
    wait_for("the label, the image and the data to follow", || async {
        let p = js(&root_pods.get(&pa).await.ok()?);
        let cm = root_cms.get(&cm_a).await.ok()?;
        (p["metadata"]["labels"]["label.tenancy.nestkube.io/tier"] == "front"
            && p["spec"]["containers"][0]["image"] == "busybox:2"
            && cm.data?.get("k")? == "changed")
            .then_some(())
    })
    .await;
    // team-b's copy is untouched.
    assert_eq!(root_cms.get(&cm_b).await.unwrap().data.unwrap()["k"], "v");
}

/// Throughput: N pods of two clusters down, and their statuses up (prints
/// the times; `-- --nocapture` to see them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_pods_down_and_up() {
    const N: usize = 100;
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (uid_a, a) = virtual_cluster(&server.root, "team-a").await;
    let (uid_b, b) = virtual_cluster(&server.root, "team-b").await;
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let started = Instant::now();
    let mut creates = Vec::new();
    for (i, c) in (0..N).map(|i| (i, if i % 2 == 0 { &a } else { &b })) {
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("p{i}")},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        }))
        .unwrap();
        creates.push(tokio::spawn(async move {
            pods.create(&PostParams::default(), &p).await.unwrap();
        }));
    }
    for c in creates {
        c.await.unwrap();
    }
    let created = started.elapsed();
    let count = |uid: String| {
        let root_pods = root_pods.clone();
        async move {
            root_pods
                .list(&ListParams::default().labels(&names::owner_selector(&uid)))
                .await
                .map(|l| l.items.len())
                .unwrap_or(0)
        }
    };
    wait_for("every copy", || async {
        (count(uid_a.clone()).await + count(uid_b.clone()).await == N).then_some(())
    })
    .await;
    let down = started.elapsed();
    let started = Instant::now();
    for i in 0..N {
        let cluster = if i % 2 == 0 { "team-a" } else { "team-b" };
        run_pod(
            &server.root,
            &names::host_name(cluster, "default", &format!("p{i}")),
            "10.244.9.9",
        )
        .await;
    }
    let written = started.elapsed();
    let running = |c: Client| async move {
        Api::<Pod>::namespaced(c, "default")
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|p| js(p)["status"]["phase"] == "Running")
                    .count()
            })
            .unwrap_or(0)
    };
    wait_for("every virtual pod Running", || async {
        (running(a.clone()).await + running(b.clone()).await == N).then_some(())
    })
    .await;
    eprintln!(
        "{N} pods: created in {created:?}, all copies after {down:?}; {N} statuses written in {written:?}, all virtual Running after {:?}",
        started.elapsed()
    );
}

/// With replicas sharing a store, the syncer runs once its lease is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lease_holder_syncs() {
    let server = Server::start().await;
    let api = server.running.api.clone();
    nestkube_syncer::spawn_when_leader(api.clone(), None, Default::default(), "first".into());
    let (_, team) = virtual_cluster(&server.root, "team-a").await;
    Api::<Pod>::namespaced(team.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let hname = names::host_name("team-a", "default", "web");
    wait_for("the copy made by the lease holder", || async {
        root_pods.get(&hname).await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_go_down_and_their_status_comes_up() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, team) = virtual_cluster(&server.root, "team-a").await;
    let vpvcs: Api<PersistentVolumeClaim> = Api::namespaced(team.clone(), "default");
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    vpvcs.create(&PostParams::default(), &pvc).await.unwrap();
    let root_pvcs: Api<PersistentVolumeClaim> = Api::namespaced(server.root.clone(), "default");
    let hname = names::host_name("team-a", "default", "data");
    let copy = wait_for("the claim's copy", || async {
        root_pvcs.get(&hname).await.ok()
    })
    .await;
    let c = js(&copy);
    assert_eq!(c["spec"]["storageClassName"], "fast");
    assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1Gi");
    // The parent binds it to a volume (the test plays its PV controller):
    // the virtual claim shows it, bound to a mirror of that volume.
    let root_pvs: Api<PersistentVolume> = Api::all(server.root.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "pvc-0a1b"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "fast",
            "hostPath": {"path": "/srv/volumes/pvc-0a1b"},
            "claimRef": {"namespace": "default", "name": hname, "uid": copy.metadata.uid}},
    }))
    .unwrap();
    root_pvs.create(&PostParams::default(), &pv).await.unwrap();
    root_pvs
        .patch_status(
            "pvc-0a1b",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .unwrap();
    root_pvcs
        .patch(
            &hname,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeName": "pvc-0a1b"}})),
        )
        .await
        .unwrap();
    root_pvcs
        .patch_status(
            &hname,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "1Gi"}}}),
            ),
        )
        .await
        .unwrap();
    let bound = wait_for("the virtual claim to be Bound to the volume", || async {
        let c = js(&vpvcs.get("data").await.ok()?);
        (c["status"]["phase"] == "Bound" && c["spec"]["volumeName"] == "pvc-0a1b").then_some(c)
    })
    .await;
    assert_eq!(
        bound["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    let team_pvs: Api<PersistentVolume> = Api::all(team.clone());
    let mirror = js(&wait_for("the volume's mirror", || async {
        let v = team_pvs.get("pvc-0a1b").await.ok()?;
        (js(&v)["status"]["phase"] == "Bound").then_some(v)
    })
    .await);
    assert_eq!(
        mirror["spec"]["claimRef"],
        json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "default",
            "name": "data", "uid": bound["metadata"]["uid"]}),
        "{mirror}"
    );
    assert_eq!(mirror["spec"]["capacity"]["storage"], "1Gi");
    assert!(
        mirror["spec"]["hostPath"].is_null(),
        "the parent's path leaked: {mirror}"
    );
    // A pod mounting it mounts the copy.
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"containers": [{"name": "main", "image": "postgres"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(team.clone(), "default")
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let hp = wait_for("the pod's copy", || async {
        root_pods
            .get(&names::host_name("team-a", "default", "db"))
            .await
            .ok()
    })
    .await;
    let volumes = js(&hp)["spec"]["volumes"].clone();
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == hname.as_str()),
        "{volumes}"
    );
    vpvcs
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_gone("the claim's copy to go", &root_pvcs, &hname).await;
    common::wait_gone(
        "the volume's mirror to go with its claim",
        &team_pvs,
        "pvc-0a1b",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_classes_are_mirrored_from_the_parent() {
    use k8s_openapi::api::storage::v1::StorageClass;
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let class = |name: &str, params: Value| -> StorageClass {
        serde_json::from_value(json!({
            "metadata": {"name": name,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "csi.example.com", "parameters": params,
            "volumeBindingMode": "WaitForFirstConsumer",
        }))
        .unwrap()
    };
    let root_scs: Api<StorageClass> = Api::all(server.root.clone());
    root_scs
        .create(
            &PostParams::default(),
            &class(
                "fast",
                json!({"type": "ssd", "csi.storage.k8s.io/provisioner-secret-name": "creds"}),
            ),
        )
        .await
        .unwrap();
    let (_, team) = virtual_cluster(&server.root, "team-a").await;
    let (_, dev) = virtual_cluster(&team, "dev").await;
    let team_scs: Api<StorageClass> = Api::all(team.clone());
    let dev_scs: Api<StorageClass> = Api::all(dev.clone());
    // The tenant's own class is its own.
    wait_for("team-a to take its own class", || async {
        team_scs
            .create(&PostParams::default(), &class("mine", json!({})))
            .await
            .ok()
    })
    .await;
    for scs in [&team_scs, &dev_scs] {
        let fast = js(&wait_for("fast in team-a and team-a:dev", || async {
            scs.get("fast").await.ok()
        })
        .await);
        assert_eq!(fast["parameters"], json!({"type": "ssd"}), "{fast}");
        assert_eq!(fast["volumeBindingMode"], "WaitForFirstConsumer");
        assert_eq!(
            fast["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
    }
    // The parent's class goes: so does its mirror at every level, not the
    // tenant's own.
    root_scs
        .delete("fast", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("fast to go from team-a and team-a:dev", || async {
        (team_scs.get_opt("fast").await.unwrap().is_none()
            && dev_scs.get_opt("fast").await.unwrap().is_none())
        .then_some(())
    })
    .await;
    assert!(team_scs.get_opt("mine").await.unwrap().is_some());
    assert!(
        dev_scs.get_opt("mine").await.unwrap().is_some(),
        "team-a's own class is mirrored into team-a:dev"
    );
}
