//! The syncer against a real host control plane (kube-apiserver,
//! kube-scheduler, kwok nodes that run pods): a virtual pod of a cluster
//! placed on the host becomes a host pod that the scheduler binds and kwok
//! runs, the virtual pod reports Running with the host's pod IP and is
//! bound to the host pod's node, and deleting it deletes the host pod; removing the cluster leaves nothing
//! labelled with its uid on the host.
//!
//! The placement is set here as the host provisioner sets it, so this test
//! does not depend on how VirtualClusters reach the host.

use std::time::Instant;

use crate::common::{self, Server, client_for, js, wait_for_within};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::Kubeconfig;
use nestkube_apiserver::tenancy::{Parent, Placement};
use nestkube_syncer::names;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_run_on_the_host() {
    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("syncer");
    let host_client = common::host_admin(host).await;

    let server = Server::start().await;
    let api = server.running.api.clone();
    let cluster =
        common::host_placed_cluster(&server, host_client.clone(), ns.name(), "tenant").await;
    let uid = format!("uid-{cluster}");

    let vpods: Api<Pod> = Api::namespaced(api.client_for(&cluster), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"runtimeClassName": "runc", "containers": [{"name": "main", "image": "nginx"}]},
    }))
    .unwrap();
    // The virtual cluster's ServiceAccount admission waits for the default
    // service account: retry until the create is admitted.
    let started = Instant::now();
    wait_for_within("the virtual pod to be created", 30, || async {
        vpods.create(&PostParams::default(), &pod).await.ok()
    })
    .await;
    let host_pods: Api<Pod> = Api::namespaced(host_client.clone(), ns.name());
    let hname = names::host_name(&cluster, "default", "web");
    let hpod = wait_for_within("the host pod", 30, || async {
        host_pods.get(&hname).await.ok()
    })
    .await;
    let created = started.elapsed();
    let h = js(&hpod);
    assert_eq!(h["metadata"]["labels"][names::VC_UID_LABEL], uid.as_str());
    assert_eq!(h["spec"]["runtimeClassName"], "runc");
    assert_eq!(h["spec"]["automountServiceAccountToken"], false);
    // The token it runs with was issued by the virtual cluster.
    if let Some(v) = h["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["projected"].is_object()))
    {
        let secret = v["projected"]["sources"][0]["secret"]["name"]
            .as_str()
            .expect("token from a Secret")
            .to_string();
        let secrets: Api<Secret> = Api::namespaced(host_client.clone(), ns.name());
        let s = wait_for_within("the token Secret", 30, || async {
            secrets.get(&secret).await.ok()
        })
        .await;
        let token = String::from_utf8(s.data.unwrap()["token"].0.clone()).unwrap();
        api.clusters
            .get(&cluster)
            .unwrap()
            .sa_key
            .verify(
                &token,
                &[nestkube_apiserver::auth::tokens::API_AUDIENCE.to_string()],
            )
            .expect("a token of the virtual cluster");
    }

    // The scheduler binds it, kwok runs it, the virtual pod follows.
    let running = wait_for_within("the host pod to run", 60, || async {
        let p = js(&host_pods.get(&hname).await.ok()?);
        (p["status"]["phase"] == "Running").then_some(p)
    })
    .await;
    let host_running = Instant::now();
    let node = running["spec"]["nodeName"].as_str().unwrap().to_string();
    assert!(!node.is_empty());
    let v = wait_for_within("the virtual pod to run", 30, || async {
        let p = js(&vpods.get("web").await.ok()?);
        (p["status"]["phase"] == "Running" && p["spec"]["nodeName"].is_string()).then_some(p)
    })
    .await;
    let up = host_running.elapsed();
    assert_eq!(v["status"]["podIP"], running["status"]["podIP"]);
    assert!(
        v["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty())
    );
    assert_eq!(v["status"]["hostIP"], running["status"]["hostIP"]);
    // Bound as the scheduler bound the host pod, and that node is mirrored.
    assert_eq!(v["spec"]["nodeName"], node.as_str());
    let vnodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(api.client_for(&cluster));
    let mirrored = wait_for_within("the node mirrored with its status", 30, || async {
        let n = vnodes.get(&node).await.ok()?;
        js(&n)["status"]["allocatable"].is_object().then_some(n)
    })
    .await;
    let m = js(&mirrored);
    assert_eq!(
        m["metadata"]["labels"]["tenancy.nestkube.io/mirrored"],
        "true"
    );
    assert!(m["status"]["allocatable"]["cpu"].is_string(), "{m}");
    eprintln!(
        "host: virtual create -> host pod {created:?}; host Running -> virtual Running {up:?}; node {node}; virtual nodeName {}",
        v["spec"]["nodeName"]
    );

    // Deleting the virtual pod deletes the host pod.
    vpods
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    // A bound pod is deleted gracefully: the host pod goes first, then the
    // virtual one (as a kubelet confirms).
    wait_for_within(
        "the host pod and then the virtual pod to go",
        60,
        || async {
            (host_pods.get_opt(&hname).await.unwrap().is_none()
                && vpods.get_opt("web").await.unwrap().is_none())
            .then_some(())
        },
    )
    .await;

    wait_for_within("the node no pod is bound to to go", 30, || async {
        vnodes.get_opt(&node).await.unwrap().is_none().then_some(())
    })
    .await;

    // A second pod, then the cluster goes: nothing of it stays on the host.
    let pod2: Pod = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"containers": [{"name": "main", "image": "postgres"}]},
    }))
    .unwrap();
    vpods
        .create(&PostParams::default(), &pod2)
        .await
        .expect("db");
    let db = names::host_name(&cluster, "default", "db");
    wait_for_within("the second host pod", 30, || async {
        host_pods.get(&db).await.ok()
    })
    .await;
    api.clusters.remove(&cluster).await.expect("remove");
    let lp = ListParams::default().labels(&names::owner_selector(&uid));
    wait_for_within("nothing of the cluster on the host", 60, || async {
        let pods = host_pods.list(&lp).await.ok()?;
        let secrets = Api::<Secret>::namespaced(host_client.clone(), ns.name())
            .list(&lp)
            .await
            .ok()?;
        (pods.items.is_empty() && secrets.items.is_empty()).then_some(())
    })
    .await;
}

/// The whole host mode: a VirtualCluster applied on the host is provisioned
/// (`--host-kubeconfig`), its tenant's pod (through the kubeconfig Secret
/// on the host) runs on the host, and deleting the VirtualCluster leaves
/// nothing of it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_virtual_cluster_runs_its_pods_on_the_host() {
    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("syncer-vc");
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, selector_value) = common::host_mode_server(host, dir.path(), "syncer").await;
    let host_client = common::host_admin(host).await;
    nestkube_syncer::spawn(running.api.clone(), Some(host_client.clone()));

    let name = nestkube_e2e::unique_name("vc");
    host.apply(&format!(
        "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\n  namespace: {}\n  labels:\n    e2e.nestkube.io/test: {selector_value}\nspec: {{}}\n",
        ns.name()
    ));
    let secrets: Api<Secret> = Api::namespaced(host_client.clone(), ns.name());
    let secret = wait_for_within("the kubeconfig Secret on the host", 30, || async {
        secrets.get(&format!("{name}-kubeconfig")).await.ok()
    })
    .await;
    let doc = secret.data.unwrap()["value"].0.clone();
    let tenant = client_for(
        Kubeconfig::from_yaml(std::str::from_utf8(&doc).unwrap()).expect("tenant kubeconfig"),
    )
    .await;
    let vc = host.get_json(&["vc", &name, "-n", ns.name()]);
    let uid = vc["metadata"]["uid"].as_str().unwrap().to_string();

    let vpods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "main", "image": "nginx"}]},
    }))
    .unwrap();
    wait_for_within("the tenant's pod to be created", 30, || async {
        vpods.create(&PostParams::default(), &pod).await.ok()
    })
    .await;
    let v = wait_for_within("the tenant's pod to run on the host", 60, || async {
        let p = js(&vpods.get("web").await.ok()?);
        (p["status"]["phase"] == "Running" && p["spec"]["nodeName"].is_string()).then_some(p)
    })
    .await;
    let host_pods: Api<Pod> = Api::namespaced(host_client.clone(), ns.name());
    let path = running
        .api
        .clusters
        .paths()
        .into_iter()
        .find(|p| {
            running
                .api
                .clusters
                .get(p)
                .and_then(|c| c.placement())
                .is_some_and(|pl| pl.uid == uid)
        })
        .expect("the VirtualCluster's cluster");
    let h = js(&host_pods
        .get(&names::host_name(&path, "default", "web"))
        .await
        .expect("host pod"));
    assert_eq!(v["status"]["podIP"], h["status"]["podIP"]);
    assert_eq!(h["metadata"]["labels"][names::VC_UID_LABEL], uid.as_str());

    host.kubectl_ok(&["delete", "vc", &name, "-n", ns.name(), "--wait=false"]);
    let lp = ListParams::default().labels(&names::owner_selector(&uid));
    wait_for_within("nothing of the VirtualCluster on the host", 60, || async {
        let pods = host_pods.list(&lp).await.ok()?;
        let secrets = secrets.list(&lp).await.ok()?;
        (pods.items.is_empty() && secrets.items.is_empty()).then_some(())
    })
    .await;
    running.abort();
}

/// `--host-namespaces`: the syncer watches and syncs only in the listed
/// host namespaces (one watch each); a cluster placed in another host
/// namespace is not synced, while one placed in a listed namespace runs its
/// pods there, gets their status back up and is cleaned up when it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_namespaces_scope_what_is_synced() {
    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let listed = host.namespace("scoped");
    let other = host.namespace("unlisted");
    let host_client = common::host_admin(host).await;
    let server = Server::start().await;
    let api = server.running.api.clone();
    let mut clusters = Vec::new();
    for ns in [other.name(), listed.name()] {
        let cluster = nestkube_e2e::unique_name("tenant");
        api.clusters
            .create(&api.store, &api.catalog, &cluster)
            .await
            .expect("cluster");
        let placement = Placement::new(
            Parent::Host,
            ns,
            &cluster,
            &format!("uid-{cluster}"),
            serde_json::from_value(json!({})).expect("spec"),
        );
        api.clusters
            .set_placement(&cluster, placement)
            .await
            .expect("placement");
        clusters.push(cluster);
    }
    let (unlisted, scoped) = (&clusters[0], &clusters[1]);
    nestkube_syncer::spawn_with(
        api.clone(),
        Some(host_client.clone()),
        nestkube_syncer::Settings {
            host_namespaces: vec![listed.name().to_string()],
            ..Default::default()
        },
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "main", "image": "nginx"}]},
    }))
    .unwrap();
    // The unlisted cluster's pod first, so it would be synced before the
    // listed one's if it were synced at all.
    for cluster in [unlisted, scoped] {
        let vpods: Api<Pod> = Api::namespaced(api.client_for(cluster), "default");
        wait_for_within("the virtual pod to be created", 30, || async {
            vpods.create(&PostParams::default(), &pod).await.ok()
        })
        .await;
    }
    let vpods: Api<Pod> = Api::namespaced(api.client_for(scoped), "default");
    let host_pods: Api<Pod> = Api::namespaced(host_client.clone(), listed.name());
    let hname = names::host_name(scoped, "default", "web");
    wait_for_within("the listed namespace's copy to run", 60, || async {
        let p = js(&host_pods.get(&hname).await.ok()?);
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;
    // Its status comes up through the namespace's watch.
    wait_for_within("the virtual pod to run", 30, || async {
        let p = js(&vpods.get("web").await.ok()?);
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;
    let unlisted_pods: Api<Pod> = Api::namespaced(host_client.clone(), other.name());
    let copies = unlisted_pods
        .list(&ListParams::default().labels(&names::managed_selector()))
        .await
        .expect("list");
    assert!(copies.items.is_empty(), "synced into an unlisted namespace");

    api.clusters.remove(scoped).await.expect("remove");
    wait_for_within("the listed namespace's copy to go", 60, || async {
        host_pods
            .get_opt(&hname)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

/// The real host's volume controller binds a claim's copy to a volume of a
/// host StorageClass: the class is mirrored into the virtual cluster, and
/// the virtual claim shows Bound to a mirror of that volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_bound_on_the_host_is_bound_in_the_virtual_cluster() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::api::storage::v1::StorageClass;
    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("volumes");
    let host_client = common::host_admin(host).await;
    // A class without a provisioner and a volume of it, as an admin makes
    // them for static provisioning (cluster-scoped: unique names).
    let class = nestkube_e2e::unique_name("manual");
    let volume = nestkube_e2e::unique_name("pv");
    host.apply(&format!(
        r#"{{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {{"name": "{class}"}}, "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate"}}"#
    ));
    host.apply(&format!(
        r#"{{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {{"name": "{volume}"}},
            "spec": {{"capacity": {{"storage": "2Gi"}}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "{class}",
            "hostPath": {{"path": "/srv/{volume}"}}}}}}"#
    ));
    let server = Server::start().await;
    let cluster =
        common::host_placed_cluster(&server, host_client.clone(), ns.name(), "volumes").await;
    let virt = server.running.api.client_for(&cluster);
    wait_for_within("the host's class in the virtual cluster", 30, || async {
        Api::<StorageClass>::all(virt.clone())
            .get(&class)
            .await
            .ok()
    })
    .await;
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
            "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(virt.clone(), "default");
    wait_for_within("the virtual claim to be created", 30, || async {
        claims.create(&PostParams::default(), &claim).await.ok()
    })
    .await;
    let bound = wait_for_within(
        "the virtual claim to be bound to the host volume",
        60,
        || async {
            let c = js(&claims.get("data").await.ok()?);
            (c["status"]["phase"] == "Bound" && c["spec"]["volumeName"] == volume.as_str())
                .then_some(c)
        },
    )
    .await;
    assert_eq!(bound["status"]["capacity"]["storage"], "2Gi", "{bound}");
    let mirror = js(&wait_for_within("the volume's mirror", 30, || async {
        Api::<PersistentVolume>::all(virt.clone())
            .get(&volume)
            .await
            .ok()
    })
    .await);
    assert_eq!(mirror["spec"]["claimRef"]["namespace"], "default");
    assert_eq!(mirror["spec"]["claimRef"]["name"], "data");
    assert_eq!(mirror["spec"]["storageClassName"], class.as_str());
    assert!(
        !mirror.to_string().contains(ns.name()) && mirror["spec"]["hostPath"].is_null(),
        "the host's namespace or path leaked: {mirror}"
    );
    // The host really bound the copy.
    let copy = host.get_json(&[
        "-n",
        ns.name(),
        "pvc",
        &names::host_name(&cluster, "default", "data"),
    ]);
    assert_eq!(copy["spec"]["volumeName"], volume.as_str());
    host.kubectl(&["delete", "pv", &volume, "--wait=false"]);
    host.kubectl(&["delete", "storageclass", &class, "--wait=false"]);
}

/// `spec.sync` on: a NetworkPolicy and an Ingress of a host-placed cluster
/// are accepted by the real kube-apiserver with their translated fields
/// (selectors restricted to the tenant, one matching nothing; backends and
/// the TLS Secret renamed, the Secret copied), and the Ingress's load
/// balancer status comes back up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_policies_and_ingresses_on_the_host() {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
    use kube::api::{Patch, PatchParams};

    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("syncer-net");
    let host_client = common::host_admin(host).await;
    let server = Server::start().await;
    let api = server.running.api.clone();
    let cluster = common::host_placed_cluster_with_spec(
        &server,
        host_client.clone(),
        ns.name(),
        "tenant",
        Default::default(),
        // The ipBlock, the catch-all defaultBackend and the class below are
        // exposed only as allowed.
        json!({"sync": {"ingresses": true, "networkPolicies": true},
               "network": {"allowedCIDRs": ["10.0.0.0/8"],
                           "ingress": {"allowedHosts": ["*"],
                                       "allowedClasses": ["nginx"]}}}),
    )
    .await;
    let uid = format!("uid-{cluster}");
    let virt = api.client_for(&cluster);
    let tr = |n: &str| names::host_name(&cluster, "default", n);
    Api::<Namespace>::all(virt.clone())
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
        )
        .await
        .expect("label the namespace");

    let started = Instant::now();
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [
                {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}},
                {"namespaceSelector": {"matchLabels": {"team": "x"}}},
                {"namespaceSelector": {"matchLabels": {"team": "nobody"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8"}},
            ], "ports": [{"port": "postgres"}]}],
            "policyTypes": ["Ingress"],
        },
    }))
    .unwrap();
    Api::<NetworkPolicy>::namespaced(virt.clone(), "default")
        .create(&PostParams::default(), &policy)
        .await
        .expect("virtual NetworkPolicy");
    let host_nps: Api<NetworkPolicy> = Api::namespaced(host_client.clone(), ns.name());
    let h = wait_for_within("the NetworkPolicy on the host", 30, || async {
        host_nps.get_opt(&tr("db")).await.ok().flatten()
    })
    .await;
    let policy_in = started.elapsed();
    let h = js(&h);
    let owner = json!({names::MANAGED_BY_LABEL: "nestkube", names::VC_UID_LABEL: uid});
    let mut own_ns = owner.clone();
    own_ns[names::NAMESPACE_LABEL] = json!("default");
    let mut pods = own_ns.clone();
    pods["label.tenancy.nestkube.io/app"] = json!("db");
    assert_eq!(h["spec"]["podSelector"], json!({ "matchLabels": pods }));
    let from = &h["spec"]["ingress"][0]["from"];
    assert_eq!(
        from[0],
        json!({"podSelector": {"matchLabels": own_ns, "matchExpressions": [
            {"key": "label.tenancy.nestkube.io/app", "operator": "In", "values": ["web"]}]}})
    );
    assert_eq!(
        from[1],
        json!({"podSelector": {"matchLabels": owner, "matchExpressions": [
            {"key": names::NAMESPACE_LABEL, "operator": "In", "values": ["default"]}]}})
    );
    assert_eq!(
        from[2],
        json!({"podSelector": {"matchLabels": {names::VC_UID_LABEL: uid}, "matchExpressions": [
            {"key": names::VC_UID_LABEL, "operator": "DoesNotExist"}]}})
    );
    assert_eq!(from[3], json!({"ipBlock": {"cidr": "10.0.0.0/8"}}));
    assert_eq!(
        h["spec"]["ingress"][0]["ports"],
        json!([{"port": "postgres", "protocol": "TCP"}])
    );

    let started = Instant::now();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "web-tls"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(virt.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .expect("virtual Secret");
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
            ]}}],
        },
    }))
    .unwrap();
    let vingresses: Api<Ingress> = Api::namespaced(virt.clone(), "default");
    vingresses
        .create(&PostParams::default(), &ingress)
        .await
        .expect("virtual Ingress");
    let host_ingresses: Api<Ingress> = Api::namespaced(host_client.clone(), ns.name());
    let h = wait_for_within("the Ingress on the host", 30, || async {
        host_ingresses.get_opt(&tr("web")).await.ok().flatten()
    })
    .await;
    let ingress_in = started.elapsed();
    let h = js(&h);
    assert_eq!(h["metadata"]["labels"][names::VC_UID_LABEL], uid.as_str());
    assert_eq!(h["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        h["spec"]["defaultBackend"]["service"]["name"],
        tr("fallback").as_str()
    );
    assert_eq!(
        h["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": tr("web"), "port": {"name": "http"}})
    );
    assert_eq!(
        h["spec"]["tls"],
        json!([{"hosts": ["web.example.com"], "secretName": tr("web-tls")}])
    );
    let host_secret = Api::<Secret>::namespaced(host_client.clone(), ns.name())
        .get(&tr("web-tls"))
        .await
        .expect("the TLS Secret on the host");
    assert_eq!(host_secret.type_.as_deref(), Some("kubernetes.io/tls"));

    // What an ingress controller would write comes up.
    host_ingresses
        .patch_status(
            &tr("web"),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}})),
        )
        .await
        .expect("host Ingress status");
    wait_for_within("the load balancer status up", 30, || async {
        let v = js(&vingresses.get("web").await.ok()?);
        (v["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.10").then_some(())
    })
    .await;
    eprintln!("host: virtual create -> NetworkPolicy {policy_in:?}, Ingress {ingress_in:?}");

    // The cluster goes: nothing of it stays.
    api.clusters.remove(&cluster).await.expect("remove");
    let lp = ListParams::default().labels(&names::owner_selector(&uid));
    wait_for_within("nothing of the cluster on the host", 60, || async {
        let nps = host_nps.list(&lp).await.ok()?;
        let ingresses = host_ingresses.list(&lp).await.ok()?;
        (nps.items.is_empty() && ingresses.items.is_empty()).then_some(())
    })
    .await;
}
