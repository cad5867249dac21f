//! Every VirtualCluster gets a default NetworkPolicy in its parent that
//! selects exactly its pods' copies and admits only its own pods (plus
//! nestkube's DNS and API, and `spec.network.allowedCIDRs`): without it a
//! tenant's pods reach every other tenant's on the shared parent network.
//! The policy survives the syncer's (re)start, resync and sweep, follows
//! spec changes, goes when `spec.network.isolation` is `None` and when the
//! VirtualCluster is deleted.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use nestkube_apiserver::registry::kinds::labelselector;
use nestkube_syncer::down::isolation;
use nestkube_syncer::names;
use serde_json::{Value, json};

use super::create;
use crate::common::{Server, js, virtual_cluster, virtual_clusters, wait_for, wait_gone};

/// The isolation policy of `cluster` as the parent has it.
async fn policy(parent: &kube::Client, cluster: &str) -> Option<Value> {
    Api::<NetworkPolicy>::namespaced(parent.clone(), "default")
        .get_opt(&isolation::policy_name(cluster))
        .await
        .ok()
        .flatten()
        .map(|p| js(&p))
}

async fn patch_network(server: &Server, vc: &str, network: Value) {
    virtual_clusters(&server.root, "default")
        .patch(
            vc,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"network": network}})),
        )
        .await
        .expect("patch VirtualCluster");
}

/// A NetworkPolicy in root's `default` claiming to be `cluster`'s copy of
/// virtual `ns/name` (owner labels and annotations), allowing nothing.
fn claimed(cluster: &str, vc_uid: &str, ns: &str, name: &str, host_name: &str) -> NetworkPolicy {
    serde_json::from_value(json!({
        "metadata": {"name": host_name,
            "labels": names::owner_labels(vc_uid, ns, name),
            "annotations": names::owner_annotations(cluster, ns, name, vc_uid)},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tenant_is_isolated_on_its_parent() {
    let server = Server::start().await;
    let root_nps: Api<NetworkPolicy> = Api::namespaced(server.root.clone(), "default");
    let (uid_a, a) = virtual_cluster(&server.root, "team-a").await;
    let (uid_b, b) = virtual_cluster(&server.root, "team-b").await;

    // What a syncer that ran before left: team-a's policy, out of date, and
    // a policy copy of a cluster that no longer exists.
    let left = root_nps
        .create(
            &PostParams::default(),
            &claimed(
                "team-a",
                &uid_a,
                isolation::NAMESPACE,
                isolation::NAME,
                &isolation::policy_name("team-a"),
            ),
        )
        .await
        .unwrap();
    let stale_name = names::host_name("team-z", "default", "np");
    root_nps
        .create(
            &PostParams::default(),
            &claimed("team-z", "uid-of-team-z", "default", "np", &stale_name),
        )
        .await
        .unwrap();

    nestkube_syncer::spawn(server.running.api.clone(), None);
    // The sweep ran over the parent's NetworkPolicies (the stale copy is
    // gone) and kept team-a's policy: the same object, brought up to date.
    wait_gone("the stale copy", &root_nps, &stale_name).await;
    let pa = wait_for("team-a's policy up to date", || async {
        let p = policy(&server.root, "team-a").await?;
        (p["spec"]["policyTypes"] == json!(["Ingress", "Egress"])).then_some(p)
    })
    .await;
    assert_eq!(
        pa["metadata"]["uid"],
        json!(left.metadata.uid),
        "deleted and created again"
    );
    let pb = wait_for("team-b's policy", || policy(&server.root, "team-b")).await;

    // Each selects exactly its tenant's pod copies.
    for (client, name) in [(&a, "web"), (&b, "web")] {
        create::<Pod>(
            client,
            json!({"metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]}}),
        )
        .await;
    }
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let copy_labels = |cluster: &'static str| {
        let root_pods = root_pods.clone();
        async move {
            let name = names::host_name(cluster, "default", "web");
            let p = wait_for("the pod copy", || async {
                root_pods.get_opt(&name).await.ok().flatten()
            })
            .await;
            js(&p)["metadata"]["labels"].clone()
        }
    };
    let (la, lb) = (copy_labels("team-a").await, copy_labels("team-b").await);
    let sel = |p: &Value| p["spec"]["podSelector"].clone();
    assert!(labelselector::matches(&sel(&pa), &la));
    assert!(!labelselector::matches(&sel(&pa), &lb));
    assert!(labelselector::matches(&sel(&pb), &lb));
    assert!(!labelselector::matches(&sel(&pb), &la));
    assert_eq!(
        pa["metadata"]["labels"][names::VC_UID_LABEL],
        json!(uid_a),
        "cleaned up with team-a's copies"
    );
    assert_eq!(pb["metadata"]["labels"][names::VC_UID_LABEL], json!(uid_b));
    // Ingress only from the tenant; egress to the tenant and the API.
    let tenant = json!({"podSelector": sel(&pa)});
    assert_eq!(pa["spec"]["ingress"], json!([{"from": [tenant]}]));
    assert_eq!(pa["spec"]["egress"][0], json!({"to": [tenant]}));
    let api = &server.running.api.server_address;
    let (ip, port) = api.rsplit_once(':').unwrap();
    assert_eq!(
        pa["spec"]["egress"][1],
        json!({"to": [{"ipBlock": {"cidr": format!("{ip}/32")}}],
            "ports": [{"protocol": "TCP", "port": port.parse::<u16>().unwrap()}]})
    );

    // A spec change: what the VirtualCluster allows is reachable both ways.
    patch_network(
        &server,
        "team-a",
        json!({"allowedCIDRs": ["203.0.113.0/24"]}),
    )
    .await;
    let block = json!({"ipBlock": {"cidr": "203.0.113.0/24"}});
    wait_for("the allowed CIDR in team-a's policy", || async {
        let p = policy(&server.root, "team-a").await?;
        (p["spec"]["ingress"][1] == json!({"from": [block]})
            && p["spec"]["egress"][2] == json!({"to": [block]}))
        .then_some(())
    })
    .await;

    // Switched off: gone; on again: back.
    patch_network(&server, "team-a", json!({"isolation": "None"})).await;
    wait_for("team-a's policy to go", || async {
        policy(&server.root, "team-a").await.is_none().then_some(())
    })
    .await;
    assert!(policy(&server.root, "team-b").await.is_some());
    patch_network(&server, "team-a", json!({"isolation": "Tenant"})).await;
    wait_for("team-a's policy back", || policy(&server.root, "team-a")).await;

    // Deleted by someone else: put back.
    root_nps
        .delete(&isolation::policy_name("team-a"), &DeleteParams::default())
        .await
        .unwrap();
    wait_for("team-a's policy put back", || {
        policy(&server.root, "team-a")
    })
    .await;

    // A nested cluster's policy lives in its parent, team-a.
    let (uid_dev, _dev) = virtual_cluster(&a, "dev").await;
    let pdev = wait_for("team-a:dev's policy in team-a", || policy(&a, "team-a:dev")).await;
    assert_eq!(
        pdev["spec"]["podSelector"]["matchLabels"][names::VC_UID_LABEL],
        json!(uid_dev)
    );

    // The VirtualCluster deleted: its policy goes, the other's stays.
    virtual_clusters(&server.root, "default")
        .delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("team-a's policy to go with it", || async {
        policy(&server.root, "team-a").await.is_none().then_some(())
    })
    .await;
    assert!(policy(&server.root, "team-b").await.is_some());
}

/// On the e2e host: the real kube-apiserver accepts the isolation policies
/// of two clusters placed in one host namespace (DNS, IPv4 API address,
/// IPv4 and IPv6 allowed CIDRs), and each one's pod selector selects exactly
/// its cluster's pod copies there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolation_policies_on_the_host() {
    use nestkube_apiserver::tenancy::{Parent, Placement};
    use nestkube_syncer::dns::PodDns;

    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("syncer-isolation");
    let host_client = crate::common::host_admin(host).await;
    let server = Server::start().await;
    let api = server.running.api.clone();
    let spec = json!({"network": {"allowedCIDRs": ["203.0.113.0/24", "2001:db8::/64"]}});
    let mut clusters = Vec::new();
    for prefix in ["iso-a", "iso-b"] {
        let cluster = nestkube_e2e::unique_name(prefix);
        api.clusters
            .create(&api.store, &api.catalog, &cluster)
            .await
            .expect("cluster");
        let placement = Placement::new(
            Parent::Host,
            ns.name(),
            &cluster,
            &format!("uid-{cluster}"),
            serde_json::from_value(spec.clone()).unwrap(),
        );
        api.clusters
            .set_placement(&cluster, placement)
            .await
            .expect("placement");
        clusters.push(cluster);
    }
    nestkube_syncer::spawn_with(
        api.clone(),
        Some(host_client.clone()),
        nestkube_syncer::Settings {
            dns: Some(PodDns {
                nameserver: "10.96.0.53".parse().unwrap(),
                index: Default::default(),
            }),
            ..Default::default()
        },
    );
    let host_nps: Api<NetworkPolicy> = Api::namespaced(host_client.clone(), ns.name());
    let host_pods: Api<Pod> = Api::namespaced(host_client.clone(), ns.name());
    for cluster in &clusters {
        create::<Pod>(
            &api.client_for(cluster),
            json!({"metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]}}),
        )
        .await;
    }
    for cluster in &clusters {
        let p = crate::common::wait_for_within("the policy on the host", 30, || async {
            host_nps
                .get_opt(&isolation::policy_name(cluster))
                .await
                .ok()
                .flatten()
        })
        .await;
        let p = js(&p);
        assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        let egress = p["spec"]["egress"].as_array().unwrap();
        assert_eq!(
            egress[1],
            json!({"to": [{"ipBlock": {"cidr": "10.96.0.53/32"}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
        );
        assert_eq!(egress.len(), 4, "tenant, DNS, API, allowed CIDRs");
        // The host lists by the policy's selector exactly this cluster's
        // copies (the selector is matchLabels only).
        let selector: Vec<String> = p["spec"]["podSelector"]["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        assert!(p["spec"]["podSelector"]["matchExpressions"].is_null());
        let copy = names::host_name(cluster, "default", "web");
        let selected = crate::common::wait_for_within("the copy selected", 30, || async {
            let l = host_pods
                .list(&kube::api::ListParams::default().labels(&selector.join(",")))
                .await
                .ok()?;
            let names: Vec<String> = l
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            (!names.is_empty()).then_some(names)
        })
        .await;
        assert_eq!(selected, vec![copy]);
    }
}
