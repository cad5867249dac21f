//! Fair scheduling of requests across tenants, on by default: upstream's
//! API Priority and Fairness (`k8s.io/apiserver/pkg/util/flowcontrol`)
//! reduced to the one isolation a multi-tenant server must have without
//! configuration — no tenant's load slows another's requests.
//!
//! The server serves at most [`Config::seats`] requests at once, and one
//! tenant at most [`Config::per_tenant`] of them (half by default), so
//! that a tenant arriving beside a flooder finds a seat free rather than
//! waiting for one of the flooder's requests to end, and the flooder's
//! work cannot take every core. A request
//! that finds no seat it may take waits in its tenant's queue; whenever a
//! seat is freed it goes to the waiting tenant holding the fewest seats (on
//! a tie, the one given a seat longest ago), and within that tenant to its
//! flows (cluster, user) in round-robin order. So a tenant that sends one
//! request is served before a flooding tenant's next one, however many the
//! flooder has queued.
//!
//! - A *tenant* is a top-level virtual cluster together with every cluster
//!   nested in it (cluster paths `a`, `a:b`, `a:b:c` are one tenant), and
//!   the root cluster is one: nesting never buys a tenant more than one
//!   share. A *flow* is one cluster and the user whose credential the
//!   request carries (before impersonation, so that one credential cannot
//!   spread itself over many flows).
//! - Each tenant's queue holds at most [`Config::queue_length`] requests; a
//!   request finding it full, or waiting longer than [`Config::queue_wait`],
//!   is refused with 429 and `Retry-After: 1`, as upstream's APF refuses.
//! - The handler exempts what upstream exempts (see `server::handler`):
//!   long-running requests (watches, exec, attach, port-forward, proxies;
//!   they hold no seat), health checks, and the system itself (the root
//!   cluster's `system:masters`, in-process clients).
//! - A cluster's own `limits` (`maxConcurrentRequests`,
//!   `requestsPerSecond`) stay upper bounds, checked before a request
//!   queues here.
//!
//! A request of a tenant alone on the server lends its seat while its write
//! waits for the durable commit ([`nestkube_storage::lend`]; see [`Seat`]):
//! that wait costs no CPU, so a lone tenant is bounded by the disk, not by
//! its share of seats.
//!
//! Unlike upstream, every request costs one seat (no work estimates) and
//! there is one priority level. Nothing here keeps state for an idle
//! tenant: its entry goes when it holds no seat and has nothing queued,
//! and the note of when it last asked once that is a second old.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nestkube_storage::lend::Lender;
use tokio::sync::oneshot;

use crate::tenancy::limits::Throttled;

/// Seats per core by default (`--max-requests-inflight`).
pub const DEFAULT_SEATS_PER_CORE: usize = 8;

/// How the server shares its seats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Requests served at once (`--max-requests-inflight`); 0 turns flow
    /// control off.
    pub seats: usize,
    /// Most seats one tenant holds (`--max-requests-inflight-per-tenant`;
    /// 0: all of them): the rest stay free for the others, so that a
    /// newcomer does not wait for a flooder's request to end.
    pub per_tenant: usize,
    /// Most requests of one tenant waiting for a seat
    /// (`--max-queued-requests-per-tenant`).
    pub queue_length: usize,
    /// Longest wait for a seat (`--request-queue-wait`; upstream waits a
    /// quarter of its 60 s request timeout).
    pub queue_wait: Duration,
}

impl Config {
    /// Default of [`Config::queue_length`]: room for a burst of a few
    /// dozen client-go clients (upstream's 50 per queue, spread over a
    /// flow's 6 queues, allows as much).
    pub const DEFAULT_QUEUE_LENGTH: usize = 256;
    /// Default of [`Config::queue_wait`] (upstream's).
    pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(15);

    /// The default seats: [`DEFAULT_SEATS_PER_CORE`] per core. A write
    /// holds its seat while its commit is made durable, which costs no CPU,
    /// so a few per core keep the cores busy; more only lengthen the queue
    /// of runnable work a newcomer waits behind (docs/benchmarks.md).
    pub fn default_seats() -> usize {
        DEFAULT_SEATS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The default [`Config::per_tenant`] for `seats`: half of them (at
    /// least one). More let a flooder's work take the cores from a quiet
    /// neighbour (docs/benchmarks.md); a tenant alone on the server is not
    /// bounded by it while its writes wait on the disk (see [`Seat`]).
    pub fn default_per_tenant(seats: usize) -> usize {
        (seats / 2).max(1)
    }
}

impl Default for Config {
    fn default() -> Self {
        let seats = Self::default_seats();
        Self {
            seats,
            per_tenant: Self::default_per_tenant(seats),
            queue_length: Self::DEFAULT_QUEUE_LENGTH,
            queue_wait: Self::DEFAULT_QUEUE_WAIT,
        }
    }
}

/// A refusal for load: 429, retry after a second (upstream's APF starts at
/// 1 s as well).
const REFUSED: Throttled = Throttled {
    retry_after_seconds: 1,
};

/// How recently another tenant must have asked for a seat for the server to
/// count as shared: then no seat is lent (see [`Seat`]).
pub const SHARED_WINDOW: Duration = Duration::from_secs(1);

/// The tenant of cluster `path`: its top-level cluster.
pub fn tenant_of(path: &str) -> &str {
    path.split(':').next().unwrap_or(path)
}

/// The server's seats and its tenants' queues.
#[derive(Debug)]
pub struct FlowControl {
    config: Config,
    /// Most seats one tenant holds.
    per_tenant: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Seats taken.
    in_use: usize,
    /// Tenants holding a seat or waiting for one.
    tenants: HashMap<String, Tenant>,
    /// Tenants with waiting requests.
    waiting: Vec<String>,
    /// Identifies the next waiter.
    next_id: u64,
    /// Seats granted so far (orders tenants by when they were last served).
    grants: u64,
    /// When each tenant last asked for a seat (within about
    /// [`SHARED_WINDOW`]; older entries are pruned).
    recent: HashMap<String, Instant>,
    /// When `recent` was last pruned.
    pruned: Option<Instant>,
}

#[derive(Debug, Default)]
struct Tenant {
    /// Seats its requests hold.
    in_use: usize,
    /// Its requests waiting.
    queued: usize,
    /// Its flows with waiting requests, in round-robin order.
    flows: VecDeque<Flow>,
    /// [`State::grants`] when it was last given a seat (0: not since it
    /// was idle).
    last_granted: u64,
}

#[derive(Debug)]
struct Flow {
    cluster: String,
    user: String,
    waiting: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    /// Told when the waiter was given a seat (already counted as taken).
    grant: oneshot::Sender<()>,
}

impl FlowControl {
    /// A scheduler of `config.seats` seats.
    pub fn new(config: Config) -> Arc<Self> {
        let per_tenant = match config.per_tenant {
            0 => config.seats,
            n => n.min(config.seats),
        };
        Arc::new(Self {
            config,
            per_tenant,
            state: Mutex::default(),
        })
    }

    /// Whether requests are scheduled at all (`seats > 0`).
    pub fn enabled(&self) -> bool {
        self.config.seats > 0
    }

    /// The seats shared.
    pub fn seats(&self) -> usize {
        self.config.seats
    }

    /// The most seats one tenant holds.
    pub fn per_tenant(&self) -> usize {
        self.per_tenant
    }

    /// Seats taken now.
    pub fn in_use(&self) -> usize {
        self.lock().in_use
    }

    /// Requests of `cluster`'s tenant waiting now.
    pub fn queued(&self, cluster: &str) -> usize {
        self.lock()
            .tenants
            .get(tenant_of(cluster))
            .map_or(0, |t| t.queued)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (no user code runs
        // under the lock), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A seat for a request of `user` in `cluster`: at once if one is free,
    /// else after waiting its turn. `Err` (answer 429): the tenant's queue
    /// is full, or the wait exceeded [`Config::queue_wait`]. Dropping the
    /// future while it waits withdraws the request.
    pub async fn acquire(
        self: &Arc<Self>,
        cluster: &str,
        user: &str,
    ) -> Result<Option<Seat>, Throttled> {
        if !self.enabled() {
            return Ok(None);
        }
        let tenant = tenant_of(cluster);
        let (id, rx) = {
            let mut state = self.lock();
            state.seen(tenant, Instant::now());
            // Free seats mean no one waits (a freed seat goes to a waiter
            // first), so taking it skips no one.
            if state.in_use < self.config.seats
                && state.tenants.get(tenant).map_or(0, |t| t.in_use) < self.per_tenant
            {
                state.take(tenant.to_string());
                return Ok(Some(self.seat(tenant)));
            }
            let state = &mut *state;
            let t = state.tenants.entry(tenant.to_string()).or_default();
            if t.queued >= self.config.queue_length {
                return Err(REFUSED);
            }
            let id = state.next_id;
            state.next_id += 1;
            let (grant, rx) = oneshot::channel();
            let waiter = Waiter { id, grant };
            match t
                .flows
                .iter_mut()
                .find(|f| f.cluster == cluster && f.user == user)
            {
                Some(flow) => flow.waiting.push_back(waiter),
                None => t.flows.push_back(Flow {
                    cluster: cluster.to_string(),
                    user: user.to_string(),
                    waiting: VecDeque::from([waiter]),
                }),
            }
            t.queued += 1;
            if t.queued == 1 {
                state.waiting.push(tenant.to_string());
            }
            (id, rx)
        };
        let mut waiting = Waiting {
            control: self,
            tenant,
            id,
            rx,
            settled: false,
        };
        match tokio::time::timeout(self.config.queue_wait, &mut waiting.rx).await {
            Ok(Ok(())) => {
                waiting.settled = true;
                Ok(Some(self.seat(tenant)))
            }
            // Timed out (or, never in practice, the grant was lost): give
            // up the place, unless a seat was granted meanwhile.
            _ => match waiting.withdraw() {
                true => Ok(Some(self.seat(tenant))),
                false => Err(REFUSED),
            },
        }
    }

    fn seat(self: &Arc<Self>, tenant: &str) -> Seat {
        Seat {
            lease: Arc::new(Lease {
                control: self.clone(),
                tenant: tenant.to_string(),
                state: AtomicU8::new(HELD),
            }),
        }
    }

    /// Gives the seat `tenant` held to the next waiter, if any.
    fn release(&self, tenant: &str) {
        let mut state = self.lock();
        state.in_use = state.in_use.saturating_sub(1);
        if let Some(t) = state.tenants.get_mut(tenant) {
            t.in_use = t.in_use.saturating_sub(1);
        }
        state.forget_if_idle(tenant);
        while state.in_use < self.config.seats && state.grant_next(self.per_tenant) {}
    }
}

impl State {
    /// Notes that `tenant` asked for a seat `now`.
    fn seen(&mut self, tenant: &str, now: Instant) {
        match self.recent.get_mut(tenant) {
            Some(at) => *at = now,
            None => {
                self.recent.insert(tenant.to_string(), now);
            }
        }
        if self
            .pruned
            .is_none_or(|p| now.duration_since(p) >= SHARED_WINDOW)
        {
            self.recent
                .retain(|_, at| now.duration_since(*at) < SHARED_WINDOW);
            self.pruned = Some(now);
        }
    }

    /// Whether a tenant other than `tenant` asked for a seat within
    /// [`SHARED_WINDOW`] of `now`.
    fn shared(&self, tenant: &str, now: Instant) -> bool {
        self.recent
            .iter()
            .any(|(t, at)| t != tenant && now.duration_since(*at) < SHARED_WINDOW)
    }

    /// Counts a seat taken by `tenant`.
    fn take(&mut self, tenant: String) {
        self.in_use += 1;
        self.grants += 1;
        let grants = self.grants;
        let t = self.tenants.entry(tenant).or_default();
        t.in_use += 1;
        t.last_granted = grants;
    }

    /// Grants a seat to the next waiter: of the waiting tenant holding the
    /// fewest seats (on a tie, the one served longest ago), its next
    /// flow's oldest request. `false`: no one waits. Linear in the waiting
    /// tenants, which is cheap beside serving a request.
    fn grant_next(&mut self, per_tenant: usize) -> bool {
        loop {
            let Some(pos) = (0..self.waiting.len())
                .filter(|&i| {
                    self.tenants
                        .get(&self.waiting[i])
                        .is_none_or(|t| t.in_use < per_tenant)
                })
                .min_by_key(|&i| {
                    self.tenants
                        .get(&self.waiting[i])
                        .map_or((0, 0), |t| (t.in_use, t.last_granted))
                })
            else {
                return false;
            };
            let key = self.waiting[pos].clone();
            let Some(t) = self.tenants.get_mut(&key) else {
                self.waiting.swap_remove(pos);
                continue;
            };
            let Some(mut flow) = t.flows.pop_front() else {
                self.waiting.swap_remove(pos);
                continue;
            };
            let Some(waiter) = flow.waiting.pop_front() else {
                continue;
            };
            t.queued -= 1;
            if !flow.waiting.is_empty() {
                t.flows.push_back(flow);
            }
            if t.queued == 0 {
                self.waiting.swap_remove(pos);
            }
            // Its receiver lives until the waiter withdraws, which takes
            // this lock first: the send cannot fail. Were it to, the seat
            // goes to the next one.
            if waiter.grant.send(()).is_ok() {
                self.take(key);
                return true;
            }
            self.forget_if_idle(&key);
        }
    }

    /// Drops `tenant`'s entry once it holds and awaits nothing.
    fn forget_if_idle(&mut self, tenant: &str) {
        if self
            .tenants
            .get(tenant)
            .is_some_and(|t| t.in_use == 0 && t.queued == 0)
        {
            self.tenants.remove(tenant);
        }
    }

    /// Removes waiter `id` of `tenant`; `false` if it is not queued (it was
    /// granted a seat).
    fn remove(&mut self, tenant: &str, id: u64) -> bool {
        let Some(t) = self.tenants.get_mut(tenant) else {
            return false;
        };
        let Some(fi) = t
            .flows
            .iter()
            .position(|f| f.waiting.iter().any(|w| w.id == id))
        else {
            return false;
        };
        t.flows[fi].waiting.retain(|w| w.id != id);
        if t.flows[fi].waiting.is_empty() {
            t.flows.remove(fi);
        }
        t.queued -= 1;
        if t.queued == 0 {
            self.waiting.retain(|k| k != tenant);
        }
        self.forget_if_idle(tenant);
        true
    }
}

/// A request's place in its tenant's queue while it waits; withdraws it
/// when dropped (the client went away).
struct Waiting<'a> {
    control: &'a Arc<FlowControl>,
    tenant: &'a str,
    id: u64,
    rx: oneshot::Receiver<()>,
    /// Granted and turned into a [`Seat`], or withdrawn.
    settled: bool,
}

impl Waiting<'_> {
    /// Leaves the queue. `true`: too late, a seat was granted (and is now
    /// the caller's to hold or release).
    fn withdraw(&mut self) -> bool {
        self.settled = true;
        let mut state = self.control.lock();
        !state.remove(self.tenant, self.id)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.settled && self.withdraw() {
            // Granted just as the request went away: pass the seat on.
            self.control.release(self.tenant);
        }
    }
}

/// A seat, held while a request is served; freed (to the next waiter) on
/// drop. While the request waits for a durable commit it lends the seat
/// ([`Seat::lender`]) if its tenant is alone on the server (no other tenant
/// asked for a seat within [`SHARED_WINDOW`]): the wait costs no CPU, so a
/// lone tenant's writes are bounded by the disk rather than by its share
/// of seats; beside others, its share bounds them, so that its throughput
/// cannot take the cores from the others.
#[derive(Debug)]
pub struct Seat {
    lease: Arc<Lease>,
}

/// A seat's state: held, lent, or given up.
#[derive(Debug)]
struct Lease {
    control: Arc<FlowControl>,
    tenant: String,
    state: AtomicU8,
}

const HELD: u8 = 0;
const LENT: u8 = 1;
const DONE: u8 = 2;

impl Seat {
    /// The seat as a [`Lender`] for the storage's commit wait
    /// ([`nestkube_storage::lend::lending`]).
    pub fn lender(&self) -> Arc<dyn Lender> {
        self.lease.clone()
    }
}

impl Lender for Lease {
    fn lend(&self) {
        if self.control.lock().shared(&self.tenant, Instant::now()) {
            return;
        }
        if self
            .state
            .compare_exchange(HELD, LENT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.control.release(&self.tenant);
        }
    }

    fn take_back(&self) {
        if self
            .state
            .compare_exchange(LENT, HELD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Counted at once, even past the seats: the write is done and
            // its answer is not held back; fewer seats are granted until
            // the count is back under.
            self.control.lock().take(self.tenant.clone());
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if self.lease.state.swap(DONE, Ordering::AcqRel) == HELD {
            self.lease.control.release(&self.lease.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(seats: usize, queue_length: usize) -> Arc<FlowControl> {
        FlowControl::new(Config {
            seats,
            per_tenant: 0,
            queue_length,
            queue_wait: Duration::from_secs(3600),
        })
    }

    /// Spawns `n` requests of `user` in `cluster`; each reports its index
    /// on `served` once it holds a seat and holds it until `hold` closes.
    fn spawn_requests(
        fc: &Arc<FlowControl>,
        cluster: &str,
        user: &str,
        n: usize,
        served: &tokio::sync::mpsc::UnboundedSender<String>,
        hold: &tokio::sync::watch::Receiver<()>,
    ) -> Vec<tokio::task::JoinHandle<Result<(), Throttled>>> {
        (0..n)
            .map(|i| {
                let (fc, served, mut hold) = (fc.clone(), served.clone(), hold.clone());
                let name = format!("{cluster}/{user}/{i}");
                let (cluster, user) = (cluster.to_string(), user.to_string());
                tokio::spawn(async move {
                    let _seat = fc.acquire(&cluster, &user).await?;
                    served.send(name).unwrap();
                    let _ = hold.changed().await;
                    Ok(())
                })
            })
            .collect()
    }

    /// Lets spawned tasks run until they all wait.
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn one_waiting_request_is_served_before_a_flooders_hundredth() {
        let fc = control(1, 1000);
        let (tx, mut served) = tokio::sync::mpsc::unbounded_channel();
        let (release, hold) = tokio::sync::watch::channel(());
        // The flooder takes the seat and queues 100 more; then the quiet
        // tenant asks once.
        let mut tasks = spawn_requests(&fc, "flood", "u", 101, &tx, &hold);
        settle().await;
        tasks.extend(spawn_requests(&fc, "quiet", "u", 1, &tx, &hold));
        settle().await;
        assert_eq!(fc.queued("flood"), 100);
        assert_eq!(fc.queued("quiet"), 1);
        assert_eq!(served.recv().await.unwrap(), "flood/u/0");
        // Free seats one by one (each holder ends when `hold` changes, so
        // release everyone and watch the order seats are granted in).
        drop(release);
        let order: Vec<String> = {
            let mut v = Vec::new();
            while v.len() < 101 {
                v.push(served.recv().await.unwrap());
            }
            v
        };
        assert_eq!(order[0], "quiet/u/0", "order: {:?}", &order[..3]);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(fc.in_use(), 0);
        assert!(fc.lock().tenants.is_empty(), "no state for idle tenants");
    }

    #[tokio::test]
    async fn the_tenant_holding_fewer_seats_goes_first_and_users_take_turns() {
        let fc = control(3, 1000);
        let (tx, mut served) = tokio::sync::mpsc::unbounded_channel();
        let (_release, hold) = tokio::sync::watch::channel(());
        // Tenant a holds all three seats and queues two users' requests;
        // tenant b (through a nested cluster) queues one.
        let a_held = spawn_requests(&fc, "a", "holder", 3, &tx, &hold);
        settle().await;
        let _a1 = spawn_requests(&fc, "a", "x", 2, &tx, &hold);
        settle().await;
        let _a2 = spawn_requests(&fc, "a:nested", "y", 2, &tx, &hold);
        settle().await;
        let _b = spawn_requests(&fc, "b:nested", "z", 1, &tx, &hold);
        settle().await;
        for _ in 0..3 {
            served.recv().await.unwrap();
        }
        assert_eq!(fc.queued("a:other"), 4, "nested clusters share a tenant");
        // Free a's seats one at a time.
        let mut order = Vec::new();
        for t in a_held {
            t.abort();
            order.push(served.recv().await.unwrap());
        }
        assert_eq!(order, ["b:nested/z/0", "a/x/0", "a:nested/y/0"]);
    }

    #[tokio::test]
    async fn a_full_queue_or_a_long_wait_is_refused_and_a_gone_client_leaves() {
        let fc = FlowControl::new(Config {
            seats: 1,
            per_tenant: 0,
            queue_length: 2,
            queue_wait: Duration::from_millis(300),
        });
        let held = fc.acquire("a", "u").await.unwrap();
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let fc = fc.clone();
                tokio::spawn(async move { fc.acquire("a", "u").await.map(|_| ()) })
            })
            .collect();
        settle().await;
        assert_eq!(fc.queued("a"), 2);
        assert_eq!(fc.acquire("a", "v").await.unwrap_err(), REFUSED);
        // Another tenant still queues.
        let other = {
            let fc = fc.clone();
            tokio::spawn(async move { fc.acquire("b", "u").await.map(|_| ()) })
        };
        settle().await;
        assert_eq!(fc.queued("b"), 1);
        // A client that goes away leaves the queue.
        other.abort();
        settle().await;
        assert_eq!(fc.queued("b"), 0);
        // Waiting past the bound: 429.
        for w in waiting {
            assert_eq!(w.await.unwrap(), Err(REFUSED));
        }
        assert_eq!(fc.queued("a"), 0);
        drop(held);
        assert_eq!(fc.in_use(), 0);
        assert!(fc.lock().tenants.is_empty());
    }

    #[tokio::test]
    async fn a_tenant_at_its_share_waits_while_seats_stay_free_for_others() {
        let fc = FlowControl::new(Config {
            seats: 4,
            per_tenant: 3,
            queue_length: 10,
            queue_wait: Duration::from_secs(3600),
        });
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(fc.acquire("flood", "u").await.unwrap());
        }
        // The flooder's fourth waits though a seat is free ...
        let fourth = {
            let fc = fc.clone();
            tokio::spawn(async move { fc.acquire("flood", "u").await.map(|s| s.is_some()) })
        };
        settle().await;
        assert_eq!((fc.in_use(), fc.queued("flood")), (3, 1));
        // ... which another tenant takes at once.
        let other = fc.acquire("calm", "u").await.unwrap();
        assert_eq!(fc.in_use(), 4);
        drop(other);
        assert_eq!(
            (fc.in_use(), fc.queued("flood")),
            (3, 1),
            "still at its share"
        );
        drop(held.pop());
        assert_eq!(fourth.await.unwrap(), Ok(true));
        assert_eq!(fc.per_tenant(), 3);
        assert_eq!(Config::default_per_tenant(16), 8);
        assert_eq!(Config::default_per_tenant(1), 1);
    }

    #[tokio::test]
    async fn a_seat_is_lent_while_its_write_waits_on_the_disk() {
        let fc = control(1, 10);
        let seat = fc.acquire("a", "u").await.unwrap().unwrap();
        // Alone: lent (and only once), so another request of its tenant
        // gets the seat; taken back: counted past the seats.
        let lender = seat.lender();
        lender.lend();
        lender.lend();
        assert_eq!(fc.in_use(), 0);
        let other = fc.acquire("a", "u").await.unwrap();
        lender.take_back();
        lender.take_back();
        assert_eq!(fc.in_use(), 2);
        drop(other);
        // Beside another tenant (which asked for a seat just now): kept.
        let waiting = {
            let fc = fc.clone();
            tokio::spawn(async move { fc.acquire("b", "u").await.map(|s| s.is_some()) })
        };
        settle().await;
        assert_eq!(fc.queued("b"), 1);
        lender.lend();
        assert_eq!((fc.in_use(), fc.queued("b")), (1, 1), "not lent beside b");
        drop(seat);
        assert_eq!(waiting.await.unwrap(), Ok(true));
        assert_eq!(fc.in_use(), 0);
        lender.take_back();
        assert_eq!(fc.in_use(), 0, "nothing is counted after the seat is gone");
        // Dropped while lent: nothing freed twice.
        fc.lock().recent.clear();
        let seat = fc.acquire("a", "u").await.unwrap().unwrap();
        seat.lender().lend();
        assert_eq!(fc.in_use(), 0);
        drop(seat);
        assert_eq!(fc.in_use(), 0);
        assert!(fc.lock().tenants.is_empty());
    }

    #[tokio::test]
    async fn zero_seats_is_off() {
        let fc = control(0, 0);
        assert!(fc.acquire("a", "u").await.unwrap().is_none());
    }

    #[test]
    fn tenants_are_top_level_clusters() {
        assert_eq!(tenant_of("root"), "root");
        assert_eq!(tenant_of("team-a"), "team-a");
        assert_eq!(tenant_of("team-a:dev:x"), "team-a");
    }
}
