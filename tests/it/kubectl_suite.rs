//! kubectl scenarios against a running `nestkube serve`, with the installed
//! kubectl and two older minors: what a user does every day must work as it
//! does against kube-apiserver.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Kubectl, Server, kubectls, wait_for};

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox:1.36
        command: ["sleep", "infinity"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"#;

fn scenario(k: &Kubectl, ns: &str) {
    // Server identity and discovery.
    let version = k.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"gitVersion\": \"v1.37"), "{version}");
    let resources = k.ok(&["api-resources"]);
    for needle in [
        "pods",
        "po",
        "deployments",
        "deploy",
        "apps/v1",
        "runtimeclasses",
        "customresourcedefinitions",
    ] {
        assert!(
            resources.contains(needle),
            "api-resources lacks {needle}:\n{resources}"
        );
    }
    let versions = k.ok(&["api-versions"]);
    assert!(
        versions.contains("apps/v1") && versions.contains("v1"),
        "{versions}"
    );

    // Namespaces.
    let namespaces = k.ok(&["get", "namespaces"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(ns), "{namespaces}");
    }
    k.ok(&["create", "namespace", ns]);
    assert!(
        k.ok(&["get", "ns", ns, "-o", "jsonpath={.status.phase}"])
            .contains("Active")
    );

    // Client-side apply: create, no-op, change.
    let applied = k.ok_stdin(&["apply", "-n", ns, "-f", "-"], APP);
    assert!(applied.contains("deployment.apps/web created"), "{applied}");
    let again = k.ok_stdin(&["apply", "-n", ns, "-f", "-"], APP);
    assert!(again.contains("deployment.apps/web unchanged"), "{again}");
    assert!(again.contains("configmap/web-config unchanged"), "{again}");
    let changed = APP.replace("nginx:1.27", "nginx:1.28");
    let third = k.ok_stdin(&["apply", "-n", ns, "-f", "-"], &changed);
    assert!(third.contains("deployment.apps/web configured"), "{third}");
    let images = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(images, "nginx:1.28 busybox:1.36");
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );

    // Defaults as upstream.
    let yaml = k.ok(&["get", "deploy", "web", "-n", ns, "-o", "yaml"]);
    for needle in [
        "revisionHistoryLimit: 10",
        "progressDeadlineSeconds: 600",
        "maxSurge: 25%",
        "terminationMessagePolicy: File",
    ] {
        assert!(
            yaml.contains(needle),
            "deployment yaml lacks {needle}:\n{yaml}"
        );
    }

    // Output formats.
    let table = k.ok(&["get", "deploy,svc,cm", "-n", ns]);
    assert!(
        table.contains("deployment.apps/web")
            && table.contains("service/web")
            && table.contains("configmap/web-config"),
        "{table}"
    );
    let wide = k.ok(&["get", "deploy", "-n", ns, "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS") && wide.contains("nginx:1.28"),
        "{wide}"
    );
    let json = k.ok(&["get", "cm", "web-config", "-n", ns, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["data"]["greeting"], "hello");
    let cols = k.ok(&[
        "get",
        "cm",
        "-n",
        ns,
        "-o",
        "custom-columns=NAME:.metadata.name,GREETING:.data.greeting",
    ]);
    assert!(
        cols.contains("web-config") && cols.contains("hello"),
        "{cols}"
    );
    let all = k.ok(&["get", "all", "-n", ns]);
    assert!(
        all.contains("deployment.apps/web") && all.contains("service/web"),
        "{all}"
    );

    // Label, annotate, the three patch types, scale, set image.
    k.ok(&["label", "cm", "web-config", "-n", ns, "tier=front"]);
    k.ok(&["annotate", "cm", "web-config", "-n", ns, "owner=team-a"]);
    let selected = k.ok(&[
        "get",
        "cm",
        "-n",
        ns,
        "-l",
        "tier=front,app in (web)",
        "-o",
        "name",
    ]);
    assert_eq!(selected.trim(), "configmap/web-config");
    k.ok(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"data":{"merge":"yes"}}"#,
    ]);
    k.ok(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        ns,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/json","value":"yes"}]"#,
    ]);
    k.ok(&[
        "patch", "deploy", "web", "-n", ns, "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.37"}]}}}}"#,
    ]);
    let images = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(
        images, "nginx:1.28 busybox:1.37",
        "strategic merge patch must merge containers by name"
    );
    let data = k.ok(&[
        "get",
        "cm",
        "web-config",
        "-n",
        ns,
        "-o",
        "jsonpath={.data.merge}{.data.json}{.metadata.annotations.owner}",
    ]);
    assert_eq!(data, "yesyesteam-a");
    k.ok(&["scale", "deploy", "web", "-n", ns, "--replicas=3"]);
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    k.ok(&["set", "image", "deploy/web", "-n", ns, "web=nginx:1.29"]);
    let images = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(images, "nginx:1.29");

    // Edit with a scripted editor.
    let editor = std::env::temp_dir().join(format!("nestkube-editor-{ns}.sh"));
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/greeting: hello/greeting: edited/' \"$1\"\n",
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = k
        .command(&["edit", "cm", "web-config", "-n", ns])
        .env("KUBE_EDITOR", &editor)
        .output()
        .expect("edit");
    assert!(
        out.status.success(),
        "edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "web-config",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.greeting}"
        ]),
        "edited"
    );

    // Describe.
    let described = k.ok(&["describe", "cm", "web-config", "-n", ns]);
    assert!(
        described.contains("Name:") && described.contains("web-config"),
        "{described}"
    );

    // Errors.
    let err = k.fails(&["get", "cm", "missing", "-n", ns]);
    assert!(err.contains("configmaps \"missing\" not found"), "{err}");
    let err = k.fails(&["create", "namespace", ns]);
    assert!(err.contains("already exists"), "{err}");
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nbogus: field\n";
    let out = k
        .command(&["create", "-n", ns, "--validate=strict", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = out.expect("spawn");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), bad.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        !out.status.success(),
        "strict validation must refuse unknown fields"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field") && err.contains("bogus"),
        "{err}"
    );
    k.fails(&["get", "cm", "bad", "-n", ns]);

    // Watch receives events.
    let mut watch = k
        .command(&["get", "cm", "-n", ns, "--watch", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The header and the initial list arrive first; then a new object.
    let mut initial = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if line.contains("web-config") {
            assert!(line.contains("ADDED"), "{line}");
            initial = true;
            break;
        }
    }
    assert!(
        initial,
        "kubectl get --watch did not list the existing configmap"
    );
    k.ok(&[
        "create",
        "configmap",
        "watched",
        "-n",
        ns,
        "--from-literal=a=b",
    ]);
    let mut saw = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if line.contains("watched") {
            assert!(line.contains("ADDED"), "{line}");
            saw = true;
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(saw, "kubectl get --watch did not see the new configmap");

    // Explain uses the OpenAPI documents.
    let explain = k.ok(&["explain", "pod.spec.containers"]);
    assert!(
        explain.contains("FIELDS") && explain.contains("image"),
        "{explain}"
    );

    // Delete and wait.
    k.ok(&["delete", "cm", "watched", "-n", ns]);
    k.ok(&[
        "wait",
        "--for=delete",
        "cm/watched",
        "-n",
        ns,
        "--timeout=20s",
    ]);
    k.ok(&["delete", "-n", ns, "deploy/web", "svc/web"]);
    assert!(wait_for(Duration::from_secs(10), || !k
        .ok(&["get", "deploy", "-n", ns, "-o", "name"])
        .contains("web")));
}

#[test]
fn kubectl_scenarios_on_three_minors() {
    let server = Server::start();
    let bins = kubectls();
    assert!(!bins.is_empty(), "no kubectl found");
    for bin in bins {
        let k = Kubectl {
            bin,
            kubeconfig: server.kubeconfig.clone(),
        };
        let minor = k.minor();
        eprintln!("kubectl scenarios with {} (1.{minor})", k.bin.display());
        scenario(&k, &format!("suite-{minor}"));
    }
}

#[test]
fn objects_and_resource_versions_survive_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_in(tmp.path());
    let k = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    k.ok(&["create", "configmap", "keep", "--from-literal=a=b"]);
    let rv_before: u64 = k
        .ok(&[
            "get",
            "cm",
            "keep",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .expect("rv");
    server.kill();
    let server = Server::start_in(tmp.path());
    let k = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    assert_eq!(
        k.ok(&["get", "cm", "keep", "-o", "jsonpath={.data.a}"]),
        "b"
    );
    let rv_same: u64 = k
        .ok(&[
            "get",
            "cm",
            "keep",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .expect("rv");
    assert_eq!(rv_before, rv_same);
    k.ok(&["create", "configmap", "after", "--from-literal=a=b"]);
    let rv_after: u64 = k
        .ok(&[
            "get",
            "cm",
            "after",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .expect("rv");
    assert!(
        rv_after > rv_before,
        "resourceVersions must keep increasing across restarts"
    );
}
