//! Services: a virtual Service is copied to the parent with its selector
//! translated to the labels the copies of its pods carry (and restricted
//! to its own VirtualCluster and namespace, so it never selects another
//! tenant's pods); the virtual Service then takes the parent's cluster IP.
//!
//! The virtual cluster allocates an address of its own when a Service is
//! created (`controllers/clusterip.rs`), and a cluster IP may not change
//! once set; so, as vcluster does, a virtual Service whose address differs
//! from its copy's is re-created with the parent's address (same spec and
//! metadata, new uid). The parent's address wins. Headless Services stay
//! headless; `ExternalName` Services are not copied (they need no proxy).
//! Node ports are the parent's to choose.
//!
//! Exposure is the VirtualCluster's to allow (`spec.network`): a Service
//! whose type opens the parent to the outside (`NodePort`, `LoadBalancer`)
//! is copied only when `allowedServiceTypes` lists that type; otherwise it
//! is not copied (a copy it had is deleted) and a Warning `SyncError` Event
//! on it says why ([`refused`]). The copy's spec is an allow-list
//! ([`SPEC_FIELDS`], each port's [`PORT_FIELDS`]): external IPs, load
//! balancer addresses, source ranges and classes are never copied.
//!
//! This module never touches a parent Service that is not a copy owned by
//! the reconciled cluster.

use std::time::Duration;

use serde_json::{Value, json};

use super::refusal::{self, Refusals, Refused};
use super::{api, create, delete, get, host_meta, is_ours, meta, replace, string_map};
use nestkube_apiserver::controllers::watch::{self, Change};

use crate::kinds::Translate;
use crate::parents::owner_of;
use crate::{Ctx, Kind, SyncError, Syncer, names};

/// Reconciles virtual Service `ns/name` with its copy.
pub(crate) async fn sync(
    _s: &Syncer,
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<Option<Duration>, SyncError> {
    let vapi = api(&ctx.virt, Kind::Service, ns);
    let hapi = api(&ctx.parent, Kind::Service, &ctx.placement.host_namespace);
    let hname = names::host_name(&ctx.cluster, ns, name);
    let vsvc = get(&vapi, name).await?;
    let hsvc = match get(&hapi, &hname).await? {
        Some(h) if !is_ours(ctx, &h) => {
            tracing::warn!(cluster = %ctx.cluster, service = %format!("{ns}/{name}"), "a parent Service of that name belongs to someone else; not syncing");
            return Ok(None);
        }
        h => h,
    };
    let why = vsvc.as_ref().and_then(|v| refused(ctx, v));
    if let (Some(v), Some(why)) = (&vsvc, &why) {
        refusal::report(ctx, v, "Service", "v1", why).await;
    }
    let vsvc = match vsvc {
        Some(v)
            if v["spec"]["type"] != "ExternalName"
                && !super::pod::is_deleting(&v)
                && why.is_none() =>
        {
            v
        }
        _ => {
            if let Some(h) = hsvc {
                delete(&hapi, &hname, meta(&h, "uid"), None).await?;
            }
            return Ok(None);
        }
    };
    let desired = translate(ctx, &vsvc);
    let hsvc = match hsvc {
        None => match create(&hapi, &desired).await? {
            Some(h) => h,
            None => return Ok(Some(Duration::from_millis(200))),
        },
        Some(h) => {
            if differs(&h, &desired) {
                let mut update = h.clone();
                update["metadata"]["labels"] = desired["metadata"]["labels"].clone();
                update["metadata"]["annotations"] = desired["metadata"]["annotations"].clone();
                for f in SPEC_FIELDS {
                    match desired["spec"].get(*f) {
                        Some(v) => update["spec"][*f] = v.clone(),
                        None => {
                            update["spec"].as_object_mut().map(|m| m.remove(*f));
                        }
                    }
                }
                if !replace(&hapi, &update).await? {
                    return Ok(Some(Duration::from_millis(200)));
                }
            }
            h
        }
    };
    take_cluster_ip(&vapi, &vsvc, &hsvc).await
}

/// Spec fields copied down (the rest is the parent's: addresses, node ports,
/// IP families).
const SPEC_FIELDS: &[&str] = &[
    "type",
    "selector",
    "sessionAffinity",
    "sessionAffinityConfig",
    "publishNotReadyAddresses",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "ports",
];

/// Fields of each port copied down (node ports are the parent's).
const PORT_FIELDS: &[&str] = &["name", "protocol", "appProtocol", "port", "targetPort"];

/// Why virtual Service `vsvc` may not be copied: its type exposes the
/// parent in a way `ctx`'s VirtualCluster does not allow.
pub(crate) fn refused(ctx: &Ctx, vsvc: &Value) -> Option<Refused> {
    let type_ = vsvc["spec"]["type"].as_str().unwrap_or("");
    if type_ == "ExternalName" || ctx.placement.spec.network.allows_service_type(type_) {
        return None;
    }
    let mut errs = Refusals::default();
    errs.push(
        "spec.type",
        format!(
            "Services of type {type_} are not allowed by the VirtualCluster (spec.network.allowedServiceTypes)"
        ),
    );
    errs.finish(()).err()
}

/// The parent copy of virtual Service `vsvc`.
pub(crate) fn translate(ctx: &Ctx, vsvc: &Value) -> Value {
    let ns = meta(vsvc, "namespace");
    let hname = names::host_name(&ctx.cluster, ns, meta(vsvc, "name"));
    let v = &vsvc["spec"];
    let mut spec = json!({});
    for f in SPEC_FIELDS {
        if let Some(x) = v.get(*f).filter(|x| !x.is_null()) {
            spec[*f] = x.clone();
        }
    }
    let selector = string_map(&json!({"metadata": {"s": v["selector"]}}), "s");
    if selector.is_empty() {
        spec.as_object_mut().map(|m| m.remove("selector"));
    } else {
        spec["selector"] = json!(names::host_selector(&ctx.placement.uid, ns, &selector));
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            let kept: serde_json::Map<String, Value> = PORT_FIELDS
                .iter()
                .filter_map(|f| Some((f.to_string(), p.get(*f).filter(|v| !v.is_null())?.clone())))
                .collect();
            *p = Value::Object(kept);
        }
    }
    if v["clusterIP"] == "None" {
        spec["clusterIP"] = json!("None");
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": host_meta(ctx, vsvc, &hname),
        "spec": spec,
    })
}

/// Whether copy `h` must be updated to `desired`.
fn differs(h: &Value, desired: &Value) -> bool {
    let ports = |v: &Value| -> Vec<Value> {
        v["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let mut p = p.clone();
                p.as_object_mut().map(|m| m.remove("nodePort"));
                p
            })
            .collect()
    };
    h["metadata"]["labels"] != desired["metadata"]["labels"]
        || h["metadata"]["annotations"] != desired["metadata"]["annotations"]
        || h["spec"]["selector"] != desired["spec"]["selector"]
        || h["spec"]["type"] != desired["spec"]["type"]
        || ports(h) != ports(desired)
}

/// Re-creates virtual Service `vsvc` with copy `hsvc`'s cluster IP when
/// they differ (see the module docs).
async fn take_cluster_ip(
    vapi: &kube::Api<kube::api::DynamicObject>,
    vsvc: &Value,
    hsvc: &Value,
) -> Result<Option<Duration>, SyncError> {
    let ip = hsvc["spec"]["clusterIP"].as_str().unwrap_or("");
    if ip.is_empty() || ip == "None" || vsvc["spec"]["clusterIP"] == ip {
        return Ok(None);
    }
    let name = meta(vsvc, "name");
    tracing::debug!(service = %name, ip, "virtual Service takes its parent copy's cluster IP");
    let mut again = vsvc.clone();
    // The managers keep what they own (a server-side apply after the move
    // must not conflict with the syncer over fields it only carried over).
    if let Some(m) = again["metadata"].as_object_mut() {
        for f in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
            m.remove(f);
        }
    }
    again["spec"]["clusterIP"] = json!(ip);
    again["spec"]["clusterIPs"] = json!([ip]);
    again.as_object_mut().map(|m| m.remove("status"));
    delete(vapi, name, meta(vsvc, "uid"), Some(0)).await?;
    match create(vapi, &again).await {
        Ok(Some(created)) => {
            // A create makes its writer the owner of every field; give the
            // managers back what they owned (the next sync retries this).
            let owned = &vsvc["metadata"]["managedFields"];
            if owned.is_array() && created["metadata"]["managedFields"] != *owned {
                let mut restored = created;
                restored["metadata"]["managedFields"] = owned.clone();
                replace(vapi, &restored).await?;
            }
            Ok(None)
        }
        // Someone re-created it first: look again.
        Ok(None) => Ok(Some(Duration::from_millis(200))),
        Err(e) => {
            // The address is taken in the virtual cluster (by a Service not
            // yet moved to its parent address): never lose the Service,
            // put it back with an address of its own and try again later.
            tracing::info!(service = %name, ip, error = %e, "could not take the parent's cluster IP yet");
            let mut back = again.clone();
            back["spec"].as_object_mut().map(|m| {
                m.remove("clusterIP");
                m.remove("clusterIPs")
            });
            create(vapi, &back).await?;
            Ok(Some(Duration::from_secs(1)))
        }
    }
}

/// Services' translation ([`crate::kinds`]).
pub(crate) struct Services;

#[async_trait::async_trait]
impl Translate for Services {
    async fn sync(
        &self,
        s: &Syncer,
        ctx: &Ctx,
        _kind: Kind,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, SyncError> {
        sync(s, ctx, ns, name).await
    }

    fn stored(&self, s: &Syncer, kind: Kind, change: &Change<'_>) {
        // A Service copy in a served parent changed (its cluster IP): the
        // virtual Service it copies takes it up.
        if let Some(kv) = change.current()
            && watch::contains(&kv.value, names::CLUSTER_ANNOTATION.as_bytes())
            && let Some(obj) = change.object()
            && let Some(owner) = owner_of(&obj)
        {
            s.enqueue_object(kind, &owner.cluster, &owner.namespace, &owner.name);
        }
    }
}
