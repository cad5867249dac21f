//! `spec.hostNamespace` cannot send a tenant's pods into a namespace of the
//! parent that is not its own: a VirtualCluster in `team-a` naming
//! `kube-system`, another tenant's namespace, or a missing one reports
//! `Ready=False` reason `HostNamespaceNotAllowed`, and no cluster (so no
//! placement, nothing for the syncer to write) exists for it. A namespace
//! annotated `tenancy.nestkube.io/allowed-for: team-a` by whoever owns it may
//! be used by team-a's VirtualClusters, and only theirs. (The host
//! provisioner makes the same decision, `tenancy::placement`'s unit tests.)

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::vcs::WAIT;
use crate::common::{Fixture, vc, virtual_clusters, wait_for};

/// The Ready condition of VirtualCluster `ns/name` in the root once it has one.
async fn ready(f: &Fixture, ns: &str, name: &str) -> Value {
    let vcs = virtual_clusters(&f.root_client().await, ns);
    wait_for(
        &format!("VirtualCluster {ns}/{name}'s Ready condition"),
        WAIT,
        || async {
            let status = vcs.get(name).await.ok()?.data["status"].clone();
            status["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")
                .cloned()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_cluster_may_not_place_pods_in_other_namespaces() {
    let f = Fixture::start().await;
    let root = f.root_client().await;
    let pp = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(root.clone());
    for (name, annotations) in [
        ("team-a", json!({})),
        ("team-b", json!({})),
        (
            "pool-a",
            json!({"tenancy.nestkube.io/allowed-for": "team-c, team-a"}),
        ),
    ] {
        let ns = json!({"metadata": {"name": name, "annotations": annotations}});
        namespaces
            .create(&pp, &serde_json::from_value(ns).unwrap())
            .await
            .unwrap();
    }
    let create = |ns: &'static str, name: &'static str, host: &'static str| {
        let root = root.clone();
        async move {
            virtual_clusters(&root, ns)
                .create(
                    &PostParams::default(),
                    &vc(ns, name, json!({"hostNamespace": host})),
                )
                .await
                .expect("create VirtualCluster");
        }
    };
    let refused = [
        (
            "team-a",
            "to-system",
            "kube-system",
            "its annotation tenancy.nestkube.io/allowed-for does not list \"team-a\"",
        ),
        (
            "team-a",
            "to-b",
            "team-b",
            "\"team-b\" is not the VirtualCluster's own namespace \"team-a\"",
        ),
        (
            "team-a",
            "to-nowhere",
            "missing",
            "does not exist in the parent cluster",
        ),
        (
            "team-b",
            "to-pool",
            "pool-a",
            "its annotation tenancy.nestkube.io/allowed-for does not list \"team-b\"",
        ),
    ];
    for (ns, name, host, _) in refused {
        create(ns, name, host).await;
    }
    create("team-a", "pooled", "pool-a").await;
    create("team-a", "own", "team-a").await;

    for (ns, name, _, why) in refused {
        let c = ready(&f, ns, name).await;
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some("HostNamespaceNotAllowed")),
            "{c}"
        );
        let m = c["message"].as_str().unwrap();
        assert!(m.starts_with("spec.hostNamespace: Forbidden: "), "{m}");
        assert!(m.contains(why), "{m:?} lacks {why:?}");
        // Nothing provisioned: no cluster, no placement for the syncer.
        assert!(f.running.api.clusters.get(name).is_none(), "{name} served");
    }
    for (ns, name, host) in [("team-a", "pooled", "pool-a"), ("team-a", "own", "team-a")] {
        let c = ready(&f, ns, name).await;
        assert_eq!(c["status"], "True", "{c}");
        let placement = f
            .running
            .api
            .clusters
            .get(name)
            .and_then(|c| c.placement())
            .expect("placed");
        assert_eq!(placement.host_namespace, host);
    }
}
