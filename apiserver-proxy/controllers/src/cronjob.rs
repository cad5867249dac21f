//! The CronJob controller (upstream's `cronjob` controller v2): creates a
//! Job named `<cronjob>-<scheduled unix minutes>` (controller reference to
//! the CronJob) at each scheduled time, honouring `concurrencyPolicy`
//! (Allow, Forbid, Replace), `suspend` and `startingDeadlineSeconds`; keeps
//! `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` finished Jobs;
//! and reports `status.active`, `lastScheduleTime`, `lastSuccessfulTime`.
//!
//! Cluster-aware: one watch over all clusters (CronJobs and the Jobs they
//! control), a work queue, and one timer task for the whole process that
//! sleeps until the earliest next schedule of any CronJob of any cluster
//! ([`Timer`]); nothing runs for an idle cluster. Time comes from a
//! [`Clock`], so tests can move it. Restart-safe: the next run is derived
//! from `status.lastScheduleTime` (or the creation time) and the
//! deterministic Job name, never from memory.
//!
//! Schedules are upstream's 5-field syntax and descriptors
//! ([`Schedule`], with `@every <duration>`), evaluated in `spec.timeZone`
//! (an IANA zone from the `chrono-tz` database; UTC when unset). A local
//! time a daylight-saving jump skips does not run; one it repeats runs
//! once, at its first occurrence. This controller never touches a Job it
//! does not control.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::podutil;
use super::runtime::WorkQueue;
use super::runtime::{self, ControllerContext};
use super::util::{self, Item, fmt_time, parse_time, tolerate};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::store::{DeleteOptions, ListOptions, Store, Target, WriteOptions};

/// The annotation upstream puts on a CronJob's Jobs.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

// ------------------------------------------------------------------ clock

/// The source of "now" (a test may move it).
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

// --------------------------------------------------------------- schedule

/// A parsed 5-field cron schedule (minute hour day-of-month month
/// day-of-week), as upstream's `cron.ParseStandard`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// `@every <duration>`: a constant delay (then the fields are unused).
    every: Option<i64>,
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Whether day-of-month or day-of-week was `*`/`?` (then both must
    /// match; otherwise either may).
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn parse_value(s: &str, names: &[&str], base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + base);
    }
    s.parse::<u32>()
        .map_err(|_| format!("failed to parse int from {s}"))
}

/// One field: a bitset of allowed values and whether it was a star.
fn parse_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    base: u32,
) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<u32>()
                        .map_err(|_| format!("failed to parse int from {s}"))?,
                ),
            ),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            if step.is_none() {
                star = true;
            }
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_value(a, names, base)?, parse_value(b, names, base)?)
        } else {
            let v = parse_value(range, names, base)?;
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("end of range ({hi}) above maximum ({max}): {part}"));
        }
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

/// Whole seconds of a Go duration (`90s`, `1h30m`, `1.5h`).
fn parse_go_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse duration @every {s}: time: invalid duration {s:?}");
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Ok(total as i64)
}

impl Schedule {
    /// Parses a 5-field schedule or a descriptor (`@hourly`, `@daily`,
    /// `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = match spec.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with("@every ") => {
                let secs = parse_go_duration(s["@every ".len()..].trim())?;
                return Ok(Self {
                    every: Some(secs.max(1)),
                    minute: 0,
                    hour: 0,
                    dom: 0,
                    month: 0,
                    dow: 0,
                    dom_star: false,
                    dow_star: false,
                });
            }
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => s,
        };
        let f: Vec<&str> = spec.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!("expected exactly 5 fields, found {}", f.len()));
        }
        let (minute, _) = parse_field(f[0], 0, 59, &[], 0)?;
        let (hour, _) = parse_field(f[1], 0, 23, &[], 0)?;
        let (dom, dom_star) = parse_field(f[2], 1, 31, &[], 0)?;
        let (month, _) = parse_field(f[3], 1, 12, &MONTHS, 1)?;
        let (mut dow, dow_star) = parse_field(f[4], 0, 7, &DAYS, 0)?;
        if dow & (1 << 7) != 0 {
            dow = (dow | 1) & !(1 << 7);
        }
        Ok(Self {
            every: None,
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, t: &NaiveDateTime) -> bool {
        let d = self.dom & (1 << t.day()) != 0;
        let w = self.dow & (1 << t.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            d && w
        } else {
            d || w
        }
    }

    /// The first scheduled wall-clock time strictly after `after`, within
    /// five years.
    fn next_local(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = after.with_second(0)?.with_nanosecond(0)? + chrono::Duration::minutes(1);
        let limit = start + chrono::Duration::days(366 * 5);
        let mut t = start;
        while t < limit {
            if self.month & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(&t) {
                t = (t + chrono::Duration::days(1))
                    .with_hour(0)?
                    .with_minute(0)?;
                continue;
            }
            if self.hour & (1 << t.hour()) == 0 {
                t = (t + chrono::Duration::hours(1)).with_minute(0)?;
                continue;
            }
            if self.minute & (1 << t.minute()) == 0 {
                t += chrono::Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }

    /// The first scheduled time strictly after `after` (UTC), within five
    /// years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after_in(after, Tz::UTC)
    }

    /// The first scheduled time strictly after `after`, the schedule read
    /// as wall-clock time in `tz`.
    pub fn next_after_in(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if let Some(every) = self.every {
            return Some(after.with_nanosecond(0)? + chrono::Duration::seconds(every));
        }
        let mut local = after.with_timezone(&tz).naive_local();
        loop {
            local = self.next_local(local)?;
            // Skipped by a daylight-saving jump: no run; repeated: the first.
            if let Some(t) = tz.from_local_datetime(&local).earliest() {
                let t = t.with_timezone(&Utc);
                if t > after {
                    return Some(t);
                }
            }
        }
    }

    /// The latest scheduled time in `(after, now]` (UTC), if any.
    pub fn most_recent(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.most_recent_in(after, now, Tz::UTC)
    }

    /// The latest scheduled time in `(after, now]`, the schedule read as
    /// wall-clock time in `tz`, if any.
    pub fn most_recent_in(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        if let Some(every) = self.every {
            let start = after.with_nanosecond(0)?;
            let n = (now - start).num_seconds() / every;
            return (n >= 1).then(|| start + chrono::Duration::seconds(n * every));
        }
        let mut last = None;
        let mut t = after;
        // Far behind: only the last few hours can matter (upstream also
        // starts the most recent run only).
        if now - after > chrono::Duration::days(7) {
            t = now - chrono::Duration::days(7);
        }
        while let Some(n) = self.next_after_in(t, tz) {
            if n > now {
                break;
            }
            last = Some(n);
            t = n;
        }
        last
    }
}

// ------------------------------------------------------------------ timer

/// Due times, ordered, and each item's entry.
type Due = (
    BTreeSet<(DateTime<Utc>, Item)>,
    HashMap<Item, DateTime<Utc>>,
);

/// One timer for the whole process: the next scheduled time of every
/// CronJob; a single task sleeps until the earliest and enqueues what is due.
pub struct Timer {
    inner: Mutex<Due>,
    wake: tokio::sync::Notify,
}

impl Timer {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new((BTreeSet::new(), HashMap::new())),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Sets (or with `None` clears) when `item` is next due.
    fn set(&self, item: &Item, at: Option<DateTime<Utc>>) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        let (set, by_item) = &mut *g;
        if let Some(old) = by_item.remove(item) {
            set.remove(&(old, item.clone()));
        }
        if let Some(at) = at {
            by_item.insert(item.clone(), at);
            set.insert((at, item.clone()));
        }
        drop(g);
        self.wake.notify_one();
    }

    /// Removes and returns the items due at `now`, and the next due time.
    fn due(&self, now: DateTime<Utc>) -> (Vec<Item>, Option<DateTime<Utc>>) {
        let Ok(mut g) = self.inner.lock() else {
            return (Vec::new(), None);
        };
        let (set, by_item) = &mut *g;
        let mut out = Vec::new();
        while let Some(first) = set.first().cloned() {
            if first.0 > now {
                return (out, Some(first.0));
            }
            set.remove(&first);
            by_item.remove(&first.1);
            out.push(first.1);
        }
        (out, None)
    }

    /// Number of scheduled CronJobs.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.1.len()).unwrap_or(0)
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn run(self: Arc<Self>, clock: Arc<dyn Clock>, queue: Arc<WorkQueue<Item, ApiError>>) {
        loop {
            let (due, next) = self.due(clock.now());
            for item in due {
                queue.enqueue(item);
            }
            match next {
                Some(at) => {
                    let wait = (at - clock.now()).to_std().unwrap_or_default();
                    tokio::select! {
                        _ = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
                        _ = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

// ------------------------------------------------------------- controller

struct Controller {
    store: Store,
    cronjobs: Arc<ResourceInfo>,
    jobs: Arc<ResourceInfo>,
    clock: Arc<dyn Clock>,
    timer: Arc<Timer>,
}

/// Starts the controller with the system clock.
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    spawn_with_clock(ctx, Arc::new(SystemClock))
}

/// Starts the controller with `clock`: the shared watch and the [`Timer`]
/// feed one queue.
pub fn spawn_with_clock(
    ctx: &ControllerContext,
    clock: Arc<dyn Clock>,
) -> Option<tokio::task::JoinHandle<()>> {
    let timer = Timer::new();
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        cronjobs: ctx.catalog.get("batch", "v1", "cronjobs")?.clone(),
        jobs: ctx.catalog.get("batch", "v1", "jobs")?.clone(),
        clock: clock.clone(),
        timer: timer.clone(),
    });
    let controller = runtime::Controller::new("cronjobs", controller);
    tokio::spawn(timer.run(clock, controller.queue()));
    Some(controller.watch(&ctx.store, |change| {
        util::self_or_controller(change, "batch/cronjobs", "batch/jobs", "batch", "CronJob")
    }))
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, item: Item) -> runtime::Outcome<ApiError> {
        self.sync(&item).await.map(|()| None)
    }
}

/// The Job for the run of `cj` scheduled at `at`.
pub fn job_for(cj: &Value, at: DateTime<Utc>) -> Value {
    let tmpl = &cj["spec"]["jobTemplate"];
    let mut metadata = json!({
        "name": format!("{}-{}", meta::name(cj), at.timestamp() / 60),
        "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": meta::name(cj),
            "uid": meta::uid(cj), "controller": true, "blockOwnerDeletion": true,
        }],
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = tmpl["metadata"].get(field).filter(|v| v.is_object()) {
            metadata[field] = v.clone();
        }
    }
    if metadata["annotations"].is_null() {
        metadata["annotations"] = json!({});
    }
    metadata["annotations"][SCHEDULED_TIMESTAMP] = json!(at.to_rfc3339());
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": tmpl["spec"]})
}

fn job_finished(job: &Value) -> Option<&'static str> {
    super::job::finished(job)
}

fn job_ref(job: &Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": meta::name(job),
        "namespace": meta::namespace(job), "uid": meta::uid(job),
        "resourceVersion": meta::resource_version(job)})
}

/// A run of a CronJob starting now.
#[derive(Debug, PartialEq)]
struct Start {
    /// Its scheduled time (names the Job).
    at: DateTime<Utc>,
    /// `concurrencyPolicy: Replace`: the active Jobs are deleted first.
    replace: bool,
}

/// What one reconcile of a CronJob does, decided from the CronJob and the
/// Jobs it controls.
#[derive(Debug)]
struct Plan {
    /// Finished Jobs beyond the history limits (names, oldest first).
    doomed: Vec<String>,
    /// The Jobs still running (not finished, not being deleted).
    active: Vec<Value>,
    /// The run to start now, if any.
    start: Option<Start>,
    /// The `lastScheduleTime` to record: the due run, when it starts or its
    /// Job exists already.
    scheduled: Option<DateTime<Utc>>,
    /// The latest completion of a successful Job.
    last_success: Option<DateTime<Utc>>,
    /// When the next run is due (`None`: never, e.g. suspended).
    next: Option<DateTime<Utc>>,
}

fn plan(cj: &Value, mut mine: Vec<Value>, now: DateTime<Utc>) -> Plan {
    mine.sort_by_key(|j| {
        (
            parse_time(&j["status"]["startTime"])
                .or_else(|| parse_time(&j["metadata"]["creationTimestamp"])),
            meta::name(j).to_string(),
        )
    });
    let status = &cj["status"];

    // Finished Jobs: lastSuccessfulTime and history limits.
    let mut last_success = parse_time(&status["lastSuccessfulTime"]);
    for j in &mine {
        if job_finished(j) == Some("Complete")
            && let Some(t) = parse_time(&j["status"]["completionTime"])
        {
            last_success = last_success.max(Some(t));
        }
    }
    let mut doomed = Vec::new();
    for (kind, field, default) in [
        ("Complete", "successfulJobsHistoryLimit", 3),
        ("Failed", "failedJobsHistoryLimit", 1),
    ] {
        let limit = cj["spec"][field].as_i64().unwrap_or(default).max(0) as usize;
        let done: Vec<&Value> = mine
            .iter()
            .filter(|j| job_finished(j) == Some(kind) && !meta::is_deleting(j))
            .collect();
        if done.len() > limit {
            doomed.extend(
                done[..done.len() - limit]
                    .iter()
                    .map(|j| meta::name(j).to_string()),
            );
        }
    }
    let active: Vec<Value> = mine
        .iter()
        .filter(|j| job_finished(j).is_none() && !meta::is_deleting(j))
        .cloned()
        .collect();
    let mut plan = Plan {
        doomed,
        active,
        start: None,
        scheduled: None,
        last_success,
        next: None,
    };

    // The schedule. An unknown zone (validation refuses it) is never scheduled.
    let tz = match cj["spec"]["timeZone"].as_str() {
        None => Some(Tz::UTC),
        Some(z) => z.parse::<Tz>().ok(),
    };
    let schedule = cj["spec"]["schedule"]
        .as_str()
        .and_then(|s| Schedule::parse(s).ok())
        .zip(tz);
    let Some((sched, tz)) = schedule
        .filter(|_| !meta::is_deleting(cj) && cj["spec"]["suspend"].as_bool() != Some(true))
    else {
        return plan;
    };
    let since = parse_time(&status["lastScheduleTime"])
        .or_else(|| parse_time(&cj["metadata"]["creationTimestamp"]))
        .unwrap_or(now);
    let due = sched.most_recent_in(since, now, tz).filter(|t| {
        cj["spec"]["startingDeadlineSeconds"]
            .as_i64()
            .is_none_or(|d| (now - *t).num_seconds() <= d)
    });
    if let Some(at) = due {
        let job_name = format!("{}-{}", meta::name(cj), at.timestamp() / 60);
        let exists = mine.iter().any(|j| meta::name(j) == job_name);
        let policy = cj["spec"]["concurrencyPolicy"].as_str().unwrap_or("Allow");
        if !exists && (policy != "Forbid" || plan.active.is_empty()) {
            plan.start = Some(Start {
                at,
                replace: policy == "Replace",
            });
            plan.scheduled = Some(at);
        } else if exists {
            plan.scheduled = Some(at);
        }
    }
    plan.next = sched.next_after_in(now, tz);
    plan
}

/// The CronJob's status: its current one with `active` (references to
/// the running Jobs), and the times recorded by the plan.
fn status_for(
    cj: &Value,
    active: &[Value],
    scheduled: Option<DateTime<Utc>>,
    last_success: Option<DateTime<Utc>>,
) -> Value {
    let mut status = cj["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    if let Some(at) = scheduled {
        status["lastScheduleTime"] = json!(fmt_time(at));
    }
    let refs: Vec<Value> = active.iter().map(job_ref).collect();
    if refs.is_empty() {
        if let Some(o) = status.as_object_mut() {
            o.remove("active");
        }
    } else {
        status["active"] = json!(refs);
    }
    if let Some(t) = last_success {
        status["lastSuccessfulTime"] = json!(fmt_time(t));
    }
    status
}

impl Controller {
    async fn sync(&self, item: &Item) -> Result<(), ApiError> {
        let (cluster, ns, name) = item;
        let ct = util::target(cluster, &self.cronjobs, ns);
        let Some(cj) = util::get_opt(&self.store, &ct, name).await? else {
            self.timer.set(item, None);
            return Ok(());
        };
        let jt = util::target(cluster, &self.jobs, ns);
        let uid = meta::uid(&cj).to_string();
        let mine: Vec<Value> = self
            .store
            .list(&jt, &ListOptions::default())
            .await?
            .items
            .into_iter()
            .filter(|j| podutil::controller_ref(j).is_some_and(|r| r.uid == uid))
            .collect();
        let p = plan(&cj, mine, self.clock.now());
        for n in &p.doomed {
            self.delete_job(&jt, n).await?;
        }
        let mut active = p.active;
        if let Some(start) = p.start {
            if start.replace {
                for j in std::mem::take(&mut active) {
                    self.delete_job(&jt, meta::name(&j)).await?;
                }
            }
            match self
                .store
                .create(&jt, job_for(&cj, start.at), WriteOptions::default())
                .await
            {
                Ok(w) => active.push(w.object),
                Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.timer.set(item, p.next);
        let status = status_for(&cj, &active, p.scheduled, p.last_success);
        util::write_status(&self.store, &ct, &cj, &status).await
    }

    async fn delete_job(&self, jt: &Target<'_>, name: &str) -> Result<(), ApiError> {
        let opts = DeleteOptions {
            propagation: Some("Background".into()),
            ..Default::default()
        };
        tolerate(self.store.delete(jt, name, &opts).await)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalog::Catalog;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn schedules() {
        let s = Schedule::parse("*/15 9-17 * * mon-fri").unwrap();
        // Saturday -> Monday 09:00.
        assert_eq!(
            s.next_after(at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-30T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-11-30T09:00:00Z")),
            Some(at("2026-11-30T09:15:00Z"))
        );
        let h = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            h.next_after(at("2026-11-25T08:59:59Z")),
            Some(at("2026-11-25T09:00:00Z"))
        );
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at("2026-03-01T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
        // Day of month OR day of week when both are restricted.
        let either = Schedule::parse("0 0 1 * sun").unwrap();
        assert_eq!(
            either.next_after(at("2026-11-25T00:00:00Z")),
            Some(at("2026-11-29T00:00:00Z"))
        );
        assert_eq!(Schedule::parse("0 0 * * 7"), Schedule::parse("0 0 * * 0"));
        let every = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every.most_recent(at("2026-11-25T08:00:00Z"), at("2026-11-25T08:03:30Z")),
            Some(at("2026-11-25T08:03:00Z"))
        );
        assert_eq!(at("2026-11-25T08:00:00Z").timestamp() / 60, MIN0);
        assert!(Schedule::parse("* * * *").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("@fortnightly").is_err());
        let e = Schedule::parse("@every 1h30m").unwrap();
        assert_eq!(
            e.next_after(at("2026-11-25T08:00:00Z")),
            Some(at("2026-11-25T09:30:00Z"))
        );
        assert_eq!(
            e.most_recent(at("2026-11-25T08:00:00Z"), at("2026-11-25T12:00:00Z")),
            Some(at("2026-11-25T11:00:00Z"))
        );
        assert!(Schedule::parse("@every soon").is_err());
    }

    #[test]
    fn schedules_in_a_time_zone() {
        let nine = Schedule::parse("0 9 * * *").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        // 09:00 EST is 14:00 UTC; 09:00 EDT is 13:00 UTC.
        assert_eq!(
            nine.next_after_in(at("2026-11-25T00:00:00Z"), ny),
            Some(at("2026-11-25T14:00:00Z"))
        );
        assert_eq!(
            nine.next_after_in(at("2026-07-01T00:00:00Z"), ny),
            Some(at("2026-07-01T13:00:00Z"))
        );
        assert_eq!(
            nine.most_recent_in(at("2026-11-25T00:00:00Z"), at("2026-11-26T13:00:00Z"), ny),
            Some(at("2026-11-25T14:00:00Z"))
        );
        // 02:30 does not exist in Berlin on 2026-03-29 (clocks jump to 03:00).
        let half_past_two = Schedule::parse("30 2 * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            half_past_two.next_after_in(at("2026-03-28T12:00:00Z"), berlin),
            Some(at("2026-03-30T00:30:00Z"))
        );
        // 02:30 happens twice on 2026-10-25: it runs once.
        assert_eq!(
            half_past_two.next_after_in(at("2026-10-25T00:00:00Z"), berlin),
            Some(at("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            half_past_two.next_after_in(at("2026-10-25T00:30:00Z"), berlin),
            Some(at("2026-10-26T01:30:00Z"))
        );
    }

    #[test]
    fn one_timer_orders_every_cluster() {
        let t = Timer::new();
        let item = |c: &str| (c.to_string(), "ns".to_string(), "cj".to_string());
        t.set(&item("b"), Some(at("2026-11-25T08:02:00Z")));
        t.set(&item("a"), Some(at("2026-11-25T08:01:00Z")));
        t.set(&item("c"), Some(at("2026-11-25T08:05:00Z")));
        // Rescheduled: the old time is forgotten.
        t.set(&item("c"), Some(at("2026-11-25T08:03:00Z")));
        t.set(&item("gone"), Some(at("2026-11-25T08:00:00Z")));
        t.set(&item("gone"), None);
        assert_eq!(t.len(), 3);
        let (due, next) = t.due(at("2026-11-25T08:02:00Z"));
        assert_eq!(due, [item("a"), item("b")]);
        assert_eq!(next, Some(at("2026-11-25T08:03:00Z")));
        let (due, next) = t.due(at("2026-11-25T09:00:00Z"));
        assert_eq!((due, next), (vec![item("c")], None));
        assert!(t.is_empty());
    }

    struct TestClock(Mutex<DateTime<Utc>>);
    impl Clock for TestClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    struct Env {
        c: Controller,
        clock: Arc<TestClock>,
        _dir: tempfile::TempDir,
    }

    async fn env(start: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let storage = nestkube_storage::Backend::default()
            .open(dir.path())
            .unwrap();
        let catalog = Catalog::builtin().unwrap();
        let store = Store::new(storage);
        crate::tenancy::Clusters::bootstrap(&store, &catalog, "root")
            .await
            .unwrap();
        let clock = Arc::new(TestClock(Mutex::new(at(start))));
        let c = Controller {
            store,
            cronjobs: catalog.get("batch", "v1", "cronjobs").unwrap().clone(),
            jobs: catalog.get("batch", "v1", "jobs").unwrap().clone(),
            clock: clock.clone(),
            timer: Timer::new(),
        };
        Env {
            c,
            clock,
            _dir: dir,
        }
    }

    impl Env {
        fn cj(&self) -> Target<'_> {
            Target {
                cluster: "root",
                resource: &self.c.cronjobs,
                namespace: Some("default"),
            }
        }
        fn jt(&self) -> Target<'_> {
            Target {
                cluster: "root",
                resource: &self.c.jobs,
                namespace: Some("default"),
            }
        }
        async fn create(&self, policy: &str) {
            self.create_with(policy, json!({})).await
        }
        /// Creates CronJob `tick` with `extra` merged into its spec.
        async fn create_with(&self, policy: &str, extra: Value) {
            let mut body = json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "tick"},
                "spec": {"schedule": "* * * * *", "concurrencyPolicy": policy,
                    "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1,
                    "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}]}}}}}});
            for (k, v) in extra.as_object().into_iter().flatten() {
                body["spec"][k] = v.clone();
            }
            let w = self
                .c
                .store
                .create(&self.cj(), body, WriteOptions::default())
                .await
                .unwrap();
            // The scheduler counts from creation: pretend it was made at the
            // clock's time.
            let created = fmt_time(self.clock.now());
            self.c
                .store
                .update_with(
                    &self.cj(),
                    "tick",
                    Some("status"),
                    WriteOptions::default(),
                    |o| {
                        let mut n = o.clone();
                        n["status"] = json!({"lastScheduleTime": created});
                        Ok((n, Vec::new()))
                    },
                )
                .await
                .unwrap();
            drop(w);
        }
        fn advance(&self, secs: i64) {
            *self.clock.0.lock().unwrap() += chrono::Duration::seconds(secs);
        }
        async fn sync(&self) {
            self.c
                .sync(&("root".into(), "default".into(), "tick".into()))
                .await
                .unwrap();
        }
        async fn jobs(&self) -> Vec<Value> {
            let mut v = self
                .c
                .store
                .list(&self.jt(), &ListOptions::default())
                .await
                .unwrap()
                .items;
            v.retain(|j| !meta::is_deleting(j));
            v.sort_by_key(|j| meta::name(j).to_string());
            v
        }
        async fn finish(&self, name: &str, how: &str) {
            let now = fmt_time(self.clock.now());
            self.c
                .store
                .update_with(
                    &self.jt(),
                    name,
                    Some("status"),
                    WriteOptions::default(),
                    |o| {
                        let mut n = o.clone();
                        n["status"] = json!({"startTime": now, "completionTime": now,
                        "conditions": [{"type": how, "status": "True"}]});
                        Ok((n, Vec::new()))
                    },
                )
                .await
                .unwrap();
        }
        async fn status(&self) -> Value {
            self.c.store.get(&self.cj(), "tick").await.unwrap()["status"].clone()
        }
    }

    #[test]
    fn plan_starts_due_runs_as_the_policy_allows() {
        let cj = |policy: &str, suspend: bool| {
            json!({"metadata": {"name": "c", "uid": "u",
                    "creationTimestamp": "2026-11-25T07:59:00Z"},
                "spec": {"schedule": "* * * * *", "concurrencyPolicy": policy,
                    "suspend": suspend}})
        };
        let now = at("2026-11-25T08:00:30Z");
        let running = json!({"metadata": {"name": "c-1"}, "status": {}});
        let p = plan(&cj("Allow", false), vec![running.clone()], now);
        let due = at("2026-11-25T08:00:00Z");
        assert_eq!(
            p.start,
            Some(Start {
                at: due,
                replace: false
            })
        );
        assert_eq!(p.scheduled, Some(due));
        assert_eq!(p.next, Some(at("2026-11-25T08:01:00Z")));
        let p = plan(&cj("Forbid", false), vec![running.clone()], now);
        assert_eq!((p.start, p.scheduled, p.active.len()), (None, None, 1));
        let p = plan(&cj("Replace", false), vec![running], now);
        assert!(p.start.is_some_and(|s| s.replace));
        let p = plan(&cj("Allow", true), Vec::new(), now);
        assert_eq!((p.start, p.next), (None, None));
    }

    const T0: &str = "2026-11-25T08:00:30Z";
    /// Unix minutes of 2026-11-25T08:00:00Z.
    const MIN0: i64 = 29_926_560;

    #[tokio::test]
    async fn a_time_zone_moves_the_schedule() {
        // 09:30 in Kolkata (UTC+05:30) is 04:00 UTC.
        let e = env("2026-11-25T03:59:00Z").await;
        e.create_with(
            "Allow",
            json!({"schedule": "30 9 * * *", "timeZone": "Asia/Kolkata"}),
        )
        .await;
        e.sync().await;
        assert!(e.jobs().await.is_empty(), "nothing due yet");
        e.advance(60);
        e.sync().await;
        let jobs = e.jobs().await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(e.status().await["lastScheduleTime"], "2026-11-25T04:00:00Z");
        // Next: tomorrow 04:00 UTC.
        let (due, next) = e.c.timer.due(at("2026-11-26T03:59:59Z"));
        assert!(due.is_empty());
        assert_eq!(next, Some(at("2026-11-26T04:00:00Z")));
    }

    #[tokio::test]
    async fn forbid_skips_while_a_job_runs() {
        let e = env(T0).await;
        e.create("Forbid").await;
        e.sync().await;
        assert!(e.jobs().await.is_empty(), "nothing due yet");
        assert_eq!(e.c.timer.len(), 1);
        e.advance(60);
        e.sync().await;
        let jobs = e.jobs().await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(meta::name(&jobs[0]), format!("tick-{}", MIN0 + 1));
        assert_eq!(jobs[0]["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        let st = e.status().await;
        assert_eq!(st["active"][0]["name"], meta::name(&jobs[0]));
        assert_eq!(st["lastScheduleTime"], "2026-11-25T08:01:00Z");
        e.advance(60);
        e.sync().await;
        assert_eq!(e.jobs().await.len(), 1, "Forbid: still running");
        e.finish(meta::name(&jobs[0]), "Complete").await;
        e.advance(60);
        e.sync().await;
        let jobs = e.jobs().await;
        let names: Vec<&str> = jobs.iter().map(meta::name).collect();
        assert_eq!(
            names,
            [format!("tick-{}", MIN0 + 1), format!("tick-{}", MIN0 + 3)]
        );
        let st = e.status().await;
        assert_eq!(st["lastSuccessfulTime"], "2026-11-25T08:02:30Z");
        assert_eq!(st["active"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn replace_deletes_the_running_job_and_history_is_limited() {
        let e = env(T0).await;
        e.create("Replace").await;
        e.advance(60);
        e.sync().await;
        let first = meta::name(&e.jobs().await[0]).to_string();
        e.advance(60);
        e.sync().await;
        let names: Vec<String> = e
            .jobs()
            .await
            .iter()
            .map(|j| meta::name(j).into())
            .collect();
        assert_eq!(names, [format!("tick-{}", MIN0 + 2)]);
        assert_ne!(names[0], first);
        // History: successfulJobsHistoryLimit 1, failedJobsHistoryLimit 1.
        e.finish(&names[0], "Complete").await;
        for _ in 0..2 {
            e.advance(60);
            e.sync().await;
            let last = e
                .jobs()
                .await
                .last()
                .map(|j| meta::name(j).to_string())
                .unwrap();
            e.finish(&last, "Complete").await;
        }
        e.advance(60);
        e.sync().await;
        let names: Vec<String> = e
            .jobs()
            .await
            .iter()
            .map(|j| meta::name(j).into())
            .collect();
        // The newest finished one and the one just started.
        assert_eq!(
            names,
            [format!("tick-{}", MIN0 + 4), format!("tick-{}", MIN0 + 5)]
        );
    }
}
