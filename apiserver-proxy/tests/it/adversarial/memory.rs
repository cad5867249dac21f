//! What an attack costs the server's process (the server under test runs in
//! this process): its peak resident memory, from `/proc/self/status`.

/// `VmHWM` (peak resident set) of this process, in bytes; `None` where
/// `/proc` is not available.
pub fn peak_rss() -> Option<u64> {
    status_kb("VmHWM:").map(|kb| kb * 1024)
}

/// `VmRSS` (current resident set) of this process, in bytes.
pub fn rss() -> Option<u64> {
    status_kb("VmRSS:").map(|kb| kb * 1024)
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Most the peak resident set may grow during one attack.
pub const MAX_GROWTH: u64 = 200 * 1024 * 1024;

/// Runs `attack`, then asserts the process's peak resident set grew by less
/// than [`MAX_GROWTH`] (other tests in this binary can only make that
/// stricter, never hide a blow-up). Prints what it measured.
pub async fn bounded<T>(what: &str, attack: impl std::future::Future<Output = T>) -> T {
    let (peak_before, rss_before) = (peak_rss(), rss());
    let started = std::time::Instant::now();
    let out = attack.await;
    let elapsed = started.elapsed();
    let (peak_after, rss_after) = (peak_rss(), rss());
    eprintln!(
        "{what}: {elapsed:?}; VmRSS {} -> {} MB, VmHWM {} -> {} MB",
        mb(rss_before),
        mb(rss_after),
        mb(peak_before),
        mb(peak_after)
    );
    if let (Some(before), Some(after)) = (peak_before, peak_after) {
        assert!(
            after.saturating_sub(before) < MAX_GROWTH,
            "{what}: peak RSS grew from {} to {} MB",
            mb(Some(before)),
            mb(Some(after))
        );
    }
    out
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| (b / (1024 * 1024)).to_string())
}
