//! The parent is exposed through synced networking objects only as far as
//! the VirtualCluster's `spec.network` allows: Service types, Endpoints
//! addresses (never loopback, link-local, metadata or the parent's API),
//! Ingress hosts and classes, NetworkPolicy `ipBlock`s; a nested
//! VirtualCluster may not allow more than its parent. What is not allowed
//! is not copied and a Warning `SyncError` Event says why.

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use nestkube_syncer::names;
use serde_json::{Value, json};

use super::{create, sync_error};
use crate::common::{
    Server, js, virtual_cluster, virtual_cluster_with, virtual_clusters, wait_for,
};

fn service(name: &str, type_: &str) -> Value {
    json!({"metadata": {"name": name},
        "spec": {"type": type_, "selector": {"app": name}, "ports": [{"port": 80}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_ports_and_load_balancers_need_an_allowance() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "team-a").await;
    let root_svcs: Api<Service> = Api::namespaced(server.root.clone(), "default");
    let copy = |n: &str| names::host_name("team-a", "default", n);

    create::<Service>(&a, service("np", "NodePort")).await;
    create::<Service>(&a, service("lb", "LoadBalancer")).await;
    create::<Service>(&a, service("plain", "ClusterIP")).await;
    wait_for("the ClusterIP Service's copy", || async {
        root_svcs.get_opt(&copy("plain")).await.ok().flatten()
    })
    .await;
    for name in ["np", "lb"] {
        let message = sync_error(&a, "Service", name).await;
        assert!(message.contains("spec.type"), "{message}");
        assert!(
            root_svcs.get_opt(&copy(name)).await.unwrap().is_none(),
            "{name} reached the parent"
        );
    }

    // Allowed: copied; the allowance withdrawn: the copy goes.
    let allow = |types: Value| {
        let vcs = virtual_clusters(&server.root, "default");
        async move {
            vcs.patch(
                "team-a",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"network": {"allowedServiceTypes": types}}})),
            )
            .await
            .expect("patch VirtualCluster");
        }
    };
    allow(json!(["NodePort"])).await;
    let np = wait_for("the NodePort Service's copy", || async {
        root_svcs.get_opt(&copy("np")).await.ok().flatten()
    })
    .await;
    assert_eq!(np.spec.unwrap().type_.as_deref(), Some("NodePort"));
    assert!(root_svcs.get_opt(&copy("lb")).await.unwrap().is_none());
    allow(json!(null)).await;
    wait_for("the NodePort copy to go", || async {
        root_svcs
            .get_opt(&copy("np"))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

/// A selector-less Service `name` with Endpoints at `ip`.
async fn endpoints_at(client: &kube::Client, name: &str, ip: &str) {
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"ports": [{"name": "p", "port": 80}]}}))
    .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    wait_for("the Service to be created", || async {
        services.create(&PostParams::default(), &svc).await.ok()
    })
    .await;
    create::<Endpoints>(
        client,
        json!({"metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "p", "port": 80}]}]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_may_not_point_at_the_parent() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    // Every address allowed: only the built-in refusals act.
    let (_, open) = virtual_cluster_with(
        &server.root,
        "open",
        json!({"network": {"allowedCIDRs": ["0.0.0.0/0", "::/0"]}}),
    )
    .await;
    // Nothing allowed (the default).
    let (_, closed) = virtual_cluster(&server.root, "closed").await;
    let root_eps: Api<Endpoints> = Api::namespaced(server.root.clone(), "default");
    // The parent's API, as a real host has it: the `kubernetes` Service
    // (its cluster IP) and its Endpoints (the API servers).
    create::<Service>(
        &server.root,
        json!({"metadata": {"name": "kubernetes"},
            "spec": {"ports": [{"name": "https", "port": 443}]}}),
    )
    .await;
    create::<Endpoints>(
        &server.root,
        json!({"metadata": {"name": "kubernetes"},
            "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "https", "port": 6443}]}]}),
    )
    .await;
    let root_api = wait_for("the parent's kubernetes Service address", || async {
        let svc = js(&Api::<Service>::namespaced(server.root.clone(), "default")
            .get("kubernetes")
            .await
            .ok()?);
        svc["spec"]["clusterIP"].as_str().map(str::to_string)
    })
    .await;

    let refused = [
        ("metadata", "169.254.169.254"),
        ("loopback", "127.0.0.1"),
        ("parent-api", root_api.as_str()),
        ("parent-api-server", "192.0.2.10"),
        ("unspecified", "0.0.0.0"),
    ];
    for (name, ip) in refused {
        endpoints_at(&open, name, ip).await;
    }
    endpoints_at(&open, "external", "203.0.113.7").await;
    endpoints_at(&closed, "external", "203.0.113.7").await;
    wait_for("the allowed Endpoints' copy", || async {
        root_eps
            .get_opt(&names::host_name("open", "default", "external"))
            .await
            .ok()
            .flatten()
    })
    .await;
    for (client, cluster, name, ip) in refused
        .iter()
        .map(|(n, ip)| (&open, "open", *n, *ip))
        .chain([(&closed, "closed", "external", "203.0.113.7")])
    {
        let message = sync_error(client, "Endpoints", name).await;
        assert!(
            message.contains("subsets[0].addresses[0].ip") && message.contains(ip),
            "{name}: {message}"
        );
        let copy = names::host_name(cluster, "default", name);
        assert!(
            root_eps.get_opt(&copy).await.unwrap().is_none(),
            "{cluster}/{name} ({ip}) reached the parent"
        );
    }
}

fn ingress(name: &str, class: Option<&str>, host: Option<&str>) -> Value {
    let mut rule = json!({"http": {"paths": [{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}});
    if let Some(h) = host {
        rule["host"] = json!(h);
    }
    let mut ing = json!({"metadata": {"name": name}, "spec": {"rules": [rule]}});
    if let Some(c) = class {
        ing["spec"]["ingressClassName"] = json!(c);
    }
    ing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingresses_claim_only_allowed_hosts_and_classes() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster_with(
        &server.root,
        "team-a",
        json!({"sync": {"ingresses": true}, "network": {"ingress": {
            "allowedHosts": ["*.team-a.example.com"], "allowedClasses": ["public"]}}}),
    )
    .await;
    let root_ing: Api<Ingress> = Api::namespaced(server.root.clone(), "default");
    let copy = |n: &str| names::host_name("team-a", "default", n);

    let refused = [
        (
            "hijack",
            ingress("hijack", Some("public"), Some("bank.example.com")),
            "spec.rules[0].host",
        ),
        (
            "lookalike",
            ingress("lookalike", None, Some("evilteam-a.example.com")),
            "spec.rules[0].host",
        ),
        (
            "catch-all",
            ingress("catch-all", Some("public"), None),
            "spec.rules[0].host",
        ),
        (
            "class",
            ingress("class", Some("internal"), Some("shop.team-a.example.com")),
            "spec.ingressClassName",
        ),
    ];
    for (_, obj, _) in &refused {
        create::<Ingress>(&a, obj.clone()).await;
    }
    create::<Ingress>(
        &a,
        ingress("shop", Some("public"), Some("shop.team-a.example.com")),
    )
    .await;
    create::<Ingress>(
        &a,
        ingress("default-class", None, Some("x.team-a.example.com")),
    )
    .await;
    for name in ["shop", "default-class"] {
        wait_for("an allowed Ingress's copy", || async {
            root_ing.get_opt(&copy(name)).await.ok().flatten()
        })
        .await;
    }
    for (name, _, field) in &refused {
        let message = sync_error(&a, "Ingress", name).await;
        assert!(message.contains(field), "{name}: {message}");
        assert!(
            root_ing.get_opt(&copy(name)).await.unwrap().is_none(),
            "{name} reached the parent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_policy_ip_blocks_stay_inside_the_allowed_ranges() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (uid, a) = virtual_cluster_with(
        &server.root,
        "team-a",
        json!({"sync": {"networkPolicies": true},
            "network": {"allowedCIDRs": ["203.0.113.0/24"]}}),
    )
    .await;
    create::<NetworkPolicy>(
        &a,
        json!({"metadata": {"name": "egress"}, "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [
                {"ipBlock": {"cidr": "0.0.0.0/0"}},
                {"ipBlock": {"cidr": "169.254.169.254/32"}},
                {"ipBlock": {"cidr": "203.0.113.0/25", "except": ["203.0.113.0/28"]}},
            ]}],
        }}),
    )
    .await;
    let root_nps: Api<NetworkPolicy> = Api::namespaced(server.root.clone(), "default");
    let h = wait_for("the policy's copy", || async {
        root_nps
            .get_opt(&names::host_name("team-a", "default", "egress"))
            .await
            .ok()
            .flatten()
    })
    .await;
    let to = js(&h)["spec"]["egress"][0]["to"].clone();
    // Narrowed, never dropped (an empty `to` would allow everything).
    assert_eq!(to.as_array().unwrap().len(), 3, "{to}");
    for peer in [&to[0], &to[1]] {
        assert!(peer["ipBlock"].is_null(), "{to}");
        assert_eq!(
            peer["podSelector"]["matchExpressions"][0]["operator"], "DoesNotExist",
            "{to}"
        );
        assert_eq!(
            peer["podSelector"]["matchLabels"][names::VC_UID_LABEL],
            uid.as_str()
        );
    }
    assert_eq!(
        to[2],
        json!({"ipBlock": {"cidr": "203.0.113.0/25", "except": ["203.0.113.0/28"]}})
    );
    let message = sync_error(&a, "NetworkPolicy", "egress").await;
    assert!(
        message.contains("spec.egress[0].to[0].ipBlock.cidr")
            && message.contains("spec.egress[0].to[1].ipBlock.cidr"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nested_cluster_allows_no_more_than_its_parent() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster_with(
        &server.root,
        "team-a",
        json!({"network": {"allowedCIDRs": ["203.0.113.0/24"],
            "ingress": {"allowedHosts": ["*.team-a.example.com"]}}}),
    )
    .await;
    let vcs = virtual_clusters(&a, "default");
    let wider: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1", "kind": "VirtualCluster",
        "metadata": {"name": "dev", "namespace": "default"},
        "spec": {"network": {"allowedServiceTypes": ["LoadBalancer"],
            "allowedCIDRs": ["0.0.0.0/0"],
            "ingress": {"allowedHosts": ["*"]}}},
    }))
    .unwrap();
    let err = vcs
        .create(&PostParams::default(), &wider)
        .await
        .expect_err("a wider child is refused");
    let kube::Error::Api(status) = err else {
        panic!("{err}");
    };
    assert_eq!(status.code, 403, "{status:?}");
    for field in [
        "spec.network.allowedServiceTypes[0]",
        "spec.network.allowedCIDRs[0]",
        "spec.network.ingress.allowedHosts[0]",
    ] {
        assert!(status.message.contains(field), "{}", status.message);
    }
    // Narrower fits.
    let (_, _dev) = virtual_cluster_with(
        &a,
        "dev",
        json!({"network": {"allowedCIDRs": ["203.0.113.0/26"],
            "ingress": {"allowedHosts": ["*.dev.team-a.example.com"]}}}),
    )
    .await;
}
