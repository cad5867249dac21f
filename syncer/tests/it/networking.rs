//! Ingresses and NetworkPolicies synced down in standalone mode (top-level
//! VirtualClusters syncing into `root`, namespace `default`), as their
//! VirtualCluster's `spec.sync` switches say: nothing while off, existing
//! objects copied when turned on, copies deleted when turned off; a
//! NetworkPolicy's selectors only ever select pods of its own tenant (and
//! namespace), checked against the real pod copies in root; an Ingress's
//! backends and TLS Secret translated, the Secret copied and collected,
//! the load balancer status taken up.

use std::time::Instant;

use crate::common::{Server, create, js, virtual_cluster_with, virtual_clusters, wait_for};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nestkube_apiserver::registry::kinds::labelselector;
use nestkube_syncer::names;
use serde_json::{Value, json};

/// Turns VirtualCluster `default/name`'s `spec.sync` to `sync`.
async fn set_sync(root: &Client, name: &str, sync: Value) {
    virtual_clusters(root, "default")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"sync": sync}})),
        )
        .await
        .expect("patch VirtualCluster");
}

/// Waits until `name` is gone from `api`.
async fn wait_gone<K>(what: &str, api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    wait_for(what, || async {
        match api.get_opt(name).await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await
}

/// A Service in `client`'s `default` namespace, and its copy in root: every
/// reconcile queued before it has been picked up by then (a barrier before
/// asserting that something was *not* copied).
async fn service_barrier(client: &Client, root: &Client, cluster: &str, name: &str) {
    create::<Service>(
        client,
        "default",
        json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    let services: Api<Service> = Api::namespaced(root.clone(), "default");
    let copy = names::host_name(cluster, "default", name);
    wait_for("the barrier Service's copy", || async {
        services.get_opt(&copy).await.ok().flatten()
    })
    .await;
}

/// The names of root's pods in `default` that `selector` (a copy's
/// selector) selects.
async fn selected(root: &Client, selector: &Value) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(root.clone(), "default");
    let mut out: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            let labels = js(&p.metadata.labels.clone().unwrap_or_default());
            labelselector::matches(selector, &labels)
        })
        .map(|p| p.metadata.name.unwrap())
        .collect();
    out.sort();
    out
}

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    })
}

/// The policy both tenants create in `default`.
fn policy() -> Value {
    json!({
        "metadata": {"name": "db"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]},
                {
                    "from": [{
                        "namespaceSelector": {"matchLabels": {"team": "x"}},
                        "podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["client"]}]},
                    }],
                    "ports": [{"port": 5432, "protocol": "TCP"}, {"port": "metrics"}],
                },
                {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]},
            ],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}],
            "policyTypes": ["Ingress", "Egress"],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_policies_stay_in_their_tenant() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let root = server.root.clone();
    // The policies' ipBlock lies inside what both VirtualClusters allow.
    let cidrs = json!({"allowedCIDRs": ["10.0.0.0/8"]});
    let (uid_a, a) = virtual_cluster_with(&root, "team-a", json!({"network": cidrs})).await;
    let (uid_b, b) = virtual_cluster_with(
        &root,
        "team-b",
        json!({"sync": {"networkPolicies": true}, "network": cidrs}),
    )
    .await;
    let root_nps: Api<NetworkPolicy> = Api::namespaced(root.clone(), "default");
    let copy_a = names::host_name("team-a", "default", "db");
    let copy_b = names::host_name("team-b", "default", "db");

    // Pods of both tenants, in two namespaces of team-a.
    Api::<Namespace>::all(a.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap(),
        )
        .await
        .unwrap();
    for (client, ns, name, labels) in [
        (&a, "default", "db", json!({"app": "db"})),
        (&a, "default", "web", json!({"app": "web"})),
        (
            &a,
            "default",
            "client",
            json!({"app": "other", "role": "client"}),
        ),
        (&a, "apps", "client", json!({"role": "client"})),
        (&a, "apps", "web", json!({"app": "web"})),
        (&b, "default", "db", json!({"app": "db"})),
        (&b, "default", "web", json!({"app": "web"})),
        (&b, "default", "client", json!({"role": "client"})),
    ] {
        create::<Pod>(client, ns, pod(name, labels)).await;
    }
    let root_pods: Api<Pod> = Api::namespaced(root.clone(), "default");
    wait_for("the eight pod copies", || async {
        let n = root_pods
            .list(&ListParams::default().labels(&names::managed_selector()))
            .await
            .ok()?
            .items
            .len();
        (n == 8).then_some(())
    })
    .await;
    let hp = |cluster: &str, ns: &str, name: &str| names::host_name(cluster, ns, name);

    // Switch off in team-a: its policy is not copied; team-b's is.
    create::<NetworkPolicy>(&a, "default", policy()).await;
    create::<NetworkPolicy>(&b, "default", policy()).await;
    let hb = wait_for("team-b's policy copy", || async {
        root_nps.get_opt(&copy_b).await.ok().flatten()
    })
    .await;
    service_barrier(&a, &root, "team-a", "barrier").await;
    assert!(root_nps.get_opt(&copy_a).await.unwrap().is_none());

    // Turned on: the existing policy is copied.
    let started = Instant::now();
    set_sync(&root, "team-a", json!({"networkPolicies": true})).await;
    let ha = wait_for("team-a's policy copy", || async {
        root_nps.get_opt(&copy_a).await.ok().flatten()
    })
    .await;
    eprintln!("switch on -> policy copy: {:?}", started.elapsed());
    let ha = js(&ha);
    let labels = &ha["metadata"]["labels"];
    assert_eq!(labels[names::MANAGED_BY_LABEL], "nestkube");
    assert_eq!(labels[names::VC_UID_LABEL], uid_a.as_str());
    assert_eq!(
        ha["metadata"]["annotations"][names::CLUSTER_ANNOTATION],
        "team-a"
    );
    let spec = &ha["spec"];
    assert_eq!(
        spec["podSelector"],
        json!({"matchLabels": {
            "label.tenancy.nestkube.io/app": "db",
            names::MANAGED_BY_LABEL: "nestkube",
            names::NAMESPACE_LABEL: "default",
            names::VC_UID_LABEL: uid_a,
        }})
    );
    assert_eq!(
        selected(&root, &spec["podSelector"]).await,
        [hp("team-a", "default", "db")]
    );
    // podSelector peer: same tenant, same namespace.
    let web_peer = &spec["ingress"][0]["from"][0]["podSelector"];
    assert_eq!(
        selected(&root, web_peer).await,
        [hp("team-a", "default", "web")]
    );
    // namespaceSelector peer with no namespace labelled yet: nothing, and
    // never an empty selector.
    let ns_peer = &spec["ingress"][1]["from"][0]["podSelector"];
    assert!(!labelselector::is_empty(ns_peer), "{ns_peer}");
    assert!(selected(&root, ns_peer).await.is_empty(), "{ns_peer}");
    assert!(
        selected(&root, &spec["egress"][0]["to"][0]["podSelector"])
            .await
            .is_empty()
    );
    assert_eq!(
        spec["ingress"][1]["ports"],
        json!([{"port": 5432, "protocol": "TCP"}, {"port": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        spec["ingress"][2]["from"],
        json!([{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}])
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));

    // A namespace labelled later: the copy follows.
    let namespaces: Api<Namespace> = Api::all(a.clone());
    let label = |team: &str| Patch::Merge(json!({"metadata": {"labels": {"team": team}}}));
    namespaces
        .patch("apps", &PatchParams::default(), &label("x"))
        .await
        .unwrap();
    let ha = wait_for("the copy to select namespace apps", || async {
        let h = js(&root_nps.get(&copy_a).await.ok()?);
        (h["spec"]["ingress"][1]["from"][0]["podSelector"]["matchExpressions"]
            .to_string()
            .contains("apps"))
        .then_some(h)
    })
    .await;
    let ns_peer = &ha["spec"]["ingress"][1]["from"][0]["podSelector"];
    assert_eq!(
        selected(&root, ns_peer).await,
        [hp("team-a", "apps", "client")]
    );
    let mut everyone_in_apps = vec![hp("team-a", "apps", "client"), hp("team-a", "apps", "web")];
    everyone_in_apps.sort();
    assert_eq!(
        selected(&root, &ha["spec"]["egress"][0]["to"][0]["podSelector"]).await,
        everyone_in_apps
    );
    namespaces
        .patch("default", &PatchParams::default(), &label("x"))
        .await
        .unwrap();
    let ha = wait_for("the copy to select namespace default too", || async {
        let h = js(&root_nps.get(&copy_a).await.ok()?);
        (h["spec"]["ingress"][1]["from"][0]["podSelector"]["matchExpressions"]
            .to_string()
            .contains("default"))
        .then_some(h)
    })
    .await;
    let mut clients = vec![
        hp("team-a", "apps", "client"),
        hp("team-a", "default", "client"),
    ];
    clients.sort();
    assert_eq!(
        selected(&root, &ha["spec"]["ingress"][1]["from"][0]["podSelector"]).await,
        clients
    );
    // Labelled away again: nothing.
    for ns in ["apps", "default"] {
        namespaces
            .patch(ns, &PatchParams::default(), &label("y"))
            .await
            .unwrap();
    }
    wait_for("the copy to select no namespace again", || async {
        let h = js(&root_nps.get(&copy_a).await.ok()?);
        selected(&root, &h["spec"]["ingress"][1]["from"][0]["podSelector"])
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    // The other tenant's copy only ever selects its own pods, though team-b
    // has a client pod and team-a's namespaces were labelled.
    let hb = js(&hb);
    assert_eq!(
        hb["metadata"]["labels"][names::VC_UID_LABEL],
        uid_b.as_str()
    );
    assert_eq!(
        selected(&root, &hb["spec"]["podSelector"]).await,
        [hp("team-b", "default", "db")]
    );
    assert_eq!(
        selected(&root, &hb["spec"]["ingress"][0]["from"][0]["podSelector"]).await,
        [hp("team-b", "default", "web")]
    );
    namespaces
        .patch("apps", &PatchParams::default(), &label("x"))
        .await
        .unwrap();
    Api::<Namespace>::all(b.clone())
        .patch("default", &PatchParams::default(), &label("x"))
        .await
        .unwrap();
    let hb = wait_for("team-b's copy to select its namespace default", || async {
        let h = js(&root_nps.get(&copy_b).await.ok()?);
        (!selected(&root, &h["spec"]["ingress"][1]["from"][0]["podSelector"])
            .await
            .is_empty())
        .then_some(h)
    })
    .await;
    assert_eq!(
        selected(&root, &hb["spec"]["ingress"][1]["from"][0]["podSelector"]).await,
        [hp("team-b", "default", "client")]
    );

    // A rule removed from the virtual policy goes from the copy.
    Api::<NetworkPolicy>::namespaced(b.clone(), "default")
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"egress": null, "policyTypes": ["Ingress"]}})),
        )
        .await
        .unwrap();
    wait_for("team-b's copy without egress rules", || async {
        let h = js(&root_nps.get(&copy_b).await.ok()?);
        (h["spec"]["egress"].as_array().is_none_or(|e| e.is_empty())
            && h["spec"]["policyTypes"] == json!(["Ingress"]))
        .then_some(())
    })
    .await;

    // Deleting the virtual policy deletes its copy.
    Api::<NetworkPolicy>::namespaced(b.clone(), "default")
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone("team-b's copy", &root_nps, &copy_b).await;

    // Switch off: the copies go.
    let mut other = policy();
    other["metadata"]["name"] = json!("other");
    create::<NetworkPolicy>(&a, "apps", other).await;
    let copy_other = names::host_name("team-a", "apps", "other");
    wait_for("team-a's second copy", || async {
        root_nps.get_opt(&copy_other).await.ok().flatten()
    })
    .await;
    set_sync(&root, "team-a", json!({"networkPolicies": false})).await;
    wait_gone("team-a's copy", &root_nps, &copy_a).await;
    wait_gone("team-a's second copy", &root_nps, &copy_other).await;
}

/// An Ingress of `default` with a rule, a default backend and TLS.
fn ingress(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "web"},
            "annotations": {"nginx.ingress.kubernetes.io/configuration-snippet": "deny all;"}},
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [{
                "host": "web.example.com",
                "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/api", "pathType": "Exact", "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                ]},
            }],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingresses_with_translated_backends_and_secrets() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let root = server.root.clone();
    // The Ingress claims a host and the catch-all (default backend) of
    // class nginx: all allowed.
    let (uid, a) = virtual_cluster_with(
        &root,
        "team-a",
        json!({"network": {"ingress": {"allowedHosts": ["*"], "allowedClasses": ["nginx"]}}}),
    )
    .await;
    let root_ing: Api<Ingress> = Api::namespaced(root.clone(), "default");
    let root_secrets: Api<Secret> = Api::namespaced(root.clone(), "default");
    let tr = |n: &str| names::host_name("team-a", "default", n);

    create::<Secret>(
        &a,
        "default",
        json!({"metadata": {"name": "web-tls"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
    )
    .await;
    create::<Ingress>(&a, "default", ingress("web")).await;
    service_barrier(&a, &root, "team-a", "barrier").await;
    assert!(root_ing.get_opt(&tr("web")).await.unwrap().is_none());
    assert!(
        root_secrets
            .get_opt(&tr("web-tls"))
            .await
            .unwrap()
            .is_none()
    );

    // Turned on: the existing Ingress is copied, names translated.
    set_sync(&root, "team-a", json!({"ingresses": true})).await;
    let h = wait_for("the Ingress copy", || async {
        root_ing.get_opt(&tr("web")).await.ok().flatten()
    })
    .await;
    let h = js(&h);
    assert_eq!(h["metadata"]["labels"][names::VC_UID_LABEL], uid.as_str());
    assert_eq!(
        h["metadata"]["labels"]["label.tenancy.nestkube.io/app"],
        "web"
    );
    assert!(
        h["metadata"]["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"].is_null(),
        "virtual annotations are not carried"
    );
    let spec = &h["spec"];
    assert_eq!(spec["ingressClassName"], "nginx");
    assert_eq!(
        spec["defaultBackend"],
        json!({"service": {"name": tr("fallback"), "port": {"name": "http"}}})
    );
    let paths = &spec["rules"][0]["http"]["paths"];
    assert_eq!(spec["rules"][0]["host"], "web.example.com");
    assert_eq!(paths[0]["backend"]["service"]["name"], tr("web").as_str());
    assert_eq!(paths[0]["backend"]["service"]["port"]["number"], 80);
    assert_eq!(paths[1]["backend"]["service"]["name"], tr("api").as_str());
    assert_eq!(paths[1]["pathType"], "Exact");
    assert_eq!(
        spec["tls"],
        json!([{"hosts": ["web.example.com"], "secretName": tr("web-tls")}])
    );
    // The Secret is copied.
    let secret = root_secrets.get(&tr("web-tls")).await.expect("Secret copy");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(secret.data.unwrap()["tls.key"].0, b"key");

    // The parent's load balancer status comes up.
    root_ing
        .patch_status(
            &tr("web"),
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
            ),
        )
        .await
        .expect("status of the copy");
    let vapi: Api<Ingress> = Api::namespaced(a.clone(), "default");
    wait_for("the virtual Ingress's status", || async {
        let v = js(&vapi.get("web").await.ok()?);
        (v["status"]["loadBalancer"]["ingress"] == json!([{"ip": "203.0.113.7"}])).then_some(())
    })
    .await;

    // A resource backend: not copied, a Warning says why.
    let mut odd = ingress("odd");
    odd["spec"]["rules"][0]["http"]["paths"][1]["backend"] = json!({"resource": {
        "apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}});
    create::<Ingress>(&a, "default", odd).await;
    let events: Api<Event> = Api::namespaced(a.clone(), "default");
    let warning = wait_for("the SyncError Warning", || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.involved_object.name.as_deref() == Some("odd")
                    && e.reason.as_deref() == Some("SyncError")
            })
    })
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert_eq!(warning.involved_object.kind.as_deref(), Some("Ingress"));
    let message = warning.message.unwrap_or_default();
    assert!(
        message.contains("spec.rules[0].http.paths[1].backend.resource"),
        "{message}"
    );
    assert!(root_ing.get_opt(&tr("odd")).await.unwrap().is_none());

    // A TLS Secret named by another Ingress stays while that one is copied;
    // the copy goes with the last Ingress naming it.
    let mut second = ingress("second");
    second["spec"]["tls"][0]["secretName"] = json!("web-tls");
    create::<Ingress>(&a, "default", second).await;
    wait_for("the second copy", || async {
        root_ing.get_opt(&tr("second")).await.ok().flatten()
    })
    .await;
    vapi.delete("web", &DeleteParams::default()).await.unwrap();
    wait_gone("the Ingress copy", &root_ing, &tr("web")).await;
    assert!(
        root_secrets
            .get_opt(&tr("web-tls"))
            .await
            .unwrap()
            .is_some()
    );
    // The second Ingress stops naming it (TLS removed): collected.
    vapi.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"tls": null}})),
    )
    .await
    .unwrap();
    wait_gone("the Secret copy", &root_secrets, &tr("web-tls")).await;
    wait_for("the copy without TLS", || async {
        let h = js(&root_ing.get(&tr("second")).await.ok()?);
        h["spec"]["tls"].is_null().then_some(())
    })
    .await;

    // Switch off: the copies go.
    set_sync(&root, "team-a", json!({"ingresses": false})).await;
    wait_gone("the second copy", &root_ing, &tr("second")).await;
}
