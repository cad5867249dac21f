//! Service-account tokens over the network: a real server on 127.0.0.1,
//! TokenRequest through the API, and bearer tokens on connections with and
//! without client certificates. A token authenticates in exactly the cluster
//! whose key signed it, only while it is current and its service account
//! (and bound pod or secret) still exists.

use base64::Engine;
use kube::Client;
use nestkube_apiserver::auth::pki::CertPair;
use nestkube_apiserver::auth::tokens::{API_AUDIENCE, Claims, ObjectRef, SigningKey, unix_now};
use serde_json::{Value, json};

use crate::common::{self, Fixture};

/// An admin certificate issued by `cluster`'s client CA.
fn admin_cert(f: &Fixture, cluster: &str) -> CertPair {
    f.issue(cluster, "admin", &["system:masters"])
}

/// Claims for `default/robot` (uid `uid`) of `cluster`: the API's audience,
/// issued at `now`, valid for an hour.
fn robot_claims(cluster: &str, uid: &str, now: i64) -> Claims {
    let sa = ObjectRef {
        name: "robot".into(),
        uid: uid.into(),
    };
    Claims::new(cluster, "default", sa, vec![API_AUDIENCE.into()], now, 3600)
}

/// Sends a request (path relative to the server address) with an optional
/// bearer token and JSON body; returns status and JSON body.
async fn call(
    client: &Client,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    common::send(client, method, path, body, &headers).await
}

async fn must(client: &Client, method: &str, path: &str, body: Value) -> Value {
    let (status, value) = call(client, method, path, None, Some(body)).await;
    assert!(
        (200..300).contains(&status) || status == 409,
        "{method} {path}: {status} {value}"
    );
    value
}

/// Creates `default/<name>` service account (and a cluster-admin binding,
/// so the tests hold whether or not RBAC authorization is enforced) in the
/// cluster at `prefix`; returns its uid.
async fn service_account(admin: &Client, prefix: &str, name: &str) -> String {
    must(
        admin,
        "POST",
        &format!("{prefix}/api/v1/namespaces/default/serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
    )
    .await;
    must(
        admin,
        "POST",
        &format!("{prefix}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("sa-{name}-admin")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}],
        }),
    )
    .await;
    let (status, sa) = call(
        admin,
        "GET",
        &format!("{prefix}/api/v1/namespaces/default/serviceaccounts/{name}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{sa}");
    sa["metadata"]["uid"].as_str().unwrap().to_string()
}

/// A TokenRequest for `default/<sa>`; returns status and body.
async fn token_request(client: &Client, prefix: &str, sa: &str, spec: Value) -> (u16, Value) {
    call(
        client,
        "POST",
        &format!("{prefix}/api/v1/namespaces/default/serviceaccounts/{sa}/token"),
        None,
        Some(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
        ),
    )
    .await
}

async fn mint(client: &Client, prefix: &str, sa: &str, spec: Value) -> String {
    let (status, body) = token_request(client, prefix, sa, spec).await;
    assert_eq!(status, 201, "{body}");
    body["status"]["token"].as_str().expect("token").to_string()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("jwt");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Namespace names listed with `token` at `path`, or the status on failure.
async fn namespaces(client: &Client, path: &str, token: &str) -> Result<Vec<String>, u16> {
    let (status, body) = call(client, "GET", path, Some(token), None).await;
    if status != 200 {
        return Err(status);
    }
    Ok(body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect())
}

async fn status_with(client: &Client, path: &str, token: &str) -> u16 {
    call(client, "GET", path, Some(token), None).await.0
}

#[tokio::test]
async fn token_request_and_bearer_authentication() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    let root = f.client(None, &admin_cert(&f, "root")).await;
    let anon = f.anonymous(None);
    let sa_uid = service_account(&root, "", "robot").await;
    must(
        &root,
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "only-in-root"}}),
    )
    .await;

    // TokenRequest: a JWT for the service account, default expiry and audience.
    let (status, body) = token_request(&root, "", "robot", json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "TokenRequest");
    assert_eq!(body["spec"]["expirationSeconds"], 3600);
    assert_eq!(body["spec"]["audiences"], json!([API_AUDIENCE]));
    let token = body["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3);
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "system:serviceaccount:default:robot");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], sa_uid);
    assert_eq!(claims["nestkube.io/cluster"], "root");
    let exp = chrono::DateTime::parse_from_rfc3339(
        body["status"]["expirationTimestamp"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp();
    assert!((exp - unix_now() - 3600).abs() < 30, "{exp}");
    assert_eq!(claims["exp"], exp);

    // Validation: minimum expiry, existing service account.
    let (status, body) = token_request(&root, "", "robot", json!({"expirationSeconds": 60})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = token_request(&root, "", "nobody", json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) =
        token_request(&root, "", "robot", json!({"expirationSeconds": 7200})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["spec"]["expirationSeconds"], 7200);

    // The token lists namespaces in its cluster: explicit and bare paths,
    // with or without a client certificate (the token wins over it).
    let team_a = f.client(None, &admin_cert(&f, "team-a")).await;
    for (client, path) in [
        (&anon, "/api/v1/namespaces"),
        (&anon, "/clusters/root/api/v1/namespaces"),
        (&team_a, "/api/v1/namespaces"),
    ] {
        let names = namespaces(client, path, &token).await.expect(path);
        assert!(names.contains(&"only-in-root".to_string()), "{path}");
    }
    // Another cluster's path: 401, whether it exists or not.
    for path in [
        "/clusters/team-a/api/v1/namespaces",
        "/clusters/nonexistent/api/v1/namespaces",
    ] {
        assert_eq!(status_with(&anon, path, &token).await, 401, "{path}");
        assert_eq!(status_with(&root, path, &token).await, 401, "{path}");
    }

    // Invalid tokens are 401, never anonymous, even on public paths.
    for bad in ["", "garbage", "a.b.c"] {
        assert_eq!(status_with(&anon, "/version", bad).await, 401, "{bad:?}");
        assert_eq!(
            status_with(&root, "/api/v1/namespaces", bad).await,
            401,
            "{bad:?}"
        );
    }

    // Expired, foreign-signed, and wrong-audience tokens.
    let key = &f.running.api.clusters.get("root").unwrap().sa_key;
    let expired = robot_claims("root", &sa_uid, unix_now() - 7200);
    let expired = key.sign(&expired).unwrap();
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &expired).await,
        401
    );
    let good = robot_claims("root", &sa_uid, unix_now());
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &key.sign(&good).unwrap()).await,
        200
    );
    let foreign = SigningKey::generate().unwrap().sign(&good).unwrap();
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &foreign).await,
        401
    );
    let vault = mint(&root, "", "robot", json!({"audiences": ["vault"]})).await;
    assert_eq!(status_with(&anon, "/api/v1/namespaces", &vault).await, 401);

    // TokenReview: the API's audience by default, or the ones asked for.
    let review = |token: &str, audiences: Value| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "spec": {"token": token, "audiences": audiences}})
    };
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let (status, body) = call(&root, "POST", path, None, Some(review(&token, json!([])))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["authenticated"], true, "{body}");
    assert_eq!(
        body["status"]["user"]["username"],
        "system:serviceaccount:default:robot"
    );
    assert_eq!(body["status"]["user"]["uid"], sa_uid.as_str());
    assert_eq!(
        body["status"]["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let (_, body) = call(&root, "POST", path, None, Some(review(&vault, json!([])))).await;
    assert_eq!(body["status"]["authenticated"], false, "{body}");
    let (_, body) = call(
        &root,
        "POST",
        path,
        None,
        Some(review(&vault, json!(["vault"]))),
    )
    .await;
    assert_eq!(body["status"]["authenticated"], true, "{body}");
    assert_eq!(body["status"]["audiences"], json!(["vault"]));
    let (_, body) = call(&root, "POST", path, None, Some(review(&expired, json!([])))).await;
    assert_eq!(body["status"]["authenticated"], false, "{body}");
    // A token can review tokens too (authenticated users are admins, or the
    // cluster-admin binding above applies).
    let (status, body) = call(
        &anon,
        "POST",
        path,
        Some(&token),
        Some(review(&token, json!([]))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["authenticated"], true, "{body}");

    // Deleting the service account revokes its tokens; re-creating it (new
    // uid) does not bring them back.
    let (status, body) = call(
        &root,
        "DELETE",
        "/api/v1/namespaces/default/serviceaccounts/robot",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(status_with(&anon, "/api/v1/namespaces", &token).await, 401);
    service_account(&root, "", "robot").await;
    assert_eq!(status_with(&anon, "/api/v1/namespaces", &token).await, 401);
    let fresh = mint(&root, "", "robot", json!({})).await;
    assert_eq!(status_with(&anon, "/api/v1/namespaces", &fresh).await, 200);
}

#[tokio::test]
async fn tokens_are_bound_to_their_cluster() {
    let f = Fixture::start().await;
    f.create_cluster("team-a").await;
    f.create_cluster("team-b").await;
    // Tenant admins on the bare path (their certificates route them).
    let a = f.client(None, &admin_cert(&f, "team-a")).await;
    let b = f.client(None, &admin_cert(&f, "team-b")).await;
    let anon = f.anonymous(None);
    let uid_a = service_account(&a, "", "robot").await;
    let uid_b = service_account(&b, "", "robot").await;
    must(
        &a,
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "only-in-a"}}),
    )
    .await;

    let token_a = mint(&a, "/clusters/team-a", "robot", json!({})).await;
    assert_eq!(claims_of(&token_a)["nestkube.io/cluster"], "team-a");
    // Its own cluster, explicitly or on the bare path.
    for path in ["/clusters/team-a/api/v1/namespaces", "/api/v1/namespaces"] {
        let names = namespaces(&anon, path, &token_a).await.expect(path);
        assert!(names.contains(&"only-in-a".to_string()), "{path}");
    }
    // Cluster B has default/robot too: still 401 there, and in root.
    for path in [
        "/clusters/team-b/api/v1/namespaces",
        "/clusters/root/api/v1/namespaces",
    ] {
        assert_eq!(status_with(&anon, path, &token_a).await, 401, "{path}");
        assert_eq!(status_with(&b, path, &token_a).await, 401, "{path}");
    }

    // A token that claims cluster B, with B's service-account uid, but is
    // signed with A's key: 401 in B (and in A, which it does not claim).
    let key_a = &f.running.api.clusters.get("team-a").unwrap().sa_key;
    let forged = robot_claims("team-b", &uid_b, unix_now());
    let forged = key_a.sign(&forged).unwrap();
    for path in [
        "/clusters/team-b/api/v1/namespaces",
        "/api/v1/namespaces",
        "/clusters/team-a/api/v1/namespaces",
    ] {
        assert_eq!(status_with(&anon, path, &forged).await, 401, "{path}");
    }
    // A's claims with B's uid, signed by A: the uid does not match A's.
    let wrong_uid = robot_claims("team-a", &uid_b, unix_now());
    assert_ne!(uid_a, uid_b);
    let wrong_uid = key_a.sign(&wrong_uid).unwrap();
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &wrong_uid).await,
        401
    );

    // TokenReview in B does not accept A's token.
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                        "spec": {"token": token_a}});
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let (status, body) = call(&b, "POST", path, None, Some(review.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["authenticated"], false, "{body}");
    let (_, body) = call(&a, "POST", path, None, Some(review)).await;
    assert_eq!(body["status"]["authenticated"], true, "{body}");

    // Removing the cluster revokes its tokens.
    f.running.api.clusters.remove("team-a").await.unwrap();
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &token_a).await,
        401
    );
}

#[tokio::test]
async fn bound_tokens_end_with_their_object() {
    let f = Fixture::start().await;
    let root = f.client(None, &admin_cert(&f, "root")).await;
    let anon = f.anonymous(None);
    service_account(&root, "", "robot").await;
    let pod = must(
        &root,
        "POST",
        "/api/v1/namespaces/default/pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"serviceAccountName": "robot",
                        "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let secret = must(
        &root,
        "POST",
        "/api/v1/namespaces/default/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await;
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap();

    let bound = |kind: &str, name: &str| json!({"boundObjectRef": {"apiVersion": "v1", "kind": kind, "name": name}});
    let pod_token = mint(&root, "", "robot", bound("Pod", "p")).await;
    assert_eq!(
        claims_of(&pod_token)["kubernetes.io"]["pod"]["uid"],
        pod_uid
    );
    let secret_token = mint(&root, "", "robot", bound("Secret", "s")).await;
    assert_eq!(
        claims_of(&secret_token)["kubernetes.io"]["secret"]["uid"],
        secret["metadata"]["uid"]
    );
    for t in [&pod_token, &secret_token] {
        assert_eq!(status_with(&anon, "/api/v1/namespaces", t).await, 200);
    }

    // Binding errors: missing object, other kinds, mismatched uid.
    let (status, body) = token_request(&root, "", "robot", bound("Pod", "missing")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = token_request(&root, "", "robot", bound("ConfigMap", "x")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = token_request(
        &root,
        "",
        "robot",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "nope"}}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // The pod runs as "robot", not "default".
    service_account(&root, "", "default").await;
    let (status, body) = token_request(&root, "", "default", bound("Pod", "p")).await;
    assert_eq!(status, 400, "{body}");

    // Deleting the secret ends its token; the pod's stays.
    let (status, body) = call(
        &root,
        "DELETE",
        "/api/v1/namespaces/default/secrets/s",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &secret_token).await,
        401
    );
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &pod_token).await,
        200
    );
    // Deleting the pod ends its token.
    let (status, body) = call(
        &root,
        "DELETE",
        "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0",
        None,
        None,
    )
    .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    assert_eq!(
        status_with(&anon, "/api/v1/namespaces", &pod_token).await,
        401
    );
}
