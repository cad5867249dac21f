//! Test helper for the crash test (`tests/it/crash.rs`): opens a store and writes from 16 concurrent
//! tasks until it is killed, printing one line per acknowledged write:
//! `ACK <key> <mod_revision> <value>`.
//!
//! Usage: `storage-crash-helper <sled|redb> <dir> <round>`. It stops by itself after 60 s so a
//! failed test never leaves it running.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nestkube_storage::{Backend, Storage};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, backend, dir, round] = args.as_slice() else {
        return Err("usage: storage-crash-helper <sled|redb> <dir> <round>".into());
    };
    let backend: Backend = backend.parse()?;
    let store: Arc<dyn Storage> = backend.open(dir)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for t in 0..16 {
        let store = store.clone();
        let tx = tx.clone();
        let round = round.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                let key = format!("/crash/r{round}/t{t}/{i}");
                let value = format!("{key}=0");
                let Ok(kv) = store.create(&key, Bytes::from(value.clone())).await else {
                    return;
                };
                let _ = tx.send(format!("ACK {key} {} {value}", kv.mod_revision));
                if i % 4 == 0 {
                    let value = format!("{key}=1");
                    let Ok(kv) = store
                        .update(&key, Bytes::from(value.clone()), kv.mod_revision)
                        .await
                    else {
                        return;
                    };
                    let _ = tx.send(format!("ACK {key} {} {value}", kv.mod_revision));
                }
            }
        });
    }
    drop(tx);
    let printer = tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        while let Some(line) = rx.blocking_recv() {
            let mut out = stdout.lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(printer);
    Ok(())
}
