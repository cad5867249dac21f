//! StatefulSet, DaemonSet and PodDisruptionBudget controllers, the eviction
//! subresource, and CronJob time zones, against a real server. Pods stay Pending in
//! standalone mode (no kubelet): tests play the kubelet by patching
//! `pods/status`. Every wait is on a condition with a timeout.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use serde_json::{Value, json};

use crate::common::{Fixture, wait_for};

/// A server and its root admin client.
async fn server() -> (Fixture, Client) {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    (f, client)
}

const WAIT: Duration = Duration::from_secs(10);

/// Plays the kubelet: the pod is Running and Ready.
async fn make_ready(pods: &Api<Pod>, name: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
    )
    .await
    .expect("set pod ready");
}

/// Names of the active (not deleting) pods with `selector`, sorted.
async fn active_pods(pods: &Api<Pod>, selector: &str) -> Vec<Pod> {
    let mut items: Vec<Pod> = pods
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    items
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// Waits until exactly `want` (sorted names) exist, then returns them.
async fn expect_pods(pods: &Api<Pod>, selector: &str, want: &[&str]) -> Vec<Pod> {
    wait_for(&format!("pods {want:?}"), WAIT, || async {
        let got = active_pods(pods, selector).await;
        (names(&got) == want).then_some(got)
    })
    .await
}

fn statefulset(name: &str, replicas: i32, extra: Value) -> StatefulSet {
    let mut spec = json!({"replicas": replicas, "serviceName": "nginx",
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Creates StatefulSet `name` (see [`statefulset`]) in `default`; returns
/// the StatefulSet and pod APIs there.
async fn create_sts(
    client: &Client,
    name: &str,
    replicas: i32,
    extra: Value,
) -> (Api<StatefulSet>, Api<Pod>) {
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    sts.create(&PostParams::default(), &statefulset(name, replicas, extra))
        .await
        .expect("create statefulset");
    (sts, Api::namespaced(client.clone(), "default"))
}

/// Changes the image of the StatefulSet's template (a new revision).
async fn set_image(sts: &Api<StatefulSet>, name: &str, image: &str) {
    sts.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": image}]}}}})),
    )
    .await
    .expect("update template");
}

async fn scale(sts: &Api<StatefulSet>, name: &str, replicas: i32) {
    sts.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .expect("scale");
}

#[tokio::test]
async fn statefulset_scales_up_and_down_in_order() {
    let (_f, client) = server().await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let (sts, pods) = create_sts(&client, "web", 3, json!({})).await;
    // OrderedReady: web-1 only once web-0 is Running and Ready.
    let first = expect_pods(&pods, "app=web", &["web-0"]).await;
    let p = &first[0];
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    assert!(labels["controller-revision-hash"].starts_with("web-"));
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vol = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "www");
    assert_eq!(
        vol.and_then(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.as_str()),
        Some("www-web-0")
    );
    assert!(pvcs.get_opt("www-web-0").await.unwrap().is_some());
    assert!(pvcs.get_opt("www-web-1").await.unwrap().is_none());
    make_ready(&pods, "web-0").await;
    expect_pods(&pods, "app=web", &["web-0", "web-1"]).await;
    make_ready(&pods, "web-1").await;
    expect_pods(&pods, "app=web", &["web-0", "web-1", "web-2"]).await;
    make_ready(&pods, "web-2").await;
    let s = wait_for("status of 3 ready replicas", WAIT, || async {
        let s = sts.get("web").await.ok()?;
        let st = s.status.clone()?;
        (st.ready_replicas == Some(3) && st.available_replicas == Some(3)).then_some(s)
    })
    .await;
    let st = s.status.unwrap();
    assert_eq!(st.replicas, 3);
    assert_eq!(st.current_replicas, Some(3));
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.observed_generation, s.metadata.generation);
    assert_eq!(st.current_revision, st.update_revision);
    let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let rev = revs
        .get(st.current_revision.as_deref().unwrap())
        .await
        .expect("controller revision");
    assert_eq!(rev.revision, Some(1));

    // Scale down: highest ordinal first; claims are kept.
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = pods
        .watch(&WatchParams::default().labels("app=web"), &rv)
        .await
        .expect("watch pods")
        .boxed();
    scale(&sts, "web", 1).await;
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("pod deletions")
            .expect("watch open")
            .expect("watch event");
        if let WatchEvent::Deleted(p) = e {
            deleted.push(p.metadata.name.unwrap());
        }
    }
    assert_eq!(deleted, ["web-2", "web-1"]);
    expect_pods(&pods, "app=web", &["web-0"]).await;
    assert!(pvcs.get_opt("www-web-2").await.unwrap().is_some());
    wait_for("status.replicas 1", WAIT, || async {
        (sts.get("web").await.ok()?.status?.replicas == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_parallel_and_claim_retention_delete() {
    let (_f, client) = server().await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let (sts, pods) = create_sts(
        &client,
        "db",
        3,
        json!({"podManagementPolicy": "Parallel",
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"}}),
    )
    .await;
    // Parallel: all at once, without waiting for readiness.
    expect_pods(&pods, "app=db", &["db-0", "db-1", "db-2"]).await;
    scale(&sts, "db", 1).await;
    expect_pods(&pods, "app=db", &["db-0"]).await;
    wait_for("claims of scaled-away pods deleted", WAIT, || async {
        let names: Vec<String> = pvcs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        (names == ["www-db-0"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_rolling_update_respects_partition() {
    let (f, client) = server().await;
    let (sts, pods) = create_sts(
        &client,
        "web",
        3,
        json!({"podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
    )
    .await;
    for p in names(&expect_pods(&pods, "app=web", &["web-0", "web-1", "web-2"]).await) {
        make_ready(&pods, &p).await;
    }
    let old = wait_for("rollout of revision 1", WAIT, || async {
        let st = sts.get("web").await.ok()?.status?;
        (st.ready_replicas == Some(3)).then_some(st.current_revision?)
    })
    .await;
    set_image(&sts, "web", "nginx:2").await;
    // kubectl rollout status completes once the partitioned update is done.
    let rollout = kubectl_rollout_status(&f, "sts/web");
    let revision =
        |p: &Pod| p.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    // web-2 then web-1 move to the new revision; web-0 (below the
    // partition) stays.
    let new = wait_for("web-2 at the new revision", WAIT, || async {
        let p = pods.get("web-2").await.ok()?;
        (revision(&p) != old && p.metadata.deletion_timestamp.is_none()).then(|| revision(&p))
    })
    .await;
    assert_eq!(
        revision(&pods.get("web-1").await.unwrap()),
        old,
        "web-1 waits for web-2 to be ready"
    );
    make_ready(&pods, "web-2").await;
    wait_for("web-1 at the new revision", WAIT, || async {
        let p = pods.get("web-1").await.ok()?;
        (revision(&p) == new).then_some(())
    })
    .await;
    make_ready(&pods, "web-1").await;
    let st = wait_for("2 updated replicas", WAIT, || async {
        let st = sts.get("web").await.ok()?.status?;
        (st.updated_replicas == Some(2) && st.ready_replicas == Some(3)).then_some(st)
    })
    .await;
    assert_eq!(st.update_revision.as_deref(), Some(new.as_str()));
    assert_eq!(st.current_revision.as_deref(), Some(old.as_str()));
    assert_eq!(revision(&pods.get("web-0").await.unwrap()), old);
    assert_rollout_done(rollout.await.unwrap());

    // Partition 0: web-0 follows, and the new revision becomes current.
    sts.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .expect("lower partition");
    wait_for("web-0 at the new revision", WAIT, || async {
        let p = pods.get("web-0").await.ok()?;
        (revision(&p) == new).then_some(())
    })
    .await;
    make_ready(&pods, "web-0").await;
    wait_for("currentRevision = updateRevision", WAIT, || async {
        let st = sts.get("web").await.ok()?.status?;
        (st.current_revision.as_deref() == Some(new.as_str()) && st.current_replicas == Some(3))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_adopts_orphaned_pods() {
    let (_f, client) = server().await;
    let (sts, pods) = create_sts(
        &client,
        "web",
        2,
        json!({"podManagementPolicy": "Parallel"}),
    )
    .await;
    let before = expect_pods(&pods, "app=web", &["web-0", "web-1"]).await;
    // kubectl delete --cascade=orphan, then create it again.
    sts.delete("web", &DeleteParams::orphan())
        .await
        .expect("orphan delete");
    wait_for("pods orphaned", WAIT, || async {
        let got = active_pods(&pods, "app=web").await;
        let orphans = got
            .iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(|r| r.is_empty())
            })
            .count();
        (orphans == 2 && sts.get_opt("web").await.ok()?.is_none()).then_some(())
    })
    .await;
    let created = sts
        .create(
            &PostParams::default(),
            &statefulset("web", 2, json!({"podManagementPolicy": "Parallel"})),
        )
        .await
        .expect("create statefulset again");
    let uid = created.metadata.uid.unwrap();
    let after = wait_for("pods adopted", WAIT, || async {
        let got = active_pods(&pods, "app=web").await;
        got.iter()
            .all(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|r| r.uid == uid && r.controller == Some(true)))
            })
            .then_some(got)
    })
    .await;
    let uids =
        |ps: &[Pod]| -> Vec<Option<String>> { ps.iter().map(|p| p.metadata.uid.clone()).collect() };
    assert_eq!(uids(&after), uids(&before), "the same pods, not new ones");
}

#[tokio::test]
async fn statefulset_rollout_undo_returns_to_an_older_revision() {
    let (f, client) = server().await;
    let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let (sts, pods) = create_sts(
        &client,
        "web",
        1,
        json!({"podManagementPolicy": "Parallel"}),
    )
    .await;
    expect_pods(&pods, "app=web", &["web-0"]).await;
    set_image(&sts, "web", "nginx:2").await;
    wait_for("two revisions", WAIT, || async {
        let list = revs.list(&ListParams::default()).await.ok()?;
        (list.items.len() == 2).then_some(())
    })
    .await;
    let kubeconfig = f.running.root_kubeconfig.clone();
    let undo = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["rollout", "undo", "sts/web"])
            .output()
            .ok()
    })
    .await
    .unwrap();
    let Some(out) = undo else {
        eprintln!("note: kubectl not run");
        return;
    };
    assert!(
        out.status.success(),
        "kubectl rollout undo: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let image = |s: &StatefulSet| {
        let template = s.spec.template.spec.as_ref();
        template.and_then(|p| p.containers[0].image.clone())
    };
    assert_eq!(
        image(&sts.get("web").await.unwrap()).as_deref(),
        Some("nginx:1")
    );
    // The first revision becomes the newest again (number 3).
    wait_for("revision 1 renumbered to 3", WAIT, || async {
        let st = sts.get("web").await.ok()?.status?;
        let rev = revs.get(st.update_revision.as_deref()?).await.ok()?;
        (rev.revision == Some(3)).then_some(())
    })
    .await;
}

/// Runs `kubectl rollout status <what>` against the fixture's server in
/// the background; `None` when kubectl is not installed.
fn kubectl_rollout_status(
    f: &Fixture,
    what: &str,
) -> tokio::task::JoinHandle<Option<std::process::Output>> {
    let kubeconfig = f.running.root_kubeconfig.clone();
    let what = what.to_string();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["rollout", "status", &what, "--timeout=20s"])
            .output()
            .inspect_err(|e| eprintln!("note: kubectl not run ({e})"))
            .ok()
    })
}

fn assert_rollout_done(out: Option<std::process::Output>) {
    if let Some(out) = out {
        assert!(
            out.status.success(),
            "kubectl rollout status: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn create_node(client: &Client, name: &str, labels: Value, taints: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}),
    )
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
}

/// The node a daemon pod is pinned to by its required node affinity.
fn pinned_node(p: &Pod) -> String {
    let terms = &p
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    let f = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(
        (f.key.as_str(), f.operator.as_str()),
        ("metadata.name", "In")
    );
    f.values.as_ref().unwrap()[0].clone()
}

#[tokio::test]
async fn daemonset_runs_one_pod_per_fitting_node_and_rolls() {
    let (f, client) = server().await;
    create_node(&client, "node-a", json!({"disk": "ssd"}), json!(null)).await;
    create_node(&client, "node-b", json!({"disk": "hdd"}), json!(null)).await;
    create_node(
        &client,
        "node-c",
        json!({}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({"metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}}))
    .unwrap();
    dss.create(&PostParams::default(), &ds)
        .await
        .expect("create daemonset");
    // The tainted node gets none.
    let first = wait_for("a pod on each untainted node", WAIT, || async {
        let got = active_pods(&pods, "app=agent").await;
        (got.len() == 2).then_some(got)
    })
    .await;
    let mut pinned: Vec<String> = first.iter().map(pinned_node).collect();
    pinned.sort();
    assert_eq!(pinned, ["node-a", "node-b"]);
    for p in &first {
        assert!(p.spec.as_ref().unwrap().node_name.is_none());
        let tolerations = p.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unschedulable"))
        );
        make_ready(&pods, p.metadata.name.as_deref().unwrap()).await;
    }
    let st = wait_for("2 ready", WAIT, || async {
        let st = dss.get("agent").await.ok()?.status?;
        (st.number_ready == 2 && st.number_available == Some(2)).then_some(st)
    })
    .await;
    assert_eq!(st.desired_number_scheduled, 2);
    assert_eq!(st.current_number_scheduled, 2);
    assert_eq!(st.updated_number_scheduled, Some(2));
    assert_eq!(st.observed_generation, Some(1));

    // A rolling update, one node at a time (maxUnavailable 1).
    dss.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "agent:2"}]}}}})),
    )
    .await
    .expect("update template");
    let rollout = kubectl_rollout_status(&f, "ds/agent");
    let image = |p: &Pod| {
        p.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    for round in 0..2 {
        let new = wait_for(&format!("{} new pod(s)", round + 1), WAIT, || async {
            let got = active_pods(&pods, "app=agent").await;
            let new: Vec<Pod> = got
                .iter()
                .filter(|p| image(p) == "agent:2")
                .cloned()
                .collect();
            // Never more than one node without an available pod.
            let old_ready = got.iter().filter(|p| image(p) == "agent:1").count();
            assert!(old_ready + round >= 1, "maxUnavailable exceeded");
            (new.len() == round + 1 && got.len() == 2).then_some(new)
        })
        .await;
        for p in new.iter().filter(|p| {
            !p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"))
        }) {
            make_ready(&pods, p.metadata.name.as_deref().unwrap()).await;
        }
    }
    wait_for("rollout complete", WAIT, || async {
        let st = dss.get("agent").await.ok()?.status?;
        (st.updated_number_scheduled == Some(2) && st.number_available == Some(2)).then_some(())
    })
    .await;
    assert_rollout_done(rollout.await.unwrap());

    // A node whose labels stop matching the selector loses its pod.
    dss.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}})),
    )
    .await
    .expect("add node selector");
    let only = wait_for("only node-a keeps a pod", WAIT, || async {
        let got = active_pods(&pods, "app=agent").await;
        // The template changed too: node-a's pod is a new one.
        let new = got.first().is_some_and(|p| {
            p.spec.as_ref().unwrap().node_selector.is_some() && pinned_node(p) == "node-a"
        });
        (got.len() == 1 && new).then_some(got)
    })
    .await;
    make_ready(&pods, only[0].metadata.name.as_deref().unwrap()).await;
    wait_for("desiredNumberScheduled 1", WAIT, || async {
        let st = dss.get("agent").await.ok()?.status?;
        (st.desired_number_scheduled == 1 && st.number_ready == 1).then_some(())
    })
    .await;
}

async fn create_pod(pods: &Api<Pod>, name: &str, app: &str) {
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "db:1"}]}}))
        .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

/// Waits for the budget's status to show `healthy` and `allowed`.
async fn budget_status(
    pdbs: &Api<PodDisruptionBudget>,
    name: &str,
    healthy: i32,
    allowed: i32,
) -> PodDisruptionBudget {
    wait_for(
        &format!("{name}: {healthy} healthy, {allowed} allowed"),
        WAIT,
        || async {
            let b = pdbs.get(name).await.ok()?;
            let st = b.status.as_ref()?;
            (st.current_healthy == Some(healthy)
                && st.disruptions_allowed == Some(allowed)
                && st.observed_generation == b.metadata.generation)
                .then_some(b)
        },
    )
    .await
}

/// The HTTP status code of a failed request.
fn code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(e)) => (e.code, e.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn budget_blocks_eviction_with_429_then_allows_it() {
    let f = Fixture::start().await;
    let client = f.root_client_no_retry().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    for name in ["db-a", "db-b"] {
        create_pod(&pods, name, "db").await;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "db"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}}))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("create budget");
    let b = budget_status(&pdbs, "db", 0, 0).await;
    assert_eq!(b.status.as_ref().unwrap().expected_pods, Some(2));
    // Pending pods are evicted whatever the budget says (as upstream); make
    // them Running and Ready first.
    for name in ["db-a", "db-b"] {
        make_ready(&pods, name).await;
    }
    let b = budget_status(&pdbs, "db", 2, 0).await;
    let st = b.status.unwrap();
    assert_eq!(st.desired_healthy, Some(2));
    let cond = &st.conditions.unwrap()[0];
    assert_eq!(
        (
            cond.type_.as_str(),
            cond.status.as_str(),
            cond.reason.as_str()
        ),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );
    let (status, message) = code(pods.evict("db-a", &EvictParams::default()).await);
    assert_eq!(status, 429);
    assert_eq!(
        message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert!(pods.get_opt("db-a").await.unwrap().is_some());

    // One disruption allowed: the first eviction goes through, the second
    // is refused until the controller sees the pod gone.
    pdbs.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minAvailable": 1}})),
    )
    .await
    .expect("lower minAvailable");
    let b = budget_status(&pdbs, "db", 2, 1).await;
    assert_eq!(
        b.status.unwrap().conditions.unwrap()[0].reason,
        "SufficientPods"
    );
    pods.evict("db-a", &EvictParams::default())
        .await
        .expect("evict db-a");
    assert!(pods.get_opt("db-a").await.unwrap().is_none());
    let (status, _) = code(pods.evict("db-b", &EvictParams::default()).await);
    assert_eq!(status, 429);
    budget_status(&pdbs, "db", 1, 0).await;
}

#[tokio::test]
async fn budget_with_max_unavailable_uses_the_controller_scale() {
    let (_f, client) = server().await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let (_, pods) = create_sts(
        &client,
        "web",
        3,
        json!({"podManagementPolicy": "Parallel"}),
    )
    .await;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}}}))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("create budget");
    for p in names(&expect_pods(&pods, "app=web", &["web-0", "web-1", "web-2"]).await) {
        make_ready(&pods, &p).await;
    }
    // 34% of 3 rounds up to 2 unavailable: 1 must stay healthy.
    let b = budget_status(&pdbs, "web", 3, 2).await;
    let st = b.status.unwrap();
    assert_eq!((st.expected_pods, st.desired_healthy), (Some(3), Some(1)));
    pods.evict("web-2", &EvictParams::default())
        .await
        .expect("evict web-2");
    // An unmanaged pod the budget selects: no scale to judge by.
    create_pod(&pods, "stray", "web").await;
    wait_for("SyncFailed", WAIT, || async {
        let st = pdbs.get("web").await.ok()?.status?;
        let c = st.conditions?.into_iter().next()?;
        (c.reason == "SyncFailed" && st.disruptions_allowed == Some(0)).then_some(())
    })
    .await;
}

fn cronjob(name: &str, schedule: &str, time_zone: &str) -> CronJob {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"schedule": schedule, "timeZone": time_zone,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}}}))
    .unwrap()
}

#[tokio::test]
async fn cronjob_with_a_time_zone_fires_and_an_unknown_zone_is_refused() {
    let (_f, client) = server().await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let (status, message) = code(
        cjs.create(
            &PostParams::default(),
            &cronjob("mars", "0 9 * * *", "Mars/X"),
        )
        .await,
    );
    assert_eq!(status, 422);
    assert!(
        message.ends_with("spec.timeZone: Invalid value: \"Mars/X\": unknown time zone Mars/X"),
        "{message}"
    );
    // Time zone arithmetic is unit-tested with a fake clock; here a zone
    // other than UTC schedules at all.
    cjs.create(
        &PostParams::default(),
        &cronjob("tick", "@every 1s", "Asia/Kolkata"),
    )
    .await
    .expect("create cronjob");
    let job = wait_for("a Job of the CronJob", WAIT, || async {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|j| {
                j.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("tick-"))
            })
    })
    .await;
    let owner = &job.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "tick")
    );
}
