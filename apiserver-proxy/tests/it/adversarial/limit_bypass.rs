//! Tenant limits that every writer is held to: objects the cluster's own
//! controllers create count against `maxObjects` (a Deployment cannot
//! create more pods than the cluster may store), a nested cluster's objects
//! count against every cluster it is nested in, and VirtualClusters are
//! capped per cluster (nested ones included), never wider than the parent.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nestkube_apiserver::tenancy::DEFAULT_NAMESPACES;
use nestkube_apiserver::tenancy::limits::count_objects;
use serde_json::{Value, json};

use crate::common::{Fixture, admin, child, vc, virtual_clusters, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// Creates VirtualCluster `name` in `parent`, waits until its cluster
/// serves with that spec and the namespace defaults exist; an admin client.
async fn virtual_cluster(f: &Fixture, parent: &str, name: &str, spec: Value) -> Client {
    let created = virtual_clusters(&admin(f, parent).await, "default")
        .create(&PostParams::default(), &vc("default", name, spec))
        .await
        .expect("create VirtualCluster");
    let path = child(parent, name);
    let stored = created.data["spec"].clone();
    wait_for("the child cluster with its policy", WAIT, || async {
        let placement = f.running.api.clusters.get(&path)?.placement()?;
        (serde_json::to_value(&placement.spec).ok()? == stored).then_some(())
    })
    .await;
    let client = admin(f, &path).await;
    for ns in DEFAULT_NAMESPACES {
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        wait_for("the namespace defaults", WAIT, || async {
            sas.get_opt("default").await.ok()??;
            cms.get_opt("kube-root-ca.crt").await.ok()??;
            Some(())
        })
        .await;
    }
    client
}

/// Sets `maxObjects` of VirtualCluster `name` (in `parent`) and waits until
/// its cluster enforces it.
async fn set_max_objects(f: &Fixture, parent: &str, name: &str, max: u64) {
    virtual_clusters(&admin(f, parent).await, "default")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"limits": {"maxObjects": max}}})),
        )
        .await
        .expect("patch VirtualCluster");
    let path = child(parent, name);
    wait_for("the new limit", WAIT, || async {
        let cluster = f.running.api.clusters.get(&path)?;
        (cluster.limits.get().max_objects == Some(max)).then_some(())
    })
    .await;
}

async fn stored(f: &Fixture, path: &str) -> u64 {
    count_objects(f.running.api.store.storage(), path)
        .await
        .unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

/// The 403 message of a refused request.
fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 && s.reason == "Forbidden" => s.message,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_writes_count_against_max_objects() {
    let f = Fixture::start().await;
    let tenant =
        virtual_cluster(&f, "root", "small", json!({"limits": {"maxObjects": 1000}})).await;
    let limit = stored(&f, "small").await + 10;
    set_max_objects(&f, "root", "small", limit).await;

    // Far more replicas than the cluster may store: the ReplicaSet
    // controller's creates are refused as an API client's would be.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 40, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .unwrap();
    Api::<Deployment>::namespaced(tenant.clone(), "default")
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create Deployment");

    // Settled: the ReplicaSet reports the refusal (as for upstream's quota).
    let rss: Api<ReplicaSet> = Api::namespaced(tenant.clone(), "default");
    let message = wait_for("the ReplicaFailure condition", WAIT, || async {
        let list = rss.list(&ListParams::default()).await.ok()?;
        list.items.iter().find_map(|rs| {
            let rs = serde_json::to_value(rs).ok()?;
            let c = rs["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")?
                .clone();
            assert_eq!(c["reason"], "FailedCreate", "{c}");
            c["message"].as_str().map(str::to_string)
        })
    })
    .await;
    assert!(
        message.starts_with("pods \"web-")
            && message.contains(
                "is forbidden: exceeded virtual cluster limit: maxObjects, requested: objects=1, used: objects="
            )
            && message.ends_with(&format!("limited: objects={limit}")),
        "{message}"
    );
    let pods = Api::<Pod>::namespaced(tenant.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(pods.items.len() < 10, "{} pods", pods.items.len());
    let used = stored(&f, "small").await;
    assert!(used <= limit, "{used} objects stored, limit {limit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_clusters_count_against_their_ancestors() {
    let f = Fixture::start().await;
    let outer = virtual_cluster(&f, "root", "outer", json!({"limits": {"maxObjects": 1000}})).await;
    // Inherits maxObjects 1000: alone, it could fill 1000 objects of its own.
    let inner = virtual_cluster(&f, "outer", "inner", json!({})).await;
    let used = stored(&f, "outer").await + stored(&f, "outer:inner").await;
    let limit = used + 5;
    set_max_objects(&f, "root", "outer", limit).await;

    // Filling the nested cluster fills the outer one.
    let inner_cms: Api<ConfigMap> = Api::namespaced(inner.clone(), "default");
    let pp = PostParams::default();
    let mut created = Vec::new();
    let message = loop {
        let name = format!("fill-{}", created.len());
        match inner_cms.create(&pp, &cm(&name)).await {
            Ok(_) => created.push(name),
            r => break forbidden(r),
        }
        assert!(
            created.len() <= 5,
            "the nested cluster stored past its parent's limit"
        );
    };
    assert!(
        message.contains(
            "is forbidden: exceeded virtual cluster limit: maxObjects of cluster \"outer\", requested: objects=1, used: objects="
        ) && message.ends_with(&format!("limited: objects={limit}")),
        "{message}"
    );
    // The parent's own creates are refused now (once a slot a create in
    // flight held at the nested refusal is taken, if there was one).
    let outer_cms: Api<ConfigMap> = Api::namespaced(outer.clone(), "default");
    let mut mine = Vec::new();
    let message = loop {
        let name = format!("mine-{}", mine.len());
        match outer_cms.create(&pp, &cm(&name)).await {
            Ok(_) => mine.push(name),
            r => break forbidden(r),
        }
        assert!(created.len() + mine.len() <= 5, "stored past the limit");
    };
    assert!(
        message.starts_with(&format!(
            "configmaps \"mine-{}\" is forbidden: exceeded virtual cluster limit: maxObjects, requested: objects=1",
            mine.len()
        )),
        "{message}"
    );
    assert!(stored(&f, "outer").await + stored(&f, "outer:inner").await <= limit);

    // Deleting in the nested cluster frees room in the parent.
    for name in &created {
        inner_cms
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    outer_cms
        .create(&pp, &cm("room"))
        .await
        .expect("room again after the nested cluster's deletes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_clusters_are_capped_per_cluster_and_nesting() {
    let f = Fixture::start().await;
    let capped = virtual_cluster(
        &f,
        "root",
        "capped",
        json!({"limits": {"maxVirtualClusters": 2}}),
    )
    .await;
    let vcs = virtual_clusters(&capped, "default");
    let pp = PostParams::default();

    // The cap is inherited; a wider one is refused.
    virtual_cluster(&f, "capped", "a", json!({})).await;
    let a = vcs.get("a").await.unwrap();
    assert_eq!(a.data["spec"]["limits"]["maxVirtualClusters"], 2);
    let message = forbidden(
        vcs.create(
            &pp,
            &vc(
                "default",
                "wide",
                json!({"limits": {"maxVirtualClusters": 5}}),
            ),
        )
        .await,
    );
    assert!(
        message.contains(
            "spec.limits.maxVirtualClusters: 5 exceeds the parent cluster \"capped\"'s limit of 2"
        ),
        "{message}"
    );

    vcs.create(&pp, &vc("default", "b", json!({})))
        .await
        .expect("second");
    let message = forbidden(vcs.create(&pp, &vc("default", "c", json!({}))).await);
    assert_eq!(
        message,
        "virtualclusters.tenancy.nestkube.io \"c\" is forbidden: exceeded virtual cluster limit: maxVirtualClusters, requested: virtualclusters=1, used: virtualclusters=2, limited: virtualclusters=2"
    );
    // Nesting deeper does not get around it.
    let nested = virtual_clusters(&admin(&f, "capped:a").await, "default");
    let message = forbidden(nested.create(&pp, &vc("default", "x", json!({}))).await);
    assert!(
        message.contains(
            "exceeded virtual cluster limit: maxVirtualClusters of cluster \"capped\", requested: virtualclusters=1, used: virtualclusters=2"
        ),
        "{message}"
    );

    // Once one is gone (its teardown done), there is room again.
    vcs.delete("b", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("room for another VirtualCluster", WAIT, || async {
        vcs.create(&pp, &vc("default", "c", json!({}))).await.ok()
    })
    .await;

    // A top-level VirtualCluster that says nothing gets the default cap.
    virtual_cluster(&f, "root", "plain", json!({})).await;
    let plain = f.running.api.clusters.get("plain").unwrap();
    assert_eq!(
        plain.limits.get().max_virtual_clusters,
        Some(u64::from(
            nestkube_tenant_crds::DEFAULT_MAX_VIRTUAL_CLUSTERS
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_quota_is_a_resource_quota_in_the_host_namespace() {
    let f = Fixture::start().await;
    let root = admin(&f, "root").await;
    virtual_cluster(
        &f,
        "root",
        "metered",
        json!({"limits": {"syncedQuota": {"hard": {"pods": "3", "requests.cpu": "2"}}}}),
    )
    .await;
    // The copies of a VirtualCluster in the root cluster go to its
    // namespace there.
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(root.clone(), "default");
    let hard = |q: &k8s_openapi::api::core::v1::ResourceQuota| {
        serde_json::to_value(&q.spec.as_ref()?.hard).ok()
    };
    wait_for("the synced quota", WAIT, || async {
        let q = quotas.get_opt("metered-synced-quota").await.ok()??;
        (hard(&q)? == json!({"pods": "3", "requests.cpu": "2"})).then_some(())
    })
    .await;

    // It follows the spec, and goes with it.
    let vcs = virtual_clusters(&root, "default");
    vcs.patch(
        "metered",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"limits": {"syncedQuota": {"hard": {"pods": "5", "requests.cpu": null}}}}}),
        ),
    )
    .await
    .expect("patch");
    wait_for("the changed quota", WAIT, || async {
        let q = quotas.get_opt("metered-synced-quota").await.ok()??;
        (hard(&q)? == json!({"pods": "5"})).then_some(())
    })
    .await;
    vcs.patch(
        "metered",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"limits": {"syncedQuota": null}}})),
    )
    .await
    .expect("patch");
    wait_for("the quota gone", WAIT, || async {
        quotas
            .get_opt("metered-synced-quota")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    vcs.patch(
        "metered",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"limits": {"syncedQuota": {"hard": {"pods": "1"}}}}})),
    )
    .await
    .expect("patch");
    wait_for("the quota back", WAIT, || async {
        quotas.get_opt("metered-synced-quota").await.ok()?
    })
    .await;
    vcs.delete("metered", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for(
        "the quota deleted with its VirtualCluster",
        WAIT,
        || async {
            quotas
                .get_opt("metered-synced-quota")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// A CRD named `<plural>.example.com`.
fn crd(
    plural: &str,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": plural, "kind": format!("K{plural}")},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_are_capped_and_custom_resources_count_as_objects() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let f = Fixture::start().await;
    let tenant = virtual_cluster(
        &f,
        "root",
        "crds",
        json!({"limits": {"maxCustomResourceDefinitions": 2}}),
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(tenant.clone());
    let pp = PostParams::default();
    crds.create(&pp, &crd("as")).await.expect("first");
    crds.create(&pp, &crd("bs")).await.expect("second");
    let message = forbidden(crds.create(&pp, &crd("cs")).await);
    assert_eq!(
        message,
        "customresourcedefinitions.apiextensions.k8s.io \"cs.example.com\" is forbidden: exceeded virtual cluster limit: maxCustomResourceDefinitions, requested: customresourcedefinitions.apiextensions.k8s.io=1, used: customresourcedefinitions.apiextensions.k8s.io=2, limited: customresourcedefinitions.apiextensions.k8s.io=2"
    );
    // A nested cluster's CRDs count too.
    let nested = virtual_cluster(&f, "crds", "inner", json!({})).await;
    let message = forbidden(
        Api::<CustomResourceDefinition>::all(nested)
            .create(&pp, &crd("ds"))
            .await,
    );
    assert!(
        message.contains("maxCustomResourceDefinitions of cluster \"crds\""),
        "{message}"
    );

    // Custom resources are objects: maxObjects holds them.
    let small = virtual_cluster(
        &f,
        "root",
        "small-crs",
        json!({"limits": {"maxObjects": 1000}}),
    )
    .await;
    Api::<CustomResourceDefinition>::all(small.clone())
        .create(&pp, &crd("es"))
        .await
        .expect("crd");
    let gvk = kube::api::GroupVersionKind::gvk("example.com", "v1", "Kes");
    let res = kube::api::ApiResource::from_gvk_with_plural(&gvk, "es");
    let es: Api<kube::api::DynamicObject> = Api::namespaced_with(small, "default", &res);
    wait_for("the CRD is served", WAIT, || async {
        es.list(&Default::default()).await.ok()
    })
    .await;
    let limit = stored(&f, "small-crs").await;
    let mut created = 0;
    let err = loop {
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "Kes",
            "metadata": {"name": format!("e{created}")}}))
        .unwrap();
        match es.create(&pp, &obj).await {
            Ok(_) => created += 1,
            Err(e) => break e,
        }
        assert!(created <= 1000, "never refused");
    };
    assert!(
        format!("{err:?}").contains("exceeded virtual cluster limit: maxObjects"),
        "{err:?}"
    );
    assert_eq!(created as u64, 1000 - limit);
}
