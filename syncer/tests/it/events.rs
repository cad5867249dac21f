//! Events up: what a parent reports about a copy (of a pod, claim or
//! Service) shows up in the virtual cluster as an Event about the virtual
//! object, with virtual names only; a parent refusing a copy is told on the
//! virtual pod (`SyncError`).
//!
//! Standalone (the parent is `root`, where the test writes the Events a
//! scheduler, kubelet or load-balancer controller would), nested (two
//! hops), and against the real host (its scheduler's `Scheduled` Event, its
//! volume controller's `ProvisioningFailed`).

use crate::common::{self, Server, js, virtual_cluster, wait_for, wait_for_within};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, ResourceQuota, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nestkube_syncer::names;
use serde_json::{Value, json};

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap()
}

/// Creates pod `name` in `client`'s `default` namespace (retried until the
/// default ServiceAccount lets it be admitted); returns its uid.
async fn create_pod(client: &Client, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = wait_for("the pod to be admitted", || async {
        pods.create(&PostParams::default(), &pod(name)).await.ok()
    })
    .await;
    p.metadata.uid.unwrap()
}

/// A core v1 Event as a scheduler or kubelet writes it, about pod `pod`
/// (uid `uid`) in `default`.
fn event(name: &str, pod: &str, uid: &str, reason: &str, message: &str, count: i32) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": "default",
            "name": pod, "uid": uid, "resourceVersion": "42", "fieldPath": "spec.containers{main}"},
        "reason": reason, "message": message, "type": "Normal", "count": count,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": format!("2026-01-01T00:00:{count:02}Z"),
        "source": {"component": "kubelet", "host": "node-1"},
    }))
    .unwrap()
}

/// The Events of `client`'s `default` namespace about pod `pod`.
async fn events_about(client: &Client, pod: &str) -> Vec<Value> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(js)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parent_events_are_told_about_the_virtual_pod() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "team-a").await;
    let (_, b) = virtual_cluster(&server.root, "team-b").await;
    let vuid = create_pod(&a, "web").await;
    create_pod(&b, "web").await;
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let copy = names::host_name("team-a", "default", "web");
    let copy_uid = wait_for("team-a's copy in root", || async {
        root_pods.get(&copy).await.ok()
    })
    .await
    .metadata
    .uid
    .unwrap();
    let other_copy = names::host_name("team-b", "default", "web");
    wait_for("team-b's copy in root", || async {
        root_pods.get(&other_copy).await.ok()
    })
    .await;

    // Not about a copy: a pod of root's own, and a stale uid of the copy's name.
    create_pod(&server.root, "plain").await;
    let root_events: Api<Event> = Api::namespaced(server.root.clone(), "default");
    let pp = PostParams::default();
    root_events
        .create(
            &pp,
            &event("plain.1", "plain", "", "Pulled", "plain pulled", 1),
        )
        .await
        .unwrap();
    root_events
        .create(
            &pp,
            &event(
                &format!("{copy}.0"),
                &copy,
                "an-earlier-pod",
                "Killing",
                "old",
                1,
            ),
        )
        .await
        .unwrap();
    // What the scheduler says about team-a's copy.
    let name = format!("{copy}.187e1b2c3d4e5f60");
    root_events
        .create(
            &pp,
            &event(
                &name,
                &copy,
                &copy_uid,
                "Scheduled",
                &format!("Successfully assigned default/{copy} to node-1"),
                1,
            ),
        )
        .await
        .unwrap();
    let a_events: Api<Event> = Api::namespaced(a.clone(), "default");
    let got = wait_for("the Event in team-a", || async {
        a_events.get("web.187e1b2c3d4e5f60").await.ok()
    })
    .await;
    let e = js(&got);
    assert_eq!(
        e["involvedObject"],
        json!({"kind": "Pod", "apiVersion": "v1", "namespace": "default", "name": "web",
            "uid": vuid, "fieldPath": "spec.containers{main}"}),
        "{e}"
    );
    assert_eq!(e["reason"], "Scheduled");
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["message"], "Successfully assigned default/web to node-1");
    assert_eq!(e["count"], 1);
    assert_eq!(
        e["source"],
        json!({"component": "kubelet", "host": "node-1"})
    );
    assert_eq!(e["firstTimestamp"], "2026-01-01T00:00:00Z");

    // count++ in the parent updates the same Event.
    root_events
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"count": 2, "lastTimestamp": "2026-01-01T00:00:02Z"})),
        )
        .await
        .unwrap();
    wait_for("the count to follow", || async {
        let e = js(&a_events.get("web.187e1b2c3d4e5f60").await.ok()?);
        (e["count"] == 2 && e["lastTimestamp"] == "2026-01-01T00:00:02Z").then_some(())
    })
    .await;

    // A second syncer (as after a restart) relists every parent Event:
    // still one virtual Event per parent Event.
    nestkube_syncer::spawn(server.running.api.clone(), None);
    root_events
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"count": 3, "lastTimestamp": "2026-01-01T00:00:03Z"})),
        )
        .await
        .unwrap();
    wait_for("the count to follow again", || async {
        let e = js(&a_events.get("web.187e1b2c3d4e5f60").await.ok()?);
        (e["count"] == 3).then_some(())
    })
    .await;
    let about_web = events_about(&a, "web").await;
    assert_eq!(about_web.len(), 1, "{about_web:?}");
    // Nothing of root's own pods, of the stale uid, nor of team-a in team-b.
    assert!(events_about(&a, "plain").await.is_empty());
    let b_events = Api::<Event>::namespaced(b.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(b_events.items.is_empty(), "{:?}", b_events.items);

    // The parent Event goes (its TTL): so does the virtual one.
    root_events
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    common::wait_gone("the virtual Event to go", &a_events, "web.187e1b2c3d4e5f60").await;
}

/// The Event and pod watches of a parent are separate streams: an Event
/// read before its copy is waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_read_before_its_copy_waits_for_it() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "team-a").await;
    let copy = names::host_name("team-a", "default", "late");
    Api::<Event>::namespaced(server.root.clone(), "default")
        .create(
            &PostParams::default(),
            &event(&format!("{copy}.1"), &copy, "", "Scheduled", "early", 1),
        )
        .await
        .unwrap();
    create_pod(&a, "late").await;
    let e = js(&wait_for("the early Event in team-a", || async {
        Api::<Event>::namespaced(a.clone(), "default")
            .get("late.1")
            .await
            .ok()
    })
    .await);
    assert_eq!(e["involvedObject"]["name"], "late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_come_up_through_two_hops() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "a").await;
    let (_, b) = virtual_cluster(&a, "b").await;
    let vuid = create_pod(&b, "p").await;
    let in_a = names::host_name("a:b", "default", "p");
    let in_root = names::host_name("a", "default", &in_a);
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let root_uid = wait_for("the copy of the copy in root", || async {
        root_pods.get(&in_root).await.ok()
    })
    .await
    .metadata
    .uid
    .unwrap();
    Api::<Event>::namespaced(server.root.clone(), "default")
        .create(
            &PostParams::default(),
            &event(
                &format!("{in_root}.5"),
                &in_root,
                &root_uid,
                "Pulling",
                &format!("Pulling image \"busybox\" for default/{in_root}"),
                1,
            ),
        )
        .await
        .unwrap();
    let b_events: Api<Event> = Api::namespaced(b.clone(), "default");
    let e = js(&wait_for("the Event in a:b", || async {
        b_events.get("p.5").await.ok()
    })
    .await);
    assert_eq!(e["involvedObject"]["name"], "p");
    assert_eq!(e["involvedObject"]["uid"], vuid.as_str());
    assert_eq!(e["message"], "Pulling image \"busybox\" for default/p");
    // The middle level tells it about its own pod (the copy of a:b's).
    let mid = js(&Api::<Event>::namespaced(a.clone(), "default")
        .get(&format!("{in_a}.5"))
        .await
        .expect("the Event in a"));
    assert_eq!(mid["involvedObject"]["name"], in_a.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_copy_is_a_warning_on_the_virtual_pod() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "team-a").await;
    // Root admits no more pods in the namespace the copies go to.
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}},
    }))
    .unwrap();
    let quotas: Api<ResourceQuota> = Api::namespaced(server.root.clone(), "default");
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let vuid = create_pod(&a, "blocked").await;
    let warning = wait_for("the SyncError Warning", || async {
        events_about(&a, "blocked")
            .await
            .into_iter()
            .find(|e| e["reason"] == "SyncError")
    })
    .await;
    assert_eq!(warning["type"], "Warning");
    assert_eq!(warning["involvedObject"]["uid"], vuid.as_str());
    assert_eq!(warning["source"]["component"], "nestkube-syncer");
    let message = warning["message"].as_str().unwrap();
    assert!(message.contains("403 Forbidden"), "{message}");
    assert!(message.contains("pods \"blocked\""), "{message}");
    assert!(!message.contains("-x-"), "a parent name leaked: {message}");
    // The syncer keeps trying; the Warning counts up instead of repeating.
    wait_for_within("the Warning to count up", 30, || async {
        let about = events_about(&a, "blocked").await;
        (about.len() == 1 && about[0]["count"].as_i64() >= Some(2)).then_some(())
    })
    .await;
    quotas
        .delete("no-pods", &DeleteParams::default())
        .await
        .unwrap();
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let copy = names::host_name("team-a", "default", "blocked");
    wait_for_within("the copy once root admits it", 30, || async {
        root_pods.get(&copy).await.ok()
    })
    .await;
}

/// The real host's scheduler binds a synced pod: its `Scheduled` Event
/// shows up in the virtual cluster about the virtual pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_host_schedulers_event_shows_in_the_virtual_cluster() {
    let Some(common::HostPlaced { ns, virt, .. }) = common::host_placed("events", "events").await
    else {
        return;
    };
    let vuid = wait_for_within("the virtual pod to be created", 30, || async {
        Api::<Pod>::namespaced(virt.clone(), "default")
            .create(&PostParams::default(), &pod("web"))
            .await
            .ok()
    })
    .await
    .metadata
    .uid
    .unwrap();
    let scheduled = wait_for_within("the Scheduled Event in the virtual cluster", 60, || async {
        events_about(&virt, "web")
            .await
            .into_iter()
            .find(|e| e["reason"] == "Scheduled")
    })
    .await;
    let message = scheduled["message"].as_str().unwrap();
    assert!(
        message.starts_with("Successfully assigned default/web to "),
        "{message}"
    );
    assert!(
        !message.contains(ns.name()),
        "the host namespace leaked: {message}"
    );
    assert_eq!(scheduled["involvedObject"]["uid"], vuid.as_str());
    assert_eq!(scheduled["involvedObject"]["namespace"], "default");
    assert_eq!(scheduled["type"], "Normal");
    eprintln!("host Scheduled event in the virtual cluster: {scheduled}");
}

/// Events about a Service's copy (what a load-balancer controller writes)
/// are told about the virtual Service, and go away with the parent Event;
/// a Service copy someone deletes in the parent is put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_events_come_up_and_a_deleted_copy_comes_back() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "team-a").await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "shop"},
        "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    let vsvcs: Api<Service> = Api::namespaced(a.clone(), "default");
    wait_for("the virtual Service to be created", || async {
        vsvcs.create(&PostParams::default(), &svc).await.ok()
    })
    .await;
    // The virtual Service is re-created with its copy's cluster IP (a new
    // uid), and the copy then names that one: its Events are about it.
    let root_svcs: Api<Service> = Api::namespaced(server.root.clone(), "default");
    let copy = names::host_name("team-a", "default", "shop");
    let (vuid, copy_uid) = wait_for(
        "the Service's copy in root, naming the virtual Service",
        || async {
            let v = js(&vsvcs.get("shop").await.ok()?);
            let h = js(&root_svcs.get(&copy).await.ok()?);
            (v["spec"]["clusterIP"] == h["spec"]["clusterIP"]
                && h["metadata"]["annotations"][names::UID_ANNOTATION] == v["metadata"]["uid"])
                .then(|| {
                    (
                        v["metadata"]["uid"].as_str().unwrap().to_string(),
                        h["metadata"]["uid"].as_str().unwrap().to_string(),
                    )
                })
        },
    )
    .await;

    let mut ev = js(&event(
        &format!("{copy}.17a0"),
        &copy,
        &copy_uid,
        "EnsuringLoadBalancer",
        &format!("Ensuring load balancer for default/{copy}"),
        1,
    ));
    ev["involvedObject"] = json!({"kind": "Service", "apiVersion": "v1",
        "namespace": "default", "name": copy, "uid": copy_uid});
    ev["source"] = json!({"component": "service-controller"});
    let root_events: Api<Event> = Api::namespaced(server.root.clone(), "default");
    root_events
        .create(&PostParams::default(), &serde_json::from_value(ev).unwrap())
        .await
        .unwrap();
    let a_events: Api<Event> = Api::namespaced(a.clone(), "default");
    let got = js(&wait_for("the Service's Event in team-a", || async {
        a_events.get("shop.17a0").await.ok()
    })
    .await);
    assert_eq!(
        got["involvedObject"],
        json!({"kind": "Service", "apiVersion": "v1", "namespace": "default",
            "name": "shop", "uid": vuid}),
        "{got}"
    );
    assert_eq!(got["message"], "Ensuring load balancer for default/shop");
    root_events
        .delete(&format!("{copy}.17a0"), &DeleteParams::default())
        .await
        .unwrap();
    common::wait_gone(
        "the Service's Event to go with the parent's",
        &a_events,
        "shop.17a0",
    )
    .await;

    // Someone deletes the copy in the parent: the syncer puts it back.
    root_svcs
        .delete(&copy, &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the Service's copy to be put back", || async {
        root_svcs
            .get_opt(&copy)
            .await
            .unwrap()
            .filter(|s| s.metadata.uid.as_deref() != Some(copy_uid.as_str()))
    })
    .await;
}

/// The real host's volume controller cannot provision a claim of an unknown
/// storage class: its `ProvisioningFailed` Event shows up in the virtual
/// cluster about the virtual claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_host_volume_controllers_event_shows_on_the_virtual_claim() {
    let Some(common::HostPlaced { ns, virt, .. }) =
        common::host_placed("claim-events", "claims").await
    else {
        return;
    };
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "no-such-class",
            "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    let vuid = wait_for_within("the virtual claim to be created", 30, || async {
        Api::<PersistentVolumeClaim>::namespaced(virt.clone(), "default")
            .create(&PostParams::default(), &claim)
            .await
            .ok()
    })
    .await
    .metadata
    .uid
    .unwrap();
    let failed = wait_for_within(
        "the ProvisioningFailed Event in the virtual cluster",
        60,
        || async {
            events_about(&virt, "data")
                .await
                .into_iter()
                .find(|e| e["reason"] == "ProvisioningFailed")
        },
    )
    .await;
    assert_eq!(
        failed["involvedObject"]["kind"], "PersistentVolumeClaim",
        "{failed}"
    );
    assert_eq!(failed["involvedObject"]["uid"], vuid.as_str());
    assert_eq!(failed["type"], "Warning");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("no-such-class"), "{message}");
    assert!(
        !message.contains(ns.name()),
        "the host namespace leaked: {message}"
    );
}
