//! Ingresses (when the VirtualCluster's `spec.sync.ingresses` is on): a
//! virtual Ingress is copied to the parent so its ingress controllers serve
//! it, and the parent's `status.loadBalancer` is written back up.
//!
//! The copy ([`translate`]) keeps the spec (`ingressClassName`, hosts,
//! paths, ports) with the names it references translated to the copies':
//! Service backends (`defaultBackend` and each path's) as
//! [`super::service`] names Service copies, and `tls[].secretName` as
//! [`super::config`] names Secret copies; those Secrets are copied while an
//! Ingress references them (and garbage collected with the pods' ones once
//! nothing does). A backend naming an `ExternalName` Service names no copy
//! (those are not copied). Virtual annotations are not carried: ingress-controller
//! annotations (snippets, auth, rewrites) act with the controller's rights
//! on the parent. Not copied (a Warning `SyncError` Event on it names each
//! field, and a copy it had is deleted; [`refused`]): an Ingress with a
//! `resource` backend (a typed reference to an arbitrary object, which
//! names nothing in the parent); one naming an `ingressClassName` the
//! VirtualCluster's `spec.network.ingress.allowedClasses` does not list
//! (no class: the parent's default, allowed); one claiming a host (rule or
//! TLS) its `allowedHosts` does not allow, the catch-all (a rule without a
//! host, a `defaultBackend`, TLS without hosts) included, which only `*`
//! allows: on a shared ingress controller, a host is served by whoever
//! claims it (hostname hijack).
//!
//! This module never touches a parent Ingress that is not a copy owned by
//! the reconciled cluster.

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use nestkube_tenant_crds::host_allowed;

use super::refusal::{self, Refusals, Refused};
use super::{api, config, create, delete, get, host_meta, is_ours, meta, replace};
use crate::kinds::Translate;
use crate::parents::owner_of;
use crate::{Ctx, Kind, SyncError, Syncer, names};

/// Reconciles virtual Ingress `ns/name` with its copy (both ways).
pub(crate) async fn sync(
    s: &Syncer,
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<Option<Duration>, SyncError> {
    let vapi = api(&ctx.virt, Kind::Ingress, ns);
    let hapi = api(&ctx.parent, Kind::Ingress, &ctx.placement.host_namespace);
    let hname = names::host_name(&ctx.cluster, ns, name);
    let hing = match get(&hapi, &hname).await? {
        Some(h) if !is_ours(ctx, &h) => {
            tracing::warn!(cluster = %ctx.cluster, ingress = %format!("{ns}/{name}"),
                "a parent Ingress of that name belongs to someone else; not syncing");
            return Ok(None);
        }
        h => h,
    };
    let ving = match ctx.placement.spec.sync.ingresses {
        true => get(&vapi, name)
            .await?
            .filter(|v| !super::pod::is_deleting(v)),
        false => None,
    };
    let ving = match ving {
        Some(v) => match refused(ctx, &v) {
            None => Some(v),
            Some(why) => {
                refusal::report(ctx, &v, "Ingress", "networking.k8s.io/v1", &why).await;
                None
            }
        },
        None => None,
    };
    let Some(ving) = ving else {
        if let Some(h) = hing {
            delete(&hapi, &hname, meta(&h, "uid"), None).await?;
            release_secrets(s, ctx, &h, &[]).await?;
        }
        return Ok(None);
    };
    // The TLS Secrets first, so the controller finds them with the Ingress.
    let secrets = api(&ctx.virt, Kind::Secret, ns);
    for secret in tls_secrets(&ving) {
        if let Some(obj) = get(&secrets, &secret).await?
            && !super::pod::is_deleting(&obj)
        {
            config::ensure(ctx, Kind::Secret, &obj).await?;
        }
    }
    let desired = translate(ctx, &ving);
    let retry = Some(Duration::from_millis(200));
    let hing = match hing {
        None => match create(&hapi, &desired).await? {
            Some(h) => h,
            None => return Ok(retry),
        },
        Some(h) => {
            release_secrets(s, ctx, &h, &tls_secrets(&desired)).await?;
            if !super::is_current(&h, &desired) {
                let mut update = h.clone();
                update["spec"] = desired["spec"].clone();
                update["metadata"]["labels"] = desired["metadata"]["labels"].clone();
                update["metadata"]["annotations"] = desired["metadata"]["annotations"].clone();
                if !replace(&hapi, &update).await? {
                    return Ok(retry);
                }
            }
            h
        }
    };
    status_up(&vapi, &ving, &hing).await?;
    Ok(None)
}

/// The Secrets named by `tls[].secretName` of Ingress `ing` (none for an
/// Ingress that is not copied).
pub(crate) fn tls_secrets(ing: &Value) -> Vec<String> {
    if resource_backend(ing).is_some() {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for t in ing["spec"]["tls"].as_array().into_iter().flatten() {
        if let Some(n) = t["secretName"].as_str().filter(|n| !n.is_empty())
            && !out.iter().any(|o| o == n)
        {
            out.push(n.to_string());
        }
    }
    out
}

/// The field of the first `resource` backend of Ingress `ing`, if any.
fn resource_backend(ing: &Value) -> Option<String> {
    let spec = &ing["spec"];
    if !spec["defaultBackend"]["resource"].is_null() {
        return Some("spec.defaultBackend.resource".into());
    }
    for (i, r) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        for (j, p) in r["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if !p["backend"]["resource"].is_null() {
                return Some(format!("spec.rules[{i}].http.paths[{j}].backend.resource"));
            }
        }
    }
    None
}

/// Why virtual Ingress `ving` may not be copied for `ctx`'s VirtualCluster
/// (see the module docs), every offending field named.
pub(crate) fn refused(ctx: &Ctx, ving: &Value) -> Option<Refused> {
    let policy = &ctx.placement.spec.network.ingress;
    let spec = &ving["spec"];
    let mut errs = Refusals::default();
    if let Some(field) = resource_backend(ving) {
        errs.push(
            field,
            "a resource backend names no object in the parent cluster (use a Service backend)",
        );
    }
    if let Some(class) = spec["ingressClassName"].as_str()
        && !policy.allowed_classes.iter().any(|c| c == class)
    {
        errs.push(
            "spec.ingressClassName",
            format!("{class:?} is not allowed by the VirtualCluster (spec.network.ingress.allowedClasses)"),
        );
    }
    let mut host = |field: String, h: &str| {
        if !host_allowed(&policy.allowed_hosts, h) {
            let what = if h.is_empty() {
                "every host (the catch-all)".to_string()
            } else {
                format!("{h:?}")
            };
            errs.push(
                field,
                format!("{what} is not allowed by the VirtualCluster (spec.network.ingress.allowedHosts)"),
            );
        }
    };
    if !spec["defaultBackend"].is_null() {
        host("spec.defaultBackend".into(), "");
    }
    for (i, r) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        host(
            format!("spec.rules[{i}].host"),
            r["host"].as_str().unwrap_or(""),
        );
    }
    for (i, t) in spec["tls"].as_array().into_iter().flatten().enumerate() {
        let hosts: Vec<&str> = t["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if hosts.is_empty() {
            host(format!("spec.tls[{i}].hosts"), "");
        }
        for (j, h) in hosts.into_iter().enumerate() {
            host(format!("spec.tls[{i}].hosts[{j}]"), h);
        }
    }
    errs.finish(()).err()
}

/// The parent copy of virtual Ingress `ving` (see the module docs).
pub(crate) fn translate(ctx: &Ctx, ving: &Value) -> Value {
    let ns = meta(ving, "namespace");
    let hname = names::host_name(&ctx.cluster, ns, meta(ving, "name"));
    let rename = |v: Option<&mut Value>| {
        if let Some(v) = v
            && let Some(n) = v.as_str().filter(|n| !n.is_empty())
        {
            *v = json!(names::host_name(&ctx.cluster, ns, n));
        }
    };
    let mut spec = ving["spec"].clone();
    rename(at(&mut spec, &["defaultBackend", "service", "name"]));
    for rule in each(at(&mut spec, &["rules"])) {
        for path in each(at(rule, &["http", "paths"])) {
            rename(at(path, &["backend", "service", "name"]));
        }
    }
    for tls in each(at(&mut spec, &["tls"])) {
        rename(at(tls, &["secretName"]));
    }
    let mut copy = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": host_meta(ctx, ving, &hname),
        "spec": spec,
    });
    super::stamp_spec(&mut copy);
    copy
}

/// The value at `path` below `v`, if there is one (never inserts).
fn at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| v.get_mut(*k))
}

fn each(v: Option<&mut Value>) -> impl Iterator<Item = &mut Value> {
    v.and_then(Value::as_array_mut).into_iter().flatten()
}

/// Reconciles the Secret copies that parent Ingress `old` (a copy about to
/// change or gone) names and `keep` (copy names) does not: the Secret may
/// no longer be referenced by anything.
async fn release_secrets(
    s: &Syncer,
    ctx: &Ctx,
    old: &Value,
    keep: &[String],
) -> Result<(), SyncError> {
    let hapi = api(&ctx.parent, Kind::Secret, &ctx.placement.host_namespace);
    for copy in old["spec"]["tls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["secretName"].as_str())
    {
        if keep.iter().any(|k| k == copy) {
            continue;
        }
        if let Some(h) = get(&hapi, copy).await?
            && is_ours(ctx, &h)
            && let Some(owner) = owner_of(&h)
        {
            s.enqueue_object(Kind::Secret, &ctx.cluster, &owner.namespace, &owner.name);
        }
    }
    Ok(())
}

/// Writes copy `hing`'s `status.loadBalancer` to virtual Ingress `ving`.
async fn status_up(vapi: &Api<DynamicObject>, ving: &Value, hing: &Value) -> Result<(), SyncError> {
    let ingress = |o: &Value| {
        o["status"]["loadBalancer"]["ingress"]
            .as_array()
            .filter(|a| !a.is_empty())
            .cloned()
    };
    let want = ingress(hing);
    if ingress(ving) == want {
        return Ok(());
    }
    let patch = json!({"status": {"loadBalancer": {"ingress": want}}});
    match vapi
        .patch_status(
            meta(ving, "name"),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Ingresses' translation ([`crate::kinds`]).
pub(crate) struct Ingresses;

#[async_trait::async_trait]
impl Translate for Ingresses {
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
}
