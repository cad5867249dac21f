//! RBAC authorization, per cluster, with upstream's semantics
//! (`plugin/pkg/auth/authorizer/rbac`): rules match API groups, resources
//! (`*`, `pods/log`, `*/scale`), resource names, verbs (`*`) and, for
//! non-resource paths, `nonResourceURLs` (`/apis/*`); RoleBindings grant a
//! Role or ClusterRole in their namespace, ClusterRoleBindings grant a
//! ClusterRole everywhere; subjects are users, groups and service accounts
//! (`system:serviceaccount:<ns>:<name>`). Members of `system:masters` are
//! always allowed (upstream's privileged-group authorizer).
//!
//! Policy is read per cluster and cached by cluster: a cluster's Roles,
//! ClusterRoles and bindings are loaded through the store with *that*
//! cluster's name the first time a request needs them, and dropped when one
//! storage watch (for all clusters) sees any RBAC key of that cluster
//! change. An idle cluster costs no CPU and, until its first request, no
//! memory. The defaults ([`super::rbac_defaults`]) are built once per
//! process and shared.
//!
//! This module must never read or cache one cluster's policy for another
//! cluster, and never allow a request it cannot prove allowed (a policy
//! that fails to load denies).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use nestkube_storage::{Storage, WatchEvent};
use serde::Serialize;
use serde_json::{Value, json};

use super::impersonation::ImpersonationError;
use super::{UserInfo, rbac_defaults};
use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::store::{ListOptions, Store, Target};
use nestkube_api::request::{Api, RequestInfo};

/// Upstream's privileged group: always allowed.
pub const MASTERS_GROUP: &str = "system:masters";
/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// One `PolicyRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs (`*` = all).
    pub verbs: Vec<String>,
    /// API groups (`*` = all; `""` = core).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (`*`, `pods/log`, `*/scale`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names (empty = all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/apis/*`, `*`).
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

impl PolicyRule {
    /// Reads a rule from its JSON form (missing or null lists are empty).
    pub fn from_json(v: &Value) -> Self {
        Self {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    fn verb_matches(&self, verb: &str) -> bool {
        has(&self.verbs, "*") || has(&self.verbs, verb)
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        let combined = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!subresource.is_empty()
                    && r.len() == subresource.len() + 2
                    && r.starts_with("*/")
                    && r.ends_with(subresource))
        })
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        })
    }

    /// Whether this rule allows `a` (upstream `RuleAllows`).
    pub fn allows(&self, a: &Attributes) -> bool {
        if a.resource_request {
            self.verb_matches(&a.verb)
                && (has(&self.api_groups, "*") || has(&self.api_groups, &a.api_group))
                && self.resource_matches(&a.resource, &a.subresource)
                && (self.resource_names.is_empty() || has(&self.resource_names, &a.name))
        } else {
            self.verb_matches(&a.verb) && self.url_matches(&a.path)
        }
    }
}

/// What a request asks to do (upstream `authorizer.Attributes`). The
/// default is an anonymous non-resource request with empty fields.
#[derive(Clone, Debug)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// Verb (`list`, `create`, `impersonate`, or the lower-case HTTP method
    /// for non-resource requests).
    pub verb: String,
    /// Whether this is a resource request (else a non-resource path).
    pub resource_request: bool,
    /// Namespace (empty = cluster scope).
    pub namespace: String,
    /// API group (`""` = core).
    pub api_group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Object name.
    pub name: String,
    /// Non-resource path.
    pub path: String,
}

impl Default for Attributes {
    fn default() -> Self {
        Self {
            user: UserInfo::anonymous(),
            verb: String::new(),
            resource_request: false,
            namespace: String::new(),
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            name: String::new(),
            path: String::new(),
        }
    }
}

impl Attributes {
    /// The attributes of a parsed request (the path without the
    /// `/clusters/<path>` prefix).
    pub fn from_request(user: UserInfo, method: &http::Method, info: &RequestInfo) -> Self {
        let non_resource = |path: String| Self {
            user: user.clone(),
            verb: method.as_str().to_ascii_lowercase(),
            path,
            ..Default::default()
        };
        match &info.api {
            Api::Resource(rr) => {
                let name = rr.name.clone().unwrap_or_default();
                let namespace = match &rr.namespace {
                    Some(ns) => ns.clone(),
                    // Upstream: a namespace is addressed within itself.
                    None if rr.resource == "namespaces" => name.clone(),
                    None => String::new(),
                };
                Self {
                    user: user.clone(),
                    verb: rr.verb.to_string(),
                    resource_request: true,
                    namespace,
                    api_group: rr.group.clone(),
                    resource: rr.resource.clone(),
                    subresource: rr.subresource.clone().unwrap_or_default(),
                    name,
                    path: String::new(),
                }
            }
            Api::Root { legacy: true, .. } => non_resource("/api".into()),
            Api::Root { group: None, .. } => non_resource("/apis".into()),
            Api::Root { group: Some(g), .. } => non_resource(format!("/apis/{g}")),
            Api::GroupVersion { group, version } if group.is_empty() => {
                non_resource(format!("/api/{version}"))
            }
            Api::GroupVersion { group, version } => {
                non_resource(format!("/apis/{group}/{version}"))
            }
            Api::NonResource(p) => non_resource(p.clone()),
        }
    }
}

/// A denied request, rendered as upstream's `403 Forbidden` `Status`
/// (`responsewriters.Forbidden`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Forbidden {
    /// Upstream's message, e.g. `pods is forbidden: User "alice" cannot list
    /// resource "pods" in API group "" in the namespace "default"`.
    pub message: String,
    /// `details.group`.
    pub group: String,
    /// `details.kind` (the resource).
    pub kind: String,
    /// `details.name`.
    pub name: String,
}

impl Forbidden {
    /// The denial of `a` (upstream `forbiddenMessage` + `NewForbidden`).
    pub fn new(a: &Attributes) -> Self {
        let who = &a.user.name;
        let reason = if !a.resource_request {
            format!("User {who:?} cannot {} path {:?}", a.verb, a.path)
        } else {
            let mut resource = a.resource.clone();
            if !a.subresource.is_empty() {
                resource = format!("{resource}/{}", a.subresource);
            }
            if a.namespace.is_empty() {
                format!(
                    "User {who:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                    a.verb, a.api_group
                )
            } else {
                format!(
                    "User {who:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                    a.verb, a.api_group, a.namespace
                )
            }
        };
        let (group, kind, name) = if a.resource_request {
            (a.api_group.clone(), a.resource.clone(), a.name.clone())
        } else {
            Default::default()
        };
        let qualified = match (kind.is_empty(), group.is_empty()) {
            (true, _) => String::new(),
            (false, true) => kind.clone(),
            (false, false) => format!("{kind}.{group}"),
        };
        let message = match (qualified.is_empty(), name.is_empty()) {
            (true, _) => format!("forbidden: {reason}"),
            (false, true) => format!("{qualified} is forbidden: {reason}"),
            (false, false) => format!("{qualified} {name:?} is forbidden: {reason}"),
        };
        Self {
            message,
            group,
            kind,
            name,
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        for (k, v) in [
            ("name", &self.name),
            ("group", &self.group),
            ("kind", &self.kind),
        ] {
            if !v.is_empty() {
                details.insert(k.into(), v.clone().into());
            }
        }
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": "Forbidden", "details": details, "code": 403,
        })
    }
}

/// A binding subject.
#[derive(Clone, Debug)]
struct SubjectRef {
    kind: String,
    name: String,
    namespace: String,
}

/// A RoleBinding or ClusterRoleBinding, reduced to what authorization needs.
#[derive(Clone, Debug)]
struct Binding {
    name: String,
    /// `""` for a ClusterRoleBinding.
    namespace: String,
    cluster_role: bool,
    role: String,
    subjects: Vec<SubjectRef>,
}

impl Binding {
    fn from_json(v: &Value) -> Self {
        Self {
            name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            namespace: v["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            cluster_role: v["roleRef"]["kind"].as_str() == Some("ClusterRole"),
            role: v["roleRef"]["name"].as_str().unwrap_or("").to_string(),
            subjects: v["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| SubjectRef {
                    kind: s["kind"].as_str().unwrap_or("").to_string(),
                    name: s["name"].as_str().unwrap_or("").to_string(),
                    namespace: s["namespace"].as_str().unwrap_or("").to_string(),
                })
                .collect(),
        }
    }

    /// The subject this binding names for `user`, if any (upstream
    /// `appliesTo`).
    fn applies_to(&self, user: &UserInfo) -> Option<&SubjectRef> {
        self.subjects.iter().find(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => has(&user.groups, &s.name),
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() {
                    &self.namespace
                } else {
                    &s.namespace
                };
                !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s.name)
            }
            _ => false,
        })
    }

    fn describe(&self, subject: &SubjectRef) -> String {
        let binding = if self.namespace.is_empty() {
            format!("ClusterRoleBinding {:?}", self.name)
        } else {
            format!("RoleBinding \"{}/{}\"", self.namespace, self.name)
        };
        let role = if self.cluster_role {
            format!("ClusterRole {:?}", self.role)
        } else {
            format!("Role {:?}", self.role)
        };
        format!(
            "RBAC: allowed by {binding} of {role} to {} {:?}",
            subject.kind, subject.name
        )
    }
}

type Rules = Arc<[PolicyRule]>;

/// A ClusterRole as aggregation sees it.
struct RoleDef {
    name: String,
    labels: BTreeMap<String, String>,
    /// `aggregationRule.clusterRoleSelectors`, if any.
    selectors: Option<Vec<Value>>,
    rules: Vec<PolicyRule>,
}

impl RoleDef {
    fn from_json(v: &Value) -> Self {
        Self {
            name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            labels: crate::registry::meta::labels(v),
            selectors: v["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .cloned(),
            rules: rules_of(v),
        }
    }
}

fn rules_of(v: &Value) -> Vec<PolicyRule> {
    v["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(PolicyRule::from_json)
        .collect()
}

/// `metav1.LabelSelector` (matchLabels, matchExpressions) against labels.
fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel["matchLabels"].as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    });
    let exprs_ok = sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let values = strings(&e["values"]);
            match e["operator"].as_str() {
                Some("In") => labels.get(key).is_some_and(|v| has(&values, v)),
                Some("NotIn") => labels.get(key).is_none_or(|v| !has(&values, v)),
                Some("Exists") => labels.contains_key(key),
                Some("DoesNotExist") => !labels.contains_key(key),
                _ => false,
            }
        });
    // An empty selector matches nothing in aggregation (upstream skips it).
    let empty = sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
        && sel["matchExpressions"]
            .as_array()
            .is_none_or(|a| a.is_empty());
    !empty && labels_ok && exprs_ok
}

/// Upstream's ClusterRole aggregation, to a fixed point (an aggregated role
/// may itself be labelled into another): each aggregating role's rules are
/// the union of the rules of the roles its selectors match.
fn aggregate(roles: &mut [RoleDef]) {
    for _ in 0..8 {
        let mut changed = false;
        for i in 0..roles.len() {
            let Some(selectors) = roles[i].selectors.clone() else {
                continue;
            };
            let mut union: Vec<PolicyRule> = Vec::new();
            for (j, other) in roles.iter().enumerate() {
                if i != j && selectors.iter().any(|s| selector_matches(s, &other.labels)) {
                    for r in &other.rules {
                        if !union.contains(r) {
                            union.push(r.clone());
                        }
                    }
                }
            }
            if union != roles[i].rules {
                roles[i].rules = union;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// The process-wide defaults, aggregated once.
struct Defaults {
    roles: Vec<Value>,
    effective: HashMap<String, Rules>,
    bindings: Vec<Binding>,
    /// The default ClusterRoles as the API shows them (aggregated rules
    /// filled in), then the default ClusterRoleBindings.
    served_roles: Vec<Value>,
    served_bindings: Vec<Value>,
}

fn defaults() -> &'static Defaults {
    static DEFAULTS: OnceLock<Defaults> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let roles = rbac_defaults::cluster_roles();
        let mut defs: Vec<RoleDef> = roles.iter().map(RoleDef::from_json).collect();
        aggregate(&mut defs);
        let served_roles = roles
            .iter()
            .zip(&defs)
            .map(|(role, def)| {
                let mut role = role.clone();
                if def.selectors.is_some() {
                    role["rules"] = serde_json::to_value(&def.rules).unwrap_or_default();
                }
                role
            })
            .collect();
        Defaults {
            served_roles,
            served_bindings: rbac_defaults::cluster_role_bindings(),
            effective: defs
                .into_iter()
                .map(|d| (d.name, Rules::from(d.rules)))
                .collect(),
            bindings: rbac_defaults::cluster_role_bindings()
                .iter()
                .map(Binding::from_json)
                .collect(),
            roles,
        }
    })
}

/// The default ClusterRoles as the API serves them (aggregated rules filled
/// in, as upstream's aggregation controller writes them); shared by every
/// cluster, built once.
pub fn served_default_cluster_roles() -> &'static [Value] {
    &defaults().served_roles
}

/// The default ClusterRoleBindings as the API serves them.
pub fn served_default_cluster_role_bindings() -> &'static [Value] {
    &defaults().served_bindings
}

/// One cluster's policy: what it stores, over the shared defaults.
#[derive(Default)]
pub struct Policy {
    /// Stored ClusterRoles, and defaults whose aggregation this cluster's
    /// roles change; other names fall back to the defaults.
    cluster_roles: HashMap<String, Rules>,
    /// Stored Roles by (namespace, name).
    roles: HashMap<(String, String), Rules>,
    /// Stored ClusterRoleBindings (a name shadows the default of that name).
    cluster_bindings: Vec<Binding>,
    /// Stored RoleBindings by namespace.
    bindings: HashMap<String, Vec<Binding>>,
}

impl Policy {
    /// Builds a cluster's policy from its stored RBAC objects.
    pub fn build(
        cluster_roles: &[Value],
        roles: &[Value],
        cluster_bindings: &[Value],
        bindings: &[Value],
    ) -> Self {
        let mut policy = Policy::default();
        if !cluster_roles.is_empty() {
            let d = defaults();
            let stored: Vec<RoleDef> = cluster_roles.iter().map(RoleDef::from_json).collect();
            let mut defs: Vec<RoleDef> = d
                .roles
                .iter()
                .map(RoleDef::from_json)
                .filter(|r| !stored.iter().any(|s| s.name == r.name))
                .collect();
            let stored_names: Vec<String> = stored.iter().map(|s| s.name.clone()).collect();
            defs.extend(stored);
            aggregate(&mut defs);
            for def in defs {
                let same_as_default = d
                    .effective
                    .get(&def.name)
                    .is_some_and(|r| **r == *def.rules);
                if has(&stored_names, &def.name) || !same_as_default {
                    policy.cluster_roles.insert(def.name, def.rules.into());
                }
            }
        }
        for r in roles {
            let ns = r["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = r["metadata"]["name"].as_str().unwrap_or("").to_string();
            policy.roles.insert((ns, name), rules_of(r).into());
        }
        policy.cluster_bindings = cluster_bindings.iter().map(Binding::from_json).collect();
        for b in bindings.iter().map(Binding::from_json) {
            policy
                .bindings
                .entry(b.namespace.clone())
                .or_default()
                .push(b);
        }
        policy
    }

    fn cluster_role(&self, name: &str) -> Option<&Rules> {
        self.cluster_roles
            .get(name)
            .or_else(|| defaults().effective.get(name))
    }

    fn all_cluster_bindings(&self) -> impl Iterator<Item = &Binding> {
        let stored = &self.cluster_bindings;
        stored.iter().chain(
            defaults()
                .bindings
                .iter()
                .filter(move |d| !stored.iter().any(|s| s.name == d.name)),
        )
    }

    fn binding_rules(&self, b: &Binding) -> Option<&Rules> {
        if b.cluster_role {
            self.cluster_role(&b.role)
        } else {
            self.roles.get(&(b.namespace.clone(), b.role.clone()))
        }
    }

    /// The rules of a ClusterRole, or of a Role in `namespace` (empty if
    /// it does not exist).
    pub fn role_rules(&self, cluster_role: bool, namespace: &str, name: &str) -> Vec<PolicyRule> {
        let rules = if cluster_role {
            self.cluster_role(name)
        } else {
            self.roles.get(&(namespace.to_string(), name.to_string()))
        };
        rules.map(|r| r.to_vec()).unwrap_or_default()
    }

    /// Whether `a` is allowed; `Some(reason)` if so.
    pub fn authorize(&self, a: &Attributes) -> Option<String> {
        if has(&a.user.groups, MASTERS_GROUP) {
            return Some(format!("allowed: member of {MASTERS_GROUP:?}"));
        }
        let namespaced = if a.namespace.is_empty() {
            None
        } else {
            self.bindings.get(&a.namespace)
        };
        self.all_cluster_bindings()
            .chain(namespaced.into_iter().flatten())
            .find_map(|b| {
                let subject = b.applies_to(&a.user)?;
                let rules = self.binding_rules(b)?;
                rules
                    .iter()
                    .any(|r| r.allows(a))
                    .then(|| b.describe(subject))
            })
    }

    /// Every rule that applies to `user` in `namespace` (for
    /// `SelfSubjectRulesReview`).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        if has(&user.groups, MASTERS_GROUP) {
            return self
                .cluster_role("cluster-admin")
                .map(|r| r.to_vec())
                .unwrap_or_default();
        }
        let namespaced = if namespace.is_empty() {
            None
        } else {
            self.bindings.get(namespace)
        };
        let mut out: Vec<PolicyRule> = Vec::new();
        for b in self
            .all_cluster_bindings()
            .chain(namespaced.into_iter().flatten())
        {
            if b.applies_to(user).is_none() {
                continue;
            }
            for r in self.binding_rules(b).into_iter().flat_map(|r| r.iter()) {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }
}

/// The RBAC resources, as listed from storage.
const RESOURCES: [&str; 4] = [
    "clusterroles",
    "roles",
    "clusterrolebindings",
    "rolebindings",
];

/// The authorizer: per-cluster policies, loaded lazily and invalidated by
/// one storage watch over all clusters.
pub struct Authorizer {
    store: Store,
    catalog: Arc<Catalog>,
    cache: RwLock<HashMap<String, Arc<Policy>>>,
    /// Bumped on every invalidation, so a load that raced one is not kept.
    generation: AtomicU64,
    /// Whether the invalidation watch is established (no caching otherwise).
    watching: AtomicBool,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("cached_clusters", &self.cache.read().map(|c| c.len()).ok())
            .finish_non_exhaustive()
    }
}

/// The cluster whose cached policy a write to `key` makes stale: that of an
/// RBAC key (`/<cluster>/rbac.authorization.k8s.io/...`), or of a cluster
/// record (`/_clusters/<path>`: the cluster was created or removed, so a
/// re-created cluster never sees its predecessor's policy, and a removed
/// one's entry is freed).
fn rbac_cluster(key: &str) -> Option<&str> {
    if let Some(path) = key.strip_prefix(crate::RECORD_PREFIX) {
        return Some(path);
    }
    let (cluster, rest) = key.strip_prefix('/')?.split_once('/')?;
    rest.strip_prefix(RBAC_GROUP)?
        .starts_with('/')
        .then_some(cluster)
}

impl Authorizer {
    /// An authorizer over `store`, with its invalidation watch running on
    /// the current tokio runtime (it ends when the authorizer is dropped and
    /// the next storage event arrives).
    pub fn start(store: Store, catalog: Arc<Catalog>) -> Arc<Self> {
        let this = Arc::new(Self {
            store,
            catalog,
            cache: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            watching: AtomicBool::new(false),
        });
        tokio::spawn(watch(Arc::downgrade(&this), this.store.storage().clone()));
        this
    }

    fn invalidate(&self, cluster: Option<&str>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut cache) = self.cache.write() {
            match cluster {
                Some(c) => {
                    cache.remove(c);
                }
                None => cache.clear(),
            }
        }
    }

    /// Number of clusters whose policy is cached.
    pub fn cached_clusters(&self) -> usize {
        self.cache.read().map(|c| c.len()).unwrap_or(0)
    }

    /// `cluster`'s policy, from the cache or loaded from that cluster's keys.
    pub async fn policy(&self, cluster: &str) -> Result<Arc<Policy>, ApiError> {
        if let Some(p) = self.cache.read().ok().and_then(|c| c.get(cluster).cloned()) {
            return Ok(p);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let watching = self.watching.load(Ordering::SeqCst);
        let mut lists: Vec<Vec<Value>> = Vec::with_capacity(RESOURCES.len());
        for resource in RESOURCES {
            let Some(r) = self.catalog.get(RBAC_GROUP, "v1", resource) else {
                lists.push(Vec::new());
                continue;
            };
            let target = Target {
                cluster,
                resource: r,
                namespace: None,
            };
            lists.push(
                self.store
                    .list(&target, &ListOptions::default())
                    .await?
                    .items,
            );
        }
        let policy = Arc::new(Policy::build(&lists[0], &lists[1], &lists[2], &lists[3]));
        if watching && let Ok(mut cache) = self.cache.write() {
            // Checked under the lock: an invalidation bumps the generation
            // before it takes the lock to remove the entry.
            if self.generation.load(Ordering::SeqCst) == generation {
                cache.insert(cluster.to_string(), policy.clone());
            }
        }
        Ok(policy)
    }

    /// Decides `a` in `cluster`: `Ok(reason)` or [`Forbidden`]. A policy
    /// that cannot be loaded is an error, never an allow.
    pub async fn authorize(&self, cluster: &str, a: &Attributes) -> Result<String, AuthzError> {
        if has(&a.user.groups, MASTERS_GROUP) {
            return Ok(format!("allowed: member of {MASTERS_GROUP:?}"));
        }
        let policy = self.policy(cluster).await?;
        policy
            .authorize(a)
            .ok_or_else(|| AuthzError::Forbidden(Forbidden::new(a)))
    }
}

impl Authorizer {
    /// Authorizes a request of an authenticated `actor` in its cluster:
    /// impersonation headers first (each with the `impersonate` verb), then
    /// the request itself as the resulting user, whom it returns.
    pub async fn authorize_request(
        &self,
        info: &RequestInfo,
        actor: UserInfo,
        method: &http::Method,
        headers: &http::HeaderMap,
    ) -> Result<UserInfo, RequestDenied> {
        let user = super::impersonation::resolve(self, &info.cluster, actor, headers)
            .await
            .map_err(|e| match e {
                ImpersonationError::Authz(a) => a.into(),
                other => RequestDenied::Other(ApiError::BadRequest(other.to_string())),
            })?;
        let attrs = Attributes::from_request(user, method, info);
        self.authorize(&info.cluster, &attrs).await?;
        // A WebSocket stream is a GET, but it acts like a create: upstream
        // (AuthorizePodWebsocketUpgradeCreatePermission, on since 1.35)
        // also requires `create` on the subresource.
        if attrs.verb == "get" && is_pod_stream(&attrs) {
            let create = Attributes {
                verb: "create".into(),
                ..attrs.clone()
            };
            self.authorize(&info.cluster, &create).await?;
        }
        Ok(attrs.user)
    }
}

/// Whether `a` addresses `pods/exec`, `pods/attach` or `pods/portforward`.
fn is_pod_stream(a: &Attributes) -> bool {
    a.resource_request
        && a.api_group.is_empty()
        && a.resource == "pods"
        && matches!(a.subresource.as_str(), "exec" | "attach" | "portforward")
}

/// Why a request may not proceed.
#[derive(Debug, thiserror::Error)]
pub enum RequestDenied {
    /// `403 Forbidden` with upstream's message.
    #[error(transparent)]
    Forbidden(Forbidden),
    /// Any other failure (bad impersonation headers, unreadable policy).
    #[error(transparent)]
    Other(ApiError),
}

impl From<AuthzError> for RequestDenied {
    fn from(e: AuthzError) -> Self {
        match e {
            AuthzError::Forbidden(f) => Self::Forbidden(f),
            AuthzError::Api(e) => Self::Other(e),
        }
    }
}

/// Why authorization did not allow.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// Denied by policy.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The policy could not be read.
    #[error(transparent)]
    Api(#[from] ApiError),
}

async fn watch(this: Weak<Authorizer>, storage: Arc<dyn Storage>) {
    loop {
        let result = async {
            let from = storage.current_revision().await?;
            let mut stream = storage.watch("/", from).await?;
            match this.upgrade() {
                Some(a) => {
                    a.invalidate(None);
                    a.watching.store(true, Ordering::SeqCst);
                }
                None => return Ok(()),
            }
            while let Some(event) = stream.next().await {
                let key = match &event? {
                    WatchEvent::Put { kv, .. } => kv.key.clone(),
                    WatchEvent::Delete { prev, .. } => prev.key.clone(),
                    WatchEvent::Progress { .. } => continue,
                };
                if let Some(cluster) = rbac_cluster(&key) {
                    let Some(a) = this.upgrade() else {
                        return Ok(());
                    };
                    a.invalidate(Some(cluster));
                }
            }
            Ok::<(), nestkube_storage::StorageError>(())
        }
        .await;
        let Some(a) = this.upgrade() else { return };
        a.watching.store(false, Ordering::SeqCst);
        a.invalidate(None);
        drop(a);
        if let Err(e) = result {
            tracing::warn!(error = %e, "RBAC cache watch ended; restarting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn res(
        u: &UserInfo,
        verb: &str,
        ns: &str,
        group: &str,
        resource: &str,
        sub: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            user: u.clone(),
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    #[test]
    fn rule_matching() {
        let r = PolicyRule::from_json(
            &json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/scale"]}),
        );
        let u = user("a", &[]);
        assert!(r.allows(&res(&u, "get", "x", "apps", "deployments", "scale", "d")));
        assert!(!r.allows(&res(&u, "get", "x", "apps", "deployments", "", "d")));
        assert!(!r.allows(&res(&u, "list", "x", "apps", "deployments", "scale", "")));
        let r = PolicyRule::from_json(
            &json!({"verbs": ["*"], "apiGroups": [""], "resources": ["pods/log"], "resourceNames": ["p"]}),
        );
        assert!(r.allows(&res(&u, "get", "x", "", "pods", "log", "p")));
        assert!(!r.allows(&res(&u, "get", "x", "", "pods", "log", "q")));
        assert!(!r.allows(&res(&u, "get", "x", "", "pods", "", "p")));
        let r = PolicyRule::from_json(&json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}));
        let mut a = Attributes {
            user: u,
            verb: "get".into(),
            path: "/apis/apps".into(),
            ..Default::default()
        };
        assert!(r.allows(&a));
        a.path = "/api".into();
        assert!(!r.allows(&a));
    }

    #[test]
    fn forbidden_messages_match_upstream() {
        let u = user("alice", &[]);
        assert_eq!(
            Forbidden::new(&res(&u, "list", "default", "", "pods", "", "")).message,
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(
            Forbidden::new(&res(&u, "get", "", "apps", "deployments", "scale", "web")).message,
            r#"deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
        );
        let a = Attributes {
            user: u,
            verb: "get".into(),
            path: "/metrics".into(),
            ..Default::default()
        };
        assert_eq!(
            Forbidden::new(&a).message,
            r#"forbidden: User "alice" cannot get path "/metrics""#
        );
    }

    #[test]
    fn defaults_aggregate_and_bind() {
        let p = Policy::default();
        let alice = user("alice", &["system:authenticated"]);
        let mut a = Attributes {
            user: alice.clone(),
            verb: "get".into(),
            path: "/apis".into(),
            ..Default::default()
        };
        assert!(p.authorize(&a).is_some(), "system:discovery");
        a.path = "/metrics".into();
        assert!(p.authorize(&a).is_none());
        assert!(
            p.authorize(&res(&alice, "list", "default", "", "pods", "", ""))
                .is_none()
        );
        let edit = defaults().effective.get("edit").unwrap();
        assert!(
            edit.iter()
                .any(|r| has(&r.resources, "secrets") && has(&r.verbs, "create"))
        );
        assert!(
            edit.iter()
                .any(|r| has(&r.resources, "pods") && has(&r.verbs, "list")),
            "view is in edit"
        );
        let admin = defaults().effective.get("admin").unwrap();
        assert!(admin.iter().any(|r| has(&r.resources, "roles")));
    }

    #[test]
    fn custom_roles_aggregate_per_cluster() {
        let custom = json!({"metadata": {"name": "crontabs-edit", "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
                            "rules": [{"verbs": ["list"], "apiGroups": ["example.com"], "resources": ["crontabs"]}]});
        let rb = json!({"metadata": {"name": "b", "namespace": "dev"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
                        "subjects": [{"kind": "ServiceAccount", "name": "ci"}]});
        let p = Policy::build(&[custom], &[], &[], &[rb]);
        let sa = user("system:serviceaccount:dev:ci", &["system:serviceaccounts"]);
        assert!(
            p.authorize(&res(&sa, "list", "dev", "example.com", "crontabs", "", ""))
                .is_some()
        );
        assert!(
            p.authorize(&res(&sa, "list", "prod", "example.com", "crontabs", "", ""))
                .is_none()
        );
        // The shared defaults are untouched.
        assert!(
            !defaults().effective["edit"]
                .iter()
                .any(|r| has(&r.resources, "crontabs"))
        );
    }

    #[test]
    fn rbac_keys() {
        assert_eq!(
            rbac_cluster("/team-a/rbac.authorization.k8s.io/roles/ns/r"),
            Some("team-a")
        );
        assert_eq!(rbac_cluster("/team-a/core/pods/ns/p"), None);
        assert_eq!(rbac_cluster("/_clusters/team-a:dev"), Some("team-a:dev"));
    }
}
