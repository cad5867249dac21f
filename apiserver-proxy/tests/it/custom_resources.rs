//! CustomResourceDefinitions over the network with a real client: the CRD
//! lifecycle (conditions, accepted names, conflicts, cleanup on delete),
//! custom resources through the generic store (CRUD, status and scale
//! subresources, generation, versions, selectors, Table output, discovery
//! and OpenAPI), and tenancy: one cluster's CRDs never reach another.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Fixture, admin, send, wait_for};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A CRD `widgets.<group>` with two served versions (v1 stores), status
/// and scale subresources, printer columns and a selectable field.
fn widget_crd(group: &str, scope: &str) -> Value {
    let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "size": {"type": "integer"}, "color": {"type": "string"},
            "replicas": {"type": "integer"}}},
        "status": {"type": "object", "properties": {
            "replicas": {"type": "integer"}, "selector": {"type": "string"}}},
    }}});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema,
                 "subresources": {"status": {}, "scale": {
                     "specReplicasPath": ".spec.replicas",
                     "statusReplicasPath": ".status.replicas",
                     "labelSelectorPath": ".status.selector"}},
                 "selectableFields": [{"jsonPath": ".spec.color"}],
                 "additionalPrinterColumns": [
                     {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                     {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1}]},
                {"name": "v1beta1", "served": true, "storage": false, "schema": schema,
                 "deprecated": true},
            ],
        },
    })
}

fn widget(name: &str, version: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("example.com/{version}"), "kind": "Widget",
           "metadata": {"name": name}, "spec": spec})
}

/// Creates `crd` and waits until it is Established.
async fn establish(client: &kube::Client, crd: Value) -> Value {
    let name = crd["metadata"]["name"].as_str().unwrap().to_string();
    let (code, out) = send(
        client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some(crd),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
    wait_for("the CRD is established", TIMEOUT, || async {
        let (_, crd) = send(client, "GET", &path, None, &[]).await;
        let established = crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        established.then_some(crd)
    })
    .await
}

const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

#[tokio::test]
async fn a_crd_is_established_and_serves_its_resources() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    let crd = establish(&client, widget_crd("example.com", "Namespaced")).await;
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Widget");
    assert_eq!(crd["status"]["acceptedNames"]["shortNames"], json!(["wd"]));
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    let names_accepted = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "NamesAccepted")
        .unwrap();
    assert_eq!(names_accepted["reason"], "NoConflicts");

    // Create, get, list; generation starts at 1.
    let (code, w) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget(
            "a",
            "v1",
            json!({"size": 1, "color": "red", "replicas": 1}),
        )),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{w}");
    assert_eq!(w["metadata"]["generation"], 1);
    assert!(
        w.get("status").is_none(),
        "status is the subresource's: {w}"
    );
    let (code, _) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("b", "v1", json!({"size": 2, "color": "blue"}))),
        &[],
    )
    .await;
    assert_eq!(code, 201);
    let (code, again) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("a", "v1", json!({}))),
        &[],
    )
    .await;
    assert_eq!(code, 409, "{again}");
    assert_eq!(again["details"]["group"], "example.com");
    assert_eq!(again["details"]["kind"], "widgets");
    let (_, list) = send(&client, "GET", WIDGETS, None, &[]).await;
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Selectors: labels, metadata.name and the CRD's selectable field.
    let (_, red) = send(
        &client,
        "GET",
        &format!("{WIDGETS}?fieldSelector=spec.color%3Dred"),
        None,
        &[],
    )
    .await;
    let names: Vec<&str> = red["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    let (code, out) = send(
        &client,
        "GET",
        &format!("{WIDGETS}?fieldSelector=spec.size%3D1"),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 400, "not selectable: {out}");
    let (_, by_name) = send(
        &client,
        "GET",
        &format!("{WIDGETS}?fieldSelector=metadata.name%3Db"),
        None,
        &[],
    )
    .await;
    assert_eq!(by_name["items"][0]["metadata"]["name"], "b");

    // Status: only through the subresource, and it does not bump generation.
    let mut with_status = w.clone();
    with_status["status"] = json!({"replicas": 1, "selector": "app=a"});
    let (code, out) = send(
        &client,
        "PUT",
        &format!("{WIDGETS}/a/status"),
        Some(with_status),
        &[],
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["status"]["replicas"], 1);
    assert_eq!(out["metadata"]["generation"], 1);

    // Scale: the CRD's paths, and a spec change bumps generation.
    let (code, scale) = send(&client, "GET", &format!("{WIDGETS}/a/scale"), None, &[]).await;
    assert_eq!(code, 200, "{scale}");
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=a");
    let mut scale = scale;
    scale["spec"]["replicas"] = json!(4);
    let (code, out) = send(
        &client,
        "PUT",
        &format!("{WIDGETS}/a/scale"),
        Some(scale),
        &[],
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let (_, a) = send(&client, "GET", &format!("{WIDGETS}/a"), None, &[]).await;
    assert_eq!(a["spec"]["replicas"], 4);
    assert_eq!(a["metadata"]["generation"], 2);

    // Another version of the same objects, with its deprecation warning.
    let (code, beta) = send(
        &client,
        "GET",
        "/apis/example.com/v1beta1/namespaces/default/widgets/a",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200, "{beta}");
    assert_eq!(beta["apiVersion"], "example.com/v1beta1");
    assert_eq!(beta["spec"]["replicas"], 4);

    // Table output: Name, the printer columns, `-o wide` priorities.
    let (_, table) = send(
        &client,
        "GET",
        WIDGETS,
        None,
        &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
    )
    .await;
    let headers: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(headers, ["Name", "Size", "Color"]);
    assert_eq!(table["columnDefinitions"][2]["priority"], 1);
    assert_eq!(table["rows"][0]["cells"], json!(["a", 1, "red"]));

    // Strategic merge patch is refused for custom resources, merge patch works.
    let (code, out) = crate::common::send_bytes(
        &client,
        "PATCH",
        &format!("{WIDGETS}/b"),
        "application/strategic-merge-patch+json",
        br#"{"spec":{"size":5}}"#.to_vec(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 415, "{out}");
    let (code, out) = crate::common::send_bytes(
        &client,
        "PATCH",
        &format!("{WIDGETS}/b"),
        "application/merge-patch+json",
        br#"{"spec":{"size":5}}"#.to_vec(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["spec"]["size"], 5);

    // Discovery: legacy and aggregated, with short names and categories.
    let (_, list) = send(&client, "GET", "/apis/example.com/v1", None, &[]).await;
    let widgets = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .unwrap()
        .clone();
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    assert_eq!(widgets["categories"], json!(["all"]));
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "widgets/scale")
    );
    let (_, group) = send(&client, "GET", "/apis/example.com", None, &[]).await;
    assert_eq!(group["preferredVersion"]["version"], "v1");
    let (_, aggregated) = send(
        &client,
        "GET",
        "/apis",
        None,
        &[(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )],
    )
    .await;
    assert!(
        aggregated["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["metadata"]["name"] == "example.com")
    );
    let (_, index) = send(&client, "GET", "/openapi/v3", None, &[]).await;
    assert!(
        index["paths"].get("apis/example.com/v1").is_some(),
        "{index}"
    );
    let (code, doc) = send(&client, "GET", "/openapi/v3/apis/example.com/v1", None, &[]).await;
    assert_eq!(code, 200);
    assert!(
        doc["components"]["schemas"]
            .get("com.example.v1.Widget")
            .is_some()
    );
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_resources_first() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    establish(&client, widget_crd("example.com", "Namespaced")).await;
    let mut held = widget("held", "v1", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    for w in [widget("a", "v1", json!({})), held] {
        let (code, out) = send(&client, "POST", WIDGETS, Some(w), &[]).await;
        assert_eq!(code, 201, "{out}");
    }
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    let (code, out) = send(&client, "DELETE", crd_path, None, &[]).await;
    assert_eq!(code, 200, "{out}");
    // A finalizer of a custom resource holds its CRD; new objects are refused meanwhile.
    let crd = wait_for("the CRD waits for its instances", TIMEOUT, || async {
        let (_, crd) = send(&client, "GET", crd_path, None, &[]).await;
        let reason = crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Terminating")
            .map(|c| c["reason"].clone());
        (reason == Some(json!("InstanceDeletionInProgress"))).then_some(crd)
    })
    .await;
    assert!(
        crd["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .contains(&json!("customresourcecleanup.apiextensions.k8s.io"))
    );
    let (code, out) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("late", "v1", json!({}))),
        &[],
    )
    .await;
    assert_eq!(code, 405, "{out}");
    assert_eq!(
        out["message"],
        "create not allowed while custom resource definition is terminating"
    );
    let (code, _) = send(&client, "GET", &format!("{WIDGETS}/a"), None, &[]).await;
    assert_eq!(code, 404, "a was deleted");
    // Releasing the instance lets the CRD go; its API goes with it.
    let (code, out) = crate::common::send_bytes(
        &client,
        "PATCH",
        &format!("{WIDGETS}/held"),
        "application/merge-patch+json",
        br#"{"metadata":{"finalizers":null}}"#.to_vec(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    wait_for("the CRD is gone", TIMEOUT, || async {
        let (code, _) = send(&client, "GET", crd_path, None, &[]).await;
        (code == 404).then_some(())
    })
    .await;
    wait_for("the API is gone", TIMEOUT, || async {
        let (code, _) = send(&client, "GET", WIDGETS, None, &[]).await;
        (code == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn conflicting_names_are_not_accepted() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    establish(&client, widget_crd("example.com", "Namespaced")).await;
    let mut gadgets = widget_crd("example.com", "Namespaced");
    gadgets["metadata"]["name"] = json!("gadgets.example.com");
    gadgets["spec"]["names"] = json!({"plural": "gadgets", "kind": "Widget"});
    let (code, out) = send(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some(gadgets),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com";
    let crd = wait_for("the naming controller decides", TIMEOUT, || async {
        let (_, crd) = send(&client, "GET", path, None, &[]).await;
        crd["status"]["conditions"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
            .then_some(crd)
    })
    .await;
    let condition = |t: &str| {
        crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(condition("NamesAccepted")["status"], "False");
    // Kind and list kind both conflict; as upstream, the last check's reason stands.
    assert_eq!(condition("NamesAccepted")["reason"], "ListKindConflict");
    assert_eq!(
        condition("NamesAccepted")["message"],
        "\"WidgetList\" is already in use"
    );
    assert_eq!(condition("Established")["status"], "False");
    let (code, _) = send(
        &client,
        "GET",
        "/apis/example.com/v1/namespaces/default/gadgets",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 404);
    // Once the holder is gone, the names are free.
    let (code, _) = send(
        &client,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200);
    wait_for("the gadgets are served", TIMEOUT, || async {
        let (code, _) = send(
            &client,
            "GET",
            "/apis/example.com/v1/namespaces/default/gadgets",
            None,
            &[],
        )
        .await;
        (code == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn each_cluster_has_its_own_crds() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    f.create_cluster("team-b").await;
    let a = admin(&f, "team-a").await;
    let b = admin(&f, "team-b").await;
    // The same CRD name in both clusters, with different scopes.
    establish(&a, widget_crd("example.com", "Namespaced")).await;
    establish(&b, widget_crd("example.com", "Cluster")).await;
    let (code, out) = send(
        &a,
        "POST",
        WIDGETS,
        Some(widget("only-a", "v1", json!({"size": 1}))),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let (code, _) = send(&b, "GET", WIDGETS, None, &[]).await;
    assert_eq!(code, 404, "cluster-scoped in team-b");
    let (code, list) = send(&b, "GET", "/apis/example.com/v1/widgets", None, &[]).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(
        list["items"],
        json!([]),
        "team-a's objects never appear in team-b"
    );

    // A third cluster sees none of it: no discovery, no OpenAPI, no API.
    f.create_cluster("team-c").await;
    let c = admin(&f, "team-c").await;
    let (code, _) = send(&c, "GET", "/apis/example.com/v1", None, &[]).await;
    assert_eq!(code, 404);
    let (_, groups) = send(&c, "GET", "/apis", None, &[]).await;
    assert!(!groups.to_string().contains("example.com"), "{groups}");
    let (_, index) = send(&c, "GET", "/openapi/v3", None, &[]).await;
    assert!(index["paths"].get("apis/example.com/v1").is_none());
    let (code, _) = send(
        &c,
        "GET",
        "/apis/example.com/v1/namespaces/default/widgets/only-a",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 404);

    // Deleting team-a's CRD leaves team-b's serving.
    let (code, _) = send(
        &a,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200);
    wait_for("team-a's API is gone", TIMEOUT, || async {
        let (code, _) = send(&a, "GET", WIDGETS, None, &[]).await;
        (code == 404).then_some(())
    })
    .await;
    let (code, _) = send(&b, "GET", "/apis/example.com/v1/widgets", None, &[]).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn namespace_deletion_removes_custom_resources() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    establish(&client, widget_crd("example.com", "Namespaced")).await;
    let (code, out) = send(
        &client,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "scratch"}})),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let scratch = "/apis/example.com/v1/namespaces/scratch/widgets";
    let (code, out) = send(
        &client,
        "POST",
        scratch,
        Some(widget("w", "v1", json!({}))),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let (code, _) = send(&client, "DELETE", "/api/v1/namespaces/scratch", None, &[]).await;
    assert_eq!(code, 200);
    wait_for("the namespace and its widget are gone", TIMEOUT, || async {
        let (code, _) = send(&client, "GET", "/api/v1/namespaces/scratch", None, &[]).await;
        (code == 404).then_some(())
    })
    .await;
    let (_, list) = send(&client, "GET", "/apis/example.com/v1/widgets", None, &[]).await;
    assert_eq!(list["items"], json!([]));
}

/// A kube-rs `#[derive(CustomResource)]` type.
mod gadget {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// Spec of a Gadget.
    #[derive(kube::CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "example.com",
        version = "v1",
        kind = "Gadget",
        namespaced,
        status = "GadgetStatus",
        shortname = "gd"
    )]
    pub struct GadgetSpec {
        pub size: i64,
    }

    /// Status of a Gadget.
    #[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
    pub struct GadgetStatus {
        pub observed: i64,
    }
}

#[tokio::test]
async fn kube_rs_derived_type_and_controller() {
    use futures::StreamExt;
    use gadget::{Gadget, GadgetSpec};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::watcher;
    use std::sync::Arc;

    let f = Fixture::start().await;
    let client = f.root_client().await;
    let crd = serde_json::to_value(Gadget::crd()).unwrap();
    establish(&client, crd).await;

    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "default");
    let created = gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 2 }),
        )
        .await
        .expect("create");
    assert_eq!(created.spec.size, 2);
    assert_eq!(
        gadgets.list(&Default::default()).await.unwrap().items.len(),
        1
    );

    // A controller reconciling status.observed from spec.size.
    async fn reconcile(g: Arc<Gadget>, api: Arc<Api<Gadget>>) -> Result<Action, kube::Error> {
        let name = g.metadata.name.clone().unwrap_or_default();
        let status = serde_json::json!({"status": {"observed": g.spec.size}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Gadget>, _: &kube::Error, _: Arc<Api<Gadget>>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let ctx = Arc::new(gadgets.clone());
    let controller = tokio::spawn(
        Controller::new(gadgets.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    let observed = |want: i64| {
        let gadgets = gadgets.clone();
        async move {
            wait_for("the controller reconciles", TIMEOUT, || async {
                let g = gadgets.get("g").await.ok()?;
                (g.status.map(|s| s.observed) == Some(want)).then_some(())
            })
            .await
        }
    };
    observed(2).await;

    // A CRD update ends the watches; the controller's watcher carries on.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let patch = serde_json::json!({"spec": {"versions": [{
        "name": "v1", "served": true, "storage": true,
        "schema": Gadget::crd().spec.versions[0].schema,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}});
    crds.patch(
        "gadgets.example.com",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .expect("update the CRD");
    gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"size": 5}})),
        )
        .await
        .expect("patch");
    observed(5).await;
    controller.abort();
}

#[tokio::test]
async fn a_watch_ends_when_its_crd_changes() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    establish(&client, widget_crd("example.com", "Namespaced")).await;
    let req = http::Request::builder()
        .uri(format!("{WIDGETS}?watch=true"))
        .body(Vec::new())
        .unwrap();
    let mut stream = client.request_stream(req).await.expect("watch");
    // Removing v1beta1 from the served versions replaces the definition.
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    let (_, mut crd) = send(&client, "GET", path, None, &[]).await;
    crd["spec"]["versions"][1]["served"] = json!(false);
    let (code, out) = send(&client, "PUT", path, Some(crd), &[]).await;
    assert_eq!(code, 200, "{out}");
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(
        TIMEOUT,
        futures::AsyncReadExt::read_to_end(&mut stream, &mut buf),
    )
    .await;
    assert!(ended.is_ok(), "the watch did not end");
    wait_for("v1beta1 is no longer served", TIMEOUT, || async {
        let (code, _) = send(
            &client,
            "GET",
            "/apis/example.com/v1beta1/namespaces/default/widgets",
            None,
            &[],
        )
        .await;
        (code == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn resource_quota_counts_custom_resources() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    establish(&client, widget_crd("example.com", "Namespaced")).await;
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "widgets"}, "spec": {"hard": {"count/widgets.example.com": "1"}}});
    let (code, out) = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/resourcequotas",
        Some(quota),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    // The quota controller publishes what is used before admission relies on it.
    wait_for("the quota's usage is known", TIMEOUT, || async {
        let (_, q) = send(
            &client,
            "GET",
            "/api/v1/namespaces/default/resourcequotas/widgets",
            None,
            &[],
        )
        .await;
        (q["status"]["used"]["count/widgets.example.com"] == "0").then_some(())
    })
    .await;
    let (code, out) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("a", "v1", json!({}))),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let (code, out) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("b", "v1", json!({}))),
        &[],
    )
    .await;
    assert_eq!(code, 403, "{out}");
    assert_eq!(
        out["message"],
        "widgets.example.com \"b\" is forbidden: exceeded quota: widgets, requested: count/widgets.example.com=1, used: count/widgets.example.com=1, limited: count/widgets.example.com=1"
    );
}

#[tokio::test]
async fn server_side_apply_of_custom_resources() {
    let f = Fixture::start().await;
    let client = f.root_client().await;
    establish(&client, widget_crd("example.com", "Namespaced")).await;
    let apply = |manager: &'static str, body: &'static str, force: bool| {
        let client = client.clone();
        async move {
            let force = if force { "&force=true" } else { "" };
            crate::common::send_bytes(
                &client,
                "PATCH",
                &format!("{WIDGETS}/w?fieldManager={manager}{force}"),
                "application/apply-patch+yaml",
                body.as_bytes().to_vec(),
                TIMEOUT,
            )
            .await
        }
    };
    let (code, out) = apply(
        "alice",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1, color: red}\n",
        false,
    )
    .await;
    assert_eq!(code, 201, "{out}");
    assert_eq!(out["metadata"]["managedFields"][0]["manager"], "alice");
    assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
    assert_eq!(
        out["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:color": {}, "f:size": {}}})
    );
    // Another manager's different size conflicts, field by field.
    let body = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n";
    let (code, out) = apply("bob", body, false).await;
    assert_eq!(code, 409, "{out}");
    assert_eq!(
        out["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert_eq!(out["details"]["causes"][0]["field"], ".spec.size");
    let (code, out) = apply("bob", body, true).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["spec"]["size"], 2);
    // Alice stops applying the color: it goes; the size stays Bob's.
    let (code, out) = apply(
        "alice",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {}\n",
        false,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["spec"], json!({"size": 2}));
    let rv = out["metadata"]["resourceVersion"].clone();
    let (_, again) = apply("bob", body, false).await;
    assert_eq!(
        again["metadata"]["resourceVersion"], rv,
        "a no-op apply writes nothing"
    );
}

#[tokio::test]
async fn a_crd_naming_a_built_in_never_touches_its_objects() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let client = admin(&f, "team-a").await;
    // A VirtualCluster and a Lease: built-ins of the cluster.
    let vcs = "/apis/tenancy.nestkube.io/v1alpha1/namespaces/default/virtualclusters";
    let (code, out) = send(&client, "POST", vcs, Some(json!({"apiVersion": "tenancy.nestkube.io/v1alpha1", "kind": "VirtualCluster", "metadata": {"name": "child"}, "spec": {}})), &[]).await;
    assert_eq!(code, 201, "{out}");
    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    let (code, out) = send(
        &client,
        "POST",
        leases,
        Some(json!({"metadata": {"name": "l"}, "spec": {}})),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{out}");
    // CRDs naming those resources: accepted (as upstream), never served
    // over the built-ins, and deleting them deletes nothing of theirs.
    for (group, plural, kind, approved) in [
        (
            "tenancy.nestkube.io",
            "virtualclusters",
            "VirtualCluster",
            false,
        ),
        ("coordination.k8s.io", "leases", "Lease", true),
    ] {
        let mut crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
        if approved {
            crd["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "https://github.com/kubernetes/kubernetes/pull/1"});
        }
        establish(&client, crd).await;
        let path =
            format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}");
        let (code, out) = send(&client, "DELETE", &path, None, &[]).await;
        assert_eq!(code, 200, "{out}");
        wait_for("the CRD is gone", TIMEOUT, || async {
            let (code, _) = send(&client, "GET", &path, None, &[]).await;
            (code == 404).then_some(())
        })
        .await;
    }
    let (code, out) = send(&client, "GET", &format!("{vcs}/child"), None, &[]).await;
    assert_eq!(code, 200, "the VirtualCluster survives: {out}");
    let (code, out) = send(&client, "GET", &format!("{leases}/l"), None, &[]).await;
    assert_eq!(code, 200, "the Lease survives: {out}");
}
