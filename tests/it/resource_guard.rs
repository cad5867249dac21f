//! What the worst request of each class costs: the real `nestkube serve`
//! as a subprocess, its peak memory (`VmHWM`) read from /proc before and
//! after each attack. Every attack is refused with a Status, changes
//! nothing, and leaves the server serving, at a bounded memory cost. These
//! are guards against amplification (a small request that makes the server
//! do huge work), not benchmarks: the bound is generous and nothing is timed.

use std::time::Duration;

use crate::support::{self, Kubectl, Server};

/// The most one attack may add to the server's peak memory.
const BOUND_MIB: u64 = 256;

/// The process's peak resident memory in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

/// Runs `attack`, then checks the server still answers and its peak memory
/// grew by at most [`BOUND_MIB`].
fn guarded(server: &Server, kubectl: &Kubectl, what: &str, attack: impl FnOnce()) {
    let before = peak_mib(server.pid());
    attack();
    assert!(
        support::wait_for(Duration::from_secs(30), || kubectl
            .output(&["get", "--raw", "/readyz"])
            .status
            .success()),
        "{what}: the server stopped answering"
    );
    let after = peak_mib(server.pid());
    eprintln!("{what}: peak memory {before} MiB -> {after} MiB");
    assert!(
        after.saturating_sub(before) <= BOUND_MIB,
        "{what}: peak memory grew {before} -> {after} MiB"
    );
}

/// Runs kubectl with `stdin`; returns (success, stdout+stderr).
fn run(kubectl: &Kubectl, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = kubectl
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    let input = stdin.unwrap_or("").to_string();
    let mut pipe = child.stdin.take().expect("stdin");
    // Written from a thread: a large body must not deadlock against output.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("kubectl output");
    let _ = writer.join();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_worst_request_of_each_class_costs_bounded_memory() {
    let server = Server::start();
    let kubectl = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    kubectl.ok(&["create", "configmap", "target", "--from-literal=k=v"]);
    let rv = kubectl.ok(&[
        "get",
        "cm",
        "target",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);

    // A JSON patch that doubles an array into itself 30 times (2.5 KB of
    // patch, 1 TB of result if nothing stops it).
    guarded(&server, &kubectl, "json patch copy amplification", || {
        let mut ops = vec![serde_json::json!({
            "op": "add", "path": "/metadata/annotations",
            "value": {"a": "x".repeat(1024)},
        })];
        ops.push(serde_json::json!({"op": "add", "path": "/x", "value": ["y".repeat(1024)]}));
        for _ in 0..30 {
            ops.push(serde_json::json!({"op": "copy", "from": "/x", "path": "/x/-"}));
        }
        let patch = serde_json::to_string(&ops).unwrap();
        let (ok, out) = run(
            &kubectl,
            &["patch", "cm", "target", "--type=json", "-p", &patch],
            None,
        );
        assert!(!ok, "the amplifying patch was accepted: {out}");
    });
    // A merge patch deeply nested, and a strategic merge patch likewise.
    guarded(&server, &kubectl, "deeply nested patches", || {
        let deep = format!(
            "{}{}",
            "{\"a\":".repeat(20_000),
            "1".to_string() + &"}".repeat(20_000)
        );
        let patch = format!("{{\"metadata\":{{\"annotations\":null}},\"x\":{deep}}}");
        for t in ["merge", "strategic"] {
            let (ok, out) = run(
                &kubectl,
                &["patch", "cm", "target", "--type", t, "-p", &patch],
                None,
            );
            assert!(!ok, "{t}: a 20,000-level patch was accepted: {out}");
        }
    });
    // A deeply nested create body.
    guarded(&server, &kubectl, "deeply nested body", || {
        let body = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"deep\"}},\"x\":{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let (ok, out) = run(
            &kubectl,
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/default/configmaps",
                "-f",
                "-",
            ],
            Some(&body),
        );
        assert!(!ok, "a 100,000-level body was accepted: {out}");
    });
    // A Role whose rules would expand to 200 x 200 x 200 checks, written by
    // a user who may create Roles but holds none of those rights.
    guarded(&server, &kubectl, "RBAC escalation expansion", || {
        kubectl.ok(&[
            "create",
            "role",
            "role-writer",
            "--verb=create",
            "--resource=roles.rbac.authorization.k8s.io",
        ]);
        kubectl.ok(&[
            "create",
            "rolebinding",
            "role-writer",
            "--role=role-writer",
            "--user=mallory",
        ]);
        let list = |p: &str| (0..200).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        let role = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "bomb", "namespace": "default"},
            "rules": [{"apiGroups": list("g"), "resources": list("r"), "verbs": list("v")}],
        });
        let (ok, out) = run(
            &kubectl,
            &["--as=mallory", "create", "-f", "-"],
            Some(&role.to_string()),
        );
        assert!(!ok, "the escalating Role was accepted: {out}");
        assert!(out.len() < 64 * 1024, "the refusal is {} bytes", out.len());
    });
    // A label selector of 5,000 terms (what one argument may hold).
    guarded(&server, &kubectl, "huge label selector", || {
        let selector = (0..5_000)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let _ = run(&kubectl, &["get", "cm", "-l", &selector], None);
    });
    // Nothing the attacks sent changed the object.
    let after = kubectl.ok(&[
        "get",
        "cm",
        "target",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv, after, "an attack changed the object");
}
