//! RBAC per cluster over the network: a real server on 127.0.0.1, kube-rs
//! clients with certificates issued by each cluster's client CA. Users
//! without bindings get upstream's 403; Roles, ClusterRoles (aggregated) and
//! bindings grant exactly what upstream grants, in their own cluster only;
//! the review APIs and impersonation answer as upstream.

use std::time::{Duration, Instant};

use kube::Client;
use nestkube_apiserver::kubeconfig;
use serde_json::{Value, json};

use crate::common::{self, Fixture, kubectl, send};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A server with the child clusters `clusters`.
async fn start(clusters: &[&str]) -> Fixture {
    let f = Fixture::start().await;
    for path in clusters {
        f.create_cluster(path).await;
    }
    f
}

/// A server with `team-a`; its admin, and alice (no groups, no bindings).
async fn team_a_admin_and_alice() -> (Fixture, Client, Client) {
    let f = start(&["team-a"]).await;
    let admin = admin_client(&f, "team-a").await;
    let alice = f.user_client("team-a", "alice", &[]).await;
    (f, admin, alice)
}

/// A `system:masters` client of `cluster`, at its URL.
async fn admin_client(f: &Fixture, cluster: &str) -> Client {
    f.user_client(cluster, "admin", &["system:masters"]).await
}

async fn get(client: &Client, path: &str) -> (u16, Value) {
    send(client, "GET", path, None, &[]).await
}

async fn post(client: &Client, path: &str, body: Value) -> (u16, Value) {
    send(client, "POST", path, Some(body), &[]).await
}

/// POSTs a SelfSubjectAccessReview as `client`.
async fn self_access_review(client: &Client, review: Value) -> (u16, Value) {
    post(
        client,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        review,
    )
    .await
}

/// POSTs a SubjectAccessReview as `client`.
async fn subject_access_review(client: &Client, review: Value) -> (u16, Value) {
    post(
        client,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        review,
    )
    .await
}

/// Waits until GET `path` answers `want` (policy changes reach the cache
/// through a watch).
async fn eventually(client: &Client, path: &str, want: u16) -> (u16, Value) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = get(client, path).await;
        if got.0 == want || Instant::now() > deadline {
            assert_eq!(got.0, want, "{path}: {}", got.1);
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_forbidden((status, body): &(u16, Value), message: &str) {
    assert_eq!(*status, 403, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(body["code"], 403);
    assert_eq!(body["message"], message);
}

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

async fn create(admin: &Client, path: &str, body: Value) {
    let (status, resp) = post(admin, path, body).await;
    assert_eq!(status, 201, "{path}: {resp}");
}

/// Creates the RoleBinding `binding` in `default`.
async fn bind_in_default(admin: &Client, binding: Value) {
    create(
        admin,
        &format!("{RBAC}/namespaces/default/rolebindings"),
        binding,
    )
    .await;
}

fn role_binding(name: &str, kind: &str, role: &str, user: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

#[tokio::test]
async fn alice_without_bindings_is_forbidden_with_upstreams_message() {
    let f = start(&["team-a"]).await;
    let alice = f.user_client("team-a", "alice", &[]).await;
    let got = get(&alice, "/api/v1/namespaces/default/pods").await;
    assert_forbidden(
        &got,
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#,
    );
    assert_eq!(got.1["details"], json!({"kind": "pods"}));
    let got = get(&alice, "/apis/apps/v1/namespaces/default/deployments/web").await;
    assert_forbidden(
        &got,
        r#"deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments" in API group "apps" in the namespace "default""#,
    );
    assert_eq!(
        got.1["details"],
        json!({"name": "web", "group": "apps", "kind": "deployments"})
    );
    assert_forbidden(
        &get(&alice, "/api/v1/namespaces").await,
        r#"namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the cluster scope"#,
    );
    // system:discovery and system:public-info-viewer for system:authenticated.
    assert_eq!(get(&alice, "/api").await.0, 200);
    assert_eq!(get(&alice, "/apis").await.0, 200);
    assert_eq!(get(&alice, "/version").await.0, 200);
    // system:masters is always allowed.
    let root = f.user_client("team-a", "alice", &["system:masters"]).await;
    assert_eq!(get(&root, "/api/v1/namespaces/default/pods").await.0, 200);
}

#[tokio::test]
async fn role_binding_grants_one_namespace_and_resource_names() {
    let (_f, admin, alice) = team_a_admin_and_alice().await;
    create(
        &admin,
        &format!("{RBAC}/namespaces/default/roles"),
        json!({"metadata": {"name": "pod-reader"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                         {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["allowed"]}]}),
    )
    .await;
    bind_in_default(
        &admin,
        role_binding("alice-reads", "Role", "pod-reader", "alice"),
    )
    .await;
    eventually(&alice, "/api/v1/namespaces/default/pods", 200).await;
    assert_forbidden(
        &get(&alice, "/api/v1/namespaces/kube-system/pods").await,
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "kube-system""#,
    );
    assert_eq!(get(&alice, "/api/v1/pods").await.0, 403, "all namespaces");
    // resourceNames: allowed to look (404: it does not exist), not others.
    assert_eq!(
        get(&alice, "/api/v1/namespaces/default/configmaps/allowed")
            .await
            .0,
        404
    );
    assert_forbidden(
        &get(&alice, "/api/v1/namespaces/default/configmaps/other").await,
        r#"configmaps "other" is forbidden: User "alice" cannot get resource "configmaps" in API group "" in the namespace "default""#,
    );
    // Removing the binding takes the grant away.
    let (status, _) = send(
        &admin,
        "DELETE",
        &format!("{RBAC}/namespaces/default/rolebindings/alice-reads"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    eventually(&alice, "/api/v1/namespaces/default/pods", 403).await;
}

#[tokio::test]
async fn cluster_roles_view_and_aggregated_edit() {
    let (_f, admin, alice) = team_a_admin_and_alice().await;
    bind_in_default(
        &admin,
        role_binding("alice-view", "ClusterRole", "view", "alice"),
    )
    .await;
    eventually(&alice, "/api/v1/namespaces/default/configmaps", 200).await;
    assert_eq!(
        get(&alice, "/apis/apps/v1/namespaces/default/deployments")
            .await
            .0,
        200
    );
    assert_eq!(
        get(&alice, "/api/v1/namespaces/default/secrets").await.0,
        403,
        "view has no secrets"
    );
    assert_eq!(
        get(&alice, "/api/v1/namespaces/kube-system/configmaps")
            .await
            .0,
        403
    );
    let (status, _) = post(
        &alice,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "x"}, "data": {}}),
    )
    .await;
    assert_eq!(status, 403);

    // A custom ClusterRole labelled aggregate-to-edit joins `edit` (and
    // `admin`), in this cluster.
    create(
        &admin,
        &format!("{RBAC}/clusterroles"),
        json!({"metadata": {"name": "widgets-edit",
                            "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
               "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["create", "list"]}]}),
    )
    .await;
    bind_in_default(
        &admin,
        role_binding("bob-edit", "ClusterRole", "edit", "bob"),
    )
    .await;
    let sar = |user: &str, verb: &str, group: &str, resource: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": user, "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": ns}}})
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, body) = subject_access_review(
            &admin,
            sar("bob", "create", "example.com", "widgets", "default"),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        if body["status"]["allowed"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edit never aggregated widgets-edit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (user, verb, group, resource, ns, allowed) in [
        ("bob", "create", "", "secrets", "default", true),
        ("bob", "list", "", "pods", "default", true),
        ("bob", "create", "example.com", "widgets", "other", false),
        (
            "bob",
            "create",
            "rbac.authorization.k8s.io",
            "roles",
            "default",
            false,
        ),
        ("alice", "list", "example.com", "widgets", "default", false),
    ] {
        let (_, body) = subject_access_review(&admin, sar(user, verb, group, resource, ns)).await;
        assert_eq!(
            body["status"]["allowed"], allowed,
            "{user} {verb} {resource} in {ns}: {body}"
        );
    }
}

#[tokio::test]
async fn bindings_in_one_cluster_never_grant_in_another() {
    let f = start(&["team-a", "team-b"]).await;
    let admin_a = admin_client(&f, "team-a").await;
    create(
        &admin_a,
        &format!("{RBAC}/clusterrolebindings"),
        json!({"metadata": {"name": "alice-admin"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"}]}),
    )
    .await;
    let alice_a = f.user_client("team-a", "alice", &[]).await;
    eventually(&alice_a, "/api/v1/namespaces", 200).await;
    // The same user and group names in team-b: nothing.
    let alice_b = f.user_client("team-b", "alice", &["devs"]).await;
    assert_forbidden(
        &get(&alice_b, "/api/v1/namespaces").await,
        r#"namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the cluster scope"#,
    );
    let (_, review) = self_access_review(
        &alice_b,
        json!({"spec": {"resourceAttributes": {"verb": "list", "resource": "namespaces"}}}),
    )
    .await;
    assert_eq!(review["status"]["allowed"], false, "{review}");
    // team-b's own admin sees no foreign binding: only the shared defaults.
    let (_, list) = get(
        &admin_client(&f, "team-b").await,
        &format!("{RBAC}/clusterrolebindings"),
    )
    .await;
    let items = list["items"].as_array().expect("items");
    assert!(!items.is_empty(), "{list}");
    for item in items {
        assert_eq!(
            item["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults",
            "{item}"
        );
    }
}

#[tokio::test]
async fn review_apis_answer_for_the_caller() {
    let f = start(&["team-a"]).await;
    let alice = f.user_client("team-a", "alice", &["devs"]).await;
    let ssar = |verb: &str, resource: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": "default"}}})
    };
    let (status, body) = self_access_review(&alice, ssar("list", "pods")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "SelfSubjectAccessReview");
    assert_eq!(body["status"]["allowed"], false);
    let (_, body) = self_access_review(
        &alice,
        json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}}}),
    )
    .await;
    assert_eq!(body["status"]["allowed"], true, "{body}");
    // kubectl auth whoami
    let (status, body) = post(
        &alice,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    // kubectl auth can-i --list
    let (status, body) = post(
        &alice,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"spec": {"namespace": "default"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["incomplete"], false);
    assert!(
        body["status"]["resourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"]
                == json!(["selfsubjectaccessreviews", "selfsubjectrulesreviews"])),
        "{body}"
    );
    // SubjectAccessReview needs a grant alice does not have.
    let (status, _) = subject_access_review(
        &alice,
        json!({"spec": {"user": "bob", "resourceAttributes": {"verb": "list", "resource": "pods"}}}),
    )
    .await;
    assert_eq!(status, 403);
    // Not stored: no list (authorized first, as upstream).
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    assert_eq!(get(&alice, path).await.0, 403);
    assert_eq!(get(&admin_client(&f, "team-a").await, path).await.0, 405);
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb() {
    let (_f, admin, alice) = team_a_admin_and_alice().await;
    // The admin acts as alice: alice's permissions apply.
    let got = send(
        &admin,
        "GET",
        "/api/v1/namespaces/default/pods",
        None,
        &[("Impersonate-User", "alice")],
    )
    .await;
    assert_forbidden(
        &got,
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#,
    );
    let (status, body) = send(
        &admin,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({})),
        &[("Impersonate-User", "alice"), ("Impersonate-Group", "devs")],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    // Uid and extras are carried into the user (upstream's user.Info).
    let (status, body) = send(
        &admin,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({})),
        &[
            ("Impersonate-User", "alice"),
            ("Impersonate-Uid", "u-1"),
            ("Impersonate-Extra-Scopes", "a"),
            ("Impersonate-Extra-Scopes", "b"),
            ("Impersonate-Extra-example.com%2fteam", "x"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["userInfo"]["uid"], "u-1");
    assert_eq!(
        body["status"]["userInfo"]["extra"],
        json!({"example.com/team": ["x"], "scopes": ["a", "b"]})
    );
    // Impersonating system:masters gets its rights.
    let got = send(
        &admin,
        "GET",
        "/api/v1/namespaces",
        None,
        &[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(got.0, 200);
    // alice may not impersonate.
    let got = send(
        &alice,
        "GET",
        "/api/v1/namespaces",
        None,
        &[("Impersonate-User", "admin")],
    )
    .await;
    assert_forbidden(
        &got,
        r#"users "admin" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#,
    );
    let got = send(
        &alice,
        "GET",
        "/api/v1/namespaces",
        None,
        &[("Impersonate-User", "system:serviceaccount:default:ci")],
    )
    .await;
    assert_forbidden(
        &got,
        r#"serviceaccounts "ci" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "default""#,
    );
    // Groups without a user are refused.
    let got = send(
        &admin,
        "GET",
        "/api",
        None,
        &[("Impersonate-Group", "devs")],
    )
    .await;
    assert_eq!(got.0, 400, "{}", got.1);
    // A grant to impersonate exactly bob.
    create(
        &admin,
        &format!("{RBAC}/clusterroles"),
        json!({"metadata": {"name": "as-bob"},
               "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["bob"]}]}),
    )
    .await;
    create(
        &admin,
        &format!("{RBAC}/clusterrolebindings"),
        json!({"metadata": {"name": "alice-as-bob"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "as-bob"},
               "subjects": [{"kind": "User", "name": "alice"}]}),
    )
    .await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, body) = send(
            &alice,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(json!({})),
            &[("Impersonate-User", "bob")],
        )
        .await;
        if status == 201 {
            assert_eq!(body["status"]["userInfo"]["username"], "bob");
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kubectl_auth_commands_and_as() {
    if !common::has_kubectl() {
        return;
    }
    let f = start(&["team-a"]).await;
    let ca = f.server_ca_pem();
    let url = f.url(Some("team-a"));
    let write = |user: &str, groups: &[&str]| {
        let path = f.dir().join(format!("{user}.kubeconfig"));
        let doc = kubeconfig::render("team-a", &url, &ca, &f.issue("team-a", user, groups));
        std::fs::write(&path, doc).expect("write kubeconfig");
        path
    };
    let admin = write("admin", &["system:masters"]);
    let alice = write("alice", &[]);
    let run = |kc: std::path::PathBuf, args: &'static [&'static str]| {
        tokio::task::spawn_blocking(move || kubectl(&kc, args))
    };
    let (ok, out) = run(admin.clone(), &["auth", "can-i", "list", "pods"])
        .await
        .unwrap();
    assert!(ok && out.trim() == "yes", "{out}");
    let (ok, out) = run(
        admin.clone(),
        &["auth", "can-i", "list", "pods", "--as", "alice"],
    )
    .await
    .unwrap();
    assert!(!ok && out.trim() == "no", "{out}");
    let (ok, out) = run(alice.clone(), &["auth", "whoami", "-o", "json"])
        .await
        .unwrap();
    assert!(ok && out.contains("\"username\": \"alice\""), "{out}");
    let (ok, out) = run(alice.clone(), &["auth", "can-i", "--list"])
        .await
        .unwrap();
    assert!(ok && out.contains("selfsubjectaccessreviews"), "{out}");
    let (ok, out) = run(admin.clone(), &["get", "pods", "--as", "alice"])
        .await
        .unwrap();
    assert!(
        !ok && out.contains(r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{out}"
    );
    let (ok, out) = run(alice.clone(), &["get", "pods", "--as", "bob"])
        .await
        .unwrap();
    assert!(
        !ok && out.contains(r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{out}"
    );
}

#[tokio::test]
async fn a_recreated_cluster_starts_without_its_predecessors_bindings() {
    let f = start(&["team-a"]).await;
    create(
        &admin_client(&f, "team-a").await,
        &format!("{RBAC}/clusterrolebindings"),
        json!({"metadata": {"name": "alice-admin"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "User", "name": "alice"}]}),
    )
    .await;
    eventually(
        &f.user_client("team-a", "alice", &[]).await,
        "/api/v1/namespaces",
        200,
    )
    .await;
    let api = &f.running.api;
    api.clusters.remove("team-a").await.expect("remove");
    api.clusters
        .create(&api.store, &api.catalog, "team-a")
        .await
        .expect("re-create");
    eventually(
        &f.user_client("team-a", "alice", &[]).await,
        "/api/v1/namespaces",
        403,
    )
    .await;
}

#[tokio::test]
async fn roles_and_bindings_cannot_escalate() {
    let (_f, admin, alice) = team_a_admin_and_alice().await;
    let roles = format!("{RBAC}/namespaces/default/roles");
    let bindings = format!("{RBAC}/namespaces/default/rolebindings");
    create(
        &admin,
        &roles,
        json!({"metadata": {"name": "rbac-manager"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "get", "patch"]},
                         {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
    )
    .await;
    create(
        &admin,
        &bindings,
        role_binding("alice-manager", "Role", "rbac-manager", "alice"),
    )
    .await;
    eventually(&alice, "/api/v1/namespaces/default/pods", 200).await;
    // What alice holds she may hand on.
    let (status, body) = post(
        &alice,
        &roles,
        json!({"metadata": {"name": "pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &alice,
        &bindings,
        role_binding("bob-pods", "Role", "pods", "bob"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // More than she holds: refused, by create, by binding and by patch.
    let (status, body) = post(
        &alice,
        &roles,
        json!({"metadata": {"name": "secrets"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message
            .starts_with(r#"roles.rbac.authorization.k8s.io "secrets" is forbidden: user "alice""#)
            && message.contains("is attempting to grant RBAC permissions not currently held"),
        "{message}"
    );
    let (status, body) = post(
        &alice,
        &bindings,
        role_binding("alice-root", "ClusterRole", "cluster-admin", "alice"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!("{roles}/pods"))
        .header("content-type", "application/merge-patch+json")
        .body(kube::client::Body::from(
            serde_json::to_vec(
                &json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
            )
            .unwrap(),
        ))
        .unwrap();
    let resp = alice.send(req).await.expect("send");
    assert_eq!(resp.status().as_u16(), 403);
    // The admin may.
    let (status, body) = post(
        &admin,
        &bindings,
        role_binding("alice-root", "ClusterRole", "cluster-admin", "alice"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn default_cluster_roles_are_listed_got_and_shadowed() {
    let f = start(&["team-a", "team-b"]).await;
    let admin_a = admin_client(&f, "team-a").await;
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let (status, list) = get(&admin_a, &format!("{RBAC}/clusterroles")).await;
    assert_eq!(status, 200, "{list}");
    let listed = names(&list);
    for role in [
        "admin",
        "cluster-admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
    ] {
        assert!(listed.iter().any(|n| n == role), "{role} in {listed:?}");
    }
    let (_, list) = get(&admin_a, &format!("{RBAC}/clusterrolebindings")).await;
    assert!(names(&list).iter().any(|n| n == "cluster-admin"), "{list}");
    // get, with the aggregated rules filled in; selectors apply.
    let (status, edit) = get(&admin_a, &format!("{RBAC}/clusterroles/edit")).await;
    assert_eq!(status, 200, "{edit}");
    assert!(!edit["rules"].as_array().unwrap().is_empty(), "{edit}");
    let (_, only_view) = get(
        &admin_a,
        &format!("{RBAC}/clusterroles?fieldSelector=metadata.name%3Dview"),
    )
    .await;
    assert_eq!(names(&only_view), ["view"]);
    // A stored role of the same name shadows the default in its cluster only.
    create(
        &admin_a,
        &format!("{RBAC}/clusterroles"),
        json!({"metadata": {"name": "view"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    )
    .await;
    let (_, list) = get(&admin_a, &format!("{RBAC}/clusterroles")).await;
    assert_eq!(names(&list).iter().filter(|n| *n == "view").count(), 1);
    let (_, view_a) = get(&admin_a, &format!("{RBAC}/clusterroles/view")).await;
    assert_eq!(view_a["rules"].as_array().unwrap().len(), 1, "{view_a}");
    let (_, view_b) = get(
        &admin_client(&f, "team-b").await,
        &format!("{RBAC}/clusterroles/view"),
    )
    .await;
    assert!(view_b["rules"].as_array().unwrap().len() > 1, "{view_b}");
}
