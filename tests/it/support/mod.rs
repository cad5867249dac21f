//! Shared helpers for tests that run the real `nestkube` binary and real clients.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `nestkube serve` process on 127.0.0.1 (a free port unless given one),
/// killed on drop.
pub struct Server {
    child: Child,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `data_dir/root.kubeconfig`.
    pub kubeconfig: PathBuf,
    /// The `--listen` address it was started with (port 0: any free one).
    pub listen: SocketAddr,
    /// The extra flags it was started with.
    extra: Vec<OsString>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `dir` (kept after drop).
    pub fn start_in(dir: &Path) -> Server {
        Server::start_in_with(dir, &[])
    }

    /// Starts a server on a fresh data directory with `extra` flags of
    /// `nestkube serve` (e.g. `--host-kubeconfig FILE`).
    pub fn start_with(extra: &[&OsStr]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in_with(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `dir` (kept after drop) with `extra` flags.
    pub fn start_in_with(dir: &Path, extra: &[&OsStr]) -> Server {
        Server::start_at(dir, "127.0.0.1:0".parse().unwrap(), extra)
    }

    /// Starts a server on `dir` (kept after drop) listening on `listen`
    /// (e.g. [`free_address`], so that clients still reach it after a
    /// [`Server::restart`]) with `extra` flags.
    pub fn start_at(dir: &Path, listen: SocketAddr, extra: &[&OsStr]) -> Server {
        let server = Server {
            child: spawn(dir, listen, extra),
            data_dir: dir.to_path_buf(),
            kubeconfig: dir.join("root.kubeconfig"),
            listen,
            extra: extra.iter().map(|a| a.to_os_string()).collect(),
            _tmp: None,
        };
        server.wait_ready();
        server
    }

    /// Kills the server (if it runs) and starts it again on the same data
    /// directory, `--listen` address and flags.
    pub fn restart(&mut self) {
        self.kill();
        let extra: Vec<&OsStr> = self.extra.iter().map(OsString::as_os_str).collect();
        self.child = spawn(&self.data_dir, self.listen, &extra);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.kubeconfig.exists() {
                let out = Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&self.kubeconfig)
                    .args(["get", "--raw", "/readyz"])
                    .output();
                if out.is_ok_and(|o| o.status.success()) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nestkube did not become ready within 60s");
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (as a crash or an OOM kill would) and wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `nestkube serve` on `dir` listening on `listen` with `extra`
/// flags, once its previous `root.kubeconfig` is gone (a fresh one tells
/// it is up).
fn spawn(dir: &Path, listen: SocketAddr, extra: &[&OsStr]) -> Child {
    let _ = std::fs::remove_file(dir.join("root.kubeconfig"));
    Command::new(env!("CARGO_BIN_EXE_nestkube"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .arg("--listen")
        .arg(listen.to_string())
        .args(extra)
        .env(
            "NESTKUBE_LOG",
            std::env::var("NESTKUBE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn nestkube")
}

/// A free address on 127.0.0.1 (for a server that must keep its port
/// across restarts).
pub fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One kubectl binary pointed at a kubeconfig.
#[derive(Clone)]
pub struct Kubectl {
    /// Path of the binary.
    pub bin: PathBuf,
    /// Kubeconfig.
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    /// Runs kubectl; returns the output whatever the exit status.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    /// A command with the kubeconfig set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        c
    }

    /// Runs kubectl and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{} {:?} failed:\nstdout: {}\nstderr: {}",
            self.bin.display(),
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with stdin and requires success.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("kubectl output");
        assert!(
            out.status.success(),
            "kubectl {:?} failed:\nstdout: {}\nstderr: {}",
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The client's minor version (e.g. 32).
    pub fn minor(&self) -> u32 {
        let out = Command::new(&self.bin)
            .args(["version", "--client", "-o", "json"])
            .output()
            .expect("kubectl version");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["clientVersion"]["minor"]
            .as_str()
            .unwrap_or("0")
            .trim_end_matches('+')
            .parse()
            .unwrap_or(0)
    }
}

/// The kubectl binaries to test with: the installed one and two older minors
/// (from `NESTKUBE_KUBECTLS`, a colon-separated list, or the Google Cloud SDK's
/// versioned copies).
pub fn kubectls() -> Vec<PathBuf> {
    if let Ok(list) = std::env::var("NESTKUBE_KUBECTLS") {
        return list
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    let mut bins = vec![PathBuf::from("kubectl")];
    let sdk = Path::new("/usr/lib/google-cloud-sdk/bin");
    let installed_minor = Kubectl {
        bin: bins[0].clone(),
        kubeconfig: PathBuf::new(),
    }
    .minor();
    for older in [
        installed_minor.saturating_sub(1),
        installed_minor.saturating_sub(2),
    ] {
        let p = sdk.join(format!("kubectl.1.{older}"));
        if p.exists() {
            bins.push(p);
        } else {
            eprintln!(
                "note: {} not found; testing fewer kubectl minors",
                p.display()
            );
        }
    }
    // The kubectl of the server's own version, built by e2e/setup, when present.
    if let Ok(e2e) = nestkube_e2e::Binaries::locate() {
        bins.push(e2e.kubectl);
    }
    bins
}

/// Polls `f` every 100ms until it returns true (true) or `timeout` passes
/// (false); the loop is the e2e crate's (`nestkube_e2e::wait_for` is its
/// panicking form, which the tests against the host use).
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    nestkube_e2e::poll(timeout, Duration::from_millis(100), || f().then_some(())).is_some()
}

/// Keys left in storage under `prefix` (the server must be stopped).
pub fn keys_under(data_dir: &Path, prefix: &str) -> Vec<String> {
    let storage = nestkube_storage::Backend::default()
        .open(data_dir.join("storage"))
        .expect("open storage");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(storage.list(prefix, Default::default()))
        .expect("list")
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect()
}

/// Decodes the kubeconfig in Secret `ns/<name>-kubeconfig` (read with
/// `parent`, the cluster holding VirtualCluster `name`), writes it into
/// `dir` and returns a kubectl (the same binary) using it.
pub fn tenant_kubectl(parent: &Kubectl, dir: &Path, ns: &str, name: &str) -> Kubectl {
    let config = parent.ok(&[
        "get",
        "secret",
        "-n",
        ns,
        &format!("{name}-kubeconfig"),
        "-o",
        r#"go-template={{index .data "value" | base64decode}}"#,
    ]);
    assert!(config.contains(&format!("/clusters/{name}\n")), "{config}");
    let path = dir.join(format!("{ns}-{name}.kubeconfig"));
    std::fs::write(&path, config).expect("write tenant kubeconfig");
    Kubectl {
        bin: parent.bin.clone(),
        kubeconfig: path,
    }
}

/// `kubectl <args>` against `kubeconfig` with `input` on stdin, whatever
/// the exit status: (success, stdout as JSON or null, trimmed stderr).
pub fn kubectl_with_stdin(
    bin: &str,
    kubeconfig: &Path,
    args: &[&str],
    input: &str,
) -> (bool, serde_json::Value, String) {
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("kubectl");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// A Ready VirtualCluster `name` in the `default` namespace of `server`'s
/// root cluster, with `spec` (a YAML flow mapping, `{}` for the defaults),
/// and kubectl for it once its default ServiceAccount exists.
pub fn virtual_cluster(server: &Server, name: &str, spec: &str) -> Kubectl {
    let root = Kubectl {
        bin: "kubectl".into(),
        kubeconfig: server.kubeconfig.clone(),
    };
    root.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: tenancy.nestkube.io/v1alpha1\nkind: VirtualCluster\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
        ),
    );
    root.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("vc/{name}"),
        "--timeout=30s",
    ]);
    let k = tenant_kubectl(&root, &server.data_dir, "default", name);
    assert!(
        wait_for(Duration::from_secs(60), || k
            .output(&["get", "serviceaccount", "default"])
            .status
            .success()),
        "the default ServiceAccount of {name}"
    );
    k
}

/// An address of this machine that is not loopback: `ip` on one end of a
/// veth pair made for the test (named `<prefix><pid>`), removed on drop.
/// Tenants may never name loopback addresses, so a process a tenant's
/// cluster must reach (a `url` webhook) listens here; nothing leaves the
/// machine.
pub struct LocalAddress {
    link: String,
    /// The address.
    pub ip: IpAddr,
}

impl LocalAddress {
    /// `None` (with a SKIPPED line) where interfaces cannot be made.
    pub fn create(prefix: &str, ip: IpAddr) -> Option<Self> {
        let n = std::process::id() % 10_000;
        let link = format!("{prefix}{n}");
        let peer = format!("{prefix}{n}p");
        let _ = Command::new("ip").args(["link", "del", &link]).output();
        let steps: [&[&str]; 4] = [
            &["link", "add", &link, "type", "veth", "peer", "name", &peer],
            &["addr", "add", &format!("{ip}/32"), "dev", &link],
            &["link", "set", &link, "up"],
            &["link", "set", &peer, "up"],
        ];
        for args in steps {
            let ok = Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                eprintln!("SKIPPED: cannot create a veth pair (ip {args:?})");
                let _ = Command::new("ip").args(["link", "del", &link]).output();
                return None;
            }
        }
        Some(Self { link, ip })
    }
}

impl Drop for LocalAddress {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

/// A kube client of `kubeconfig`.
pub async fn api_client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// What an API server answered, as the parity tests compare it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status code.
    pub code: u16,
    /// A refusal's `reason` (empty on success).
    pub reason: String,
    /// A refusal's `message` (empty on success).
    pub message: String,
    /// The `Warning` headers' texts.
    pub warnings: Vec<String>,
    /// The body.
    pub body: serde_json::Value,
}

/// `method path` with `body` (JSON), whatever the answer.
pub async fn call(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Answer {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(
            body.map(|b| serde_json::to_vec(b).unwrap())
                .unwrap_or_default(),
        ))
        .unwrap();
    let resp = client.send(req).await.expect("send");
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let text = v.strip_prefix("299 - \"").and_then(|t| t.strip_suffix('"'));
            text.unwrap_or(v)
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        })
        .collect();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let (reason, message) = if code >= 400 {
        (
            body["reason"].as_str().unwrap_or("").to_string(),
            body["message"].as_str().unwrap_or("").to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    Answer {
        code,
        reason,
        message,
        warnings,
        body,
    }
}
