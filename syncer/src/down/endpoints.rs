//! Endpoints of selector-less Services: a tenant that manages a Service's
//! endpoints itself (no selector, its own `Endpoints` object, e.g. for a
//! database outside the cluster) gets them copied next to the Service's
//! copy, under the copy's name, so the parent's proxies (and its
//! EndpointSlice mirroring) route the copied Service to them.
//!
//! Only Services without a selector are concerned: for every other Service
//! the parent computes the endpoints of its copy itself, from the copies of
//! the pods. Every address must pass [`super::exposure::endpoint_ip`]:
//! inside the VirtualCluster's `spec.network.allowedCIDRs` (none by
//! default), not loopback, link-local, unspecified or multicast (upstream's
//! `ValidateEndpointIP`, which a virtual cluster above us may not have
//! applied), not one of the parent's API addresses. Endpoints with an
//! address that fails are not copied (a copy they had is deleted) and a
//! Warning `SyncError` Event on them names each address. A `targetRef` to
//! a virtual pod is rewritten to the pod's copy, any other `targetRef` and
//! `nodeName` are dropped (they name virtual objects the parent does not
//! have); ports keep name, port, protocol and appProtocol.
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

use std::net::IpAddr;

use nestkube_tenant_crds::Cidr;
use serde_json::{Value, json};

use super::refusal::{self, Refusals, Refused};
use super::{api, create, delete, exposure, get, host_meta, is_ours, meta, replace};
use nestkube_apiserver::controllers::endpoints::ENDPOINTS_MANAGED_BY_LABEL;
use nestkube_apiserver::controllers::watch::{self, Change, ObjectKey};

use crate::kinds::Translate;
use crate::{Ctx, Kind, SyncError, Syncer, names};

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
    let wanted = match wanted {
        Some(vep) => {
            let allowed =
                nestkube_tenant_crds::parse_cidrs(&ctx.placement.spec.network.allowed_cidrs);
            let reserved = exposure::parent_api_addresses(ctx).await;
            match refused(&vep, &allowed, &reserved) {
                None => Some(vep),
                Some(why) => {
                    refusal::report(ctx, &vep, "Endpoints", "v1", &why).await;
                    None
                }
            }
        }
        None => None,
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
        .is_some_and(|svc| is_selectorless(&svc) && super::service::refused(ctx, &svc).is_none()))
}

/// Whether virtual Service `svc` is copied and has no selector.
fn is_selectorless(svc: &Value) -> bool {
    svc["spec"]["selector"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && svc["spec"]["type"] != "ExternalName"
        && !super::pod::is_deleting(svc)
}

/// Why virtual Endpoints `vep` may not be copied: each address outside
/// `allowed` or otherwise refused (see the module docs).
fn refused(vep: &Value, allowed: &[Cidr], reserved: &[IpAddr]) -> Option<Refused> {
    let mut errs = Refusals::default();
    for (i, s) in vep["subsets"].as_array().into_iter().flatten().enumerate() {
        for key in ["addresses", "notReadyAddresses"] {
            for (j, a) in s[key].as_array().into_iter().flatten().enumerate() {
                let ip = a["ip"].as_str().unwrap_or("");
                if let Some(why) = exposure::endpoint_ip(ip, allowed, reserved) {
                    errs.push(
                        format!("subsets[{i}].{key}[{j}].ip"),
                        format!("{ip:?}: {why}"),
                    );
                }
            }
        }
    }
    errs.finish(()).err()
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
                let kept: Vec<Value> = ports
                    .iter()
                    .map(|p| {
                        let mut q = json!({});
                        for f in ["name", "port", "protocol", "appProtocol"] {
                            if let Some(v) = p.get(f).filter(|v| !v.is_null()) {
                                q[f] = v.clone();
                            }
                        }
                        q
                    })
                    .collect();
                out["ports"] = json!(kept);
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

/// The translation of the Endpoints of selector-less Services
/// ([`crate::kinds`]).
pub(crate) struct EndpointsOfServices;

#[async_trait::async_trait]
impl Translate for EndpointsOfServices {
    async fn sync(
        &self,
        _s: &Syncer,
        ctx: &Ctx,
        _kind: Kind,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, SyncError> {
        sync(ctx, ns, name).await
    }

    fn virtual_changed(
        &self,
        _s: &Syncer,
        _kind: Kind,
        _key: &ObjectKey<'_>,
        change: &Change<'_>,
    ) -> bool {
        // Endpoints the endpoints controller writes are computed again in
        // the parent; only those a user manages are copied.
        !change
            .current()
            .is_some_and(|kv| watch::contains(&kv.value, ENDPOINTS_MANAGED_BY_LABEL.as_bytes()))
    }

    fn labelled_by_parent(&self) -> bool {
        // The parent's endpoints controller gives the Endpoints of copied
        // Services the copies' labels, not their owner annotations: those
        // are the parent's.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refused_address_is_named() {
        let allowed: Vec<Cidr> = vec!["203.0.113.0/24".parse().unwrap()];
        let reserved: Vec<IpAddr> = vec!["10.96.0.1".parse().unwrap()];
        let vep = json!({"subsets": [{
            "addresses": [{"ip": "203.0.113.9"}, {"ip": "10.96.0.1"}],
            "notReadyAddresses": [{"ip": "169.254.169.254"}, {"ip": "127.0.0.1"}],
        }]});
        let Some(Refused(list)) = refused(&vep, &allowed, &reserved) else {
            panic!("not refused");
        };
        let fields: Vec<&str> = list.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "subsets[0].addresses[1].ip",
                "subsets[0].notReadyAddresses[0].ip",
                "subsets[0].notReadyAddresses[1].ip"
            ]
        );
        let ok = json!({"subsets": [{"addresses": [{"ip": "203.0.113.9"}]}]});
        assert_eq!(refused(&ok, &allowed, &reserved), None);
    }
}
