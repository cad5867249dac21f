//! A throwaway single-member etcd on 127.0.0.1 for tests and benchmarks of the etcd backend.
//!
//! It owns one etcd process and its temporary data directory: free ports, started from the binary
//! named by `NESTKUBE_E2E_ETCD` or else by `e2e/setup --print-env` (which builds it), ready once it answers a linearizable
//! read, killed and deleted on drop. It must never be used for data that matters, and never
//! listen anywhere but the loopback address.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{EtcdConfig, EtcdStorage, Storage, StorageConfig};

/// Environment variable naming the etcd binary (printed by `e2e/setup --print-env`).
pub const ETCD_BINARY_ENV: &str = "NESTKUBE_E2E_ETCD";

/// Errors of starting a [`LocalEtcd`].
#[derive(Debug, thiserror::Error)]
pub enum LocalEtcdError {
    /// No etcd binary: `NESTKUBE_E2E_ETCD` is unset or names no file.
    #[error(
        "no etcd binary: set {ETCD_BINARY_ENV} (e2e/setup builds one; \
         `eval \"$(e2e/setup --print-env)\"`){0}"
    )]
    NoBinary(String),
    /// The process could not be started or did not become ready.
    #[error("etcd did not start: {0}")]
    Start(String),
}

/// A running etcd, killed on drop.
pub struct LocalEtcd {
    child: Child,
    /// The client URL, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16, LocalEtcdError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LocalEtcdError::Start(e.to_string()))
}

impl LocalEtcd {
    /// The etcd binary: `NESTKUBE_E2E_ETCD`, else what `e2e/setup --print-env` of this source
    /// tree names; an error if that file does not exist.
    pub fn binary() -> Result<PathBuf, LocalEtcdError> {
        let path = match std::env::var_os(ETCD_BINARY_ENV).filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => {
                Self::from_e2e_setup().ok_or_else(|| LocalEtcdError::NoBinary(String::new()))?
            }
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(LocalEtcdError::NoBinary(format!(
                " ({} does not exist)",
                path.display()
            )))
        }
    }

    /// Asks the e2e harness of the source tree this crate was built from (as `nestkube-e2e`
    /// does); `None` without one.
    fn from_e2e_setup() -> Option<PathBuf> {
        let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/setup");
        if !setup.is_file() {
            return None;
        }
        let out = Command::new(setup)
            .arg("--print-env")
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let want = format!("{ETCD_BINARY_ENV}=");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(&want).map(PathBuf::from))
    }

    /// For tests that need etcd: [`LocalEtcd::start`], or `None` (printing
    /// `SKIPPED`) when there is no binary and `NESTKUBE_E2E=0` says the e2e
    /// components are not wanted; any other failure panics, so a test never
    /// passes silently without etcd where the harness should provide it.
    pub async fn start_for_test() -> Option<LocalEtcd> {
        if Self::binary().is_err() && std::env::var("NESTKUBE_E2E").as_deref() == Ok("0") {
            println!("SKIPPED: no etcd binary ({ETCD_BINARY_ENV}) and NESTKUBE_E2E=0");
            return None;
        }
        Some(
            Self::start()
                .await
                .unwrap_or_else(|e| panic!("this test needs etcd: {e}")),
        )
    }

    /// Starts etcd on free loopback ports and waits (≤ 30 s) until it serves reads.
    pub async fn start() -> Result<LocalEtcd, LocalEtcdError> {
        let binary = Self::binary()?;
        let mut last = String::new();
        // A port picked free can be taken before etcd binds it: try a few pairs.
        for _ in 0..3 {
            match Self::try_start(&binary).await {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last = e.to_string(),
            }
        }
        Err(LocalEtcdError::Start(last))
    }

    async fn try_start(binary: &Path) -> Result<LocalEtcd, LocalEtcdError> {
        let start = |e: std::io::Error| LocalEtcdError::Start(e.to_string());
        let dir = tempfile::Builder::new()
            .prefix("nestkube-etcd-")
            .tempdir()
            .map_err(start)?;
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).map_err(start)?;
        let child = Command::new(binary)
            .arg("--name=local")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=local={peer_url}"))
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(start)?)
            .stderr(log)
            .spawn()
            .map_err(start)?;
        let mut etcd = LocalEtcd {
            child,
            endpoint,
            dir,
        };
        etcd.wait_ready(Duration::from_secs(30)).await?;
        Ok(etcd)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), LocalEtcdError> {
        let deadline = Instant::now() + timeout;
        let config = self.config("/");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LocalEtcdError::Start(format!(
                    "exited with {status}: {}",
                    self.log_tail()
                )));
            }
            let probe = EtcdStorage::new(config.clone(), StorageConfig::default());
            let ok = tokio::time::timeout(Duration::from_secs(2), probe.current_revision()).await;
            if matches!(ok, Ok(Ok(_))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LocalEtcdError::Start(format!(
                    "not ready after {timeout:?}: {}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// A configuration for this etcd with key prefix `prefix` and no background compactor.
    pub fn config(&self, prefix: &str) -> EtcdConfig {
        EtcdConfig {
            endpoints: vec![self.endpoint.clone()],
            prefix: prefix.to_string(),
            tls: None,
            compaction_interval: None,
        }
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
