//! Where and how to reach etcd: the configuration of `--storage-backend etcd`.
//!
//! Always compiled (the flags exist in every build); the backend itself
//! (module `etcd`) only with the `etcd` feature, whose client needs `protoc`
//! at build time.

use std::path::PathBuf;
use std::time::Duration;

/// Where and how to reach etcd (`--etcd-*` flags).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379` or `https://etcd-0:2379`.
    pub endpoints: Vec<String>,
    /// Prepended to every key (default `/nestkube`); distinct installations sharing one etcd use
    /// distinct prefixes. A trailing `/` is ignored.
    pub prefix: String,
    /// TLS client settings for `https://` endpoints.
    pub tls: Option<EtcdTls>,
    /// How often the compactor runs; history younger than this is never compacted by it.
    /// Default 5 min (as kube-apiserver); `None` disables the compactor (history then grows
    /// until something else compacts etcd).
    pub compaction_interval: Option<Duration>,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".to_string()],
            prefix: "/nestkube".to_string(),
            tls: None,
            compaction_interval: Some(Duration::from_secs(300)),
        }
    }
}

/// PEM files for TLS to etcd (`--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EtcdTls {
    /// CA bundle that signed etcd's serving certificate; `None` = the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (with `key_file`) for etcd's client-certificate authentication.
    pub cert_file: Option<PathBuf>,
    /// Private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}
