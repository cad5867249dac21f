//! Events up: what the parent reports about a copy (of a pod, claim or
//! Service) is told about the virtual object, in the virtual cluster, as
//! core `v1` Events (what `kubectl describe` and `kubectl get events` read).
//!
//! The parent's watch (`parents.rs`) sees every Event of the parent about
//! those kinds (one field selector `involvedObject.kind=<kind>` each) and
//! keeps only those about a copy the syncer owns there (found in its watch
//! cache of copies, same uid), for a virtual cluster that syncs into that
//! parent now. Each becomes (`translate`) an Event about the virtual
//! object: involvedObject rewritten (namespace, name, uid of the virtual
//! object; its kind and apiVersion kept;
//! the host resourceVersion dropped, the container `fieldPath` kept), in
//! the virtual namespace, the message with `<host namespace>/<copy>`, the
//! copy's name and the plain names of the cluster's other copies replaced
//! by the virtual ones; reason, type, count, timestamps, series, action,
//! source and reporting component kept (a source host is a node, and nodes
//! are mirrored). `related` is dropped: it names a parent object.
//!
//! A virtual Event's name is derived from the parent Event's name
//! ([`event_name`]), so an update of the parent Event (count++) updates the
//! same virtual Event, a restarted syncer rewrites the same ones, and a
//! parent Event that is deleted (its TTL) deletes the virtual one. Nested
//! clusters get events through every hop by construction: the Event written
//! into a parent virtual cluster is itself about a copy of the child.
//!
//! `record` writes the syncer's own Warning about a virtual object (e.g.
//! `SyncError` when the parent refuses a pod's copy, or an Ingress cannot
//! be copied), counted up when repeated.
//!
//! This module never writes the parent; it writes only Events.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::down::{is_already_exists, is_conflict, is_not_found, meta};
use crate::parents::Owner;
use crate::{Ctx, Kind, SyncError, names};

/// `source.component` and `reportingComponent` of the syncer's own Events.
pub const COMPONENT: &str = "nestkube-syncer";
/// Reason of the Warning written when the parent refuses a pod's copy (or
/// an Ingress cannot be copied).
pub const SYNC_ERROR: &str = "SyncError";
/// Longest Kubernetes object name (DNS subdomain).
const MAX_NAME: usize = 253;

/// A copy the syncer owns in a parent, as the parent's watch last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Copy {
    /// What it is a copy of (`Pod`, `PersistentVolumeClaim`, `Service`).
    pub kind: Kind,
    /// The virtual object it stands for.
    pub owner: Owner,
    /// The copy's own uid in the parent.
    pub uid: String,
    /// The virtual object's uid (owner annotation).
    pub virtual_uid: String,
}

/// A virtual Event to bring in line with its parent Event.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Pending {
    /// Create or update it with this object; `create_first`: the parent
    /// Event is new, so a create most likely succeeds (else a patch does).
    Write { event: Value, create_first: bool },
    /// The parent Event is gone: delete it.
    Delete,
}

/// `(cluster, namespace, name)` of a virtual Event.
pub(crate) type EventKey = (String, String, String);

/// The latest wanted state of each virtual Event not yet written (the
/// queue carries only keys; several changes of one Event coalesce here).
#[derive(Default)]
pub(crate) struct Outbox(Mutex<HashMap<EventKey, Pending>>);

impl Outbox {
    /// Records what `key` should become (replacing an older wish).
    pub fn put(&self, key: EventKey, p: Pending) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, p);
    }

    /// Takes what `key` should become, if anything.
    pub fn take(&self, key: &EventKey) -> Option<Pending> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key)
    }

    /// Puts back a wish whose write failed, unless a newer one came meanwhile.
    pub fn retry(&self, key: EventKey, p: Pending) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(p);
    }
}

/// The name of the virtual Event standing for parent Event `host_event`
/// (about copy `copy_name`) of virtual pod `pod`: the parent's name with
/// the copy's name replaced by the pod's (`web-x-default-x-a.1a2b...` →
/// `web.1a2b...`, as a recorder names them), else the pod's name and a hash
/// of the parent Event's name. Deterministic and distinct per parent Event.
pub fn event_name(host_event: &str, copy_name: &str, pod: &str) -> String {
    if let Some(rest) = host_event
        .strip_prefix(copy_name)
        .filter(|r| r.starts_with('.') && r.len() > 1)
    {
        let name = format!("{pod}{rest}");
        if name.len() <= MAX_NAME {
            return name;
        }
    }
    hashed_name(pod, &[host_event])
}

/// `<pod>.<16 hex of sha256(parts)>`, the pod's name cut to fit.
fn hashed_name(pod: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = pod.len().min(MAX_NAME - 1 - hex.len());
    let mut end = keep;
    while !pod.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}.{hex}", pod[..end].trim_end_matches(['.', '-']))
}

/// What a parent says about a copy, said about the virtual object instead:
/// `host_namespace/copy` → `namespace/pod`, the copy's name → the pod's,
/// and every name that is the plain copy name of one of `cluster`'s objects
/// in `namespace` (`<n>-x-<namespace>-x-<cluster>`: its ConfigMaps,
/// Secrets, claims) → `n`.
pub fn translate_text(
    text: &str,
    cluster: &str,
    namespace: &str,
    host_namespace: &str,
    copy: &str,
    pod: &str,
) -> String {
    let text = text
        .replace(
            &format!("{host_namespace}/{copy}"),
            &format!("{namespace}/{pod}"),
        )
        .replace(copy, pod);
    // The plain form ends with what host_name puts after the name.
    let probe = names::host_name(cluster, namespace, "n");
    let Some(suffix) = probe.strip_prefix('n').filter(|s| s.starts_with('-')) else {
        return text;
    };
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        match token.strip_suffix(suffix) {
            Some(n) if !n.is_empty() && names::host_name(cluster, namespace, n) == *token => {
                out.push_str(n)
            }
            _ => out.push_str(token),
        }
        token.clear();
    };
    for c in text.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// The virtual Event (core v1, JSON) for parent Event `host` about `copy`,
/// named `name` (see [`event_name`]).
pub(crate) fn translate(
    host: &Value,
    copy: &Copy,
    copy_name: &str,
    host_namespace: &str,
    name: &str,
) -> Value {
    let o = &copy.owner;
    let text = |v: &Value| {
        v.as_str().map(|s| {
            json!(translate_text(
                s,
                &o.cluster,
                &o.namespace,
                host_namespace,
                copy_name,
                &o.name
            ))
        })
    };
    let mut involved = json!({
        "kind": copy.kind.kind(),
        "apiVersion": "v1",
        "namespace": o.namespace,
        "name": o.name,
        "uid": copy.virtual_uid,
    });
    if let Some(fp) = host["involvedObject"]["fieldPath"]
        .as_str()
        .filter(|f| !f.is_empty())
    {
        involved["fieldPath"] = json!(fp);
    }
    let mut ev = Map::new();
    ev.insert("apiVersion".into(), json!("v1"));
    ev.insert("kind".into(), json!("Event"));
    ev.insert(
        "metadata".into(),
        json!({"name": name, "namespace": o.namespace}),
    );
    ev.insert("involvedObject".into(), involved);
    for f in [
        "reason",
        "type",
        "count",
        "firstTimestamp",
        "lastTimestamp",
        "eventTime",
        "series",
        "action",
        "reportingComponent",
        "reportingInstance",
        "source",
    ] {
        if let Some(v) = host.get(f).filter(|v| !v.is_null()) {
            ev.insert(f.into(), v.clone());
        }
    }
    if let Some(m) = text(&host["message"]) {
        ev.insert("message".into(), m);
    }
    Value::Object(ev)
}

/// The key and wish for parent Event `host` (JSON) about `copy`, named
/// `copy_name` in `host_namespace`; `deleted`: the parent Event is gone.
pub(crate) fn pending(
    host: &Value,
    copy: &Copy,
    copy_name: &str,
    host_namespace: &str,
    deleted: bool,
) -> (EventKey, Pending) {
    let o = &copy.owner;
    let name = event_name(meta(host, "name"), copy_name, &o.name);
    let key = (o.cluster.clone(), o.namespace.clone(), name.clone());
    if deleted {
        return (key, Pending::Delete);
    }
    let event = translate(host, copy, copy_name, host_namespace, &name);
    let count = host["count"].as_u64().unwrap_or(0);
    let create_first = count <= 1 && host["series"].is_null();
    (
        key,
        Pending::Write {
            event,
            create_first,
        },
    )
}

/// Makes virtual Event `namespace/name` of the cluster `virt` talks to
/// what `p` says.
pub(crate) async fn apply(
    virt: &kube::Client,
    namespace: &str,
    name: &str,
    p: &Pending,
) -> Result<(), SyncError> {
    let events: Api<Event> = Api::namespaced(virt.clone(), namespace);
    let event = match p {
        Pending::Delete => {
            return match events.delete(name, &Default::default()).await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        Pending::Write { event, .. } => event,
    };
    let create_first = matches!(
        p,
        Pending::Write {
            create_first: true,
            ..
        }
    );
    if create_first {
        if !create_event(&events, event).await? {
            patch_event(&events, name, event).await?;
        }
    } else if !patch_event(&events, name, event).await? {
        create_event(&events, event).await?;
    }
    Ok(())
}

/// POST; `false` when it exists already. An Event whose namespace is
/// gone (or terminating) is dropped: the pod it was about is gone too.
async fn create_event(events: &Api<Event>, event: &Value) -> Result<bool, SyncError> {
    let ev: Event = serde_json::from_value(event.clone())?;
    match events.create(&PostParams::default(), &ev).await {
        Ok(_) => Ok(true),
        Err(e) if is_already_exists(&e) => Ok(false),
        Err(e) if is_not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 403) => {
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Merge patch with the whole Event; `false` when it does not exist.
async fn patch_event(events: &Api<Event>, name: &str, event: &Value) -> Result<bool, SyncError> {
    match events
        .patch(name, &PatchParams::default(), &Patch::Merge(event))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Records a Warning `reason` with `message` about virtual object `obj`
/// (JSON; of `kind` in `api_version`) in the cluster `virt` talks to, as an
/// event recorder does: one Event per object and reason, its count and
/// lastTimestamp raised when it happens again.
pub(crate) async fn record(
    virt: &kube::Client,
    obj: &Value,
    kind: &str,
    api_version: &str,
    reason: &str,
    message: &str,
) -> Result<(), SyncError> {
    let (ns, name, uid) = (meta(obj, "namespace"), meta(obj, "name"), meta(obj, "uid"));
    let events: Api<Event> = Api::namespaced(virt.clone(), ns);
    let ev_name = hashed_name(name, &[uid, reason]);
    let now = json!(nestkube_apiserver::registry::meta::now());
    let mut ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": ev_name, "namespace": ns},
        "involvedObject": {"kind": kind, "apiVersion": api_version, "namespace": ns, "name": name, "uid": uid},
        "type": "Warning", "reason": reason, "message": message,
        "count": 1, "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
    });
    match events
        .create(&PostParams::default(), &serde_json::from_value(ev.clone())?)
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if is_already_exists(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(old) = events.get_opt(&ev_name).await? else {
        return Ok(());
    };
    let old = serde_json::to_value(old)?;
    ev["metadata"] = old["metadata"].clone();
    ev["count"] = json!(old["count"].as_u64().unwrap_or(1) + 1);
    ev["firstTimestamp"] = old["firstTimestamp"].clone();
    match events
        .replace(
            &ev_name,
            &PostParams::default(),
            &serde_json::from_value(ev)?,
        )
        .await
    {
        Ok(_) => Ok(()),
        // Raced with another write of it: counted there.
        Err(e) if is_conflict(&e) || is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The parent refused to create `copy_name`, the copy of virtual pod
/// `vpod`, with `err`: a [`SYNC_ERROR`] Warning on the virtual pod says
/// why, in the virtual cluster's names (a Status of the parent; a failure
/// to reach it is only logged, its text may name the parent).
pub(crate) async fn copy_refused(ctx: &Ctx, vpod: &Value, copy_name: &str, err: &SyncError) {
    let SyncError::Kube(kube::Error::Api(status)) = err else {
        return;
    };
    // AlreadyExists is handled by the caller; throttling is not the pod's.
    if status.code == 409 || status.code == 429 {
        return;
    }
    let detail = translate_text(
        &status.message,
        &ctx.cluster,
        meta(vpod, "namespace"),
        &ctx.placement.host_namespace,
        copy_name,
        meta(vpod, "name"),
    );
    let message = format!(
        "the parent cluster refused to run the pod ({} {}): {detail}",
        status.code, status.reason
    );
    if let Err(e) = record(&ctx.virt, vpod, "Pod", "v1", SYNC_ERROR, &message).await {
        tracing::debug!(cluster = %ctx.cluster, error = %e, "could not record the SyncError event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy() -> Copy {
        Copy {
            kind: Kind::Pod,
            owner: Owner {
                cluster: "team-a".into(),
                namespace: "shop".into(),
                name: "web".into(),
                vc_uid: "vc".into(),
            },
            uid: "host-uid".into(),
            virtual_uid: "virtual-uid".into(),
        }
    }

    #[test]
    fn names_follow_the_parent_event() {
        assert_eq!(
            event_name(
                "web-x-shop-x-team-a.187e1b2c3d4e5f60",
                "web-x-shop-x-team-a",
                "web"
            ),
            "web.187e1b2c3d4e5f60"
        );
        // Named otherwise: hashed, still deterministic and distinct.
        let a = event_name("other-name", "web-x-shop-x-team-a", "web");
        assert_eq!(a, event_name("other-name", "web-x-shop-x-team-a", "web"));
        assert_ne!(a, event_name("other-name2", "web-x-shop-x-team-a", "web"));
        assert!(a.starts_with("web.") && a.len() == 4 + 16, "{a}");
        let long = "p".repeat(253);
        assert!(event_name("x", "c", &long).len() <= MAX_NAME);
    }

    #[test]
    fn messages_name_the_virtual_objects_only() {
        let t =
            |m: &str| translate_text(m, "team-a", "shop", "host-ns", "web-x-shop-x-team-a", "web");
        assert_eq!(
            t("Successfully assigned host-ns/web-x-shop-x-team-a to kwok-node-0"),
            "Successfully assigned shop/web to kwok-node-0"
        );
        assert_eq!(
            t(
                r#"persistentvolumeclaim "data-x-shop-x-team-a" not found; secret "web-x-shop-x-team-a.sa-token""#
            ),
            r#"persistentvolumeclaim "data" not found; secret "web.sa-token""#
        );
        // Names of another cluster or namespace are not this pod's to read as its own.
        assert_eq!(t("db-x-shop-x-team-b"), "db-x-shop-x-team-b");
        assert_eq!(t("db-x-other-x-team-a"), "db-x-other-x-team-a");
    }

    #[test]
    fn an_event_about_the_copy_is_about_the_virtual_pod() {
        let host = json!({
            "metadata": {"name": "web-x-shop-x-team-a.1", "namespace": "host-ns", "resourceVersion": "9"},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": "host-ns",
                "name": "web-x-shop-x-team-a", "uid": "host-uid", "resourceVersion": "7",
                "fieldPath": "spec.containers{main}"},
            "reason": "Pulled", "type": "Normal", "count": 3,
            "message": "Container image pulled for host-ns/web-x-shop-x-team-a",
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
            "source": {"component": "kubelet", "host": "node-1"},
            "related": {"kind": "Node", "name": "node-1"},
        });
        let (key, p) = pending(&host, &copy(), "web-x-shop-x-team-a", "host-ns", false);
        assert_eq!(key, ("team-a".into(), "shop".into(), "web.1".into()));
        let Pending::Write {
            event,
            create_first,
        } = p
        else {
            panic!("a write");
        };
        assert!(!create_first, "count 3: most likely there already");
        assert_eq!(
            event["metadata"],
            json!({"name": "web.1", "namespace": "shop"})
        );
        assert_eq!(
            event["involvedObject"],
            json!({"kind": "Pod", "apiVersion": "v1", "namespace": "shop", "name": "web",
                "uid": "virtual-uid", "fieldPath": "spec.containers{main}"})
        );
        assert_eq!(event["message"], "Container image pulled for shop/web");
        assert_eq!(event["count"], 3);
        assert_eq!(event["source"]["host"], "node-1");
        assert!(event.get("related").is_none());
        let (_, gone) = pending(&host, &copy(), "web-x-shop-x-team-a", "host-ns", true);
        assert_eq!(gone, Pending::Delete);
    }
}
