//! Endpoints of selector-less Services: a tenant that manages a Service's
//! endpoints itself (no selector, its own `Endpoints` object, e.g. for a
//! database outside the cluster) gets them copied next to the Service's
//! copy, under the copy's name, so the parent's proxies (and its
//! EndpointSlice mirroring) route the copied Service to them.
//!
//! Only Services without a selector are concerned: for every other Service
//! the parent computes the endpoints of its copy itself, from the copies of
//! the pods. Addresses are copied as they are (upstream validation already
//! refuses loopback, link-local and multicast addresses); a `targetRef` to
//! a virtual pod is rewritten to the pod's copy, any other `targetRef` and
//! `nodeName` are dropped (they name virtual objects the parent does not
//! have).
//!
//! A virtual Service that takes its parent's cluster IP is deleted and
//! re-created (`super::service`); the endpoints controller keeps a user's
//! Endpoints through that (it deletes them only once their Service has been
//! gone for a few seconds).
//!
//! This module never touches a parent Endpoints object that is not a copy
//! owned by the reconciled cluster (the parent's own endpoints controller
//! writes those of the other Services, with the copies' labels).

use std::time::Duration;

use serde_json::{Value, json};

use super::{api, create, delete, get, host_meta, is_ours, meta, replace};
use crate::{Ctx, Kind, SyncError, names};

/// Reconciles the Endpoints `ns/name` of virtual Service `ns/name` with
/// its copy.
pub(crate) async fn sync(ctx: &Ctx, ns: &str, name: &str) -> Result<Option<Duration>, SyncError> {
    let hapi = api(&ctx.parent, Kind::Endpoints, &ctx.placement.host_namespace);
    let hname = names::host_name(&ctx.cluster, ns, name);
    let hep = get(&hapi, &hname).await?.filter(|h| is_ours(ctx, h));
    let wanted = match selectorless(ctx, ns, name).await? {
        true => get(&api(&ctx.virt, Kind::Endpoints, ns), name)
            .await?
            .filter(|v| !super::pod::is_deleting(v)),
        false => None,
    };
    let Some(vep) = wanted else {
        if let Some(h) = hep {
            delete(&hapi, &hname, meta(&h, "uid"), None).await?;
        }
        return Ok(None);
    };
    let desired = translate(ctx, &vep, &hname);
    let retry = Some(Duration::from_millis(200));
    match hep {
        None => Ok(match create(&hapi, &desired).await? {
            Some(_) => None,
            // A copy of someone else's (or a stale one) holds the name.
            None => retry,
        }),
        Some(h)
            if h["subsets"] == desired["subsets"]
                && h["metadata"]["labels"] == desired["metadata"]["labels"] =>
        {
            Ok(None)
        }
        Some(mut h) => {
            h["subsets"] = desired["subsets"].clone();
            h["metadata"]["labels"] = desired["metadata"]["labels"].clone();
            h["metadata"]["annotations"] = desired["metadata"]["annotations"].clone();
            Ok((!replace(&hapi, &h).await?).then_some(retry).flatten())
        }
    }
}

/// Whether virtual Service `ns/name` exists, is copied and has no selector.
async fn selectorless(ctx: &Ctx, ns: &str, name: &str) -> Result<bool, SyncError> {
    Ok(get(&api(&ctx.virt, Kind::Service, ns), name)
        .await?
        .is_some_and(|svc| is_selectorless(&svc)))
}

/// Whether virtual Service `svc` is copied and has no selector.
fn is_selectorless(svc: &Value) -> bool {
    svc["spec"]["selector"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && svc["spec"]["type"] != "ExternalName"
        && !super::pod::is_deleting(svc)
}

/// The parent copy (named `hname`) of virtual Endpoints `vep`.
fn translate(ctx: &Ctx, vep: &Value, hname: &str) -> Value {
    let ns = meta(vep, "namespace");
    let address = |a: &Value| -> Value {
        let mut out = json!({"ip": a["ip"]});
        if let Some(h) = a["hostname"].as_str() {
            out["hostname"] = json!(h);
        }
        let target = &a["targetRef"];
        let same_ns = target["namespace"].as_str().is_none_or(|n| n == ns);
        if target["kind"] == "Pod"
            && same_ns
            && let Some(pod) = target["name"].as_str()
        {
            out["targetRef"] = json!({
                "kind": "Pod",
                "namespace": ctx.placement.host_namespace,
                "name": names::host_name(&ctx.cluster, ns, pod),
            });
        }
        out
    };
    let subsets: Vec<Value> = vep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let mut out = json!({});
            for key in ["addresses", "notReadyAddresses"] {
                if let Some(list) = s[key].as_array().filter(|l| !l.is_empty()) {
                    out[key] = list.iter().map(address).collect();
                }
            }
            if let Some(ports) = s["ports"].as_array() {
                out["ports"] = json!(ports);
            }
            out
        })
        .collect();
    let mut copy = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": host_meta(ctx, vep, hname),
    });
    if !subsets.is_empty() {
        copy["subsets"] = json!(subsets);
    }
    copy
}
