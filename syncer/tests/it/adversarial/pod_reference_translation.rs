//! Pod specs (and claims) reach the parent only through the allow-list
//! translation: a field that names an object of the parent (a
//! PersistentVolume, another tenant's claim or Secret copy in the shared
//! host namespace, a Ceph or RBD Secret) is refused, the object is not
//! copied, and a Warning `SyncError` Event on it names the field.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::Api;
use nestkube_syncer::names;
use serde_json::{Value, json};

use super::{create, sync_error};
use crate::common::{Server, js, virtual_cluster, wait_for};

fn pod_with_volume(name: &str, volume: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "main", "image": "busybox",
                "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
            "volumes": [volume],
        },
    })
}

fn claim_template(extra: Value) -> Value {
    let mut spec = json!({"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"name": "v", "ephemeral": {"volumeClaimTemplate": {"spec": spec}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_naming_parent_objects_are_refused_and_say_why() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "team-a").await;
    let root_pods: Api<Pod> = Api::namespaced(server.root.clone(), "default");
    // What another tenant has in the shared host namespace.
    let their_claim = names::host_name("team-b", "default", "data");
    let their_secret = names::host_name("team-b", "default", "creds");

    let cases = [
        (
            "bind-any-volume",
            claim_template(json!({"volumeName": "pv-of-team-b"})),
            "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.volumeName",
        ),
        (
            "clone-their-claim",
            claim_template(
                json!({"dataSource": {"kind": "PersistentVolumeClaim", "name": their_claim}}),
            ),
            "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSource",
        ),
        (
            "clone-by-ref",
            claim_template(
                json!({"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": their_claim}}),
            ),
            "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSourceRef",
        ),
        (
            "select-volumes",
            claim_template(json!({"selector": {"matchLabels": {"tenant": "team-b"}}})),
            "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.selector",
        ),
        (
            "csi-their-secret",
            json!({"name": "v", "csi": {"driver": "secrets.example.com",
                "nodePublishSecretRef": {"name": their_secret}}}),
            "spec.volumes[0].csi.nodePublishSecretRef",
        ),
        (
            "rbd-their-secret",
            json!({"name": "v", "rbd": {"monitors": ["10.0.0.9:6789"], "image": "img",
                "secretRef": {"name": their_secret}}}),
            "spec.volumes[0].rbd",
        ),
        (
            "cephfs-their-secret",
            json!({"name": "v", "cephfs": {"monitors": ["10.0.0.9:6789"],
                "secretRef": {"name": their_secret}}}),
            "spec.volumes[0].cephfs",
        ),
        (
            "flex-their-secret",
            json!({"name": "v", "flexVolume": {"driver": "example/flex",
                "secretRef": {"name": their_secret}}}),
            "spec.volumes[0].flexVolume",
        ),
    ];
    for (name, volume, _) in &cases {
        create::<Pod>(&a, pod_with_volume(name, volume.clone())).await;
    }
    // What is safe is still copied, references translated.
    create::<Pod>(
        &a,
        pod_with_volume(
            "fine",
            claim_template(json!({"storageClassName": "standard"})),
        ),
    )
    .await;
    let fine = wait_for("the safe pod's copy", || async {
        root_pods
            .get_opt(&names::host_name("team-a", "default", "fine"))
            .await
            .ok()
            .flatten()
    })
    .await;
    let template = &js(&fine)["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"];
    assert_eq!(template["storageClassName"], "standard", "{template}");

    for (name, _, field) in &cases {
        let message = sync_error(&a, "Pod", name).await;
        assert!(message.contains(field), "{name}: {message}");
        assert!(
            !message.contains("-x-"),
            "{name}: the message names the parent: {message}"
        );
        // The reconcile that wrote the Warning did not copy it.
        let copy = names::host_name("team-a", "default", name);
        assert!(
            root_pods.get_opt(&copy).await.unwrap().is_none(),
            "{name} reached the parent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_naming_parent_objects_are_refused_and_say_why() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, a) = virtual_cluster(&server.root, "team-a").await;
    let root_claims: Api<PersistentVolumeClaim> = Api::namespaced(server.root.clone(), "default");
    let their_claim = names::host_name("team-b", "default", "data");
    let claim = |name: &str, extra: Value| {
        let mut spec = json!({"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"metadata": {"name": name}, "spec": spec})
    };
    let cases = [
        (
            "clone-their-claim",
            json!({"dataSource": {"kind": "PersistentVolumeClaim", "name": their_claim}}),
            "spec.dataSource",
        ),
        (
            "select-volumes",
            json!({"selector": {"matchLabels": {"tenant": "team-b"}}}),
            "spec.selector",
        ),
    ];
    for (name, extra, _) in &cases {
        create::<PersistentVolumeClaim>(&a, claim(name, extra.clone())).await;
    }
    // A claim naming a volume: the name is dropped (PersistentVolumes are
    // the parent's to bind), the claim copied.
    create::<PersistentVolumeClaim>(&a, claim("named", json!({"volumeName": "pv-of-team-b"})))
        .await;
    let named = wait_for("the named claim's copy", || async {
        root_claims
            .get_opt(&names::host_name("team-a", "default", "named"))
            .await
            .ok()
            .flatten()
    })
    .await;
    assert!(
        js(&named)["spec"]["volumeName"].is_null(),
        "{:?}",
        named.spec
    );
    for (name, _, field) in &cases {
        let message = sync_error(&a, "PersistentVolumeClaim", name).await;
        assert!(message.contains(field), "{name}: {message}");
        let copy = names::host_name("team-a", "default", name);
        assert!(
            root_claims.get_opt(&copy).await.unwrap().is_none(),
            "{name} reached the parent"
        );
    }
}
