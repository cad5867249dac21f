//! `kubectl exec` (with stdin), `attach`, `cp` and `port-forward` through
//! the virtual API (`pods/exec`, `pods/attach`, `pods/portforward`): the
//! request is checked against the virtual pod (proper `Status` errors),
//! then upgraded end to end to the pod's copy where it runs. Against the
//! real host, kwok runs exec commands on this machine, streams what is
//! appended to its attach log to every attached client, and answers every
//! forwarded port with an echo, so what comes back proves the bytes went
//! all the way, over WebSockets (kubectl's default) and over SPDY, one
//! level and two levels deep.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{self, Server, js, virtual_cluster, wait_for, wait_for_within};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap()
}

/// A plain (not upgraded) request to a stream subresource: its `Status`.
async fn plain(client: &kube::Client, path: &str) -> (u16, String) {
    let req = http::Request::get(path).body(Vec::new()).expect("request");
    match client.request::<serde_json::Value>(req).await {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("not a Status: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_are_checked_against_the_virtual_pod() {
    let server = Server::start().await;
    nestkube_syncer::spawn(server.running.api.clone(), None);
    let (_, team) = virtual_cluster(&server.root, "streams-a").await;
    let pods: Api<Pod> = Api::namespaced(team.clone(), "default");
    wait_for("the virtual pod to be created", || async {
        pods.create(&PostParams::default(), &pod("web")).await.ok()
    })
    .await;
    let exec = "/api/v1/namespaces/default/pods/web/exec?command=true&stdout=true";
    // Root runs nothing: the copy is never scheduled, so neither is the pod.
    assert_eq!(
        plain(&team, exec).await,
        (400, "pod web does not have a host assigned".into())
    );
    assert_eq!(
        plain(
            &team,
            "/api/v1/namespaces/default/pods/web/exec?command=true&container=nope"
        )
        .await,
        (400, "container nope is not valid for pod web".into())
    );
    assert_eq!(
        plain(
            &team,
            "/api/v1/namespaces/default/pods/missing/portforward?ports=80"
        )
        .await,
        (404, "pods \"missing\" not found".into())
    );
}

/// A kubectl of the e2e host's build for `kubeconfig`.
fn kubectl(host: &nestkube_e2e::HostCluster, kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(&host.bins().kubectl);
    cmd.arg("--kubeconfig").arg(kubeconfig);
    cmd
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl exec` of `command` in `pod`, with `stdin` if given; `spdy`
/// turns kubectl's WebSocket default off.
fn exec(
    host: &nestkube_e2e::HostCluster,
    kubeconfig: &Path,
    pod: &str,
    spdy: bool,
    stdin: Option<&str>,
    command: &[&str],
) -> Output {
    let mut cmd = kubectl(host, kubeconfig);
    cmd.arg("exec");
    if stdin.is_some() {
        cmd.arg("-i");
    }
    cmd.args([pod, "--"]).args(command);
    if spdy {
        cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    }
    nestkube_e2e::run(cmd, stdin)
}

/// `kubectl attach` to `pod` shows what its container writes from then on:
/// kwok streams the lines appended to the host's attach log (written here,
/// again and again until one shows, since the attach starts reading at the
/// end of the file some time after kubectl starts).
fn attach_shows_output(host: &nestkube_e2e::HostCluster, kubeconfig: &Path, pod: &str, spdy: bool) {
    let mut cmd = kubectl(host, kubeconfig);
    cmd.args(["attach", pod]);
    if spdy {
        cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl attach");
    let stdout = child.stdout.take().expect("stdout");
    let marker = nestkube_e2e::unique_name(&format!("attached-{pod}-{spdy}"));
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let want = marker.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(&want) {
                let _ = seen_tx.send(line);
                break;
            }
        }
    });
    let log = host.dir().join("kwok").join("attach.log");
    let mut seen = None;
    for _ in 0..150 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("the host's attach log");
        writeln!(f, "2026-01-01T00:00:00.000000000Z stdout F {marker}").unwrap();
        if let Ok(line) = seen_rx.recv_timeout(Duration::from_millis(200)) {
            seen = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = seen.unwrap_or_else(|| panic!("attach to {pod} (spdy: {spdy}) showed nothing"));
    assert_eq!(line.trim(), marker);
}

/// `kubectl port-forward` to port 8080 of `pod`: a line sent to the local
/// port comes back (kwok forwards every port to an echo).
fn port_forward_echoes(host: &nestkube_e2e::HostCluster, kubeconfig: &Path, pod: &str, spdy: bool) {
    let mut cmd = kubectl(host, kubeconfig);
    cmd.args([
        "port-forward",
        &format!("pod/{pod}"),
        ":8080",
        "--address",
        "127.0.0.1",
    ]);
    if spdy {
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl port-forward");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // "Forwarding from 127.0.0.1:40123 -> 8080"
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let port: Option<u16> = first
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    let Some(port) = port else {
        let _ = child.kill();
        let mut err = String::new();
        let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        panic!("port-forward printed {first:?}; stderr: {err}");
    };
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let line = format!("ping through {pod} (spdy: {spdy})\n");
    s.write_all(line.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < line.len() {
        let n = s.read(&mut buf).expect("read the echo");
        assert!(n > 0, "the forwarded connection closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(String::from_utf8_lossy(&got), line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_cp_and_port_forward_reach_the_host_pod() {
    let Some(host) = nestkube_e2e::HostCluster::shared() else {
        return;
    };
    let ns = host.namespace("syncer-streams");
    let host_client = common::host_admin(host).await;
    let server = Server::start().await;
    let api = server.running.api.clone();
    let cluster = common::host_placed_cluster(&server, host_client, ns.name(), "streams").await;
    // A child of it: its pods run on the host through `cluster`.
    let (_, inner_client) = virtual_cluster(&api.client_for(&cluster), "inner").await;
    let inner = format!("{cluster}:inner");
    for (client, name) in [(api.client_for(&cluster), "web"), (inner_client, "deep")] {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        wait_for("the virtual pod to be created", || async {
            pods.create(&PostParams::default(), &pod(name)).await.ok()
        })
        .await;
        wait_for_within("the virtual pod to run on a node", 60, || async {
            let p = js(&pods.get(name).await.ok()?);
            let bound = p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
            (p["status"]["phase"] == "Running" && bound).then_some(())
        })
        .await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let outer_kc = common::admin_kubeconfig(&server, &cluster, dir.path());
    let inner_kc = common::admin_kubeconfig(&server, &inner, dir.path());

    // exec over WebSockets and over SPDY, one and two levels deep; kwok
    // runs the command with NESTKUBE_E2E_EXEC=kwok in its environment.
    let probe = ["sh", "-c", "echo exec-$NESTKUBE_E2E_EXEC"];
    for (kc, pod) in [(&outer_kc, "web"), (&inner_kc, "deep")] {
        for spdy in [false, true] {
            let out = ok(exec(host, kc, pod, spdy, None, &probe));
            assert_eq!(out.trim(), "exec-kwok", "{pod}, spdy {spdy}");
        }
    }
    // stdin goes down, stdout up (kwok's exec never sees stdin's end, so
    // the command reads one line); a failure comes back.
    let read_one = ["sh", "-c", "read line; echo got:$line"];
    for spdy in [false, true] {
        let out = ok(exec(
            host,
            &inner_kc,
            "deep",
            spdy,
            Some("from stdin\n"),
            &read_one,
        ));
        assert_eq!(out, "got:from stdin\n", "spdy {spdy}");
    }
    // (kwok reports a command's exit code as an error message.)
    let failed = exec(host, &outer_kc, "web", false, None, &["sh", "-c", "exit 3"]);
    assert!(!failed.status.success(), "{failed:?}");
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("exit status 3"),
        "{failed:?}"
    );
    let missing = exec(host, &outer_kc, "nope", false, None, &["true"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("pods \"nope\" not found"),
        "{missing:?}"
    );

    // cp is tar over exec; kwok's tar runs on this machine, so a file
    // here is "in the pod". (Copying into the pod needs stdin's end, which
    // kwok's exec never sees; the host refuses to finish it too.)
    let in_pod = tempfile::tempdir().expect("tempdir");
    let remote = in_pod.path().join("note.txt");
    std::fs::write(&remote, "copied through two virtual clusters\n").unwrap();
    let back = dir.path().join("back.txt");
    ok(kubectl(host, &inner_kc)
        .arg("cp")
        .arg(format!("deep:{}", remote.display()))
        .arg(&back)
        .output()
        .expect("kubectl cp"));
    assert_eq!(
        std::fs::read_to_string(&back).expect("the file copied out"),
        "copied through two virtual clusters\n"
    );

    // port-forward and attach, both protocols, both levels.
    for (kc, pod) in [(&outer_kc, "web"), (&inner_kc, "deep")] {
        for spdy in [false, true] {
            port_forward_echoes(host, kc, pod, spdy);
            attach_shows_output(host, kc, pod, spdy);
        }
    }

    // RBAC: `get pods/exec` alone is not enough for a WebSocket exec
    // (upstream requires `create` too since 1.35).
    let cluster_client = api.client_for(&cluster);
    let rbac = |kind: &str, body: serde_json::Value| {
        let gvk = kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            cluster_client.clone(),
            "default",
            &kube::api::ApiResource::from_gvk(&gvk),
        );
        async move {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(body).unwrap(),
            )
            .await
            .expect("create RBAC object");
        }
    };
    rbac(
        "Role",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "exec-get", "namespace": "default"},
               "rules": [{"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["get"]}]}),
    )
    .await;
    rbac(
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "exec-get", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "exec-get"},
               "subjects": [{"kind": "User", "name": "getter", "apiGroup": "rbac.authorization.k8s.io"}]}),
    )
    .await;
    let denied = {
        let mut cmd = kubectl(host, &outer_kc);
        cmd.args(["--as", "getter", "exec", "web", "--", "true"]);
        nestkube_e2e::run(cmd, None)
    };
    assert!(!denied.status.success(), "{denied:?}");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("cannot create resource \"pods/exec\""),
        "{stderr}"
    );
    api.clusters.remove(&inner).await.expect("remove inner");
    api.clusters.remove(&cluster).await.expect("remove");
}
