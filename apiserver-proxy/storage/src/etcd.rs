//! The etcd v3 backend: [`crate::Storage`] over an etcd cluster, so several stateless nestkube
//! replicas can share one store.
//!
//! Revisions are etcd's own: an object's revision is its `mod_revision`, a list is one linearizable
//! range read at the header's revision, `create` is a transaction on `create_revision == 0`,
//! `update`/`delete` compare `mod_revision` with the expected one, `delete_prefix` is one
//! `DeleteRange`, a watch is an etcd watch from `from + 1` with `prev_kv`, progress requests are
//! etcd's `RequestProgress` and compaction is etcd's compaction. Every key `k` of the trait is
//! stored at `<prefix>k` (prefix `/nestkube` by default), so several installations can share one
//! etcd; nestkube's keys start with `/`, so `/nestkube` and `/nestkube-b` never see each other's
//! keys.
//!
//! Differences from the embedded backends, all inherent to sharing etcd:
//! - Revisions are etcd's global counter: a fresh etcd is at revision 1 (not 0), and writes of
//!   other installations sharing the etcd advance it, so revisions are increasing but not
//!   contiguous for one installation.
//! - Watch history is etcd's: it survives restarts of nestkube and is bounded by compaction, not
//!   by [`crate::StorageConfig::history_min_events`]. A background compactor (the algorithm of
//!   kube-apiserver, coordinated through the key `compact_rev_key` so that one replica — or one
//!   kube-apiserver — compacts per interval) compacts to the revision seen one interval earlier,
//!   which keeps at least [`EtcdConfig::compaction_interval`] (≥ 75 s) of history.
//!
//! It owns the etcd client, the compactor task and one task per watch. It must never acknowledge
//! a write etcd has not committed, never interpret values, and never touch keys outside its
//! prefix (except the shared compaction key).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::OnceCell;

use crate::watch::{Feeder, WatchStream};
use crate::{
    EtcdConfig, KeyValue, ListOptions, ListResult, Revision, Storage, StorageConfig, StorageError,
    WatchEvent,
};

/// The key kube-apiserver's compactor uses; sharing it means one compaction per interval for
/// the whole etcd, whoever runs it.
const COMPACT_KEY: &str = "compact_rev_key";

/// Largest response accepted from etcd (lists and watch batches are single messages).
const MAX_MESSAGE: usize = i32::MAX as usize;

/// A [`Storage`] in etcd. Cheap to clone; the connection is made on first use (or eagerly by
/// [`EtcdStorage::connect`]).
#[derive(Clone)]
pub struct EtcdStorage {
    inner: Arc<Inner>,
}

struct Inner {
    config: EtcdConfig,
    storage: StorageConfig,
    /// `config.prefix` without a trailing `/`.
    prefix: String,
    client: OnceCell<Client>,
    compactor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .compactor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

fn be(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("etcd: {e}"))
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("compacted"))
}

/// The connection failed (not an answer of etcd's).
fn is_transport(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            // gRPC status codes (stable by the gRPC spec): 14 UNAVAILABLE, 2 UNKNOWN.
            let code = s.code() as i32;
            code == 14 || (code == 2 && s.message().contains("transport error"))
        }
        _ => false,
    }
}

fn is_future_revision(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("future revision"))
}

/// The smallest key greater than every key starting with `key` (etcd's prefix range end).
fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff: "to the end of the keyspace".
    vec![0]
}

fn rev(r: i64) -> Revision {
    r.max(0) as Revision
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StorageError> {
    h.map(|h| rev(h.revision()))
        .ok_or_else(|| be("response without header"))
}

impl EtcdStorage {
    /// A store on etcd as configured; connects on first use.
    pub fn new(config: EtcdConfig, storage: StorageConfig) -> Self {
        let prefix = config.prefix.trim_end_matches('/').to_string();
        EtcdStorage {
            inner: Arc::new(Inner {
                config,
                storage,
                prefix,
                client: OnceCell::new(),
                compactor: Mutex::new(None),
            }),
        }
    }

    /// Connects now and checks that etcd answers (a linearizable read).
    pub async fn connect(config: EtcdConfig, storage: StorageConfig) -> Result<Self, StorageError> {
        let s = Self::new(config, storage);
        s.current_revision().await?;
        Ok(s)
    }

    /// The key prefix in etcd (without a trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    async fn client(&self) -> Result<Client, StorageError> {
        let client = self
            .inner
            .client
            .get_or_try_init(|| async {
                let client = connect(&self.inner.config).await?;
                if let Some(interval) = self.inner.config.compaction_interval {
                    let task = tokio::spawn(compactor(client.clone(), interval));
                    *self
                        .inner
                        .compactor
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(task);
                }
                Ok::<_, StorageError>(client)
            })
            .await?;
        Ok(client.clone())
    }

    /// A KV client that accepts responses of any size (a list of a large prefix is one message;
    /// kube-apiserver lifts gRPC's 4 MiB default likewise).
    async fn kv_client(&self) -> Result<etcd_client::KvClient, StorageError> {
        Ok(self
            .client()
            .await?
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE))
    }

    /// A linearizable range read, retried (up to 3 attempts, 50 ms apart) when the connection
    /// failed: reads are idempotent. Writes are never retried here: after a transport error a
    /// write may or may not have been applied, which only the caller can sort out.
    async fn read(
        &self,
        key: Vec<u8>,
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse, StorageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut kv = self.kv_client().await?;
            match kv.get(key.clone(), options.clone()).await {
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < 3 && is_transport(&e) => {
                    tracing::debug!(error = %e, attempt, "etcd read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(be(e)),
            }
        }
    }

    fn full(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.inner.prefix.len() + key.len());
        k.extend_from_slice(self.inner.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
        let key = kv
            .key()
            .strip_prefix(self.inner.prefix.as_bytes())
            .ok_or_else(|| be("key outside the prefix"))?;
        Ok(KeyValue {
            key: String::from_utf8(key.to_vec()).map_err(be)?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: rev(kv.create_revision()),
            mod_revision: rev(kv.mod_revision()),
        })
    }

    /// After a failed compare: `NotFound` or `Conflict` from the failure branch's read.
    fn compare_failed(
        &self,
        key: &str,
        expected: Revision,
        responses: Vec<TxnOpResponse>,
    ) -> StorageError {
        let current = responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| rev(kv.mod_revision()))),
            _ => None,
        });
        match current.flatten() {
            None => StorageError::NotFound {
                key: key.to_string(),
            },
            Some(actual) => StorageError::Conflict {
                key: key.to_string(),
                expected,
                actual,
            },
        }
    }

    fn existing(&self, key: &[u8], expected: Revision) -> Compare {
        if expected == 0 {
            Compare::create_revision(key, CompareOp::Greater, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, expected as i64)
        }
    }
}

async fn connect(config: &EtcdConfig) -> Result<Client, StorageError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        // kube-apiserver's keepalive: a ping every 30 s, dead after 10 s without its answer.
        .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
        .with_keep_alive_while_idle(false)
        // A member cut off from its cluster's leader fails requests (and ends watches) instead
        // of serving stale reads or silently stalling (kube-apiserver's WithRequireLeader).
        .with_require_leader(true);
    if let Some(tls) = &config.tls {
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca).map_err(|e| be(format!("{}: {e}", ca.display())))?;
            t = t.ca_certificate(Certificate::from_pem(pem));
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let c = std::fs::read(cert).map_err(|e| be(format!("{}: {e}", cert.display())))?;
                let k = std::fs::read(key).map_err(|e| be(format!("{}: {e}", key.display())))?;
                t = t.identity(Identity::from_pem(c, k));
            }
            (None, None) => {}
            _ => {
                return Err(be(
                    "a client certificate needs both a cert file and a key file",
                ));
            }
        }
        options = options.with_tls(t);
    }
    Client::connect(&config.endpoints, Some(options))
        .await
        .map_err(be)
}

/// kube-apiserver's compactor: every `interval`, whoever bumps `compact_rev_key`'s version
/// first compacts to the revision the previous round saw, so etcd keeps ≥ `interval` of history.
async fn compactor(client: Client, interval: Duration) {
    let mut kv = client.kv_client();
    let mut version: i64 = 0;
    let mut last: Revision = 0;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let txn = Txn::new()
            .when([Compare::version(COMPACT_KEY, CompareOp::Equal, version)])
            .and_then([TxnOp::put(COMPACT_KEY, last.to_string(), None)])
            .or_else([TxnOp::get(COMPACT_KEY, None)]);
        let resp = match kv.txn(txn).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "etcd compactor: round failed");
                continue;
            }
        };
        let current = resp.header().map_or(0, |h| rev(h.revision()));
        if !resp.succeeded() {
            // Another replica (or kube-apiserver) compacted this round.
            version = resp
                .op_responses()
                .into_iter()
                .find_map(|r| match r {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.version()),
                    _ => None,
                })
                .unwrap_or(0);
            last = current;
            continue;
        }
        version += 1;
        if last > 0 {
            match kv.compact(last as i64, None).await {
                Ok(_) => tracing::info!(revision = last, "etcd compacted"),
                Err(e) if is_compacted(&e) => {}
                Err(e) => tracing::warn!(error = %e, revision = last, "etcd compaction failed"),
            }
        }
        last = current;
    }
}

#[async_trait::async_trait]
impl Storage for EtcdStorage {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let resp = self.read(self.full(key), None).await?;
        resp.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StorageError> {
        let full_prefix = self.full(prefix);
        let start = match opts.start_after.as_deref() {
            Some(after) if after >= prefix => {
                let mut k = self.full(after);
                k.push(0);
                k
            }
            _ => full_prefix.clone(),
        };
        let mut get = GetOptions::new().with_range(prefix_end(&full_prefix));
        match opts.limit {
            Some(0) => get = get.with_count_only(),
            Some(n) => get = get.with_limit(n.min(i64::MAX as usize) as i64),
            None => {}
        }
        let resp = self.read(start, Some(get)).await?;
        let items = resp
            .kvs()
            .iter()
            .map(|kv| self.kv(kv))
            .collect::<Result<Vec<_>, _>>()?;
        let remaining = (resp.count().max(0) as u64).saturating_sub(items.len() as u64);
        Ok(ListResult {
            revision: header_revision(resp.header())?,
            items,
            remaining,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StorageError> {
        let mut kv = self.kv_client().await?;
        let k = self.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value.to_vec(), None)]);
        let resp = kv.txn(txn).await.map_err(be)?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let revision = header_revision(resp.header())?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<KeyValue, StorageError> {
        let mut kv = self.kv_client().await?;
        let k = self.full(key);
        let txn = Txn::new()
            .when([self.existing(&k, expected)])
            .and_then([TxnOp::put(
                k.clone(),
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k, None)]);
        let resp = kv.txn(txn).await.map_err(be)?;
        if !resp.succeeded() {
            return Err(self.compare_failed(key, expected, resp.op_responses()));
        }
        let revision = header_revision(resp.header())?;
        let create_revision = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Put(p) => p.prev_key().map(|kv| rev(kv.create_revision())),
                _ => None,
            })
            .ok_or_else(|| be("update without the previous value"))?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StorageError> {
        let mut kv = self.kv_client().await?;
        let k = self.full(key);
        let txn = Txn::new()
            .when([self.existing(&k, expected)])
            .and_then([TxnOp::delete(
                k.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k, None)]);
        let resp = kv.txn(txn).await.map_err(be)?;
        if !resp.succeeded() {
            return Err(self.compare_failed(key, expected, resp.op_responses()));
        }
        let revision = header_revision(resp.header())?;
        let prev = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|kv| self.kv(kv)),
                _ => None,
            })
            .ok_or_else(|| be("delete without the previous value"))??;
        Ok((prev, revision))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let mut kv = self.kv_client().await?;
        let k = self.full(prefix);
        let end = prefix_end(&k);
        let resp = kv
            .delete(k, Some(DeleteOptions::new().with_range(end)))
            .await
            .map_err(be)?;
        Ok(resp.deleted().max(0) as u64)
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StorageError> {
        let client = self.client().await?;
        let k = self.full(prefix);
        let end = prefix_end(&k);
        let start = from.saturating_add(1);
        let options = WatchOptions::new()
            .with_range(end)
            .with_prev_key()
            .with_start_revision(start as i64);
        let stream = client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .watch(k.clone(), Some(options))
            .await
            .map_err(be)?;
        let (sender, mut responses) = stream.split();
        // etcd reports a compacted start revision only asynchronously on the stream; a read at
        // the start revision tells now whether to wait for that report.
        let probe = self
            .kv_client()
            .await?
            .get(
                k,
                Some(
                    GetOptions::new()
                        .with_revision(start as i64)
                        .with_count_only(),
                ),
            )
            .await;
        match probe {
            Ok(_) => {}
            Err(e) if is_future_revision(&e) => {}
            Err(e) if is_compacted(&e) => {
                let compacted = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Ok(Some(resp)) = responses.message().await {
                        if resp.compact_revision() > 0 {
                            return Some(rev(resp.compact_revision()));
                        }
                    }
                    None
                })
                .await
                .ok()
                .flatten()
                .unwrap_or(start);
                return Err(StorageError::Compacted {
                    requested: from,
                    compacted: compacted.saturating_sub(1),
                });
            }
            Err(e) => return Err(be(e)),
        }
        let this = self.clone();
        let buffer = self.inner.storage.watch_buffer;
        Ok(WatchStream::remote(
            prefix,
            buffer,
            move |feeder, progress| {
                tokio::spawn(feed(this, from, sender, responses, feeder, progress))
            },
        ))
    }

    async fn current_revision(&self) -> Result<Revision, StorageError> {
        let resp = self
            .read(self.full("/"), Some(GetOptions::new().with_count_only()))
            .await?;
        header_revision(resp.header())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        // etcd's compact(r) keeps revisions >= r; the trait drops history at or below `revision`.
        let current = self.current_revision().await?;
        let target = revision.saturating_add(1).min(current);
        if target <= 1 {
            return Ok(());
        }
        let mut kv = self.kv_client().await?;
        match kv.compact(target as i64, None).await {
            Ok(_) => Ok(()),
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) => Err(be(e)),
        }
    }
}

/// How often an unanswered progress request is repeated: etcd ignores one while the watcher is
/// still replaying history (kube-apiserver's progress requester repeats likewise).
const PROGRESS_RETRY: Duration = Duration::from_millis(100);

/// The task behind one watch: converts etcd's responses into events for `feeder` and forwards
/// progress requests. Ends when the stream is dropped (aborted), overflows or etcd fails.
async fn feed(
    store: EtcdStorage,
    from: Revision,
    mut sender: etcd_client::WatchRequestSender,
    mut responses: etcd_client::WatchResponseStream,
    feeder: Feeder,
    mut progress: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    // Every event with a revision <= `last` has been pushed.
    let mut last = from;
    let mut pending = false;
    let retry = tokio::time::sleep(PROGRESS_RETRY);
    tokio::pin!(retry);
    loop {
        let ask = tokio::select! {
            biased;
            msg = responses.message() => {
                let resp = match msg {
                    Ok(Some(resp)) => resp,
                    Ok(None) => return feeder.fail(be("watch stream ended")),
                    Err(e) => return feeder.fail(be(e)),
                };
                if resp.compact_revision() > 0 {
                    return feeder.fail(StorageError::Compacted {
                        requested: last,
                        compacted: rev(resp.compact_revision()).saturating_sub(1),
                    });
                }
                if resp.canceled() {
                    return feeder.fail(be(format!("watch canceled: {}", resp.cancel_reason())));
                }
                if resp.created() {
                    continue;
                }
                if resp.events().is_empty() {
                    let revision = resp.header().map_or(0, |h| rev(h.revision())).max(last);
                    last = revision;
                    pending = false;
                    if !feeder.push(WatchEvent::Progress { revision }) {
                        return;
                    }
                    continue;
                }
                for ev in resp.events() {
                    let event = match convert(&store, ev) {
                        Ok(event) => event,
                        Err(e) => return feeder.fail(e),
                    };
                    last = last.max(event.revision());
                    if !feeder.push(event) {
                        return;
                    }
                }
                continue;
            }
            req = progress.recv() => match req {
                Some(()) => true,
                None => return,
            },
            () = &mut retry, if pending => true,
        };
        if !ask {
            continue;
        }
        // etcd answers a progress request only once the watcher has caught up and the store is
        // at or past the watch's start revision (not for a watch from "now" before any later
        // write). Every event up to `last` is pushed, so when nothing newer exists the answer is
        // `last`.
        match store.current_revision().await {
            Ok(current) if current <= last => {
                pending = false;
                if !feeder.push(WatchEvent::Progress { revision: last }) {
                    return;
                }
            }
            Ok(_) => {
                if let Err(e) = sender.request_progress().await {
                    return feeder.fail(be(e));
                }
                pending = true;
                retry
                    .as_mut()
                    .reset(tokio::time::Instant::now() + PROGRESS_RETRY);
            }
            Err(e) => return feeder.fail(e),
        }
    }
}

fn convert(store: &EtcdStorage, ev: &etcd_client::Event) -> Result<WatchEvent, StorageError> {
    let kv = ev.kv().ok_or_else(|| be("watch event without a key"))?;
    let prev = ev.prev_kv().map(|p| store.kv(p)).transpose()?;
    Ok(match ev.event_type() {
        EventType::Put => WatchEvent::Put {
            kv: store.kv(kv)?,
            prev,
        },
        EventType::Delete => {
            let revision = rev(kv.mod_revision());
            let prev = match prev {
                Some(prev) => prev,
                None => {
                    // The previous value is compacted away: report the key without it.
                    tracing::warn!(revision, "etcd delete event without its previous value");
                    KeyValue {
                        value: Bytes::new(),
                        create_revision: 0,
                        mod_revision: 0,
                        ..store.kv(kv)?
                    }
                }
            };
            WatchEvent::Delete { prev, revision }
        }
    })
}
