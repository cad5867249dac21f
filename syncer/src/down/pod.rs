//! Pods: a virtual pod of a placed cluster runs as a copy in the parent.
//!
//! The copy ([`translate`]) has the translated name, the virtual labels
//! carried over under [`names::LABEL_DOMAIN`], the owner labels and
//! annotations, and a spec built from the virtual one by an allow-list
//! ([`super::pod_spec`]): every reference translated (ConfigMap, Secret and
//! PersistentVolumeClaim volumes, projected sources, env and envFrom refs,
//! imagePullSecrets, affinity selectors), every field that names what the
//! translation cannot map refused, every field nobody listed dropped. A
//! refused pod is not copied at all; a Warning `SyncError` Event on it says
//! which fields and why ([`super::refusal`]). It never runs with a credential of the parent: its
//! service account is the parent's `default` with
//! `automountServiceAccountToken: false`, and the projected service-account
//! token is replaced by a Secret holding a token the *virtual* cluster
//! issued ([`super::token`]), with `KUBERNETES_SERVICE_HOST`/`_PORT`
//! pointing at nestkube. Downward-API references to the pod's own name,
//! namespace, uid and service account read [`DOWNWARD_ANNOTATIONS`]
//! instead (so the workload sees its virtual identity, through any number
//! of hops). `nodeName` is dropped (the parent's
//! scheduler decides), as are priority fields (the parent's admission
//! computes them); `runtimeClassName`, node affinity and tolerations are kept.
//!
//! Lifecycle, as a kubelet would: a deleting virtual pod deletes the copy
//! (same grace period) and is removed (grace 0) once the copy is gone; a
//! virtual pod that is gone deletes its copy; a copy that disappears while
//! its virtual pod had started (scheduled, running or with a host IP) was
//! deleted or evicted below, and the virtual pod is deleted too (as vcluster
//! does, so its controller replaces it); a finished virtual pod is never
//! started again. Label and image changes follow the virtual pod. Status comes back up in [`crate::down::status`], and the
//! virtual pod is bound to its copy's node ([`crate::down::binding`]).

use std::time::Duration;

use serde_json::{Map, Value, json};

use k8s_openapi::api::core::v1::PodSpec;
use nestkube_apiserver::controllers::watch::{Change, ObjectKey};

use super::pod_spec::{self, ROOT_CA_CONFIGMAP};
use super::refusal::{self, Refusal, Refused};
use super::{
    annotation, api, binding, config, create, delete, get, host_meta, is_ours, meta, status,
    string_map, token,
};
use crate::kinds::Translate;
use crate::{Ctx, Item, Kind, SyncError, Syncer, names};

/// Annotations on a copy with what the downward API of the workload's own
/// pod must show: its name, namespace and uid are those of its origin
/// ([`names::Origin`], the same through every hop), its service account
/// the one it was created with (carried only from a copy whose origin is
/// believed, as the origin is).
pub const DOWNWARD_ANNOTATIONS: [(&str, &str); 4] = [
    ("metadata.name", names::ORIGIN_NAME_ANNOTATION),
    ("metadata.namespace", names::ORIGIN_NAMESPACE_ANNOTATION),
    ("metadata.uid", names::ORIGIN_UID_ANNOTATION),
    ("spec.serviceAccountName", SERVICE_ACCOUNT_ANNOTATION),
];
/// Annotation on a pod copy with the origin pod's service account.
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "tenancy.nestkube.io/origin-service-account";

/// Where pods reach the API (nestkube itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `KUBERNETES_SERVICE_HOST`.
    pub host: String,
    /// `KUBERNETES_SERVICE_PORT`.
    pub port: String,
}

impl Endpoint {
    /// From a URL (`https://host[:port][/path]`; the port defaults to the
    /// scheme's).
    pub fn from_url(url: &str) -> Self {
        let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').unwrap_or((v6, ""));
                (h, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let default = if scheme == "http" { "80" } else { "443" };
        Self {
            host: host.into(),
            port: port.filter(|p| !p.is_empty()).unwrap_or(default).into(),
        }
    }

    /// From a `host:port` address (`[v6]:port` too).
    pub fn parse(addr: &str) -> Self {
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "443"));
        Self {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port: port.into(),
        }
    }
}

/// Reconciles virtual pod `ns/name` of `ctx.cluster` with its copy.
pub(crate) async fn sync(
    s: &Syncer,
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<Option<Duration>, SyncError> {
    let vapi = api(&ctx.virt, Kind::Pod, ns);
    let hapi = api(&ctx.parent, Kind::Pod, &ctx.placement.host_namespace);
    let hname = names::host_name(&ctx.cluster, ns, name);
    let vpod = get(&vapi, name).await?;
    let hpod = match s.cached_copy(ctx, Kind::Pod, &hname).await? {
        Some(h) if !is_ours(ctx, &h) => {
            tracing::warn!(cluster = %ctx.cluster, pod = %format!("{ns}/{name}"), parent_pod = %hname,
                "a parent pod of that name belongs to someone else; not syncing");
            return Ok(None);
        }
        h => h,
    };
    let Some(vpod) = vpod else {
        s.forget_pod_ips(&ctx.cluster, ns, name).await?;
        s.tokens.forget(ctx, &hname);
        if let Some(h) = hpod
            && !is_deleting(&h)
        {
            delete(&hapi, &hname, meta(&h, "uid"), None).await?;
        }
        return Ok(None);
    };
    let vuid = meta(&vpod, "uid");
    if let Some(h) = &hpod
        && annotation(h, names::UID_ANNOTATION) != vuid
    {
        // The copy of an earlier pod of the same name: remove it first.
        delete(&hapi, &hname, meta(h, "uid"), Some(0)).await?;
        return Ok(Some(Duration::from_millis(200)));
    }
    if is_deleting(&vpod) {
        match hpod {
            Some(h) if !is_deleting(&h) => {
                let grace = vpod["metadata"]["deletionGracePeriodSeconds"]
                    .as_u64()
                    .map(|g| g as u32);
                delete(&hapi, &hname, meta(&h, "uid"), grace).await?;
            }
            Some(_) => {}
            None => delete(&vapi, name, vuid, Some(0)).await?,
        }
        return Ok(None);
    }
    let Some(hpod) = hpod else {
        s.forget_pod_ips(&ctx.cluster, ns, name).await?;
        s.tokens.forget(ctx, &hname);
        if is_finished(&vpod) {
            return Ok(None);
        }
        // Gone from the watch's view: sure? (A started pod is deleted.)
        if has_started(&vpod) && get(&hapi, &hname).await?.is_some() {
            return Ok(Some(Duration::from_millis(200)));
        }
        if has_started(&vpod) {
            tracing::info!(cluster = %ctx.cluster, pod = %format!("{ns}/{name}"),
                "the parent's copy of a started pod is gone (deleted or evicted there): deleting the virtual pod");
            delete(&vapi, name, vuid, Some(0)).await?;
            return Ok(None);
        }
        // Translated first: nothing is copied for a pod that is refused.
        let mut desired = match translate(ctx, &vpod, &s.endpoint) {
            Ok(d) => d,
            Err(why) => {
                refusal::report(ctx, &vpod, "Pod", "v1", &why).await;
                return Ok(None);
            }
        };
        for (kind, n) in references(&vpod) {
            if let Some(obj) = get(&api(&ctx.virt, kind, ns), &n).await? {
                config::ensure(ctx, kind, &obj).await?;
            }
        }
        if let Some(dns) = &s.dns {
            crate::dns::pod_dns_config(&mut desired["spec"], ns, dns.nameserver);
        }
        let created = match create(&hapi, &desired).await {
            Ok(c) => c,
            Err(e) => {
                // The tenant sees why, as a Warning on its pod (retried).
                crate::events::copy_refused(ctx, &vpod, &hname, &e).await;
                return Err(e);
            }
        };
        let Some(created) = created else {
            // Created meanwhile (a racing reconcile after a restart).
            return Ok(Some(Duration::from_millis(200)));
        };
        tracing::debug!(cluster = %ctx.cluster, pod = %format!("{ns}/{name}"), parent_pod = %hname, "pod synced down");
        return token::ensure(ctx, &s.tokens, &vpod, &created, true).await;
    };
    // Both exist: labels follow the virtual pod, status comes up.
    let desired = host_meta(ctx, &vpod, &hname);
    let want: Map<String, Value> = desired["labels"].as_object().cloned().unwrap_or_default();
    let have = string_map(&hpod, "labels");
    if have.len() != want.len()
        || want
            .iter()
            .any(|(k, v)| have.get(k).map(String::as_str) != v.as_str())
    {
        let mut patch = Map::new();
        for k in have.keys().filter(|k| !want.contains_key(*k)) {
            patch.insert(k.clone(), Value::Null);
        }
        patch.extend(want);
        hapi.patch(
            &hname,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": patch}})),
        )
        .await?;
    }
    // Images are the part of a running pod's spec that may change.
    if let Some(patch) = image_patch(&vpod, &hpod) {
        hapi.patch(
            &hname,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(patch),
        )
        .await?;
    }
    let refresh = token::ensure(ctx, &s.tokens, &vpod, &hpod, false).await?;
    // Bound before any status says it runs, as a scheduler binds a pod
    // before its kubelet reports on it.
    let node = hpod["spec"]["nodeName"].as_str().unwrap_or("");
    if !node.is_empty() && vpod["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
        binding::bind(s, &ctx.cluster, ns, name, vuid, node).await?;
        s.enqueue(crate::Item::Nodes {
            cluster: ctx.cluster.clone(),
        });
    }
    status::up(&vapi, &vpod, &hpod).await?;
    s.observe_pod_ips(&ctx.cluster, &vpod, &hpod).await?;
    Ok(refresh)
}

/// The strategic merge patch that gives copy `hpod` the container images of
/// `vpod` (`None`: they are the same).
fn image_patch(vpod: &Value, hpod: &Value) -> Option<Value> {
    let mut patch = json!({});
    for key in ["initContainers", "containers"] {
        let changed: Vec<Value> = each(&vpod["spec"][key])
            .filter_map(|c| {
                let image = c["image"].as_str()?;
                let host = each(&hpod["spec"][key]).find(|h| h["name"] == c["name"])?;
                (host["image"].as_str() != Some(image))
                    .then(|| json!({"name": c["name"], "image": image}))
            })
            .collect();
        if !changed.is_empty() {
            patch["spec"][key] = Value::Array(changed);
        }
    }
    patch.get("spec").is_some().then_some(patch)
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Whether the pod has finished (its containers will not run again).
fn is_finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the pod ever got as far as a node below.
fn has_started(pod: &Value) -> bool {
    let status = &pod["status"];
    status["phase"] == "Running"
        || status["hostIP"].as_str().is_some_and(|s| !s.is_empty())
        || status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
}

/// The ConfigMaps and Secrets a pod references (volumes, projected
/// sources, env, envFrom, imagePullSecrets), without duplicates and
/// without the root CA ConfigMap (served from the token Secret).
pub fn references(pod: &Value) -> Vec<(Kind, String)> {
    let mut out: Vec<(Kind, String)> = Vec::new();
    let mut add = |kind: Kind, name: &Value| {
        if let Some(n) = name.as_str().filter(|n| !n.is_empty())
            && !(kind == Kind::ConfigMap && n == ROOT_CA_CONFIGMAP)
            && !out.iter().any(|(k, m)| *k == kind && m == n)
        {
            out.push((kind, n.to_string()));
        }
    };
    let spec = &pod["spec"];
    for s in each(&spec["imagePullSecrets"]) {
        add(Kind::Secret, &s["name"]);
    }
    for v in each(&spec["volumes"]) {
        add(Kind::ConfigMap, &v["configMap"]["name"]);
        add(Kind::Secret, &v["secret"]["secretName"]);
        for src in each(&v["projected"]["sources"]) {
            add(Kind::ConfigMap, &src["configMap"]["name"]);
            add(Kind::Secret, &src["secret"]["name"]);
        }
    }
    for c in containers(spec) {
        for e in each(&c["env"]) {
            add(Kind::ConfigMap, &e["valueFrom"]["configMapKeyRef"]["name"]);
            add(Kind::Secret, &e["valueFrom"]["secretKeyRef"]["name"]);
        }
        for e in each(&c["envFrom"]) {
            add(Kind::ConfigMap, &e["configMapRef"]["name"]);
            add(Kind::Secret, &e["secretRef"]["name"]);
        }
    }
    out
}

fn each(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|k| each(&spec[k]))
}

/// The parent copy of virtual pod `vpod` (see the module docs), or why it
/// is not copied.
pub(crate) fn translate(ctx: &Ctx, vpod: &Value, endpoint: &Endpoint) -> Result<Value, Refused> {
    let ns = meta(vpod, "namespace");
    let name = meta(vpod, "name");
    let hname = names::host_name(&ctx.cluster, ns, name);
    let token_secret = token::secret_name(&hname);
    let mut metadata = host_meta(ctx, vpod, &hname);
    let sa = vpod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    // Name, namespace and uid: the origin annotations host_meta wrote.
    let carried = annotation(vpod, SERVICE_ACCOUNT_ANNOTATION);
    let sa = if super::origin(ctx, vpod).is_below(&ctx.cluster) && !carried.is_empty() {
        carried
    } else {
        sa
    };
    metadata["annotations"][SERVICE_ACCOUNT_ANNOTATION] = json!(sa);
    let vspec: PodSpec = serde_json::from_value(vpod["spec"].clone()).map_err(|e| {
        Refused(vec![Refusal {
            field: "spec".into(),
            detail: format!("the pod's spec could not be read: {e}"),
        }])
    })?;
    let spec = pod_spec::translate(
        &vspec,
        &pod_spec::Names {
            cluster: &ctx.cluster,
            vc_uid: &ctx.placement.uid,
            namespace: ns,
            pod: name,
            token_secret: &token_secret,
            endpoint,
        },
    )?;
    Ok(json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}))
}

/// Pods' translation ([`crate::kinds`]).
pub(crate) struct Pods;

#[async_trait::async_trait]
impl Translate for Pods {
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

    fn virtual_changed(
        &self,
        s: &Syncer,
        _kind: Kind,
        key: &ObjectKey<'_>,
        change: &Change<'_>,
    ) -> bool {
        // A pod that is gone may leave ConfigMaps and Secrets unreferenced,
        // and the Node it was bound to unused.
        if let Change::Delete { .. } = change
            && let Some(pod) = change.object()
        {
            for (kind, name) in references(&pod) {
                s.enqueue_object(kind, key.cluster, key.namespace, &name);
            }
            if pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            {
                s.enqueue(Item::Nodes {
                    cluster: key.cluster.to_string(),
                });
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = |host: &str, port: &str| Endpoint {
            host: host.into(),
            port: port.into(),
        };
        assert_eq!(Endpoint::parse("127.0.0.1:6443"), e("127.0.0.1", "6443"));
        assert_eq!(Endpoint::parse("[::1]:6443"), e("::1", "6443"));
        assert_eq!(
            Endpoint::from_url("https://nestkube.example:8443/x"),
            e("nestkube.example", "8443")
        );
        assert_eq!(
            Endpoint::from_url("https://nestkube.example"),
            e("nestkube.example", "443")
        );
        assert_eq!(
            Endpoint::from_url("https://[fd00::1]:6443"),
            e("fd00::1", "6443")
        );
        assert_eq!(Endpoint::from_url("https://[fd00::1]"), e("fd00::1", "443"));
    }
}
