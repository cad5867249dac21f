//! Endpoints of selector-less Services go down next to the Service's copy
//! (standalone: the parent is `root`), follow their changes, and go when
//! the Service gains a selector or they are deleted; the Endpoints the
//! endpoints controller computes are never copied.

use crate::common::{Server, virtual_cluster_with, wait_for};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use nestkube_syncer::names;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn selectorless_endpoints_follow_their_service() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    // The addresses lie inside what the VirtualCluster allows.
    let (uid, team) = virtual_cluster_with(
        &server.root,
        "eps-a",
        json!({"network": {"allowedCIDRs": ["10.20.0.0/16"]}}),
    )
    .await;
    let services: Api<Service> = Api::namespaced(team.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(team.clone(), "default");
    let root_eps: Api<Endpoints> = Api::namespaced(server.root.clone(), "default");

    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"ports": [{"name": "sql", "port": 5432}]},
    }))
    .unwrap();
    wait_for("the Service to be created", || async {
        services.create(&PostParams::default(), &svc).await.ok()
    })
    .await;
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "db", "labels": {"app": "db"}},
        "subsets": [{"addresses": [{"ip": "10.20.30.40"}],
                     "ports": [{"name": "sql", "port": 5432}]}],
    }))
    .unwrap();
    endpoints
        .create(&PostParams::default(), &ep)
        .await
        .expect("create Endpoints");

    let copy = names::host_name("eps-a", "default", "db");
    let ip = |e: &Endpoints| -> Option<String> {
        Some(
            e.subsets
                .as_ref()?
                .first()?
                .addresses
                .as_ref()?
                .first()?
                .ip
                .clone(),
        )
    };
    let copied = wait_for("the Endpoints copy in root", || async {
        let e = root_eps.get(&copy).await.ok()?;
        (ip(&e).as_deref() == Some("10.20.30.40")).then_some(e)
    })
    .await;
    let labels = copied.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(names::VC_UID_LABEL),
        Some(&names::label_value(&uid))
    );
    assert_eq!(
        labels
            .get("label.tenancy.nestkube.io/app")
            .map(String::as_str),
        Some("db")
    );
    let port = &copied.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("sql"), 5432));

    // A change follows.
    endpoints
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"subsets": [{"addresses": [{"ip": "10.20.30.41"}],
                                              "ports": [{"name": "sql", "port": 5432}]}]})),
        )
        .await
        .expect("patch Endpoints");
    wait_for("the copy to follow", || async {
        let e = root_eps.get(&copy).await.ok()?;
        (ip(&e).as_deref() == Some("10.20.30.41")).then_some(())
    })
    .await;

    // Deleted: the copy goes.
    endpoints
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete Endpoints");
    wait_for("the copy to go", || async {
        root_eps.get_opt(&copy).await.ok()?.is_none().then_some(())
    })
    .await;

    // Back, then the Service gets a selector: the parent computes its
    // endpoints itself, the copy goes, and the controller's Endpoints in
    // the virtual cluster are not copied.
    endpoints
        .create(&PostParams::default(), &ep)
        .await
        .expect("create Endpoints again");
    wait_for("the copy again", || async {
        root_eps.get(&copy).await.ok()
    })
    .await;
    services
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"app": "db"}}})),
        )
        .await
        .expect("add a selector");
    wait_for("the copy to be the parent's own", || async {
        match root_eps.get_opt(&copy).await.ok()? {
            // Root's endpoints controller writes one for the Service copy
            // (no pod copies match: no addresses).
            Some(e) => e
                .metadata
                .labels
                .as_ref()?
                .get("endpoints.kubernetes.io/managed-by")
                .filter(|v| *v == "endpoint-controller")
                .map(|_| ()),
            None => Some(()),
        }
    })
    .await;
    let virtual_ep = wait_for("the virtual controller's Endpoints", || async {
        let e = endpoints.get("db").await.ok()?;
        e.metadata
            .labels
            .as_ref()?
            .contains_key("endpoints.kubernetes.io/managed-by")
            .then_some(e)
    })
    .await;
    assert!(virtual_ep.subsets.unwrap_or_default().is_empty());
}
