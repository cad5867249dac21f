//! End-to-end harness: access to a real Kubernetes host control plane (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and kwok's fake
//! nodes, all v1.37.2 built from Go modules by `e2e/setup`) and to the real
//! clients we test with (kubectl, helm, the client-go `checker`, Python's
//! `kubernetes` package).
//!
//! It owns starting/reusing the host for a test process and running those
//! clients; it must never depend on kube-rs (it tests our apiserver *with*
//! other clients), and never leave processes behind.
//!
//! ```no_run
//! let Some(host) = nestkube_e2e::HostCluster::shared() else { return };
//! let ns = host.namespace("demo");
//! host.kubectl_ok(&["get", "nodes"]);
//! host.kubectl_ok(&["-n", ns.name(), "create", "configmap", "x"]);
//! ```
//!
//! Selection (see `e2e/README.md`):
//! - `NESTKUBE_E2E_HOST_DIR=DIR`: use the host already running in DIR
//!   (`e2e/hostctl up DIR`); it is left running.
//! - otherwise one host is started per test process in a temporary directory
//!   (`e2e/hostctl up ... --owner-pid <this process>`) and stopped when the
//!   process exits (atexit, plus hostctl's watchdog if the process is killed).
//! - `NESTKUBE_E2E=0`: e2e tests are skipped, loudly (`shared()` returns None).
//!   Otherwise a missing build is a test failure telling you to run `e2e/setup`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod relay;
pub mod tls;
pub mod webhook;

/// The e2e directory of this checkout (holds `setup`, `hostctl`, `host/`).
pub fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Paths of everything `e2e/setup` built (from `e2e/setup --print-env`).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// kube-apiserver (v1.37.2).
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager (v1.37.2).
    pub kube_controller_manager: PathBuf,
    /// kube-scheduler (v1.37.2).
    pub kube_scheduler: PathBuf,
    /// etcd, the host's storage.
    pub etcd: PathBuf,
    /// kwok, which runs the host's fake nodes.
    pub kwok: PathBuf,
    /// kubectl (v1.37.2).
    pub kubectl: PathBuf,
    /// helm (3).
    pub helm: PathBuf,
    /// helm 4 (installs and upgrades by server-side apply).
    pub helm4: PathBuf,
    /// client-go checker: `checker {version|crud|informer|watch|custom|ssa|all} --kubeconfig F --namespace N`,
    /// and `checker webhook`: a kubebuilder-style (controller-runtime) webhook server of a CronTab resource.
    pub checker: PathBuf,
    /// Python interpreter of a virtualenv with the `kubernetes` package installed.
    pub python: PathBuf,
    /// Third-party CRD sets, one directory each (`gateway-api-standard`,
    /// `gateway-api-experimental`, `gateway-api-examples`, `cert-manager`,
    /// `prometheus-operator`), copied unmodified from their Go modules.
    pub crds: PathBuf,
    /// Upstream's `k8s.io/sample-controller`: a client-go operator that
    /// creates a Deployment per `Foo` and writes `status.availableReplicas`
    /// (`sample-controller --kubeconfig F`).
    pub sample_controller: PathBuf,
    /// sample-controller's `artifacts/examples` (`crd.yaml`,
    /// `crd-status-subresource.yaml`, `example-foo.yaml`), unmodified.
    pub sample_controller_artifacts: PathBuf,
}

impl Binaries {
    /// Reads the artifact paths from `e2e/setup --print-env`; fails (listing
    /// what is missing) if `e2e/setup` has not built them.
    pub fn locate() -> Result<Self> {
        let out = Command::new(e2e_dir().join("setup"))
            .arg("--print-env")
            .output()
            .context("running e2e/setup --print-env")?;
        let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !out.status.success() {
            bail!(
                "e2e binaries are not built ({}). Run `e2e/setup` first \
                 (or set NESTKUBE_E2E=0 to skip e2e tests)",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let get = |k: &str| -> Result<PathBuf> {
            env.get(k)
                .map(PathBuf::from)
                .with_context(|| format!("e2e/setup --print-env did not print {k}"))
        };
        Ok(Self {
            kube_apiserver: get("NESTKUBE_E2E_KUBE_APISERVER")?,
            kube_controller_manager: get("NESTKUBE_E2E_KUBE_CONTROLLER_MANAGER")?,
            kube_scheduler: get("NESTKUBE_E2E_KUBE_SCHEDULER")?,
            etcd: get("NESTKUBE_E2E_ETCD")?,
            kwok: get("NESTKUBE_E2E_KWOK")?,
            kubectl: get("NESTKUBE_E2E_KUBECTL")?,
            helm: get("NESTKUBE_E2E_HELM")?,
            helm4: get("NESTKUBE_E2E_HELM4")?,
            checker: get("NESTKUBE_E2E_CHECKER")?,
            python: get("NESTKUBE_E2E_PYTHON")?,
            crds: get("NESTKUBE_E2E_CRDS")?,
            sample_controller: get("NESTKUBE_E2E_SAMPLE_CONTROLLER")?,
            sample_controller_artifacts: get("NESTKUBE_E2E_SAMPLE_CONTROLLER_ARTIFACTS")?,
        })
    }
}

/// One artifact of `e2e/setup --print-env` (`var`, e.g.
/// `NESTKUBE_E2E_SAMPLE_CONTROLLER`), for a test that needs only it and no
/// host: `e2e/setup <component>` builds just that one. Fails (naming the
/// component's setup) when it is not built.
pub fn artifact(var: &str) -> Result<PathBuf> {
    let out = Command::new(e2e_dir().join("setup"))
        .arg("--print-env")
        .output()
        .context("running e2e/setup --print-env")?;
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(var)?.strip_prefix('='))
        .map(PathBuf::from)
        .with_context(|| format!("e2e/setup --print-env did not print {var}"))?;
    let mut stamp = path.clone().into_os_string();
    stamp.push(".stamp");
    if !path.exists() || !Path::new(&stamp).exists() {
        bail!(
            "{} is not built. Run `e2e/setup` first (or set NESTKUBE_E2E=0 to skip e2e tests)",
            path.display()
        );
    }
    Ok(path)
}

/// A running host control plane.
#[derive(Debug)]
pub struct HostCluster {
    dir: PathBuf,
    bins: Binaries,
    owned: bool,
}

static SHARED: OnceLock<std::result::Result<HostCluster, String>> = OnceLock::new();
static OWNED_DIR: OnceLock<PathBuf> = OnceLock::new();

// The only unsafe code in the workspace (the lint is `deny`): a process-exit
// hook has no safe std equivalent, and a static's Drop never runs.
#[allow(unsafe_code)]
unsafe extern "C" {
    fn atexit(cb: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn stop_owned_host() {
    if let Some(dir) = OWNED_DIR.get() {
        let _ = Command::new(e2e_dir().join("hostctl"))
            .arg("down")
            .arg(dir)
            .arg("--purge")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// True when e2e tests are switched off with `NESTKUBE_E2E=0`.
pub fn e2e_disabled() -> bool {
    std::env::var("NESTKUBE_E2E").is_ok_and(|v| v == "0")
}

impl HostCluster {
    /// The host for this test process, started on first use (see the crate
    /// docs). Returns None (after printing why) only when `NESTKUBE_E2E=0`;
    /// panics with instructions if the host cannot be built or started.
    pub fn shared() -> Option<&'static HostCluster> {
        if e2e_disabled() {
            eprintln!("SKIPPED: NESTKUBE_E2E=0, not running e2e tests against a host cluster");
            return None;
        }
        match SHARED.get_or_init(|| Self::start_or_attach().map_err(|e| format!("{e:#}"))) {
            Ok(h) => Some(h),
            Err(e) => panic!("e2e host cluster unavailable: {e}"),
        }
    }

    fn start_or_attach() -> Result<Self> {
        let bins = Binaries::locate()?;
        if let Ok(dir) = std::env::var("NESTKUBE_E2E_HOST_DIR") {
            let dir = PathBuf::from(dir);
            let st = Command::new(e2e_dir().join("hostctl"))
                .arg("status")
                .arg(&dir)
                .output()?;
            if !st.status.success() {
                bail!(
                    "NESTKUBE_E2E_HOST_DIR={} is not a running host (start it with e2e/hostctl up {})",
                    dir.display(),
                    dir.display()
                );
            }
            return Ok(Self {
                dir,
                bins,
                owned: false,
            });
        }
        let dir = std::env::temp_dir().join(format!("nestkube-e2e-host-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        OWNED_DIR.set(dir.clone()).ok();
        // SAFETY: registering a plain extern "C" function with libc's atexit.
        #[allow(unsafe_code)] // see the `atexit` declaration
        unsafe {
            atexit(stop_owned_host);
        }
        let t0 = Instant::now();
        let out = Command::new(e2e_dir().join("hostctl"))
            .arg("up")
            .arg(&dir)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .context("running e2e/hostctl up")?;
        if !out.status.success() {
            bail!(
                "e2e/hostctl up {} failed:\n{}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!(
            "nestkube-e2e: host cluster up in {} ({:.1}s)",
            dir.display(),
            t0.elapsed().as_secs_f64()
        );
        Ok(Self {
            dir,
            bins,
            owned: true,
        })
    }

    /// The host's directory (pki/, logs/, admin.kubeconfig, env).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this process started the host (and will stop it at exit).
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// Admin (system:masters, client certificate) kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// Writes to `path` a copy of the admin kubeconfig whose server is
    /// `server` (e.g. a [`relay::Relay::url`] in front of this host; the
    /// serving certificate names 127.0.0.1, so TLS still verifies).
    pub fn kubeconfig_via(&self, server: &str, path: &Path) -> Result<()> {
        let admin = std::fs::read_to_string(self.kubeconfig())?;
        let current = self.server();
        if current.is_empty() || !admin.contains(&format!("server: {current}")) {
            bail!("the admin kubeconfig does not name the host's server {current:?}");
        }
        std::fs::write(
            path,
            admin.replace(&format!("server: {current}"), &format!("server: {server}")),
        )?;
        Ok(())
    }

    /// The host's apiserver address, `127.0.0.1:<port>` (from [`Self::server`]).
    pub fn server_addr(&self) -> Result<std::net::SocketAddr> {
        let server = self.server();
        let authority = server.trim_start_matches("https://");
        authority
            .parse()
            .with_context(|| format!("the host's server {server:?} is not an address"))
    }

    /// Admin kubeconfig authenticating with a static bearer token.
    pub fn admin_token_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin-token.kubeconfig")
    }

    /// Kubeconfig of `e2e-user`, a token user with no RBAC grants.
    pub fn user_kubeconfig(&self) -> PathBuf {
        self.dir.join("user-token.kubeconfig")
    }

    /// The apiserver URL, e.g. `https://127.0.0.1:41234`.
    pub fn server(&self) -> String {
        std::fs::read_to_string(self.dir.join("env"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("HOST_API=").map(str::to_string))
            })
            .unwrap_or_default()
    }

    /// kubectl's (and helm's) discovery cache for this host, inside its
    /// directory so that nothing is written to `$HOME`.
    pub fn kubectl_cache_dir(&self) -> PathBuf {
        self.dir.join("kubectl-cache")
    }

    /// The CA certificate the apiserver's serving certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("pki/ca.crt")
    }

    /// The binaries `e2e/setup` built, for tests that run one directly.
    pub fn bins(&self) -> &Binaries {
        &self.bins
    }

    /// A command for `program` with `KUBECONFIG` set to the admin kubeconfig.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.kubectl_cache_dir());
        c
    }

    /// Runs kubectl (v1.37.2, built by e2e/setup) as admin.
    pub fn kubectl<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `input` on stdin (e.g. `apply -f -`).
    pub fn kubectl_stdin<S: AsRef<OsStr>>(&self, args: &[S], input: Option<&str>) -> Output {
        let mut c = self.command(&self.bins.kubectl);
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        run(c, input)
    }

    /// Runs kubectl and returns stdout; panics with stderr if it fails.
    pub fn kubectl_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        checked(self.kubectl(args), &self.bins.kubectl, args)
    }

    /// `kubectl apply -f -` with `manifest`; panics if it fails.
    pub fn apply(&self, manifest: &str) -> String {
        let args = ["apply", "-f", "-"];
        checked(
            self.kubectl_stdin(&args, Some(manifest)),
            &self.bins.kubectl,
            &args,
        )
    }

    /// Applies the CustomResourceDefinition manifest `file` and waits until
    /// CRD `name` is Established. The apply is retried: tests of other
    /// processes may be applying it at the same moment.
    pub fn apply_crd(&self, file: &Path, name: &str) {
        wait_for(
            &format!("the CRD {name} applied"),
            Duration::from_secs(30),
            || {
                let args = [OsStr::new("apply"), OsStr::new("-f"), file.as_os_str()];
                self.kubectl(&args).status.success().then_some(())
            },
        );
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=30s",
        ]);
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn get_json<S: AsRef<OsStr>>(&self, args: &[S]) -> serde_json::Value {
        let mut all: Vec<&OsStr> = vec![OsStr::new("get")];
        all.extend(args.iter().map(AsRef::as_ref));
        all.extend([OsStr::new("-o"), OsStr::new("json")]);
        let out = self.kubectl_ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get: bad JSON ({e}): {out}"))
    }

    /// A fresh namespace with a unique name starting with `prefix`; deleted on drop.
    pub fn namespace(&self, prefix: &str) -> TestNamespace<'_> {
        let name = unique_name(prefix);
        self.kubectl_ok(&["create", "namespace", &name]);
        TestNamespace { host: self, name }
    }
}

/// A namespace created for one test; deleted (without waiting) on drop.
pub struct TestNamespace<'a> {
    host: &'a HostCluster,
    name: String,
}

impl TestNamespace<'_> {
    /// The namespace's name (unique per test process).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .host
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// `prefix-<pid>-<counter>`: unique across test threads and processes sharing a host.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `cmd` (optionally feeding `input` on stdin) and collects its output.
pub fn run(mut cmd: Command, input: Option<&str>) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for child")
}

fn checked<S: AsRef<OsStr>>(out: Output, program: &Path, args: &[S]) -> String {
    if !out.status.success() {
        let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        panic!(
            "{} {} failed ({}):\nstdout: {}\nstderr: {}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 200ms until it returns Some, or panics after `timeout`
/// describing `what` (never a bare sleep as synchronisation).
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll(timeout, Duration::from_millis(200), f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `f` every `every` until it returns Some, or returns None once
/// `timeout` has passed: [`wait_for`] for callers that report a timeout
/// themselves (the one polling loop of the blocking tests).
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
