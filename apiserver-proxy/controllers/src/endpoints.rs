//! The Endpoints and EndpointSlice controllers (upstream's `endpoint` and
//! `endpointslice` controllers) in one: for every Service with a selector,
//! an Endpoints object of the same name (ready pods in `addresses`, others
//! in `notReadyAddresses`) and EndpointSlices `<service>-<suffix>` labelled
//! `kubernetes.io/service-name` and managed by
//! `endpointslice-controller.k8s.io` (one per address type and port set;
//! an empty placeholder slice when no pod matches). Ports come from each
//! service port's `targetPort`, by number or by the pod's container port
//! name. Headless services are served the same way; selector-less services
//! are never touched (their Endpoints belong to the user).
//!
//! The Endpoints of a deleted Service go, as upstream; those a user manages
//! (without [`ENDPOINTS_MANAGED_BY_LABEL`]) only once the Service has been
//! gone for [`USER_ENDPOINTS_GRACE`], so a Service deleted and at once
//! re-created (the syncer does that to give a virtual Service its parent's
//! cluster IP) keeps them.
//!
//! Cluster-aware: one watch over all clusters. The watch loop keeps the
//! selectors of every selecting Service (keyed by cluster and namespace) so
//! a pod change enqueues exactly the Services that select the pod before or
//! after it; a short task per Service being reconciled. Reads go to the
//! store. A slice holds at most 100 endpoints, as upstream's default.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::podutil;
use super::runtime::{self, ControllerContext};
use super::runtime::{Change, ObjectKey};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::meta;
use crate::registry::selector::LabelSelector;
use crate::registry::store::{DeleteOptions, ListOptions, Store, Target, WriteOptions};

/// The `managed-by` value of slices this controller owns.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Upstream's label on the Endpoints its endpoints controller writes
/// (`LabelManagedBy`), and its value (`ControllerName`): what tells them
/// from Endpoints a user manages for a selector-less Service.
pub const ENDPOINTS_MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Value of [`ENDPOINTS_MANAGED_BY_LABEL`].
pub const ENDPOINTS_MANAGED_BY: &str = "endpoint-controller";
/// How long user-managed Endpoints outlive their deleted Service.
pub const USER_ENDPOINTS_GRACE: Duration = Duration::from_secs(5);
/// Upstream's default `--max-endpoints-per-slice`.
const MAX_PER_SLICE: usize = 100;

/// A Service (cluster, namespace, name).
type Item = (String, String, String);
/// Selectors of selecting Services: (cluster, namespace) -> name -> labels.
type Selectors = HashMap<(String, String), HashMap<String, BTreeMap<String, String>>>;

struct Controller {
    store: Store,
    /// When a Service was first seen gone while it had user-managed
    /// Endpoints (see the module docs).
    gone_since: Mutex<HashMap<Item, std::time::Instant>>,
    services: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
    endpoints: Arc<ResourceInfo>,
    slices: Arc<ResourceInfo>,
}

/// Starts the controller for every cluster of `ctx`.
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        gone_since: Mutex::new(HashMap::new()),
        services: ctx.catalog.get("", "v1", "services")?.clone(),
        pods: ctx.catalog.get("", "v1", "pods")?.clone(),
        endpoints: ctx.catalog.get("", "v1", "endpoints")?.clone(),
        slices: ctx
            .catalog
            .get("discovery.k8s.io", "v1", "endpointslices")?
            .clone(),
    });
    let mut selectors = Selectors::new();
    Some(runtime::spawn_controller(
        &ctx.store,
        "endpoints",
        controller,
        move |change| interesting(change, &mut selectors),
    ))
}

#[async_trait::async_trait]
impl runtime::Reconciler<Item> for Controller {
    async fn reconcile(&self, (cluster, ns, name): Item) -> runtime::Outcome<ApiError> {
        self.sync(&cluster, &ns, &name).await
    }
}

fn service_selector(svc: &Value) -> Option<BTreeMap<String, String>> {
    let m: BTreeMap<String, String> = svc["spec"]["selector"]
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    (!m.is_empty()).then_some(m)
}

fn selects(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Services a change concerns (and the selector cache kept current).
fn interesting(change: &Change<'_>, sel: &mut Selectors) -> Vec<Item> {
    if let Change::Listing = change {
        sel.clear();
        return Vec::new();
    }
    let Some(k) = change.key().and_then(ObjectKey::parse) else {
        return Vec::new();
    };
    let item = |name: &str| {
        (
            k.cluster.to_string(),
            k.namespace.to_string(),
            name.to_string(),
        )
    };
    let scope = (k.cluster.to_string(), k.namespace.to_string());
    match k.segment {
        "core/services" => {
            let current = change.current().and_then(|_| change.object());
            let entry = sel.entry(scope.clone()).or_default();
            match current.as_ref().and_then(service_selector) {
                Some(s) => {
                    entry.insert(k.name.to_string(), s);
                }
                None => {
                    entry.remove(k.name);
                }
            }
            if entry.is_empty() {
                sel.remove(&scope);
            }
            vec![item(k.name)]
        }
        "core/endpoints" if sel.get(&scope).is_some_and(|m| m.contains_key(k.name)) => {
            vec![item(k.name)]
        }
        "discovery.k8s.io/endpointslices" => {
            let Some(obj) = change.object() else {
                return Vec::new();
            };
            match obj["metadata"]["labels"][SERVICE_NAME_LABEL].as_str() {
                Some(s) if obj["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY => {
                    vec![item(s)]
                }
                _ => Vec::new(),
            }
        }
        "core/pods" => {
            let Some(services) = sel.get(&scope) else {
                return Vec::new();
            };
            let mut label_sets = Vec::new();
            match change {
                Change::Put { kv, prev } => {
                    label_sets.push(kv);
                    label_sets.extend(prev);
                }
                Change::Initial(kv) => label_sets.push(kv),
                Change::Delete { prev } => label_sets.push(prev),
                _ => {}
            }
            let labels: Vec<BTreeMap<String, String>> = label_sets
                .into_iter()
                .filter_map(|kv| crate::registry::store::decode_stored(kv).ok())
                .map(|p| meta::labels(&p))
                .collect();
            services
                .iter()
                .filter(|(_, s)| labels.iter().any(|l| selects(s, l)))
                .map(|(n, _)| item(n))
                .collect()
        }
        _ => Vec::new(),
    }
}

fn tolerate<T>(r: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound(_))
        | Err(ApiError::Conflict { .. })
        | Err(ApiError::AlreadyExists(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One pod's endpoint: its IPs, readiness, ports for the service, and the
/// address fields.
struct PodEndpoint {
    ips: Vec<String>,
    ready: bool,
    ports: Vec<Value>,
    pod: Value,
}

/// The ports of `svc` as served by `pod` (a named targetPort the pod lacks
/// drops that port).
fn ports_for(svc: &Value, pod: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for sp in svc["spec"]["ports"].as_array().into_iter().flatten() {
        let target = match &sp["targetPort"] {
            Value::Number(n) => n.as_i64(),
            Value::String(name) => match name.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => pod["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .find(|p| p["name"] == *name)
                    .and_then(|p| p["containerPort"].as_i64()),
            },
            _ => sp["port"].as_i64(),
        };
        let Some(port) = target else { continue };
        let mut p = json!({"name": sp["name"].as_str().unwrap_or(""), "port": port,
            "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
        if let Some(a) = sp.get("appProtocol").filter(|a| a.is_string()) {
            p["appProtocol"] = a.clone();
        }
        out.push(p);
    }
    out
}

fn pod_ips(pod: &Value) -> Vec<String> {
    let mut ips: Vec<String> = pod["status"]["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["ip"].as_str().map(str::to_string))
        .collect();
    if ips.is_empty()
        && let Some(ip) = pod["status"]["podIP"].as_str().filter(|s| !s.is_empty())
    {
        ips.push(ip.to_string());
    }
    ips
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": meta::namespace(pod), "name": meta::name(pod),
        "uid": meta::uid(pod)})
}

fn hostname_for(svc: &Value, pod: &Value) -> Option<String> {
    let h = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    (pod["spec"]["subdomain"].as_str() == Some(meta::name(svc))).then(|| h.to_string())
}

/// The Endpoints `subsets` for `eps` (grouped by port set, sorted).
pub fn subsets(svc: &Value, eps: &[PodEndpointView<'_>]) -> Value {
    let mut groups: BTreeMap<String, (Value, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for e in eps {
        if e.ports.is_empty() && !svc["spec"]["ports"].as_array().is_none_or(Vec::is_empty) {
            continue;
        }
        let mut ports = e.ports.to_vec();
        for p in &mut ports {
            if p["name"] == "" {
                p.as_object_mut().map(|o| o.remove("name"));
            }
        }
        ports.sort_by_key(|p| p.to_string());
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let g = groups
            .entry(key)
            .or_insert_with(|| (json!(ports), Vec::new(), Vec::new()));
        for ip in e.ips {
            let mut a = json!({"ip": ip, "targetRef": target_ref(e.pod)});
            if let Some(n) = e.pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                a["nodeName"] = json!(n);
            }
            if let Some(h) = hostname_for(svc, e.pod) {
                a["hostname"] = json!(h);
            }
            if e.ready { &mut g.1 } else { &mut g.2 }.push(a);
        }
    }
    let mut out = Vec::new();
    for (_, (ports, mut ready, mut not_ready)) in groups {
        ready.sort_by(|a, b| a["ip"].as_str().cmp(&b["ip"].as_str()));
        not_ready.sort_by(|a, b| a["ip"].as_str().cmp(&b["ip"].as_str()));
        let mut s = json!({});
        if !ready.is_empty() {
            s["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            s["notReadyAddresses"] = json!(not_ready);
        }
        if ports.as_array().is_some_and(|p| !p.is_empty()) {
            s["ports"] = ports;
        }
        out.push(s);
    }
    json!(out)
}

/// A borrowed view of one pod's endpoint.
pub struct PodEndpointView<'a> {
    ips: &'a [String],
    ready: bool,
    ports: &'a [Value],
    pod: &'a Value,
}

/// The desired slices: (address type, ports, endpoints), one per address
/// type and port set; a placeholder when there is none.
fn slices(svc: &Value, eps: &[PodEndpoint]) -> Vec<(String, Value, Vec<Value>)> {
    let mut groups: BTreeMap<(String, String), (Value, Vec<Value>)> = BTreeMap::new();
    for e in eps {
        for ip in &e.ips {
            let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
            let mut ports = e.ports.clone();
            ports.sort_by_key(|p| p.to_string());
            let key = (
                family.to_string(),
                serde_json::to_string(&ports).unwrap_or_default(),
            );
            let g = groups
                .entry(key)
                .or_insert_with(|| (json!(ports), Vec::new()));
            let terminating = meta::is_deleting(&e.pod);
            let mut ep = json!({"addresses": [ip],
                "conditions": {"ready": e.ready && !terminating, "serving": e.ready,
                    "terminating": terminating},
                "targetRef": target_ref(&e.pod)});
            if let Some(n) = e.pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                ep["nodeName"] = json!(n);
            }
            if let Some(h) = hostname_for(svc, &e.pod) {
                ep["hostname"] = json!(h);
            }
            g.1.push(ep);
        }
    }
    let mut out: Vec<(String, Value, Vec<Value>)> = groups
        .into_iter()
        .flat_map(|((family, _), (ports, mut eps))| {
            eps.sort_by(|a, b| a["addresses"][0].as_str().cmp(&b["addresses"][0].as_str()));
            eps.chunks(MAX_PER_SLICE)
                .map(|c| (family.clone(), ports.clone(), c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    if out.is_empty() {
        out.push(("IPv4".into(), Value::Null, Vec::new()));
    }
    out
}

/// The endpoints of the `pods` that `svc` selects (not terminating, not
/// finished, with an IP), by pod name.
fn pod_endpoints(svc: &Value, pods: Vec<Value>) -> Vec<PodEndpoint> {
    let sel = service_selector(svc).unwrap_or_default();
    let publish_not_ready = svc["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    let mut eps = Vec::new();
    for pod in pods {
        if !selects(&sel, &meta::labels(&pod))
            || meta::is_deleting(&pod)
            || matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded") | Some("Failed")
            )
        {
            continue;
        }
        let ips = pod_ips(&pod);
        if ips.is_empty() {
            continue;
        }
        eps.push(PodEndpoint {
            ips,
            ready: publish_not_ready || podutil::is_ready(&pod),
            ports: ports_for(svc, &pod),
            pod,
        });
    }
    eps.sort_by_key(|e| meta::name(&e.pod).to_string());
    eps
}

/// The fields of a slice this controller sets.
struct SliceContent {
    family: String,
    ports: Value,
    endpoints: Vec<Value>,
    labels: Value,
    owner: Value,
}

impl SliceContent {
    fn apply(&self, s: &mut Value) {
        s["addressType"] = json!(self.family);
        s["endpoints"] = json!(self.endpoints);
        if self.ports.is_null() {
            s.as_object_mut().map(|o| o.remove("ports"));
        } else {
            s["ports"] = self.ports.clone();
        }
        s["metadata"]["labels"] = self.labels.clone();
        s["metadata"]["ownerReferences"] = self.owner.clone();
    }
}

/// What to do with a Service's slices.
struct SlicePlan<'a> {
    /// Existing slices (by name) to rewrite with their content.
    update: Vec<(&'a str, SliceContent)>,
    /// Slices to create.
    create: Vec<SliceContent>,
    /// Existing slices no longer needed.
    delete: Vec<&'a str>,
}

/// The slices `svc` (whose Endpoints carry `labels`) needs for `eps`,
/// reusing the `existing` ones: one of the same address type and ports,
/// else any of the same address type.
fn plan_slices<'a>(
    svc: &Value,
    labels: &Value,
    eps: &[PodEndpoint],
    existing: &'a [Value],
) -> SlicePlan<'a> {
    let name = meta::name(svc);
    let mut slice_labels = labels.clone();
    slice_labels[SERVICE_NAME_LABEL] = json!(name);
    slice_labels[MANAGED_BY_LABEL] = json!(MANAGED_BY);
    let owner = json!([{"apiVersion": "v1", "kind": "Service", "name": name,
        "uid": meta::uid(svc), "controller": true, "blockOwnerDeletion": true}]);
    let mut unused: Vec<&Value> = existing.iter().filter(|s| !meta::is_deleting(s)).collect();
    let mut plan = SlicePlan {
        update: Vec::new(),
        create: Vec::new(),
        delete: Vec::new(),
    };
    for (family, ports, endpoints) in slices(svc, eps) {
        let pos = unused
            .iter()
            .position(|s| s["addressType"] == family.as_str() && s["ports"] == ports)
            .or_else(|| {
                unused
                    .iter()
                    .position(|s| s["addressType"] == family.as_str())
            });
        let content = SliceContent {
            family,
            ports,
            endpoints,
            labels: slice_labels.clone(),
            owner: owner.clone(),
        };
        match pos {
            Some(i) => {
                let old = unused.remove(i);
                let mut want = old.clone();
                content.apply(&mut want);
                if &want != old {
                    plan.update.push((meta::name(old), content));
                }
            }
            None => plan.create.push(content),
        }
    }
    plan.delete = unused.into_iter().map(meta::name).collect();
    plan
}

impl Controller {
    async fn sync(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, ApiError> {
        let t = |resource| Target {
            cluster,
            resource,
            namespace: Some(ns),
        };
        let (st, pt, et, slt) = (
            t(&self.services),
            t(&self.pods),
            t(&self.endpoints),
            t(&self.slices),
        );
        let svc = match self.store.get(&st, name).await {
            Ok(s) => Some(s),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let opts = ListOptions {
            label_selector: LabelSelector::parse(&format!(
                "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
            ))
            .map_err(|e| ApiError::Internal(e.to_string()))?,
            ..Default::default()
        };
        let existing = self.store.list(&slt, &opts).await?.items;
        let gone = svc.is_none();
        if !gone {
            self.gone_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(cluster.to_string(), ns.to_string(), name.to_string()));
        }
        let Some(svc) = svc.filter(|s| service_selector(s).is_some() && !meta::is_deleting(s))
        else {
            // Gone or no longer selecting: our slices go; the Endpoints go
            // with a deleted Service (a selector-less one owns its own).
            for s in &existing {
                tolerate(
                    self.store
                        .delete(&slt, meta::name(s), &DeleteOptions::default())
                        .await,
                )?;
            }
            if gone && let Some(wait) = self.user_endpoints_wait(&et, cluster, ns, name).await? {
                return Ok(Some(wait));
            }
            if gone {
                tolerate(
                    self.store
                        .delete(&et, name, &DeleteOptions::default())
                        .await,
                )?;
            }
            return Ok(None);
        };
        let pods = self.store.list(&pt, &ListOptions::default()).await?.items;
        let eps = pod_endpoints(&svc, pods);

        // Endpoints.
        let mut labels = svc["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        if svc["spec"]["clusterIP"] == "None" {
            labels[HEADLESS_LABEL] = json!("");
        }
        labels[ENDPOINTS_MANAGED_BY_LABEL] = json!(ENDPOINTS_MANAGED_BY);
        let views: Vec<PodEndpointView<'_>> = eps
            .iter()
            .map(|e| PodEndpointView {
                ips: &e.ips,
                ready: e.ready,
                ports: &e.ports,
                pod: &e.pod,
            })
            .collect();
        let subsets = subsets(&svc, &views);
        let want_labels =
            (!labels.as_object().is_some_and(|o| o.is_empty())).then(|| labels.clone());
        match self.store.get(&et, name).await {
            Ok(ep) => {
                let same = ep["subsets"] == subsets
                    || (ep["subsets"].is_null() && subsets.as_array().is_some_and(Vec::is_empty));
                if !same || ep["metadata"].get("labels").cloned() != want_labels {
                    let (subsets, want_labels) = (subsets.clone(), want_labels.clone());
                    tolerate(
                        self.store
                            .update_with(&et, name, None, WriteOptions::default(), |old| {
                                let mut new = old.clone();
                                new["subsets"] = subsets.clone();
                                meta::set(&mut new, "labels", want_labels.clone());
                                Ok((new, Vec::new()))
                            })
                            .await,
                    )?;
                }
            }
            Err(ApiError::NotFound(_)) => {
                let mut body = json!({"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name}, "subsets": subsets});
                meta::set(&mut body, "labels", want_labels.clone());
                match self.store.create(&et, body, WriteOptions::default()).await {
                    Ok(_) | Err(ApiError::AlreadyExists(_)) | Err(ApiError::Forbidden(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }

        // EndpointSlices.
        let p = plan_slices(&svc, &labels, &eps, &existing);
        for (slice, content) in &p.update {
            tolerate(
                self.store
                    .update_with(&slt, slice, None, WriteOptions::default(), |cur| {
                        let mut new = cur.clone();
                        content.apply(&mut new);
                        Ok((new, Vec::new()))
                    })
                    .await,
            )?;
        }
        for content in &p.create {
            let mut body = json!({"apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice", "metadata": {"generateName": format!("{name}-")}});
            content.apply(&mut body);
            match self.store.create(&slt, body, WriteOptions::default()).await {
                Ok(_) | Err(ApiError::Forbidden(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for slice in p.delete {
            tolerate(
                self.store
                    .delete(&slt, slice, &DeleteOptions::default())
                    .await,
            )?;
        }
        Ok(None)
    }

    /// For a Service that is gone: how long to wait before deleting its
    /// Endpoints when a user manages them (`None`: delete now, or there is
    /// nothing to keep).
    async fn user_endpoints_wait(
        &self,
        et: &Target<'_>,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, ApiError> {
        let key = (cluster.to_string(), ns.to_string(), name.to_string());
        let user_managed = match self.store.get(et, name).await {
            Ok(ep) => ep["metadata"]["labels"][ENDPOINTS_MANAGED_BY_LABEL] != ENDPOINTS_MANAGED_BY,
            Err(ApiError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let mut gone_since = self.gone_since.lock().unwrap_or_else(|e| e.into_inner());
        if !user_managed {
            gone_since.remove(&key);
            return Ok(None);
        }
        let since = *gone_since
            .entry(key.clone())
            .or_insert_with(std::time::Instant::now);
        match USER_ENDPOINTS_GRACE.checked_sub(since.elapsed()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => {
                gone_since.remove(&key);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_reused_by_address_type_and_extras_deleted() {
        let svc = json!({"metadata": {"name": "web", "uid": "u-svc"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}},
            "status": {"podIP": "10.0.0.1"}});
        let other = json!({"metadata": {"name": "q", "labels": {"app": "db"}},
            "status": {"podIP": "10.0.0.2"}});
        let eps = pod_endpoints(&svc, vec![other, pod]);
        assert_eq!(eps.len(), 1);
        let existing = vec![
            json!({"metadata": {"name": "web-a"}, "addressType": "IPv4"}),
            json!({"metadata": {"name": "web-b"}, "addressType": "IPv4"}),
        ];
        let p = plan_slices(&svc, &json!({}), &eps, &existing);
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].0, "web-a");
        assert!(p.create.is_empty());
        assert_eq!(p.delete, vec!["web-b"]);
        let mut written = existing[0].clone();
        p.update[0].1.apply(&mut written);
        assert_eq!(written["endpoints"][0]["addresses"][0], "10.0.0.1");
        assert_eq!(written["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(written["metadata"]["ownerReferences"][0]["uid"], "u-svc");
        let again = plan_slices(&svc, &json!({}), &eps, std::slice::from_ref(&written));
        assert!(again.update.is_empty() && again.create.is_empty() && again.delete.is_empty());
    }

    #[test]
    fn ports_by_number_and_name() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                      {"name": "metrics", "port": 9090, "targetPort": 9091, "protocol": "TCP"}]}});
        let pod = json!({"spec": {"containers": [{"name": "c",
            "ports": [{"name": "web", "containerPort": 8080}]}]}});
        let ports = ports_for(&svc, &pod);
        assert_eq!(ports[0]["port"], 8080);
        assert_eq!(ports[1]["port"], 9091);
        let bare = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(ports_for(&svc, &bare).len(), 1);
    }

    #[test]
    fn slices_hold_at_most_100_endpoints() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}});
        let eps: Vec<PodEndpoint> = (0..250)
            .map(|i| PodEndpoint {
                ips: vec![format!("10.0.{}.{}", i / 200, i % 200)],
                ready: true,
                ports: Vec::new(),
                pod: json!({"metadata": {"name": format!("p{i}")}, "spec": {}}),
            })
            .collect();
        let sizes: Vec<usize> = slices(&svc, &eps).iter().map(|s| s.2.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(slices(&svc, &[]).len(), 1, "a placeholder");
    }

    #[test]
    fn subsets_split_ready_and_not_ready() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}});
        let pod =
            |n: &str| json!({"metadata": {"name": n, "namespace": "d", "uid": n}, "spec": {}});
        let (a, b) = (pod("a"), pod("b"));
        let ports = vec![json!({"name": "", "port": 80, "protocol": "TCP"})];
        let (ia, ib) = (vec!["10.0.0.2".to_string()], vec!["10.0.0.1".to_string()]);
        let views = [
            PodEndpointView {
                ips: &ia,
                ready: true,
                ports: &ports,
                pod: &a,
            },
            PodEndpointView {
                ips: &ib,
                ready: false,
                ports: &ports,
                pod: &b,
            },
        ];
        let s = subsets(&svc, &views);
        assert_eq!(s[0]["addresses"][0]["ip"], "10.0.0.2");
        assert_eq!(s[0]["notReadyAddresses"][0]["targetRef"]["name"], "b");
        assert_eq!(s[0]["ports"], json!([{"port": 80, "protocol": "TCP"}]));
    }
}
