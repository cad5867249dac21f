//! The requests the syncer sends to its parents, counted (what a host's
//! operator pays per synced pod; `examples/sync-bench.rs` reports it).
//!
//! Every parent client of the syncer is wrapped in a [`tower::Service`]
//! that counts each request by verb before handing it, unchanged, to the
//! real client; the totals are read with [`crate::Syncer::parent_requests`].
//! The counts are process-wide over all parents.
//!
//! This module never changes, delays or drops a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use kube::client::Body;

/// Requests sent to parents so far, by verb.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParentRequests {
    /// GET of one object or a list.
    pub get: u64,
    /// GET with `watch=true` (one per (re)started watch, not per event).
    pub watch: u64,
    /// POST.
    pub create: u64,
    /// PUT.
    pub update: u64,
    /// PATCH.
    pub patch: u64,
    /// DELETE.
    pub delete: u64,
}

impl ParentRequests {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.get + self.watch + self.create + self.update + self.patch + self.delete
    }

    /// What was sent since `earlier` (a previous reading).
    pub fn since(&self, earlier: &ParentRequests) -> ParentRequests {
        ParentRequests {
            get: self.get - earlier.get,
            watch: self.watch - earlier.watch,
            create: self.create - earlier.create,
            update: self.update - earlier.update,
            patch: self.patch - earlier.patch,
            delete: self.delete - earlier.delete,
        }
    }
}

/// The live counters behind [`ParentRequests`].
#[derive(Debug, Default)]
pub(crate) struct Counters([AtomicU64; 6]);

impl Counters {
    fn count<B>(&self, req: &Request<B>) {
        let watch = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        let i = match *req.method() {
            Method::GET if watch => 1,
            Method::GET => 0,
            Method::POST => 2,
            Method::PUT => 3,
            Method::PATCH => 4,
            Method::DELETE => 5,
            _ => 0,
        };
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A reading of the counters.
    pub fn read(&self) -> ParentRequests {
        let n = |i: usize| self.0[i].load(Ordering::Relaxed);
        ParentRequests {
            get: n(0),
            watch: n(1),
            create: n(2),
            update: n(3),
            patch: n(4),
            delete: n(5),
        }
    }
}

/// `client`, its requests counted in `counters`.
pub(crate) fn counted(client: kube::Client, counters: Arc<Counters>) -> kube::Client {
    let ns = client.default_namespace().to_string();
    kube::Client::new(
        Counting {
            inner: client,
            counters,
        },
        ns,
    )
}

/// The counting service (see the module docs).
#[derive(Clone)]
struct Counting {
    inner: kube::Client,
    counters: Arc<Counters>,
}

impl tower::Service<Request<Body>> for Counting {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner client queues (its own buffer).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        self.counters.count(&req);
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(req).await })
    }
}
