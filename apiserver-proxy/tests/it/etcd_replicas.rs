//! Two nestkube API servers over one etcd (`--storage-backend etcd`), each with its own data
//! directory: they share the PKI through the store (the root kubeconfig of one works against the
//! other), a write through one is listed, watched and compare-and-swapped through the other, with
//! one `resourceVersion` space; only the first holds the controllers' lease; a VirtualCluster
//! created through one is served by the other, and no longer once deleted. Starts a throwaway etcd from the binary `e2e/setup` builds; without
//! it the test fails, unless `NESTKUBE_E2E=0`, where it prints SKIPPED and passes.

use crate::common::{self, cm};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::config::Kubeconfig;
use nestkube_apiserver::server::{RunningServer, ServeConfig, start};
use nestkube_storage::lease::CONTROLLERS_LEASE;
use nestkube_storage::{Backend, LocalEtcd, Storage};

const T: Duration = Duration::from_secs(20);

async fn replica(dir: &Path, etcd: &LocalEtcd) -> (RunningServer, Client) {
    let running = start(ServeConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        backend: Backend::Etcd(etcd.config("/nestkube")),
    })
    .await
    .expect("start replica");
    let kubeconfig = Kubeconfig::read_from(&running.root_kubeconfig).expect("root kubeconfig");
    let client = common::client_for(kubeconfig).await;
    (running, client)
}

/// A client of the kubeconfig `text` (written for replica `from`) sent to replica `to` instead.
async fn client_at(text: &str, from: &RunningServer, to: &RunningServer) -> Client {
    let text = text.replace(&from.local_addr.to_string(), &to.local_addr.to_string());
    assert!(text.contains(&to.local_addr.to_string()), "{text}");
    common::client_for(Kubeconfig::from_yaml(&text).expect("kubeconfig")).await
}

fn ca_data(kubeconfig: &Path) -> String {
    let config = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    config.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.certificate_authority_data.clone())
        .expect("certificate-authority-data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_one_etcd() {
    let Some(etcd) = LocalEtcd::start_for_test().await else {
        return;
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, client_a) = replica(da.path(), &etcd).await;
    // Nothing is copied between the data directories: the PKI is in etcd.
    let (b, client_b) = replica(db.path(), &etcd).await;
    assert_eq!(ca_data(&a.root_kubeconfig), ca_data(&b.root_kubeconfig));
    let a_root = std::fs::read_to_string(&a.root_kubeconfig).unwrap();
    let a_root_on_b = client_at(&a_root, &a, &b).await;
    Api::<Namespace>::all(a_root_on_b)
        .get("default")
        .await
        .expect("A's root kubeconfig works against B");
    let on_a: Api<ConfigMap> = Api::namespaced(client_a.clone(), "default");
    let on_b: Api<ConfigMap> = Api::namespaced(client_b, "default");

    // A watch on B from its list's resourceVersion sees a create made through A.
    let rv = on_b
        .list(&ListParams::default())
        .await
        .expect("list on b")
        .metadata
        .resource_version
        .expect("list rv");
    let mut watch = on_b
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .expect("watch on b")
        .boxed();
    let created = on_a
        .create(&PostParams::default(), &cm("shared", "1"))
        .await
        .expect("create on a");
    let seen = tokio::time::timeout(T, async {
        while let Some(ev) = watch.next().await {
            if let WatchEvent::Added(o) = ev.expect("watch event")
                && o.metadata.name.as_deref() == Some("shared")
            {
                return o;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("event in time");
    assert_eq!(
        seen.metadata.resource_version,
        created.metadata.resource_version
    );

    // B reads it, updates it; A's stale copy then conflicts.
    let mut got = on_b.get("shared").await.expect("get on b");
    got.data = Some([("k".to_string(), "2".to_string())].into());
    on_b.replace("shared", &PostParams::default(), &got)
        .await
        .expect("update on b");
    let mut stale = created;
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    match on_a.replace("shared", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(on_a.get("shared").await.unwrap().data.unwrap()["k"], "2");

    // Controllers run on one replica: the first one took the controllers' lease.
    let storage = nestkube_storage::EtcdStorage::new(
        etcd.config("/nestkube"),
        nestkube_storage::StorageConfig::default(),
    );
    let lease = tokio::time::timeout(T, async {
        loop {
            if let Some(kv) = storage.get(CONTROLLERS_LEASE).await.expect("read lease") {
                return kv;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a replica takes the controllers' lease");
    let holder = String::from_utf8_lossy(&lease.value).to_string();
    assert!(
        holder.contains(&a.local_addr.to_string()),
        "lease held by {holder}, not the first replica {}",
        a.local_addr
    );

    // A VirtualCluster created through A (whose controllers provision it) is served by B: its
    // kubeconfig Secret, which pins the shared CA, works against B.
    let gvk = GroupVersionKind::gvk("tenancy.nestkube.io", "v1alpha1", "VirtualCluster");
    let vcs: Api<DynamicObject> =
        Api::namespaced_with(client_a.clone(), "default", &ApiResource::from_gvk(&gvk));
    let vc: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "tenancy.nestkube.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": "team-a", "namespace": "default"},
        "spec": {},
    }))
    .unwrap();
    vcs.create(&PostParams::default(), &vc)
        .await
        .expect("create VirtualCluster on a");
    let secrets: Api<Secret> = Api::namespaced(client_a.clone(), "default");
    let tenant = common::wait_for("the kubeconfig Secret", T, || async {
        let secret = secrets.get("team-a-kubeconfig").await.ok()?;
        let value = secret
            .data?
            .remove(nestkube_tenant_crds::KUBECONFIG_SECRET_KEY)?;
        String::from_utf8(value.0).ok()
    })
    .await;
    let tenant_on_b = Api::<Namespace>::all(client_at(&tenant, &a, &b).await);
    common::wait_for("B to serve team-a", T, || async {
        tenant_on_b.get("kube-system").await.ok()
    })
    .await;
    let tenant_cm = Api::<ConfigMap>::namespaced(client_at(&tenant, &a, &b).await, "default");
    tenant_cm
        .create(&PostParams::default(), &cm("in-team-a", "1"))
        .await
        .expect("a tenant writes through B");
    assert!(
        on_a.get_opt("in-team-a").await.unwrap().is_none(),
        "the tenant's object is in its own cluster"
    );

    // Deleted through A, the cluster is no longer served by B.
    vcs.delete("team-a", &DeleteParams::default())
        .await
        .expect("delete VirtualCluster");
    common::wait_for("B to stop serving team-a", T, || async {
        match tenant_on_b.get("kube-system").await {
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 || s.code == 404 => Some(()),
            _ => None,
        }
    })
    .await;

    // A replica started later (say, a restarted pod on an empty data directory) gets the same CA.
    let dc = tempfile::tempdir().unwrap();
    let (c, _client_c) = replica(dc.path(), &etcd).await;
    assert_eq!(ca_data(&c.root_kubeconfig), ca_data(&a.root_kubeconfig));
    Api::<Namespace>::all(client_at(&a_root, &a, &c).await)
        .get("default")
        .await
        .expect("A's root kubeconfig works against a new replica");
}
