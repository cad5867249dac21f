//! Crash test: a child process writes concurrently and prints every acknowledged write; it is
//! SIGKILLed mid-stream; the store is reopened and every acknowledged write must be there with its
//! value, and new writes must get higher revisions. Two kill rounds per backend.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nestkube_storage::{Backend, ListOptions};

struct Ack {
    revision: u64,
    value: String,
}

/// Runs the helper until it has acknowledged `min_acks` writes, kills it, returns every ack it
/// printed (last one per key).
fn run_and_kill(
    backend: &Backend,
    dir: &std::path::Path,
    round: u32,
    min_acks: usize,
) -> HashMap<String, Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_storage-crash-helper"))
        .arg(backend.as_str())
        .arg(dir)
        .arg(round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn helper");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.len() < min_acks {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    assert!(
        lines.len() >= min_acks,
        "helper acknowledged only {} writes",
        lines.len()
    );
    child.kill().expect("SIGKILL helper");
    child.wait().expect("reap helper");
    reader.join().expect("reader");
    // Acks printed before the kill and still in the pipe count too.
    lines.extend(rx.try_iter());
    let mut acks = HashMap::new();
    for line in &lines {
        let mut parts = line.splitn(4, ' ');
        let (Some("ACK"), Some(key), Some(rev), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("bad helper line {line:?}");
        };
        acks.insert(
            key.to_string(),
            Ack {
                revision: rev.parse().expect("revision"),
                value: value.to_string(),
            },
        );
    }
    acks
}

async fn verify(backend: &Backend, dir: &std::path::Path, acks: &HashMap<String, Ack>) -> u64 {
    let store = backend.open(dir).expect("reopen after crash");
    let current = store.current_revision().await.unwrap();
    let max_acked = acks.values().map(|a| a.revision).max().unwrap_or(0);
    assert!(
        current >= max_acked,
        "revision went back: {current} < {max_acked}"
    );
    for (key, ack) in acks {
        let kv = store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{backend}: acknowledged {key} lost"));
        assert!(kv.mod_revision >= ack.revision, "{key} went back in time");
        if kv.mod_revision == ack.revision {
            assert_eq!(kv.value, Bytes::from(ack.value.clone()), "{key} value");
        }
    }
    // Nothing torn: every stored record decodes and its revisions are sane.
    let all = store.list("/crash/", ListOptions::default()).await.unwrap();
    for kv in &all.items {
        assert!(kv.create_revision <= kv.mod_revision && kv.mod_revision <= current);
    }
    let fresh = store
        .create(&format!("/after-crash/{current}"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(fresh.mod_revision > current, "revision reused after crash");
    fresh.mod_revision
}

async fn crash_backend(backend: Backend) {
    let dir = tempfile::TempDir::new().unwrap();
    let acks1 = run_and_kill(&backend, dir.path(), 1, 1500);
    let after1 = verify(&backend, dir.path(), &acks1).await;
    let mut acks2 = run_and_kill(&backend, dir.path(), 2, 800);
    assert!(
        acks2.values().all(|a| a.revision > after1),
        "second run reused revisions"
    );
    acks2.extend(acks1);
    verify(&backend, dir.path(), &acks2).await;
}

#[tokio::test]
async fn crash_sled() {
    crash_backend(Backend::Sled).await;
}

#[tokio::test]
async fn crash_redb() {
    crash_backend(Backend::Redb).await;
}
