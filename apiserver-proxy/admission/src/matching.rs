//! Which requests an admission webhook or policy applies to: upstream's
//! `k8s.io/apiserver/pkg/admission/plugin/webhook/predicates` (rules,
//! namespace and object selectors) and the exemption of the admission
//! configuration resources themselves, shared by the webhook dispatchers and
//! the CEL admission policies.
//!
//! Everything here is pure except [`namespace_labels`], which reads the
//! request's namespace through the write's [`ReadOnlyStore`] (of the same
//! cluster: a rule never sees another cluster's namespaces).

use std::collections::BTreeMap;

use nestkube_api::pod::selector as label_selector;
use serde_json::Value;

use crate::Attributes;
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};

/// The admission configuration resources no webhook or policy is ever
/// called for (upstream's `IsExemptAdmissionConfigurationResource`), so that
/// a broken webhook can always be removed.
const EXEMPT: &[&str] = &[
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies",
    "mutatingadmissionpolicybindings",
];

/// Whether `group`/`resource` is an admission configuration resource.
pub fn is_exempt(group: &str, resource: &str) -> bool {
    group == "admissionregistration.k8s.io" && EXEMPT.contains(&resource)
}

/// The request's objects (`obj`, `old`) in `version`, when a webhook or
/// policy matched another version of a custom resource whose CRD converts
/// by webhook (upstream converts them with the CRD's converter); `None`:
/// the request's own objects serve (a `None` conversion only rewrites
/// apiVersion, which the callers do). A failed conversion refuses the
/// request (500).
pub async fn converted_to(
    attrs: &Attributes<'_>,
    version: &ResourceInfo,
    obj: Option<&Value>,
    old: Option<&Value>,
    store: &ReadOnlyStore<'_>,
) -> Result<Option<(Option<Value>, Option<Value>)>, ApiError> {
    let by_webhook = version
        .custom
        .as_ref()
        .is_some_and(|c| c.conversion.is_some());
    if !by_webhook || version.version == attrs.resource.version {
        return Ok(None);
    }
    let mut objects: Vec<Value> = obj.into_iter().chain(old).cloned().collect();
    let t = crate::registry::store::Target {
        cluster: attrs.path,
        resource: version,
        namespace: attrs.namespace,
    };
    store
        .convert(&t, &mut objects, &version.api_version())
        .await
        .map_err(|e| ApiError::Internal(e.0))?;
    let mut objects = objects.into_iter();
    Ok(Some((
        obj.and_then(|_| objects.next()),
        old.and_then(|_| objects.next()),
    )))
}

/// The facts of a request that rules look at (upstream's
/// `admission.Attributes` as the rule matcher reads them).
#[derive(Clone, Copy, Debug)]
pub struct RuleRequest<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    /// API group of the resource.
    pub group: &'a str,
    /// Version of the resource.
    pub version: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Subresource, `""` for none.
    pub subresource: &'a str,
    /// The request's namespace; for a namespace object, its own name (as
    /// upstream's attributes carry it).
    pub namespace: &'a str,
}

impl<'a> RuleRequest<'a> {
    /// The request written by `attrs`, for the version of `resource` (the
    /// request's own, or an equivalent one).
    pub fn of(attrs: &'a Attributes<'a>, resource: &'a ResourceInfo) -> Self {
        let namespace = if attrs.is("", "namespaces") {
            attrs.name
        } else {
            attrs.namespace.unwrap_or("")
        };
        Self {
            operation: attrs.operation.as_str(),
            group: &resource.group,
            version: &resource.version,
            resource: &resource.resource,
            subresource: attrs.subresource.unwrap_or(""),
            namespace,
        }
    }

    fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces" && self.version == "v1"
    }
}

/// Upstream's `admissionregistration.v1.ScopeType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `*`.
    All,
    /// `Cluster`: cluster-scoped resources (and namespaces themselves).
    Cluster,
    /// `Namespaced`.
    Namespaced,
    /// Anything else: matches nothing (validation refuses it on write).
    Unknown,
}

/// One `RuleWithOperations` (or a policy's `NamedRuleWithOperations`
/// without its names) of a webhook or policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*`.
    pub operations: Vec<String>,
    /// Groups, `*` for all.
    pub api_groups: Vec<String>,
    /// Versions, `*` for all.
    pub api_versions: Vec<String>,
    /// `res`, `res/sub`, `*`, `*/sub`, `res/*`, `*/*`.
    pub resources: Vec<String>,
    /// Scope.
    pub scope: Scope,
    /// A policy rule's `resourceNames` (empty: every name).
    pub resource_names: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl Rule {
    /// Reads a rule from its JSON form (defaults applied by the storage
    /// strategy, so a missing scope is `*`).
    pub fn from_json(v: &Value) -> Self {
        Self {
            operations: strings(&v["operations"]),
            api_groups: strings(&v["apiGroups"]),
            api_versions: strings(&v["apiVersions"]),
            resources: strings(&v["resources"]),
            scope: match v["scope"].as_str().unwrap_or("*") {
                "*" => Scope::All,
                "Cluster" => Scope::Cluster,
                "Namespaced" => Scope::Namespaced,
                _ => Scope::Unknown,
            },
            resource_names: strings(&v["resourceNames"]),
        }
    }

    /// Reads a list of rules.
    pub fn list(v: &Value) -> Vec<Self> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(Self::from_json)
            .collect()
    }

    /// Upstream's `Matcher.Matches`: scope, operation, group, version and
    /// resource all match (resource names are the caller's, see
    /// [`Rule::matches_name`]).
    pub fn matches(&self, r: &RuleRequest<'_>) -> bool {
        self.scope_matches(r)
            && self.operations.iter().any(|o| o == "*" || o == r.operation)
            && exact_or_wildcard(&self.api_groups, r.group)
            && exact_or_wildcard(&self.api_versions, r.version)
            && self.resources.iter().any(|rs| {
                let (res, sub) = rs.split_once('/').unwrap_or((rs, ""));
                (res == "*" || res == r.resource) && (sub == "*" || sub == r.subresource)
            })
    }

    /// Whether a policy rule's `resourceNames` admit `name`.
    pub fn matches_name(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn scope_matches(&self, r: &RuleRequest<'_>) -> bool {
        match self.scope {
            Scope::All => true,
            Scope::Namespaced => !r.is_namespace() && !r.namespace.is_empty(),
            Scope::Cluster => r.is_namespace() || r.namespace.is_empty(),
            Scope::Unknown => false,
        }
    }
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

/// Upstream's `matchPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchPolicy {
    /// Only the request's own group/version/resource.
    Exact,
    /// Also another version of the same resource (`Equivalent`, the default).
    Equivalent,
}

impl MatchPolicy {
    /// From the JSON field (`Equivalent` when absent).
    pub fn from_json(v: &Value) -> Self {
        match v.as_str() {
            Some("Exact") => Self::Exact,
            _ => Self::Equivalent,
        }
    }
}

/// The versions of the requested resource that a rule may name under
/// `matchPolicy: Equivalent`, the request's own first: every served
/// version of the same custom resource. Built-ins are answered only in the
/// request's own version (their versions differ in schema, and this server
/// converts between versions only where the conversion is a rename of
/// `apiVersion`).
pub fn equivalents(
    catalog: &Catalog,
    cluster: &str,
    requested: &std::sync::Arc<ResourceInfo>,
) -> Vec<std::sync::Arc<ResourceInfo>> {
    let mut out = vec![requested.clone()];
    if requested.custom.is_some() {
        out.extend(catalog.resources_in(cluster).into_iter().filter(|r| {
            r.storage_segment == requested.storage_segment && r.version != requested.version
        }));
    }
    out
}

/// Which version of the resource `rules` match under `policy`: the
/// request's own version when a rule names it, else (Equivalent) the first
/// equivalent version one does; `None` when no rule matches.
pub fn matched_version(
    rules: &[Rule],
    policy: MatchPolicy,
    attrs: &Attributes<'_>,
    versions: &[std::sync::Arc<ResourceInfo>],
) -> Option<std::sync::Arc<ResourceInfo>> {
    let take = match policy {
        MatchPolicy::Exact => 1,
        MatchPolicy::Equivalent => versions.len(),
    };
    versions
        .iter()
        .take(take)
        .find(|v| {
            let request = RuleRequest::of(attrs, v);
            rules.iter().any(|r| r.matches(&request))
        })
        .cloned()
}

/// The labels of an object (empty when it has none).
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// Why a selector could not be evaluated.
fn invalid_selector(which: &str) -> ApiError {
    ApiError::Internal(format!("invalid {which}"))
}

/// Upstream's `MatchObjectSelector`: an empty selector matches; otherwise
/// the new object's or the old object's labels must match.
pub fn object_selector_matches(
    selector: &Value,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, ApiError> {
    if selector_is_empty(selector) {
        return Ok(true);
    }
    let sel = label_selector(selector).ok_or_else(|| invalid_selector("objectSelector"))?;
    Ok([obj, old]
        .into_iter()
        .flatten()
        .filter(|o| o.is_object())
        .any(|o| sel.matches(&labels_of(o))))
}

fn selector_is_empty(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(|a| a.is_empty())
}

/// Upstream's `MatchNamespaceSelector`: a cluster-scoped request (other than
/// a namespace) always matches, as does an empty selector; otherwise the
/// labels of the request's namespace (of the object itself when a namespace
/// is created or updated) must match. A namespace that does not exist is
/// upstream's 404.
pub async fn namespace_selector_matches(
    selector: &Value,
    attrs: &Attributes<'_>,
    obj: Option<&Value>,
    store: &ReadOnlyStore<'_>,
    namespaces: &ResourceInfo,
) -> Result<bool, ApiError> {
    let request = RuleRequest::of(attrs, attrs.resource);
    if request.namespace.is_empty() && !attrs.is("", "namespaces") {
        return Ok(true);
    }
    if selector_is_empty(selector) {
        return Ok(true);
    }
    let sel = label_selector(selector).ok_or_else(|| invalid_selector("namespaceSelector"))?;
    let labels = namespace_labels(attrs, obj, store, namespaces).await?;
    Ok(sel.matches(&labels))
}

/// The labels a namespace selector is matched against (upstream's
/// `GetNamespaceLabels`).
pub async fn namespace_labels(
    attrs: &Attributes<'_>,
    obj: Option<&Value>,
    store: &ReadOnlyStore<'_>,
    namespaces: &ResourceInfo,
) -> Result<BTreeMap<String, String>, ApiError> {
    if attrs.is("", "namespaces")
        && matches!(
            attrs.operation,
            crate::Operation::Create | crate::Operation::Update
        )
        && let Some(o) = obj
    {
        return Ok(labels_of(o));
    }
    let name = RuleRequest::of(attrs, attrs.resource).namespace;
    match crate::get_namespace(store, attrs, namespaces, name).await? {
        Some(ns) => Ok(labels_of(&ns)),
        None => Err(ApiError::NotFound(nestkube_api::error::Subject {
            group: String::new(),
            kind: "namespaces".into(),
            name: name.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req<'a>(
        op: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        ns: &'a str,
    ) -> RuleRequest<'a> {
        RuleRequest {
            operation: op,
            group,
            version: "v1",
            resource,
            subresource: sub,
            namespace: ns,
        }
    }

    fn rule(v: Value) -> Rule {
        Rule::from_json(&v)
    }

    // Cases from upstream's predicates/rules/rules_test.go.
    #[test]
    fn resources_and_subresources() {
        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["pods/*"]}),
        );
        assert!(r.matches(&req("CREATE", "", "pods", "status", "ns")));
        // As upstream's matcher: `*` also matches the empty subresource.
        assert!(r.matches(&req("CREATE", "", "pods", "", "ns")));
        assert!(!r.matches(&req("CREATE", "", "services", "status", "ns")));
        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}),
        );
        assert!(r.matches(&req("UPDATE", "apps", "deployments", "status", "ns")));
        assert!(!r.matches(&req("UPDATE", "apps", "deployments", "scale", "ns")));
        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
        );
        assert!(r.matches(&req("CREATE", "", "pods", "", "ns")));
        assert!(!r.matches(&req("CREATE", "", "pods", "exec", "ns")));
        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}),
        );
        assert!(r.matches(&req("CONNECT", "", "pods", "exec", "ns")));
    }

    #[test]
    fn operations_groups_versions() {
        let r = rule(
            json!({"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}),
        );
        assert!(r.matches(&req("CREATE", "apps", "deployments", "", "ns")));
        assert!(!r.matches(&req("UPDATE", "apps", "deployments", "", "ns")));
        assert!(!r.matches(&req("CREATE", "", "deployments", "", "ns")));
        let mut other = req("CREATE", "apps", "deployments", "", "ns");
        other.version = "v1beta1";
        assert!(!r.matches(&other));
    }

    #[test]
    fn scopes() {
        let ns = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"}),
        );
        let cl = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}),
        );
        let pod = req("CREATE", "", "pods", "", "default");
        let node = req("CREATE", "", "nodes", "", "");
        // A namespace carries its own name as its namespace, but is cluster-scoped.
        let namespace = req("CREATE", "", "namespaces", "", "team");
        assert!(ns.matches(&pod) && !cl.matches(&pod));
        assert!(!ns.matches(&node) && cl.matches(&node));
        assert!(!ns.matches(&namespace) && cl.matches(&namespace));
    }

    #[test]
    fn exemptions_and_selectors() {
        assert!(is_exempt(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations"
        ));
        assert!(!is_exempt("admissionregistration.k8s.io", "other"));
        assert!(!is_exempt("", "validatingwebhookconfigurations"));
        let sel = json!({"matchLabels": {"a": "b"}});
        let yes = json!({"metadata": {"labels": {"a": "b"}}});
        let no = json!({"metadata": {}});
        assert!(object_selector_matches(&json!({}), None, None).unwrap());
        assert!(object_selector_matches(&sel, Some(&no), Some(&yes)).unwrap());
        assert!(!object_selector_matches(&sel, Some(&no), None).unwrap());
        assert!(!object_selector_matches(&sel, None, None).unwrap());
    }
}
