//! Identity x verb matrix with kubectl, in two tenants: a cluster-admin
//! (an issued `system:masters` certificate), a namespaced editor (`alice`,
//! RoleBinding to ClusterRole `edit` in `team`), a service account token
//! (`kubectl create token`, RoleBinding to `view` in `team`) and an
//! impersonated user (`--as bob --as-group g`, group `g` bound to `view`
//! cluster-wide) against get/list/create/update/patch/delete/watch on pods,
//! configmaps, secrets, namespaces and clusterroles. The expected table is
//! what a real kube-apiserver 1.37 answers for the same bindings (checked
//! with `kubectl auth can-i` against the e2e host). `kubectl auth can-i`
//! covers the whole table, real verbs a subset; every credential of one
//! tenant used at the other is 401.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{self, Fixture};

const TENANTS: [&str; 2] = ["team-a", "team-b"];
const VERBS: [&str; 7] = [
    "get", "list", "create", "update", "patch", "delete", "watch",
];
const RESOURCES: [&str; 5] = [
    "pods",
    "configmaps",
    "secrets",
    "namespaces",
    "clusterroles",
];
/// The namespace the namespaced bindings grant in.
const NS: &str = "team";

/// One identity of a tenant: a kubeconfig and extra kubectl flags.
#[derive(Clone)]
struct Identity {
    name: &'static str,
    kubeconfig: PathBuf,
    flags: Vec<&'static str>,
}

/// Whether `who` may `verb` `resource` (in [`NS`] when namespaced), as
/// upstream decides for the bindings [`setup`] creates.
fn expected(who: &str, verb: &str, resource: &str) -> bool {
    let read = matches!(verb, "get" | "list" | "watch");
    match (who, resource) {
        ("admin", _) => true,
        ("alice", "pods" | "configmaps" | "secrets") => true,
        ("serviceaccount" | "impersonated", "pods" | "configmaps") => read,
        ("impersonated", "namespaces") => read,
        _ => false,
    }
}

/// kubectl with `kubeconfig`, `flags` then `args`.
fn kubectl(kubeconfig: &Path, flags: &[&str], args: &[&str]) -> (bool, String) {
    let all: Vec<&str> = flags.iter().chain(args).copied().collect();
    common::kubectl(kubeconfig, &all)
}

fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out) = kubectl(kubeconfig, &[], args);
    assert!(ok, "kubectl {args:?}: {out}");
    out
}

/// Runs `jobs` (each a kubectl invocation) on a few threads; returns their
/// results in order.
fn batch(jobs: Vec<(PathBuf, Vec<String>)>) -> Vec<(bool, String)> {
    let mut results = vec![(false, String::new()); jobs.len()];
    let chunk = jobs.len().div_ceil(16).max(1);
    std::thread::scope(|s| {
        for (slots, jobs) in results.chunks_mut(chunk).zip(jobs.chunks(chunk)) {
            s.spawn(move || {
                for (slot, (kc, args)) in slots.iter_mut().zip(jobs) {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    *slot = kubectl(kc, &[], &args);
                }
            });
        }
    });
    results
}

fn token_kubeconfig(path: &Path, server: &str, ca_pem: &str, token: &str) {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
    );
    std::fs::write(path, doc).expect("write kubeconfig");
}

/// Creates the namespace, the bindings and the service account in `tenant`
/// and returns its four identities, each also pointed at `other`'s URL
/// (for the cross-tenant checks).
fn setup(f: &Fixture, tenant: &str, other: &str) -> Vec<(Identity, PathBuf)> {
    let ca = f.server_ca_pem();
    let dir = f.dir();
    let cert_config = |user: &str, groups: &[&str], cluster: &str| {
        let path = dir.join(format!("{tenant}-{user}-at-{cluster}.kubeconfig"));
        let doc = nestkube_apiserver::kubeconfig::render(
            "t",
            &f.url(Some(cluster)),
            &ca,
            &f.issue(tenant, user, groups),
        );
        std::fs::write(&path, doc).expect("write kubeconfig");
        path
    };
    let admin = cert_config("admin", &["system:masters"], tenant);
    ok(&admin, &["create", "namespace", NS]);
    ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "alice-edit",
            "--clusterrole=edit",
            "--user=alice",
            "-n",
            NS,
        ],
    );
    ok(&admin, &["create", "serviceaccount", "ci", "-n", NS]);
    let sa = format!("{NS}:ci");
    ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "ci-view",
            "--clusterrole=view",
            "--serviceaccount",
            &sa,
            "-n",
            NS,
        ],
    );
    ok(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            "g-view",
            "--clusterrole=view",
            "--group=g",
        ],
    );
    for id in ["admin", "alice", "serviceaccount", "impersonated"] {
        ok(
            &admin,
            &["create", "configmap", &format!("shared-{id}"), "-n", NS],
        );
    }
    let token = ok(&admin, &["create", "token", "ci", "-n", NS]);
    let token_config = |cluster: &str| {
        let path = dir.join(format!("{tenant}-ci-at-{cluster}.kubeconfig"));
        token_kubeconfig(&path, &f.url(Some(cluster)), &ca, token.trim());
        path
    };
    let admin_elsewhere = cert_config("admin", &["system:masters"], other);
    vec![
        (
            Identity {
                name: "admin",
                kubeconfig: admin.clone(),
                flags: vec![],
            },
            admin_elsewhere.clone(),
        ),
        (
            Identity {
                name: "alice",
                kubeconfig: cert_config("alice", &[], tenant),
                flags: vec![],
            },
            cert_config("alice", &[], other),
        ),
        (
            Identity {
                name: "serviceaccount",
                kubeconfig: token_config(tenant),
                flags: vec![],
            },
            token_config(other),
        ),
        (
            Identity {
                name: "impersonated",
                kubeconfig: admin,
                flags: vec!["--as", "bob", "--as-group", "g"],
            },
            admin_elsewhere,
        ),
    ]
}

/// `kubectl auth can-i` arguments for one cell.
fn can_i(id: &Identity, verb: &str, resource: &str) -> Vec<String> {
    let mut args: Vec<String> = id.flags.iter().map(|s| s.to_string()).collect();
    args.extend(["auth", "can-i", verb, resource].map(String::from));
    if matches!(resource, "pods" | "configmaps" | "secrets") {
        args.extend(["-n", NS].map(String::from));
    }
    args
}

/// Real requests for a subset: (args, verb, resource) per identity.
fn real_verbs(id: &Identity) -> Vec<(Vec<String>, &'static str, &'static str)> {
    let cm = format!("probe-{}", id.name);
    let shared = format!("shared-{}", id.name);
    let watch = format!("/api/v1/namespaces/{NS}/configmaps?watch=1&timeoutSeconds=1");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["create", "configmap", &cm, "-n", NS],
            "create",
            "configmaps",
        ),
        (vec!["get", "configmaps", "-n", NS], "list", "configmaps"),
        (
            vec!["get", "configmap", &shared, "-n", NS],
            "get",
            "configmaps",
        ),
        (
            vec![
                "label",
                "configmap",
                &shared,
                "-n",
                NS,
                "probe=1",
                "--overwrite",
            ],
            "patch",
            "configmaps",
        ),
        (
            vec!["delete", "configmap", &shared, "-n", NS],
            "delete",
            "configmaps",
        ),
        (vec!["get", "--raw", &watch], "watch", "configmaps"),
        (vec!["get", "secrets", "-n", NS], "list", "secrets"),
        (vec!["get", "pods", "-n", NS], "list", "pods"),
        (vec!["get", "namespaces"], "list", "namespaces"),
        (vec!["get", "clusterroles"], "list", "clusterroles"),
        (
            vec![
                "create",
                "clusterrole",
                "probe",
                "--verb=get",
                "--resource=pods",
            ],
            "create",
            "clusterroles",
        ),
    ];
    cases
        .into_iter()
        .map(|(args, verb, resource)| {
            let mut all: Vec<String> = id.flags.iter().map(|s| s.to_string()).collect();
            all.extend(args.iter().map(|s| s.to_string()));
            (all, verb, resource)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_verb_matrix_in_two_tenants() {
    if !common::has_kubectl() {
        return;
    }
    let started = Instant::now();
    let f = Fixture::start().await;
    for t in TENANTS {
        f.create_cluster(t).await;
    }
    let f = std::sync::Arc::new(f);
    let g = f.clone();
    tokio::task::spawn_blocking(move || run_matrix(&g))
        .await
        .expect("matrix");
    eprintln!("rbac matrix took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(60));
}

fn run_matrix(f: &Fixture) {
    let mut identities = Vec::new();
    for (tenant, other) in [(TENANTS[0], TENANTS[1]), (TENANTS[1], TENANTS[0])] {
        for (id, elsewhere) in setup(f, tenant, other) {
            identities.push((tenant, id, elsewhere));
        }
    }
    // Bindings reach the authorizer through its storage watch: wait for the last.
    let (_, last, _) = identities.last().expect("identities");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kubectl(
        &last.kubeconfig,
        &last.flags,
        &["auth", "can-i", "list", "namespaces"],
    )
    .0
    {
        assert!(Instant::now() < deadline, "bindings never took effect");
        std::thread::sleep(Duration::from_millis(50));
    }

    // 1. kubectl auth can-i over the whole table, in both tenants.
    let mut cells = Vec::new();
    let mut jobs = Vec::new();
    for (tenant, id, _) in &identities {
        for resource in RESOURCES {
            for verb in VERBS {
                cells.push((*tenant, id.name, verb, resource));
                jobs.push((id.kubeconfig.clone(), can_i(id, verb, resource)));
            }
        }
    }
    let mut wrong = Vec::new();
    for ((tenant, who, verb, resource), (allowed, out)) in cells.iter().zip(batch(jobs)) {
        let answer = out.lines().next().unwrap_or("").trim().to_string();
        let want = expected(who, verb, resource);
        if allowed != want || answer != if want { "yes" } else { "no" } {
            wrong.push(format!(
                "{tenant} {who} {verb} {resource}: got {out:?}, want {want}"
            ));
        }
    }
    assert!(wrong.is_empty(), "can-i mismatches:\n{}", wrong.join("\n"));

    // 2. Real requests for a subset, in the first tenant.
    let mut cells = Vec::new();
    let mut jobs = Vec::new();
    for (tenant, id, _) in identities.iter().filter(|(t, _, _)| *t == TENANTS[0]) {
        for (args, verb, resource) in real_verbs(id) {
            cells.push((*tenant, id.name, verb, resource, args.join(" ")));
            jobs.push((id.kubeconfig.clone(), args));
        }
    }
    // Some cases depend on earlier ones of the same identity (create, then
    // delete): run each identity's cases in order, identities side by side.
    let results = batch_in_order(jobs);
    for ((tenant, who, verb, resource, args), (allowed, out)) in cells.iter().zip(results) {
        let want = expected(who, verb, resource);
        if allowed != want {
            wrong.push(format!(
                "{tenant} {who} `kubectl {args}`: allowed={allowed}, want {want}: {out}"
            ));
        } else if !allowed && !out.contains("forbidden") {
            wrong.push(format!(
                "{tenant} {who} `kubectl {args}`: denied without 403: {out}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "real verb mismatches:\n{}",
        wrong.join("\n")
    );

    // 3. Every credential of one tenant is unknown (401) at the other.
    let jobs = identities
        .iter()
        .map(|(_, id, elsewhere)| {
            let mut args: Vec<String> = id.flags.iter().map(|s| s.to_string()).collect();
            args.extend(["get", "configmaps", "-n", NS].map(String::from));
            (elsewhere.clone(), args)
        })
        .collect();
    for ((tenant, id, _), (allowed, out)) in identities.iter().zip(batch(jobs)) {
        assert!(
            !allowed && out.contains("Unauthorized"),
            "{tenant} {} at the other tenant: {out}",
            id.name
        );
    }
}

/// Like [`batch`], but jobs of the same kubeconfig and flags run in order.
fn batch_in_order(jobs: Vec<(PathBuf, Vec<String>)>) -> Vec<(bool, String)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, (kc, args)) in jobs.iter().enumerate() {
        let key = format!(
            "{} {}",
            kc.display(),
            args.starts_with(&["--as".to_string()])
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let mut results = vec![(false, String::new()); jobs.len()];
    let out: Vec<Vec<(usize, (bool, String))>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|(_, idx)| {
                let jobs = &jobs;
                s.spawn(move || {
                    idx.iter()
                        .map(|&i| {
                            let (kc, args) = &jobs[i];
                            let args: Vec<&str> = args.iter().map(String::as_str).collect();
                            (i, kubectl(kc, &[], &args))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (i, r) in out.into_iter().flatten() {
        results[i] = r;
    }
    results
}
