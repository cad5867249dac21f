//! Batch and service controllers against a real server: Jobs run to
//! completion or fail by backoffLimit as tests play kubelet (pod phases set
//! through the status subresource), Indexed Jobs, TTL after finished.
//! Every wait is on a condition with a timeout.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use nestkube_apiserver::server::RunningServer;
use serde_json::json;

use crate::common::{client_for, cluster_admin_kubeconfig, server, wait_for};

const WAIT: Duration = Duration::from_secs(10);

fn job(name: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox"}]}});
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// The job's pods that are not finished.
async fn running_pods(pods: &Api<Pod>, job: &str, n: usize) -> Vec<Pod> {
    wait_for(&format!("{n} active pods of {job}"), WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .ok()?;
        let active: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded") | Some("Failed")
                    )
            })
            .collect();
        (active.len() == n).then_some(active)
    })
    .await
}

/// Plays kubelet: sets the pod's phase.
async fn set_phase(pods: &Api<Pod>, pod: &Pod, phase: &str) {
    let name = pod.metadata.name.as_deref().unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": phase}})),
    )
    .await
    .expect("set phase");
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn job_runs_to_completion_and_expires_after_ttl() {
    let (_s, client, _dir) = server().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = Instant::now();
    jobs.create(
        &PostParams::default(),
        &job(
            "pi",
            json!({"parallelism": 2, "completions": 3, "ttlSecondsAfterFinished": 1}),
        ),
    )
    .await
    .expect("create job");
    let first = running_pods(&pods, "pi", 2).await;
    eprintln!("job create -> 2 pods: {:?}", created.elapsed());
    let j = wait_for("status.startTime", WAIT, || async {
        jobs.get("pi")
            .await
            .ok()
            .filter(|j| j.status.as_ref().is_some_and(|s| s.start_time.is_some()))
    })
    .await;
    assert_eq!(j.status.as_ref().unwrap().active, Some(2));
    let uid = j.metadata.uid.clone().unwrap();
    for p in &first {
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str(), r.controller),
            ("Job", uid.as_str(), Some(true))
        );
        assert!(p.metadata.generate_name.as_deref() == Some("pi-"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
    }
    // Two succeed: one more pod for the third completion.
    for p in &first {
        set_phase(&pods, p, "Succeeded").await;
    }
    let last = running_pods(&pods, "pi", 1).await;
    set_phase(&pods, &last[0], "Succeeded").await;
    let done = wait_for("Complete", WAIT, || async {
        jobs.get("pi")
            .await
            .ok()
            .filter(|j| condition(j, "Complete").is_some())
    })
    .await;
    eprintln!("job create -> Complete: {:?}", created.elapsed());
    let status = done.status.as_ref().unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert!(status.completion_time.is_some());
    assert!(condition(&done, "SuccessCriteriaMet").is_some());
    // ttlSecondsAfterFinished: 1 -> the Job goes, its pods follow.
    wait_for("job deleted after its TTL", WAIT, || async {
        jobs.get_opt("pi").await.ok()?.is_none().then_some(())
    })
    .await;
    wait_for("pods collected", WAIT, || async {
        pods.list(&ListParams::default().labels("batch.kubernetes.io/job-name=pi"))
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn job_fails_after_backoff_limit() {
    let (_s, client, _dir) = server().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("flaky", json!({"backoffLimit": 1})),
    )
    .await
    .expect("create job");
    for _ in 0..2 {
        let p = running_pods(&pods, "flaky", 1).await;
        set_phase(&pods, &p[0], "Failed").await;
    }
    let failed = wait_for("Failed", WAIT, || async {
        jobs.get("flaky")
            .await
            .ok()
            .filter(|j| condition(j, "Failed").is_some())
    })
    .await;
    assert_eq!(
        condition(&failed, "Failed").unwrap().1,
        "BackoffLimitExceeded"
    );
    assert!(condition(&failed, "FailureTarget").is_some());
    assert_eq!(failed.status.unwrap().failed, Some(2));
    // No replacement after the failure.
    running_pods(&pods, "flaky", 0).await;
}

#[tokio::test]
async fn indexed_job_runs_every_index() {
    let (_s, client, _dir) = server().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "idx",
            json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3}),
        ),
    )
    .await
    .expect("create job");
    let ps = running_pods(&pods, "idx", 3).await;
    let mut indexes: Vec<String> = ps
        .iter()
        .map(|p| {
            let i = p.metadata.annotations.as_ref().unwrap()
                ["batch.kubernetes.io/job-completion-index"]
                .clone();
            assert_eq!(
                p.metadata.labels.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"],
                i
            );
            assert_eq!(p.spec.as_ref().unwrap().hostname, Some(format!("idx-{i}")));
            i
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    // Index 1 fails: replaced by a pod with the same index.
    let one = ps
        .iter()
        .find(|p| {
            p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"]
                == "1"
        })
        .unwrap();
    set_phase(&pods, one, "Failed").await;
    let ps = wait_for("index 1 replaced", WAIT, || async {
        let ps = running_pods(&pods, "idx", 3).await;
        ps.iter()
            .all(|p| p.metadata.name != one.metadata.name)
            .then_some(ps)
    })
    .await;
    for p in &ps {
        set_phase(&pods, p, "Succeeded").await;
    }
    let done = wait_for("Complete", WAIT, || async {
        jobs.get("idx")
            .await
            .ok()
            .filter(|j| condition(j, "Complete").is_some())
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.failed, Some(1));
}

#[tokio::test]
async fn suspended_job_has_no_pods_until_resumed() {
    let (_s, client, _dir) = server().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("later", json!({"suspend": true})),
    )
    .await
    .expect("create job");
    wait_for("Suspended", WAIT, || async {
        jobs.get("later")
            .await
            .ok()
            .filter(|j| condition(j, "Suspended").is_some())
    })
    .await;
    running_pods(&pods, "later", 0).await;
    jobs.patch(
        "later",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .expect("resume");
    running_pods(&pods, "later", 1).await;
}

mod endpoints {
    use super::*;
    use k8s_openapi::api::core::v1::{Endpoints, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    fn pod(name: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                "ports": [{"name": "web", "containerPort": 8080}]}]}}))
        .unwrap()
    }

    /// Plays kubelet: running with an IP, ready or not.
    async fn report(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
        let ready = if ready { "True" } else { "False" };
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": ready,
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
        )
        .await
        .expect("pod status");
    }

    fn readiness(s: &EndpointSlice) -> Vec<Option<bool>> {
        s.endpoints
            .iter()
            .flatten()
            .map(|e| e.conditions.as_ref().and_then(|c| c.ready))
            .collect()
    }

    fn ips(ep: &Endpoints) -> (Vec<String>, Vec<String>) {
        let mut ready = Vec::new();
        let mut not_ready = Vec::new();
        for s in ep.subsets.iter().flatten() {
            ready.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
            not_ready.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
        }
        (ready, not_ready)
    }

    #[tokio::test]
    async fn endpoints_and_slices_follow_pod_readiness() {
        let (_s, client, _dir) = server().await;
        let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        pods.create(&PostParams::default(), &pod("web-1", json!({"app": "web"})))
            .await
            .unwrap();
        pods.create(&PostParams::default(), &pod("other", json!({"app": "db"})))
            .await
            .unwrap();
        report(&pods, "web-1", "10.0.0.5", false).await;
        report(&pods, "other", "10.0.0.9", true).await;
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}))
        .unwrap();
        let created = Instant::now();
        svcs.create(&PostParams::default(), &svc).await.unwrap();
        let ep = wait_for("not-ready address", WAIT, || async {
            eps.get_opt("web")
                .await
                .ok()
                .flatten()
                .filter(|e| ips(e) == (vec![], vec!["10.0.0.5".to_string()]))
        })
        .await;
        eprintln!("service create -> Endpoints: {:?}", created.elapsed());
        let port = &ep.subsets.unwrap()[0].ports.clone().unwrap()[0];
        assert_eq!((port.port, port.name.as_deref()), (8080, Some("http")));
        let sel = "kubernetes.io/service-name=web";
        let slice = wait_for("slice with a not-ready endpoint", WAIT, || async {
            let l = slices.list(&ListParams::default().labels(sel)).await.ok()?;
            l.items.into_iter().find(|s| readiness(s) == [Some(false)])
        })
        .await;
        assert!(slice.metadata.name.as_deref().unwrap().starts_with("web-"));
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(
            slice.metadata.labels.as_ref().unwrap()["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));

        // Ready: moves to addresses and the slice says ready.
        let became_ready = Instant::now();
        report(&pods, "web-1", "10.0.0.5", true).await;
        wait_for("ready address", WAIT, || async {
            eps.get("web")
                .await
                .ok()
                .filter(|e| ips(e) == (vec!["10.0.0.5".to_string()], vec![]))
        })
        .await;
        eprintln!("pod ready -> Endpoints: {:?}", became_ready.elapsed());
        wait_for("ready slice", WAIT, || async {
            let l = slices.list(&ListParams::default().labels(sel)).await.ok()?;
            (l.items.len() == 1 && readiness(&l.items[0]) == [Some(true)]).then_some(())
        })
        .await;

        // The pod goes: empty Endpoints, an empty placeholder slice.
        pods.delete("web-1", &Default::default()).await.unwrap();
        wait_for("empty endpoints", WAIT, || async {
            eps.get("web")
                .await
                .ok()
                .filter(|e| ips(e) == (vec![], vec![]))
        })
        .await;
        wait_for("empty slice", WAIT, || async {
            let l = slices.list(&ListParams::default().labels(sel)).await.ok()?;
            (l.items.len() == 1 && readiness(&l.items[0]).is_empty()).then_some(())
        })
        .await;

        // Selector-less services are not touched; deleted services lose
        // their Endpoints.
        let manual: Service = serde_json::from_value(json!({"metadata": {"name": "manual"},
            "spec": {"ports": [{"port": 80}]}}))
        .unwrap();
        svcs.create(&PostParams::default(), &manual).await.unwrap();
        svcs.delete("web", &Default::default()).await.unwrap();
        wait_for("endpoints removed", WAIT, || async {
            eps.get_opt("web").await.ok()?.is_none().then_some(())
        })
        .await;
        assert!(eps.get_opt("manual").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn headless_services_get_endpoints_too() {
        let (_s, client, _dir) = server().await;
        let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"},
                "ports": [{"port": 5432}]}}))
        .unwrap();
        svcs.create(&PostParams::default(), &svc).await.unwrap();
        pods.create(&PostParams::default(), &pod("db-0", json!({"app": "db"})))
            .await
            .unwrap();
        report(&pods, "db-0", "10.0.0.7", true).await;
        let ep = wait_for("headless endpoints", WAIT, || async {
            eps.get_opt("db")
                .await
                .ok()
                .flatten()
                .filter(|e| ips(e).0 == ["10.0.0.7"])
        })
        .await;
        assert_eq!(
            ep.metadata.labels.unwrap()["service.kubernetes.io/headless"],
            ""
        );
    }
}

mod cluster_ips {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn svc(name: &str, cluster_ip: Option<&str>) -> Service {
        let mut spec = json!({"ports": [{"port": 80}]});
        if let Some(ip) = cluster_ip {
            spec["clusterIP"] = json!(ip);
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    }

    #[tokio::test]
    async fn services_get_unique_cluster_ips() {
        let (_s, client, _dir) = server().await;
        let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
        let pp = PostParams::default();
        let ip = |s: &Service| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
        let a = svcs.create(&pp, &svc("a", None)).await.unwrap();
        let b = svcs.create(&pp, &svc("b", None)).await.unwrap();
        assert_ne!(ip(&a), ip(&b));
        for s in [&a, &b] {
            let addr: std::net::Ipv4Addr = ip(s).parse().unwrap();
            let o = addr.octets();
            assert!(o[0] == 10 && (96..112).contains(&o[1]), "{addr}");
            assert_ne!(ip(s), "10.96.0.1");
            assert_eq!(s.spec.as_ref().unwrap().cluster_ips, Some(vec![ip(s)]));
        }
        let headless = svcs.create(&pp, &svc("h", Some("None"))).await.unwrap();
        assert_eq!(ip(&headless), "None");
        let err = svcs
            .create(&pp, &svc("c", Some(&ip(&a))))
            .await
            .expect_err("taken");
        let kube::Error::Api(status) = err else {
            panic!("{err:?}")
        };
        assert_eq!(status.code, 422);
        assert!(
            status.message.contains("spec.clusterIPs: Invalid value")
                && status.message.contains("provided IP is already allocated"),
            "{}",
            status.message
        );
        // Released on delete.
        svcs.delete("a", &Default::default()).await.unwrap();
        let c = svcs.create(&pp, &svc("c", Some(&ip(&a)))).await.unwrap();
        assert_eq!(ip(&c), ip(&a));
    }
}

mod cronjobs {
    use super::*;
    use k8s_openapi::api::batch::v1::CronJob;

    /// The schedule itself is unit-tested with a controlled clock
    /// (`controllers::cronjob`); here: the CronJob's finished Jobs are
    /// pruned to its history limits and `status.active` follows them.
    #[tokio::test]
    async fn cronjob_history_and_active_follow_its_jobs() {
        let (_s, client, _dir) = server().await;
        let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
        let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
        let cj: CronJob = serde_json::from_value(json!({"metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}}}}}))
        .unwrap();
        let cj = cjs.create(&PostParams::default(), &cj).await.unwrap();
        let uid = cj.metadata.uid.clone().unwrap();
        for i in 0..3 {
            let mut j = job(&format!("nightly-{i}"), json!({"suspend": true}));
            j.metadata.owner_references = Some(vec![
                serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "CronJob",
                    "name": "nightly", "uid": uid, "controller": true}))
                .unwrap(),
            ]);
            jobs.create(&PostParams::default(), &j).await.unwrap();
        }
        wait_for("three active jobs", WAIT, || async {
            let c = cjs.get("nightly").await.ok()?;
            (c.status?.active?.len() == 3).then_some(())
        })
        .await;
        for i in 0..2 {
            let name = format!("nightly-{i}");
            jobs.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "startTime": "2026-01-01T00:00:00Z",
                    "completionTime": format!("2026-01-01T00:0{i}:00Z"),
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True"},
                        {"type": "Complete", "status": "True"}]}})),
            )
            .await
            .unwrap();
        }
        wait_for("history pruned to one", WAIT, || async {
            let names: Vec<String> = jobs
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|j| j.metadata.deletion_timestamp.is_none())
                .filter_map(|j| j.metadata.name)
                .collect();
            (names == ["nightly-1", "nightly-2"]).then_some(())
        })
        .await;
        let c = wait_for("status", WAIT, || async {
            let c = cjs.get("nightly").await.ok()?;
            let s = c.status.clone()?;
            (s.active.as_ref().map(Vec::len) == Some(1) && s.last_successful_time.is_some())
                .then_some(c)
        })
        .await;
        assert_eq!(
            c.status.unwrap().active.unwrap()[0].name.as_deref(),
            Some("nightly-2")
        );
    }
}

mod clusters {
    use super::*;

    async fn cluster_client(running: &RunningServer, path: &str) -> Client {
        let api = &running.api;
        api.clusters
            .create(&api.store, &api.catalog, path)
            .await
            .expect("create cluster");
        client_for(cluster_admin_kubeconfig(running, path)).await
    }

    /// The same Job name in two clusters: each runs its own pods, and a
    /// pod's phase in one cluster never completes the other's Job.
    #[tokio::test]
    async fn jobs_of_two_clusters_are_independent() {
        let (running, root, _dir) = server().await;
        let child = cluster_client(&running, "team-a").await;
        let mut apis = Vec::new();
        for client in [&root, &child] {
            let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
            let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
            jobs.create(&PostParams::default(), &job("same", json!({})))
                .await
                .expect("create job");
            apis.push((jobs, pods));
        }
        let child_pods = running_pods(&apis[1].1, "same", 1).await;
        let root_pods = running_pods(&apis[0].1, "same", 1).await;
        set_phase(&apis[1].1, &child_pods[0], "Succeeded").await;
        wait_for("child Job complete", WAIT, || async {
            apis[1]
                .0
                .get("same")
                .await
                .ok()
                .filter(|j| condition(j, "Complete").is_some())
        })
        .await;
        let root_job = apis[0].0.get("same").await.unwrap();
        assert!(condition(&root_job, "Complete").is_none());
        assert_eq!(
            running_pods(&apis[0].1, "same", 1).await[0].metadata.uid,
            root_pods[0].metadata.uid
        );
    }
}
