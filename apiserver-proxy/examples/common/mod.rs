//! What the bench binaries share: a server on loopback in a temporary data
//! directory with its admin client, kube-rs clients from kubeconfigs,
//! percentiles, and the writer of docs/benchmarks.md, where each bench
//! owns one marked section and rewrites only that. Each bench uses a part
//! (the syncer's includes this file too).
#![allow(dead_code)]

use std::time::Duration;

use kube::{Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use nestkube_apiserver::server::{RunningServer, ServeConfig, ServeOptions, start_with};

/// A server on an ephemeral port of 127.0.0.1 with the default backend,
/// and the data directory it serves from (removed when dropped, so keep it
/// for as long as the server runs).
pub async fn start_server() -> (RunningServer, tempfile::TempDir) {
    start_server_with(ServeOptions::default()).await
}

/// [`start_server`] with `options`.
pub async fn start_server_with(options: ServeOptions) -> (RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        backend: Default::default(),
    };
    let server = start_with(config, options).await.expect("server");
    (server, dir)
}

/// [`start_server`] and its root admin client (kube-rs over TLS).
pub async fn server() -> (RunningServer, Client, tempfile::TempDir) {
    server_with(ServeOptions::default()).await
}

/// [`server`] with `options`.
pub async fn server_with(options: ServeOptions) -> (RunningServer, Client, tempfile::TempDir) {
    let (server, dir) = start_server_with(options).await;
    let kubeconfig = Kubeconfig::read_from(&server.root_kubeconfig).expect("kubeconfig");
    let client = client_for(kubeconfig).await;
    (server, client, dir)
}

/// A kube-rs client of `kubeconfig`'s current context.
pub async fn client_for(kubeconfig: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// p50 and p99 of `n` sequential runs of `f` (given the run's index).
pub async fn timed<F, Fut>(n: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = std::time::Instant::now();
        f(i).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The `p` quantile (0..=1, nearest rank) of `sorted`; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in
/// docs/benchmarks.md, appending the section if it is missing.
pub fn write_section(name: &str, body: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let mut doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".to_string());
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let block = format!("{begin}\n{body}{end}");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if e > b => doc.replace_range(b..e + end.len(), &block),
        _ => {
            doc.push('\n');
            doc.push_str(&block);
            doc.push('\n');
        }
    }
    std::fs::write(&path, doc).expect("write docs/benchmarks.md");
}
