use serde_json::json;

use super::*;

fn defaulted_pod(mut pod: Value) -> Value {
    Pods.default(&mut pod);
    Pods.prepare_for_create(&mut pod);
    pod
}

#[test]
fn minimal_pod_matches_upstream() {
    let pod = defaulted_pod(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}));
    assert_eq!(
        pod["spec"],
        json!({"containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "resources": {}}],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
            "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
            "enableServiceLinks": true, "priority": 0, "preemptionPolicy": "PreemptLowerPriority"})
    );
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert!(Pods.validate(&pod).is_empty());
}

#[test]
fn pod_requests_default_to_limits_and_qos() {
    let pod = defaulted_pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}));
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "1", "memory": "1Gi"})
    );
    assert_eq!(pod["status"]["qosClass"], "Guaranteed");
}

#[test]
fn pod_update_rules() {
    let old = defaulted_pod(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}),
    );
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("x:2");
    assert!(Pods.validate_update(&new, &old).is_empty());
    new["spec"]["restartPolicy"] = json!("Never");
    let errs = Pods.validate_update(&new, &old);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].to_string().starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    ));
}

#[test]
fn pod_grace_period() {
    let mut pod =
        json!({"spec": {"terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
    assert_eq!(Pods.grace_period(&pod, None), None);
    pod["spec"]["nodeName"] = json!("n1");
    assert_eq!(Pods.grace_period(&pod, None), Some(30));
    assert_eq!(Pods.grace_period(&pod, Some(5)), Some(5));
    assert_eq!(Pods.grace_period(&pod, Some(0)), None);
    pod["status"]["phase"] = json!("Succeeded");
    assert_eq!(Pods.grace_period(&pod, None), None);
}

#[test]
fn pod_rows() {
    let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}], "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    let row = Pods.row(&pod);
    assert_eq!(row.len(), Pods.columns().len());
    assert_eq!(row[0], "web");
    assert_eq!(row[1], "1/2");
    assert_eq!(row[2], "CrashLoopBackOff");
    assert_eq!(row[3], "2");
    assert_eq!(
        &row[5..],
        &[
            json!("10.0.0.1"),
            json!("n1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    let mut deleting = pod.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    assert_eq!(Pods.row(&deleting)[2], "Terminating");
    let init = json!({"metadata": {"name": "i"}, "spec": {"initContainers": [{"name": "x"}], "containers": [{"name": "a"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [{"name": "x", "state": {"running": {}}}]}});
    assert_eq!(Pods.row(&init)[2], "Init:0/1");
}

#[test]
fn pod_fields() {
    let pod = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
    assert_eq!(
        Pods.field_label(&pod, "spec.nodeName").as_deref(),
        Some("n1")
    );
    assert_eq!(
        Pods.field_label(&pod, "spec.hostNetwork").as_deref(),
        Some("false")
    );
    assert_eq!(Pods.field_label(&pod, "status.podIP").as_deref(), Some(""));
    assert_eq!(Pods.field_label(&pod, "spec.bogus"), None);
}

#[test]
fn minimal_service_matches_upstream() {
    let mut svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    Services.default(&mut svc);
    Services.prepare_for_create(&mut svc);
    assert_eq!(
        svc["spec"],
        json!({"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]})
    );
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));
    assert!(Services.validate(&svc).is_empty());
    svc["spec"]["clusterIP"] = json!("10.96.0.10");
    svc["spec"]["clusterIPs"] = json!(["10.96.0.10"]);
    svc["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
    let row = Services.row(&svc);
    assert_eq!(
        &row[1..5],
        &[
            json!("ClusterIP"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80/TCP")
        ]
    );
    assert_eq!(row[6], "app=web");
}

#[test]
fn service_validation_and_update() {
    let errs = Services.validate(&json!({"spec": {"type": "Foo", "sessionAffinity": "None",
        "ports": [{"port": 0, "protocol": "TCP"}, {"port": 80, "protocol": "TCP"}]}}));
    let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        msgs,
        vec![
            "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].name: Required value",
        ]
    );
    let old = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
        "sessionAffinity": "None", "ports": [{"port": 80, "protocol": "TCP"}]}});
    let mut new = json!({"spec": {"type": "ClusterIP", "sessionAffinity": "None", "ports": [{"port": 80, "protocol": "TCP"}]}});
    Services.prepare_for_update(&mut new, &old);
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.0.0.1"]));
    assert!(Services.validate_update(&new, &old).is_empty());
    new["spec"]["clusterIP"] = json!("10.0.0.2");
    let mut changed = new.clone();
    changed["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
    Services.prepare_for_update(&mut changed, &old);
    let errs = Services.validate_update(&changed, &old);
    assert_eq!(
        errs[0].to_string(),
        "spec.clusterIPs[0]: Invalid value: [\"10.0.0.2\"]: may not change once set"
    );
}

#[test]
fn namespace_lifecycle() {
    let mut ns = json!({"metadata": {"name": "team"}});
    Namespaces.default(&mut ns);
    Namespaces.prepare_for_create(&mut ns);
    assert_eq!(
        ns["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "team"})
    );
    assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    assert!(Namespaces.begin_delete(&mut ns));
    assert_eq!(ns["status"]["phase"], "Terminating");
    let mut empty = json!({"spec": {"finalizers": []}});
    assert!(!Namespaces.begin_delete(&mut empty));
}

#[test]
fn secrets_and_configmaps() {
    let mut secret = json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}});
    Secrets.default(&mut secret);
    assert_eq!(
        secret,
        json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "aGk="}})
    );
    let bad = json!({"type": "kubernetes.io/tls", "data": {"bad key": "x"}});
    let msgs: Vec<String> = Secrets
        .validate(&bad)
        .iter()
        .map(|e| e.field.clone())
        .collect();
    assert_eq!(
        msgs,
        vec!["data[bad key]", "data[tls.key]", "data[tls.crt]"]
    );
    let old = json!({"immutable": true, "data": {"a": "1"}});
    let new = json!({"immutable": true, "data": {"a": "2"}});
    let errs = ConfigMaps.validate_update(&new, &old);
    assert_eq!(
        errs[0].to_string(),
        "data: Forbidden: field is immutable when `immutable` is set"
    );
    assert_eq!(
        ConfigMaps.row(&json!({"metadata": {"name": "c"}, "data": {"a": "1"}}))[1],
        1
    );
}

#[test]
fn pvc_defaults_and_update() {
    let mut pvc = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    PersistentVolumeClaims.default(&mut pvc);
    PersistentVolumeClaims.prepare_for_create(&mut pvc);
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"], json!({"phase": "Pending"}));
    let mut grown = pvc.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert!(
        PersistentVolumeClaims
            .validate_update(&grown, &pvc)
            .is_empty()
    );
    grown["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    assert_eq!(
        PersistentVolumeClaims.validate_update(&grown, &pvc).len(),
        1
    );
}

#[test]
fn replication_controller_defaults() {
    let mut rc = json!({"metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    ReplicationControllers.default(&mut rc);
    assert_eq!(rc["spec"]["selector"], json!({"app": "a"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "a"}));
    assert_eq!(rc["spec"]["replicas"], 1);
    assert!(ReplicationControllers.validate(&rc).is_empty());
}

#[test]
fn events_table() {
    let ev = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "web"},
        "reason": "Scheduled", "type": "Normal", "message": " ok ", "source": {"component": "scheduler"}});
    let row = Events.row(&ev);
    assert_eq!(row.len(), Events.columns().len());
    assert_eq!(
        &row[1..7],
        &[
            json!("Normal"),
            json!("Scheduled"),
            json!("pod/web"),
            json!(""),
            json!("scheduler"),
            json!("ok")
        ]
    );
    assert_eq!(row[8], 1);
    assert_eq!(
        Events.field_label(&ev, "involvedObject.name").as_deref(),
        Some("web")
    );
}

#[test]
fn nothing_panics_on_garbage() {
    for resource in [
        "pods",
        "services",
        "namespaces",
        "nodes",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "endpoints",
        "events",
        "persistentvolumes",
        "persistentvolumeclaims",
        "limitranges",
        "resourcequotas",
        "replicationcontrollers",
        "podtemplates",
    ] {
        let st = strategy("", resource).unwrap();
        for mut v in [
            json!(null),
            json!("x"),
            json!({"spec": 5, "status": [], "metadata": 1}),
            json!({"spec": {"containers": "x", "ports": [1]}}),
        ] {
            st.default(&mut v);
            st.prepare_for_create(&mut v);
            let old = v.clone();
            st.prepare_for_update(&mut v, &old);
            let _ = st.validate(&v);
            let _ = st.validate_update(&v, &old);
            let _ = st.row(&v);
            let _ = st.grace_period(&v, None);
            st.begin_delete(&mut v);
        }
    }
}
