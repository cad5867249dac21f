//! The syncer when its parent (the real host's kube-apiserver) is
//! unreachable for a while or restarts, as a tenant and the host's
//! operator would see it.
//!
//! The host is shared with other tests, so it is never stopped: nestkube
//! reaches it through a TCP relay ([`nestkube_e2e::relay`]) that the test
//! cuts (every connection reset, new ones too) and restores.
//!
//! - Outage: while the parent is cut, the virtual cluster keeps serving
//!   (a pod deleted, two created, a ConfigMap and a Service updated); once
//!   the parent is back, the host shows exactly that: the deleted pod's
//!   copy gone, one copy of every other pod, all Running, the new data,
//!   and the virtual pods Running again with no duplicated Event.
//! - Restarts: the parent's connections reset several times in a row
//!   (watches break mid-stream) while pods come and go: it converges the
//!   same way.
//! - Someone else on the host (parent up): a deleted copy of a
//!   ConfigMap, a Service or a token Secret is re-created; a deleted copy of a Running pod
//!   is reported (the virtual pod is deleted, as an eviction); a host pod
//!   labelled as a copy of this cluster whose virtual pod does not exist is
//!   removed.
//! - Partition: the host's connections go silent instead (nothing reset,
//!   nothing answered): a tenant syncing into another parent keeps being
//!   synced, and the host's tenant converges once it heals.
//!
//! Times from restore to converged are printed (`--nocapture`), never
//! asserted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{self, Server, client_for, js, wait_for_within};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use nestkube_e2e::relay::Relay;
use nestkube_syncer::names;
use serde_json::{Value, json};

/// How long the parent stays unreachable: longer than the kube-rs
/// watcher's reconnect backoff reaches (its cap is 30 s by default, the
/// parent watches' is lower) and than the work queue's retry cap (10 s).
const OUTAGE: Duration = Duration::from_secs(30);
/// Longest wait for the host and the virtual cluster to agree again.
const CONVERGE_SECS: u64 = 90;

/// A pod of the test (its container reads ConfigMap `settings`).
fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "main", "image": "nginx",
            "envFrom": [{"configMapRef": {"name": "settings"}}],
        }]},
    }))
    .unwrap()
}

/// What the host and the virtual cluster show of the cluster's pods.
struct Seen {
    /// Virtual pod name -> its phase (deleting pods count as "Deleting").
    virt: BTreeMap<String, String>,
    /// Virtual pod name -> phases of its host copies (one each when right).
    host: BTreeMap<String, Vec<String>>,
}

impl Seen {
    async fn read(vpods: &Api<Pod>, host_pods: &Api<Pod>, uid: &str) -> Option<Seen> {
        let mut virt = BTreeMap::new();
        for p in vpods.list(&ListParams::default()).await.ok()?.items {
            let p = js(&p);
            let phase = if p["metadata"]["deletionTimestamp"].is_null() {
                p["status"]["phase"].as_str().unwrap_or("").to_string()
            } else {
                "Deleting".into()
            };
            virt.insert(p["metadata"]["name"].as_str()?.to_string(), phase);
        }
        let mut host: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let lp = ListParams::default().labels(&names::owner_selector(uid));
        for h in host_pods.list(&lp).await.ok()?.items {
            let h = js(&h);
            let name = h["metadata"]["annotations"][names::NAME_ANNOTATION]
                .as_str()
                .unwrap_or("?")
                .to_string();
            host.entry(name)
                .or_default()
                .push(h["status"]["phase"].as_str().unwrap_or("").to_string());
        }
        Some(Seen { virt, host })
    }

    /// Whether exactly `names` exist, Running, with one Running copy each
    /// and no other copy.
    fn converged(&self, names: &[&str]) -> bool {
        let want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.virt.keys().cloned().collect::<Vec<_>>() == want
            && self.host.keys().cloned().collect::<Vec<_>>() == want
            && self.virt.values().all(|p| p == "Running")
            && self
                .host
                .values()
                .all(|c| c.len() == 1 && c[0] == "Running")
    }
}

/// Waits until exactly `names` run, each with one Running copy; returns
/// how long that took.
async fn converge(vpods: &Api<Pod>, host_pods: &Api<Pod>, uid: &str, names: &[&str]) -> Duration {
    let started = Instant::now();
    let mut last = String::new();
    let deadline = started + Duration::from_secs(CONVERGE_SECS);
    loop {
        if let Some(seen) = Seen::read(vpods, host_pods, uid).await {
            if seen.converged(names) {
                return started.elapsed();
            }
            last = format!("virtual {:?}; host copies {:?}", seen.virt, seen.host);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {names:?} to run with one copy each; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The virtual `reason` Events about pod `name`.
async fn events_about(events: &Api<Event>, name: &str, reason: &str) -> usize {
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name},reason={reason}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

/// A cluster placed on the e2e host that nestkube reaches through a
/// [`Relay`] the test can cut; the test's own view of the host (as its
/// operator, `admin`) goes direct.
struct BehindRelay {
    ns: nestkube_e2e::TestNamespace<'static>,
    relay: Relay,
    admin: kube::Client,
    server: Server,
    cluster: String,
    /// The placed VirtualCluster's uid.
    uid: String,
    _dir: tempfile::TempDir,
}

/// A [`BehindRelay`] cluster `<name>-<unique>` in host namespace
/// `<prefix>-<unique>`; `None` without an e2e host.
async fn behind_relay(prefix: &str, name: &str) -> Option<BehindRelay> {
    let host = nestkube_e2e::HostCluster::shared()?;
    let ns = host.namespace(prefix);
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(host.server_addr().expect("host address"))
        .await
        .expect("relay");
    let via = dir.path().join("host-via-relay.kubeconfig");
    host.kubeconfig_via(&relay.url(), &via).expect("kubeconfig");
    let nestkube_host = client_for(Kubeconfig::read_from(&via).expect("kubeconfig")).await;
    let admin = common::host_admin(host).await;
    let server = Server::start().await;
    let cluster = common::host_placed_cluster(&server, nestkube_host, ns.name(), name).await;
    Some(BehindRelay {
        ns,
        relay,
        admin,
        server,
        uid: format!("uid-{cluster}"),
        cluster,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_syncer_converges_after_its_parent_was_unreachable() {
    let Some(BehindRelay {
        ns,
        relay,
        admin,
        server,
        cluster,
        uid,
        _dir,
    }) = behind_relay("outage", "outage").await
    else {
        return;
    };
    let api = server.running.api.clone();
    let virt = api.client_for(&cluster);
    let vpods: Api<Pod> = Api::namespaced(virt.clone(), "default");
    let vcms: Api<ConfigMap> = Api::namespaced(virt.clone(), "default");
    let vsvcs: Api<Service> = Api::namespaced(virt.clone(), "default");
    let vevents: Api<Event> = Api::namespaced(virt.clone(), "default");
    let host_pods: Api<Pod> = Api::namespaced(admin.clone(), ns.name());
    let host_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), ns.name());
    let host_svcs: Api<Service> = Api::namespaced(admin.clone(), ns.name());
    let pp = PostParams::default();

    let settings: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"}, "data": {"version": "1"},
    }))
    .unwrap();
    vcms.create(&pp, &settings).await.expect("ConfigMap");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    vsvcs.create(&pp, &svc).await.expect("Service");
    // ServiceAccount admission waits for the default service account.
    wait_for_within("the first pod to be admitted", 30, || async {
        vpods.create(&pp, &pod("a")).await.ok()
    })
    .await;
    for name in ["b", "c"] {
        vpods.create(&pp, &pod(name)).await.expect("pod");
    }
    let t = converge(&vpods, &host_pods, &uid, &["a", "b", "c"]).await;
    eprintln!("outage: 3 pods Running with one copy each after {t:?}");
    let hcm = names::host_name(&cluster, "default", "settings");
    let hsvc = names::host_name(&cluster, "default", "web");
    wait_for_within("the Service copy", 30, || async {
        host_svcs.get_opt(&hsvc).await.ok()?
    })
    .await;
    wait_for_within("the Scheduled Event of b", 30, || async {
        (events_about(&vevents, "b", "Scheduled").await >= 1).then_some(())
    })
    .await;

    // --- The parent is unreachable; the virtual cluster keeps serving. ---
    relay.cut();
    let cut_at = Instant::now();
    vpods
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete a while the parent is down");
    for name in ["d", "e"] {
        vpods
            .create(&pp, &pod(name))
            .await
            .expect("create while the parent is down");
    }
    vcms.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"version": "2"}})),
    )
    .await
    .expect("update the ConfigMap while the parent is down");
    vsvcs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .expect("update the Service while the parent is down");
    assert!(
        vpods.get("d").await.is_ok() && vpods.get("a").await.is_ok(),
        "the virtual cluster answers reads while its parent is down"
    );
    // Hold the outage (the scenario, not a synchronisation).
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    // Nothing of it reached the host: the parent really was unreachable.
    let seen = Seen::read(&vpods, &host_pods, &uid).await.expect("read");
    assert_eq!(
        seen.host.keys().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "the host changed while cut off: {:?}",
        seen.host
    );
    assert_eq!(seen.virt.get("a").map(String::as_str), Some("Deleting"));

    // --- The parent is back. ---
    relay.restore();
    let restored = Instant::now();
    let back = converge(&vpods, &host_pods, &uid, &["b", "c", "d", "e"]).await;
    wait_for_within("the updated ConfigMap on the host", 30, || async {
        let cm = host_cms.get(&hcm).await.ok()?;
        (cm.data.as_ref()?.get("version")? == "2").then_some(())
    })
    .await;
    let label = names::host_label_key("tier");
    wait_for_within("the updated Service on the host", 30, || async {
        let s = js(&host_svcs.get(&hsvc).await.ok()?);
        (s["metadata"]["labels"][&label] == "front").then_some(())
    })
    .await;
    eprintln!(
        "outage: parent cut for {OUTAGE:?}; restore -> pods converged {back:?}, ConfigMap and Service too {:?}",
        restored.elapsed()
    );
    // The new pods' Events came up, the old pod's were not written twice.
    for name in ["d", "e"] {
        wait_for_within("the Scheduled Event of a new pod", 30, || async {
            (events_about(&vevents, name, "Scheduled").await >= 1).then_some(())
        })
        .await;
    }
    for name in ["b", "c", "d", "e"] {
        assert_eq!(
            events_about(&vevents, name, "Scheduled").await,
            1,
            "Scheduled Events of {name}"
        );
    }

    // --- The parent restarts several times in a row, as pods come and go
    // and the ConfigMap changes. ---
    for step in 0..5 {
        relay.reset_connections();
        match step {
            0 => drop(vpods.create(&pp, &pod("f")).await.expect("pod f")),
            1 => drop(
                vpods
                    .delete("b", &DeleteParams::default())
                    .await
                    .expect("delete b"),
            ),
            2 => drop(vpods.create(&pp, &pod("g")).await.expect("pod g")),
            3 => drop(
                vcms.patch(
                    "settings",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"version": "3"}})),
                )
                .await
                .expect("update the ConfigMap"),
            ),
            _ => drop(
                vpods
                    .delete("g", &DeleteParams::default())
                    .await
                    .expect("delete g"),
            ),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    relay.reset_connections();
    let restarted = Instant::now();
    let t = converge(&vpods, &host_pods, &uid, &["c", "d", "e", "f"]).await;
    wait_for_within("the ConfigMap's latest data on the host", 30, || async {
        let cm = host_cms.get(&hcm).await.ok()?;
        (cm.data.as_ref()?.get("version")? == "3").then_some(())
    })
    .await;
    eprintln!(
        "outage: 6 connection resets amid changes -> pods converged {t:?} after the last, ConfigMap too {:?}",
        restarted.elapsed()
    );

    // --- Someone else on the host (parent up). ---
    // A deleted ConfigMap or Service copy is re-created.
    let old_cm = host_cms.get(&hcm).await.expect("ConfigMap copy");
    let old_svc = host_svcs.get(&hsvc).await.expect("Service copy");
    host_cms
        .delete(&hcm, &DeleteParams::default())
        .await
        .expect("delete the ConfigMap copy");
    host_svcs
        .delete(&hsvc, &DeleteParams::default())
        .await
        .expect("delete the Service copy");
    let recreated = Instant::now();
    wait_for_within("the ConfigMap copy re-created", 30, || async {
        let cm = host_cms.get(&hcm).await.ok()?;
        (cm.metadata.uid != old_cm.metadata.uid).then_some(())
    })
    .await;
    wait_for_within("the Service copy re-created", 30, || async {
        let s = host_svcs.get(&hsvc).await.ok()?;
        (s.metadata.uid != old_svc.metadata.uid).then_some(())
    })
    .await;
    eprintln!(
        "outage: host ConfigMap and Service copies deleted -> re-created {:?}",
        recreated.elapsed()
    );
    // A deleted token Secret of a running copy is written again (the
    // syncer remembers the tokens it wrote; this one it must not trust).
    let host_secrets: Api<Secret> = Api::namespaced(admin.clone(), ns.name());
    let token =
        nestkube_syncer::down::token::secret_name(&names::host_name(&cluster, "default", "c"));
    let old_token = host_secrets.get(&token).await.expect("c's token Secret");
    host_secrets
        .delete(&token, &DeleteParams::default())
        .await
        .expect("delete c's token Secret");
    wait_for_within("c's token Secret written again", 30, || async {
        let s = host_secrets.get(&token).await.ok()?;
        (s.metadata.uid != old_token.metadata.uid).then_some(())
    })
    .await;
    // A deleted copy of a Running pod is reported: the virtual pod goes
    // too (as after an eviction; its controller, if any, replaces it).
    host_pods
        .delete(
            &names::host_name(&cluster, "default", "c"),
            &DeleteParams::default().grace_period(0),
        )
        .await
        .expect("delete c's copy");
    // A host pod claiming to be a copy of a virtual pod that does not
    // exist is removed.
    let ghost = names::host_name(&cluster, "default", "ghost");
    let mut labels: Value = json!(names::owner_labels(&uid, "default", "ghost"));
    labels["app"] = json!("ghost");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": ghost,
            "labels": labels,
            "annotations": names::owner_annotations(&cluster, "default", "ghost", "no-such-uid"),
        },
        "spec": {"containers": [{"name": "main", "image": "nginx"}]},
    }))
    .unwrap();
    host_pods.create(&pp, &orphan).await.expect("orphan");
    let t = converge(&vpods, &host_pods, &uid, &["d", "e", "f"]).await;
    eprintln!("outage: host copy of c deleted and an orphan created -> converged {t:?}");
    wait_for_within("the orphan to go", 30, || async {
        host_pods
            .get_opt(&ghost)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    drop(relay);
}

/// A partition rather than a refusal: the host's connections go silent
/// (nothing is reset, nothing answers). More of the host cluster's pods
/// wait than the syncer runs reconciles at once, yet a cluster syncing
/// into a parent served by nestkube itself keeps getting its pods copied;
/// once the partition heals, every pod of the host's cluster runs with one
/// copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_parent_holds_up_no_other_cluster() {
    let Some(BehindRelay {
        ns,
        relay,
        admin,
        server,
        cluster,
        uid,
        _dir,
    }) = behind_relay("partition", "part").await
    else {
        return;
    };
    let api = server.running.api.clone();
    // Another tenant, placed in root (a parent nestkube serves).
    let (_, other) = common::virtual_cluster(&server.root, "team-b").await;
    let vpods: Api<Pod> = Api::namespaced(api.client_for(&cluster), "default");
    let host_pods: Api<Pod> = Api::namespaced(admin.clone(), ns.name());
    let pp = PostParams::default();
    let plain = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "nginx"}]},
        }))
        .unwrap()
    };
    wait_for_within("the first pod to be admitted", 30, || async {
        vpods.create(&pp, &plain("p0")).await.ok()
    })
    .await;
    converge(&vpods, &host_pods, &uid, &["p0"]).await;

    relay.black_hole();
    let partitioned = Instant::now();
    // More than the syncer's concurrent reconciles (32).
    let mut names = vec!["p0".to_string()];
    for i in 1..=40 {
        let name = format!("p{i}");
        vpods
            .create(&pp, &plain(&name))
            .await
            .expect("create while partitioned");
        names.push(name);
    }
    // The other tenant's pod reaches its parent meanwhile.
    let other_pods: Api<Pod> = Api::namespaced(other.clone(), "default");
    wait_for_within("the other tenant's pod to be admitted", 30, || async {
        other_pods.create(&pp, &plain("web")).await.ok()
    })
    .await;
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    let copy = names::host_name("team-b", "default", "web");
    let other_synced = Instant::now();
    wait_for_within("the other tenant's pod copied into root", 30, || async {
        root_pods.get_opt(&copy).await.ok()?
    })
    .await;
    eprintln!(
        "partition: the other tenant's pod copied {:?} after its create ({:?} into the partition)",
        other_synced.elapsed(),
        partitioned.elapsed()
    );
    tokio::time::sleep(OUTAGE.saturating_sub(partitioned.elapsed())).await;

    relay.restore();
    let names: Vec<&str> = {
        let mut n: Vec<&str> = names.iter().map(String::as_str).collect();
        n.sort();
        n
    };
    let t = converge(&vpods, &host_pods, &uid, &names).await;
    eprintln!("partition: healed after {OUTAGE:?} -> 41 pods converged {t:?}");
}
