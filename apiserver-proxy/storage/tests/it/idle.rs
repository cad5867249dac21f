//! An idle store (open, with a watcher, no writes) uses no CPU: no polling timers anywhere.

use std::time::Duration;

use nestkube_storage::Backend;

/// User + system CPU time of this process in clock ticks (Linux).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[tokio::test]
async fn idle_store_uses_no_cpu() {
    for backend in Backend::ALL {
        let dir = tempfile::TempDir::new().unwrap();
        let store = backend.open(dir.path()).unwrap();
        store
            .create("/idle/a", bytes::Bytes::from_static(b"v"))
            .await
            .unwrap();
        let _w = store.watch("/idle/", 0).await.unwrap();
        let Some(before) = cpu_ticks() else { return };
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks().unwrap() - before;
        // 100 ticks = 1 s of CPU; an idle store should use none (allow scheduler noise).
        assert!(used <= 3, "{backend}: idle store used {used} ticks in 1 s");
    }
}
