//! What clients learn before they ask for objects: `/version`, `/api`,
//! `/apis` (legacy and aggregated `apidiscovery.k8s.io/v2`), the per-version
//! resource lists, and the OpenAPI v2/v3 documents.
//!
//! Everything here derives from what a cluster serves ([`ServedView`]): the
//! built-ins with the embedded OpenAPI data, built once per process and
//! shared by every cluster, then the cluster's own CRDs, whose OpenAPI v3
//! documents are generated once per distinct CRD ([`crd_openapi`]).
//! nestkube's own API (`tenancy.nestkube.io`) is generated from its CRD the
//! same way, once per process.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::{Value, json};

use bytes::Bytes;

use crate::registry::apiextensions::definition::Definition;
use crate::registry::catalog::{GroupVersion, ResourceInfo, ServedView};

pub mod crd_openapi;

mod data {
    include!(concat!(env!("OUT_DIR"), "/openapi_data.rs"));
}

/// The Kubernetes version this server implements.
pub const KUBERNETES_VERSION: &str = "v1.37.2";

/// Media type of aggregated discovery.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "emulationMajor": "1",
        "emulationMinor": "37",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "36",
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": format!("nestkube-{}", env!("CARGO_PKG_VERSION")),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a (nestkube, Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Served groups (not core) in order, with their versions (preferred first).
fn groups<'a>(view: &'a ServedView<'_>) -> Vec<(String, Vec<&'a GroupVersion>)> {
    let mut out: Vec<(String, Vec<&GroupVersion>)> = Vec::new();
    for gv in view.group_versions().filter(|gv| !gv.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == gv.group) {
            Some((_, versions)) => versions.push(gv),
            None => out.push((gv.group.clone(), vec![gv])),
        }
    }
    out
}

fn api_group(group: &str, versions: &[&GroupVersion]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|gv| json!({"groupVersion": group_version_string(group, &gv.version), "version": gv.version}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/api`.
pub fn legacy_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis`.
pub fn group_list(view: &ServedView<'_>) -> Value {
    let groups: Vec<Value> = groups(view)
        .iter()
        .map(|(g, vs)| api_group(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(view: &ServedView<'_>, name: &str) -> Option<Value> {
    groups(view).iter().find(|(g, _)| g == name).map(|(g, vs)| {
        let mut v = api_group(g, vs);
        v["kind"] = "APIGroup".into();
        v["apiVersion"] = "v1".into();
        v
    })
}

fn storage_version_hash(r: &ResourceInfo) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&r.group, &r.version, &r.kind).hash(&mut h);
    let bytes = h.finish().to_be_bytes();
    base64_std(&bytes)
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `/api/v1` and `/apis/<group>/<version>`: an `APIResourceList`.
pub fn resource_list(view: &ServedView<'_>, group: &str, version: &str) -> Option<Value> {
    let gv = view
        .group_versions()
        .find(|gv| gv.group == group && gv.version == version)?;
    let mut resources = Vec::new();
    for r in &gv.resources {
        let mut entry = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
            "storageVersionHash": storage_version_hash(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for s in &r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.resource, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != r.group || s.version != r.version {
                sub["group"] = s.group.clone().into();
                sub["version"] = s.version.clone().into();
            }
            resources.push(sub);
        }
    }
    // Create-only resources (reviews), as upstream lists them: no
    // storageVersionHash, as they are not stored.
    for r in &gv.create_only {
        let mut entry = json!({
            "name": r["resource"],
            "singularName": r["singularResource"],
            "namespaced": r["scope"] == "Namespaced",
            "kind": r["responseKind"]["kind"],
            "verbs": r["verbs"],
        });
        for field in ["shortNames", "categories"] {
            if let Some(v) = r.get(field) {
                entry[field] = v.clone();
            }
        }
        resources.push(entry);
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version_string(group, version),
        "resources": resources,
    }))
}

fn discovery_resource(r: &ResourceInfo) -> Value {
    let mut v = json!({
        "resource": r.resource,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        v["subresources"] = r
            .subresources
            .iter()
            .map(|s| {
                json!({"subresource": s.name,
                       "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                       "verbs": s.verbs})
            })
            .collect();
    }
    v
}

fn discovery_group(name: &str, versions: &[&GroupVersion]) -> Value {
    let mut metadata = json!({"creationTimestamp": null});
    if !name.is_empty() {
        metadata["name"] = name.into();
    }
    json!({
        "metadata": metadata,
        "versions": versions.iter().map(|gv| json!({
            "version": gv.version,
            "resources": gv.resources.iter().map(|r| discovery_resource(r))
                .chain(gv.create_only.iter().cloned())
                .collect::<Vec<_>>(),
            "freshness": "Current",
        })).collect::<Vec<_>>(),
    })
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`) for `/api` (legacy = true) or `/apis`.
pub fn aggregated(view: &ServedView<'_>, legacy: bool) -> Value {
    let items: Vec<Value> = if legacy {
        let core: Vec<&GroupVersion> = view
            .group_versions()
            .filter(|gv| gv.group.is_empty())
            .collect();
        vec![discovery_group("", &core)]
    } else {
        groups(view)
            .iter()
            .map(|(g, vs)| discovery_group(g, vs))
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `/openapi/v2` as JSON, if generated (the built-ins only).
pub fn openapi_v2() -> Option<&'static [u8]> {
    data::OPENAPI_V2
}

/// The built-in `/openapi/v2` document, parsed once.
fn builtin_v2() -> Option<&'static Value> {
    static DOC: OnceLock<Option<Value>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_slice(data::OPENAPI_V2?).ok())
        .as_ref()
}

/// Merged `/openapi/v2` documents by the set of definitions they merge
/// (most recently used first). Bounded: a cluster that keeps changing its
/// CRDs evicts old sets, it cannot grow the process without limit.
struct V2Cache {
    entries: std::collections::VecDeque<(Vec<Weak<Definition>>, Bytes)>,
}

/// How many merged v2 documents are kept (each about the size of the
/// built-in document, 2.8 MB).
const V2_CACHE_ENTRIES: usize = 16;

/// `/openapi/v2` of a cluster: the built-in document, plus the paths and
/// definitions of the cluster's custom resources (upstream's
/// `BuildOpenAPIV2` per served version, merged). A cluster without CRDs
/// gets the embedded bytes; one with CRDs a document merged once per
/// distinct set of CRDs in the process and shared by every cluster that
/// has that set. Built-in paths and definitions win over a CRD's.
pub fn openapi_v2_for(view: &ServedView<'_>) -> Option<Bytes> {
    let base = data::OPENAPI_V2?;
    let Some(custom) = view.custom().filter(|c| !c.installed.is_empty()) else {
        return Some(Bytes::from_static(base));
    };
    let mut set: Vec<&Arc<Definition>> = custom.installed.values().map(|i| &i.definition).collect();
    set.sort_by_key(|d| Arc::as_ptr(d));
    set.dedup_by_key(|d| Arc::as_ptr(d));
    static CACHE: OnceLock<Mutex<V2Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        Mutex::new(V2Cache {
            entries: Default::default(),
        })
    });
    let same = |weak: &[Weak<Definition>]| {
        weak.len() == set.len()
            && weak
                .iter()
                .zip(&set)
                .all(|(w, d)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(d)) && w.strong_count() > 0)
    };
    {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = c.entries.iter().position(|(k, _)| same(k)) {
            let hit = c.entries.remove(i)?;
            let bytes = hit.1.clone();
            c.entries.push_front(hit);
            return Some(bytes);
        }
    }
    // Built outside the lock: another cluster's document is never waited for.
    let doc = Bytes::from(merge_v2(builtin_v2()?, &set)?);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    c.entries
        .retain(|(k, _)| k.iter().all(|w| w.strong_count() > 0));
    c.entries
        .push_front((set.iter().map(|d| Arc::downgrade(d)).collect(), doc.clone()));
    c.entries.truncate(V2_CACHE_ENTRIES);
    Some(doc)
}

/// The built-in document with the v2 fragments of `set` merged in, as
/// JSON; paths and definitions sorted as upstream writes them.
fn merge_v2(base: &Value, set: &[&Arc<Definition>]) -> Option<Vec<u8>> {
    let template = base;
    let fragments: Vec<&Value> = set
        .iter()
        .map(|d| {
            d.openapi_v2
                .get_or_init(|| crd_openapi::v2_fragment(&d.spec, template))
        })
        .collect();
    let mut out = serde_json::Map::new();
    for (key, value) in base.as_object()? {
        match key.as_str() {
            "paths" | "definitions" => {
                let mut merged: std::collections::BTreeMap<&str, &Value> = value
                    .as_object()?
                    .iter()
                    .map(|(k, v)| (k.as_str(), v))
                    .collect();
                for f in &fragments {
                    for (k, v) in f[key.as_str()].as_object().into_iter().flatten() {
                        merged.entry(k.as_str()).or_insert(v);
                    }
                }
                out.insert(key.clone(), serde_json::to_value(merged).ok()?);
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    serde_json::to_vec(&out).ok()
}

/// The embedded upstream OpenAPI v3 documents, by path (`apis/apps/v1`).
pub fn openapi_v3_documents() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    data::OPENAPI_V3.iter().copied()
}

fn doc_hash(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016X}", h.finish())
}

/// Whether an OpenAPI v3 path belongs to a served group version.
fn served_v3_path(view: &ServedView<'_>, path: &str) -> bool {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => view.has_group_version("", v),
        ["apis", g, v] => view.has_group_version(g, v),
        _ => false,
    }
}

/// The OpenAPI v3 documents generated (once) from nestkube's own CRDs.
fn generated_v3() -> &'static [(String, Vec<u8>)] {
    static DOCS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    DOCS.get_or_init(|| crd_openapi::documents(&nestkube_tenant_crds::crd(), template()))
}

/// The embedded document generated CRD documents are shaped after.
fn template() -> &'static [u8] {
    data::OPENAPI_V3
        .iter()
        .find(|(p, _)| *p == crd_openapi::template_path())
        .map(|(_, b)| *b)
        .unwrap_or_default()
}

/// Every built-in OpenAPI v3 document: embedded upstream ones, then generated ones.
fn all_v3() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    data::OPENAPI_V3.iter().copied().chain(
        generated_v3()
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice())),
    )
}

/// The cluster's document for a custom group version (`apis/<g>/<v>`): the
/// documents of every CRD serving it, merged (each generated once per
/// distinct CRD and shared by every cluster that has it).
fn custom_v3(view: &ServedView<'_>, path: &str) -> Option<Vec<u8>> {
    let custom = view.custom()?;
    let mut merged: Option<Value> = None;
    for installed in custom.installed.values() {
        let definition = &installed.definition;
        let docs = definition
            .openapi_v3
            .get_or_init(|| crd_openapi::documents_for_spec(&definition.spec, template()));
        let Some((_, bytes)) = docs.iter().find(|(p, _)| p == path) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        match &mut merged {
            None => merged = Some(doc),
            Some(m) => crd_openapi::merge(m, doc),
        }
    }
    serde_json::to_vec(&merged?).ok()
}

/// `/openapi/v3`: the index of per-group-version documents. `prefix` is the
/// cluster path prefix (`/clusters/<name>` or "") so clients fetch the
/// documents from the same cluster.
pub fn openapi_v3_index(view: &ServedView<'_>, prefix: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for (path, bytes) in all_v3() {
        if served_v3_path(view, path) {
            paths.insert(
                path.to_string(),
                json!({"serverRelativeURL": format!("{prefix}/openapi/v3/{path}?hash={}", doc_hash(bytes))}),
            );
        }
    }
    if let Some(custom) = view.custom() {
        for gv in &custom.group_versions {
            let path = format!("apis/{}/{}", gv.group, gv.version);
            if paths.contains_key(&path) {
                continue;
            }
            if let Some(doc) = custom_v3(view, &path) {
                let url = format!("{prefix}/openapi/v3/{path}?hash={}", doc_hash(&doc));
                paths.insert(path, json!({"serverRelativeURL": url}));
            }
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<path>`.
pub fn openapi_v3(view: &ServedView<'_>, path: &str) -> Option<Bytes> {
    if !served_v3_path(view, path) {
        return None;
    }
    if let Some((_, b)) = all_v3().find(|(p, _)| *p == path) {
        return Some(Bytes::from_static(b));
    }
    custom_v3(view, path).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_resources_are_discovered_as_upstream_lists_them() {
        let catalog = crate::registry::catalog::Catalog::builtin().unwrap();
        let catalog = catalog.view("root");
        let list = resource_list(&catalog, "authentication.k8s.io", "v1").unwrap();
        assert_eq!(
            list["resources"],
            json!([
                {"name": "selfsubjectreviews", "singularName": "selfsubjectreview",
                 "namespaced": false, "kind": "SelfSubjectReview", "verbs": ["create"]},
                {"name": "tokenreviews", "singularName": "tokenreview",
                 "namespaced": false, "kind": "TokenReview", "verbs": ["create"]},
            ])
        );
        let list = resource_list(&catalog, "authorization.k8s.io", "v1").unwrap();
        assert_eq!(list["resources"][0]["name"], "localsubjectaccessreviews");
        assert_eq!(list["resources"][0]["namespaced"], true);
        assert!(group(&catalog, "authorization.k8s.io").is_some());

        let upstream: Value =
            serde_json::from_str(include_str!("../../data/discovery-apis.json")).unwrap();
        let ours = aggregated(&catalog, false);
        for name in ["authentication.k8s.io", "authorization.k8s.io"] {
            let find = |doc: &Value| {
                doc["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|g| g["metadata"]["name"] == name)
                    .map(|g| g["versions"][0]["resources"].clone())
                    .unwrap()
            };
            assert_eq!(find(&ours), find(&upstream), "{name}");
        }
    }
}
