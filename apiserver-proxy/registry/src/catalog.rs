//! The catalog of served resources, built once per process from upstream's own
//! aggregated discovery documents (checked in under `apiserver-proxy/data/`,
//! generated from a real kube-apiserver of the same version).
//!
//! Scope, verbs, short names, categories and subresources therefore match
//! upstream by construction. The catalog keeps only the API groups and
//! versions this server implements (a typed codec exists, see [`super::typed`]).
//!
//! Each cluster's own APIs, its established CustomResourceDefinitions, are
//! an overlay ([`Catalog::custom`], see [`crate::apiextensions::served`]):
//! the `*_in(cluster, …)` look-ups and [`Catalog::view`] consult the
//! built-ins first, then that cluster's custom resources, never another's.
//!
//! nestkube's own API (`tenancy.nestkube.io`) is served as a built-in of every
//! cluster: its discovery document is generated once per process from the
//! VirtualCluster CRD ([`crd_discovery`]), so it cannot drift from the types.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::apiextensions::definition::CustomVersion;
use super::apiextensions::served::{ClusterCustomResources, CustomResources};
use super::kinds;
use super::strategy::Strategy;
use super::typed::{self, Codec};

/// Groups served by the generic store (the list; "" is core).
const SERVED_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "networking.k8s.io",
    "policy",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "node.k8s.io",
    "autoscaling",
    "admissionregistration.k8s.io",
    "certificates.k8s.io",
    "events.k8s.io",
    "apiextensions.k8s.io",
    nestkube_tenant_crds::GROUP,
];

/// Create-only review resources (group, version, resource): answered by
/// handlers of their own (`auth::tokens_api`, `auth::rbac_review`), never by
/// the generic store, so they are not [`ResourceInfo`]s; discovery lists them
/// exactly as upstream's document does ([`GroupVersion::create_only`]).
const CREATE_ONLY: &[(&str, &str, &str)] = &[
    ("authentication.k8s.io", "v1", "selfsubjectreviews"),
    ("authentication.k8s.io", "v1", "tokenreviews"),
    ("authorization.k8s.io", "v1", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "v1", "selfsubjectrulesreviews"),
    ("authorization.k8s.io", "v1", "subjectaccessreviews"),
];

/// Subresources served: `status`, `scale` and `finalize` by the generic
/// store, the others by rows of the server's REST table: `token` (service
/// accounts' TokenRequest), `eviction` ([`super::eviction`]), `binding`
/// ([`super::binding`]) and `log` (pods).
const SERVED_SUBRESOURCES: &[&str] = &[
    "status", "scale", "finalize", "token", "eviction", "log", "binding",
];

/// A subresource of a resource (`status`, `scale`).
#[derive(Clone, Debug)]
pub struct SubresourceInfo {
    /// `status` or `scale`.
    pub name: String,
    /// Group/version/kind of the subresource's objects.
    pub group: String,
    /// See `group`.
    pub version: String,
    /// See `group`.
    pub kind: String,
    /// Verbs allowed on it.
    pub verbs: Vec<String>,
}

/// One served resource at one group/version.
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// Singular name.
    pub singular: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Verbs from discovery.
    pub verbs: Vec<String>,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Served subresources.
    pub subresources: Vec<SubresourceInfo>,
    /// Typed codec for the kind.
    pub codec: Codec,
    /// Type-specific behaviour.
    pub strategy: Arc<dyn Strategy>,
    /// The segment of storage keys: `<group or "core">/<resource>`; versions of
    /// one resource share it.
    pub storage_segment: String,
    /// For a custom resource: its CRD's version facts (storage version,
    /// deprecation); `None` for built-ins.
    pub custom: Option<Arc<CustomVersion>>,
}

impl std::fmt::Debug for ResourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.group, self.version, self.resource)
    }
}

impl ResourceInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` (as used in messages).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The subresource, if served.
    pub fn subresource(&self, name: &str) -> Option<&SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the resource has a status subresource (status is then ignored
    /// on create and main-resource updates).
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }
}

/// A served group version and its resources, in discovery order.
#[derive(Debug)]
pub struct GroupVersion {
    /// Group ("" = core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Resources.
    pub resources: Vec<Arc<ResourceInfo>>,
    /// Create-only resources served outside the store (see [`CREATE_ONLY`]),
    /// as upstream's aggregated discovery entries.
    pub create_only: Vec<Value>,
}

/// Everything served: the built-ins, shared by all clusters, and each
/// cluster's custom resources.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Built-in group versions in upstream's discovery order (preferred
    /// version first within a group).
    pub group_versions: Vec<GroupVersion>,
    by_path: HashMap<(String, String, String), Arc<ResourceInfo>>,
    /// Each cluster's established CRDs.
    pub custom: CustomResources,
}

/// What one cluster serves: the built-ins and a snapshot of its custom
/// resources (for discovery, which walks everything).
pub struct ServedView<'a> {
    catalog: &'a Catalog,
    custom: Option<Arc<ClusterCustomResources>>,
}

impl ServedView<'_> {
    /// Every group version: the built-ins in upstream's order, then the
    /// cluster's custom groups.
    pub fn group_versions(&self) -> impl Iterator<Item = &GroupVersion> {
        self.catalog
            .group_versions
            .iter()
            .chain(self.custom.iter().flat_map(|c| c.group_versions.iter()))
    }

    /// Whether a group/version is served at all.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.group_versions()
            .any(|gv| gv.group == group && gv.version == version)
    }

    /// The cluster's custom resources, if it has any.
    pub fn custom(&self) -> Option<&ClusterCustomResources> {
        self.custom.as_deref()
    }
}

/// Errors reading the discovery documents.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The embedded document is not valid JSON.
    #[error("discovery document is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Catalog {
    /// The catalog for the built-in API (from the embedded discovery documents).
    pub fn builtin() -> Result<Self, CatalogError> {
        let api: Value = serde_json::from_str(include_str!("../../data/discovery-api.json"))?;
        let apis: Value = serde_json::from_str(include_str!("../../data/discovery-apis.json"))?;
        let tenancy = crd_discovery(&nestkube_tenant_crds::crd());
        Ok(Self::from_discovery(&[api, apis, tenancy]))
    }

    /// Builds a catalog from `APIGroupDiscoveryList` documents (apidiscovery.k8s.io/v2).
    pub fn from_discovery(docs: &[Value]) -> Self {
        let mut catalog = Catalog::default();
        for doc in docs {
            for group in doc["items"].as_array().into_iter().flatten() {
                let group_name = group["metadata"]["name"].as_str().unwrap_or("");
                if !SERVED_GROUPS.contains(&group_name)
                    && !CREATE_ONLY.iter().any(|(g, _, _)| *g == group_name)
                {
                    continue;
                }
                for version in group["versions"].as_array().into_iter().flatten() {
                    let version_name = version["version"].as_str().unwrap_or("");
                    let listed = version["resources"].as_array().into_iter().flatten();
                    let mut resources: Vec<Arc<ResourceInfo>> = Vec::new();
                    let mut create_only = Vec::new();
                    for r in listed {
                        let name = r["resource"].as_str().unwrap_or("");
                        if CREATE_ONLY.contains(&(group_name, version_name, name)) {
                            create_only.push(r.clone());
                        } else if SERVED_GROUPS.contains(&group_name)
                            && let Some(info) = resource_info(group_name, version_name, r)
                        {
                            resources.push(Arc::new(info));
                        }
                    }
                    if resources.is_empty() && create_only.is_empty() {
                        continue;
                    }
                    for r in &resources {
                        catalog.by_path.insert(
                            (r.group.clone(), r.version.clone(), r.resource.clone()),
                            r.clone(),
                        );
                    }
                    catalog.group_versions.push(GroupVersion {
                        group: group_name.to_string(),
                        version: version_name.to_string(),
                        resources,
                        create_only,
                    });
                }
            }
        }
        catalog
    }

    /// The resource served at `/apis/<group>/<version>/<resource>`.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<&Arc<ResourceInfo>> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
    }

    /// The resource for a group and kind at its preferred (first listed) version.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&Arc<ResourceInfo>> {
        self.group_versions
            .iter()
            .filter(|gv| gv.group == group)
            .flat_map(|gv| gv.resources.iter())
            .find(|r| r.kind == kind)
    }

    /// Whether a group/version is served at all.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.group_versions
            .iter()
            .any(|gv| gv.group == group && gv.version == version)
    }

    /// What `cluster` serves, for discovery.
    pub fn view(&self, cluster: &str) -> ServedView<'_> {
        ServedView {
            catalog: self,
            custom: self.custom.cluster(cluster),
        }
    }

    /// The resource served at `/apis/<group>/<version>/<resource>` in
    /// `cluster`: a built-in, else one of the cluster's custom resources.
    pub fn resolve(
        &self,
        cluster: &str,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Option<Arc<ResourceInfo>> {
        self.get(group, version, resource).cloned().or_else(|| {
            self.custom
                .cluster(cluster)?
                .get(group, version, resource)
                .cloned()
        })
    }

    /// The resource for a group and kind at its preferred version in
    /// `cluster` (built-ins first).
    pub fn by_kind_in(&self, cluster: &str, group: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.by_kind(group, kind).cloned().or_else(|| {
            self.custom
                .cluster(cluster)?
                .resources()
                .find(|r| r.group == group && r.kind == kind)
                .cloned()
        })
    }

    /// Every resource `cluster` serves, at every version: the built-ins,
    /// then its custom resources.
    pub fn resources_in(&self, cluster: &str) -> Vec<Arc<ResourceInfo>> {
        let mut out: Vec<Arc<ResourceInfo>> = self.resources().cloned().collect();
        if let Some(c) = self.custom.cluster(cluster) {
            out.extend(c.resources().cloned());
        }
        out
    }

    /// Every built-in resource at every version.
    pub fn resources(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.group_versions
            .iter()
            .flat_map(|gv| gv.resources.iter())
    }
}

/// The aggregated discovery document (`APIGroupDiscoveryList`) that
/// kube-apiserver would publish for `crd`'s group once the CRD is established.
pub fn crd_discovery(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let spec = &crd.spec;
    let names = &spec.names;
    let versions: Vec<Value> = spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| {
            let kind = serde_json::json!({"group": spec.group, "version": v.name, "kind": names.kind});
            let mut resource = serde_json::json!({
                "resource": names.plural,
                "responseKind": kind,
                "scope": spec.scope,
                "singularResource": names.singular.clone().unwrap_or_else(|| names.kind.to_lowercase()),
                "verbs": super::apiextensions::definition::VERBS,
                "shortNames": names.short_names.clone().unwrap_or_default(),
                "categories": names.categories.clone().unwrap_or_default(),
            });
            if v.subresources.as_ref().is_some_and(|s| s.status.is_some()) {
                resource["subresources"] = serde_json::json!([{
                    "subresource": "status",
                    "responseKind": kind,
                    "verbs": ["get", "patch", "update"],
                }]);
            }
            serde_json::json!({"version": v.name, "resources": [resource], "freshness": "Current"})
        })
        .collect();
    serde_json::json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{"metadata": {"name": spec.group}, "versions": versions}],
    })
}

/// The strings of a JSON array (others skipped).
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn resource_info(group: &str, version: &str, r: &Value) -> Option<ResourceInfo> {
    let resource = r["resource"].as_str()?;
    let kind = r["responseKind"]["kind"].as_str()?;
    let verbs = strings(&r["verbs"]);
    // Only stored resources: virtual create-only ones (bindings, reviews) are served elsewhere.
    if !verbs.iter().any(|v| v == "list") {
        return None;
    }
    let codec = Codec::Typed(typed::codec(group, version, kind)?);
    let subresources = r["subresources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let name = s["subresource"].as_str()?;
            if !SERVED_SUBRESOURCES.contains(&name) {
                return None;
            }
            Some(SubresourceInfo {
                name: name.to_string(),
                group: s["responseKind"]["group"]
                    .as_str()
                    .unwrap_or(group)
                    .to_string(),
                version: s["responseKind"]["version"]
                    .as_str()
                    .unwrap_or(version)
                    .to_string(),
                kind: s["responseKind"]["kind"]
                    .as_str()
                    .unwrap_or(kind)
                    .to_string(),
                verbs: strings(&s["verbs"]),
            })
        })
        .collect();
    let storage_group = if group.is_empty() { "core" } else { group };
    Some(ResourceInfo {
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
        singular: r["singularResource"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        kind: kind.to_string(),
        namespaced: r["scope"].as_str() == Some("Namespaced"),
        verbs,
        short_names: strings(&r["shortNames"]),
        categories: strings(&r["categories"]),
        subresources,
        codec,
        strategy: kinds::strategy_for(group, resource),
        // autoscaling/v1 and v2 HPAs differ in shape and there is no conversion yet:
        // keep them apart rather than corrupt each other.
        storage_segment: if group == "autoscaling" && version != "v2" {
            format!("{storage_group}-{version}/{resource}")
        } else {
            format!("{storage_group}/{resource}")
        },
        custom: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_core_resources() {
        let c = Catalog::builtin().unwrap();
        let pods = c.get("", "v1", "pods").expect("pods");
        assert!(pods.namespaced);
        assert!(pods.has_status());
        assert!(
            c.get("apps", "v1", "deployments")
                .unwrap()
                .subresource("scale")
                .is_some()
        );
        assert!(!c.get("", "v1", "namespaces").unwrap().namespaced);
    }

    #[test]
    fn review_resources_are_listed_but_not_stored() {
        let c = Catalog::builtin().unwrap();
        assert!(
            c.get("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
                .is_none()
        );
        let gv = |g: &str| {
            c.group_versions
                .iter()
                .find(|gv| gv.group == g && gv.version == "v1")
                .unwrap()
        };
        let names = |g: &str| -> Vec<String> {
            gv(g)
                .create_only
                .iter()
                .map(|r| r["resource"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names("authentication.k8s.io"),
            ["selfsubjectreviews", "tokenreviews"]
        );
        assert_eq!(
            names("authorization.k8s.io"),
            [
                "localsubjectaccessreviews",
                "selfsubjectaccessreviews",
                "selfsubjectrulesreviews",
                "subjectaccessreviews"
            ]
        );
        assert!(gv("authorization.k8s.io").resources.is_empty());
    }

    #[test]
    fn virtualclusters_are_built_in() {
        let c = Catalog::builtin().unwrap();
        let vc = c
            .get("tenancy.nestkube.io", "v1alpha1", "virtualclusters")
            .expect("virtualclusters");
        assert!(vc.namespaced);
        assert!(vc.has_status());
        assert_eq!(vc.kind, "VirtualCluster");
        assert_eq!(vc.singular, "virtualcluster");
        assert_eq!(vc.short_names, ["vc"]);
        assert_eq!(vc.categories, ["nestkube"]);
        assert_eq!(vc.storage_segment, "tenancy.nestkube.io/virtualclusters");
        assert!(vc.strategy.tracks_generation());
    }
}
