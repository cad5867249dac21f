//! RuntimeClass policy: which container runtimes a virtual cluster's pods
//! may use, from its VirtualCluster's `spec.isolation`
//! (`runtimeClassName`, `allowedRuntimeClassNames`).
//!
//! On pod create, a pod without `spec.runtimeClassName` gets the default
//! class, and a pod naming a class outside the allowed set is refused with
//! 403 Forbidden (nothing is stored). The allowed set is
//! `allowedRuntimeClassNames`, or just the default class when that list is
//! empty; with neither, every class is allowed (and so in the root cluster,
//! which has no policy).
//!
//! A namespace may narrow its cluster's policy with the annotations
//! [`DEFAULT_CLASS_ANNOTATION`] and [`ALLOWED_CLASSES_ANNOTATION`]
//! (comma-separated), never widen it: a namespace create or update whose
//! annotations name a class the cluster does not allow is refused (403), and
//! at pod admission the namespace's list is intersected with the cluster's
//! current one, so a class the cluster stopped allowing after the namespace
//! was annotated stays refused. A namespace default the effective set does
//! not allow is ignored.
//!
//! Pod templates (Deployments, Jobs, ...) are not judged at their own
//! create, as upstream admits pods and not templates: the pods their
//! controllers create are. This plugin must never change a pod after create
//! (`runtimeClassName` is immutable) and never look at another cluster's
//! namespaces.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Operation, Plugin, get_namespace, join, split_list};
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};

/// Namespace annotation: the default RuntimeClass of the namespace's pods.
pub const DEFAULT_CLASS_ANNOTATION: &str = "runtime.nestkube.io/default-class";
/// Namespace annotation: the RuntimeClasses its pods may use (comma-separated).
pub const ALLOWED_CLASSES_ANNOTATION: &str = "runtime.nestkube.io/allowed-classes";

/// The runtime policy in force for one pod: a default class and the
/// allowed classes (`None`: any class, and no class).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimePolicy {
    /// Given to pods that name no class.
    pub default: Option<String>,
    /// Classes a pod may name; `None` allows every class (and none).
    pub allowed: Option<Vec<String>>,
    /// Whether a namespace annotation narrowed the cluster's policy (for messages).
    pub narrowed_by_namespace: bool,
}

impl RuntimePolicy {
    /// A cluster's policy from its VirtualCluster's isolation fields.
    pub fn cluster(default: Option<&str>, allowed: &[String]) -> Self {
        let allowed = if !allowed.is_empty() {
            Some(allowed.to_vec())
        } else {
            default.map(|d| vec![d.to_string()])
        };
        Self {
            default: default.map(str::to_string),
            allowed,
            narrowed_by_namespace: false,
        }
    }

    /// Whether `class` is allowed.
    pub fn allows(&self, class: &str) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|a| a.iter().any(|c| c == class))
    }

    /// The classes of `names` this policy does not allow.
    pub fn refused<'n>(&self, names: &'n [String]) -> Vec<&'n String> {
        names.iter().filter(|n| !self.allows(n)).collect()
    }

    /// This policy narrowed by a namespace's annotations (an annotation can
    /// only remove classes, never add one).
    pub fn narrowed(&self, ns_default: Option<&str>, ns_allowed: Option<&[String]>) -> Self {
        let mut out = self.clone();
        if let Some(list) = ns_allowed {
            let kept: Vec<String> = list.iter().filter(|c| self.allows(c)).cloned().collect();
            out.allowed = Some(kept);
            out.narrowed_by_namespace = true;
        }
        match ns_default.filter(|d| out.allows(d)) {
            Some(d) => out.default = Some(d.to_string()),
            None => {
                if out.default.as_deref().is_some_and(|d| !out.allows(d)) {
                    // The cluster's default is not allowed here: a single
                    // allowed class is the obvious default, else none.
                    out.default = match out.allowed.as_deref() {
                        Some([only]) => Some(only.clone()),
                        _ => None,
                    };
                }
            }
        }
        out
    }

    /// This policy within `outer`'s (a cluster above): only classes both
    /// allow; the default kept if still allowed, else `outer`'s if allowed,
    /// else the single allowed class, else none.
    pub fn within(&self, outer: &RuntimePolicy) -> Self {
        let allowed = match (&self.allowed, &outer.allowed) {
            (None, o) => o.clone(),
            (Some(mine), None) => Some(mine.clone()),
            (Some(mine), Some(o)) => Some(mine.iter().filter(|c| o.contains(c)).cloned().collect()),
        };
        let mut out = Self {
            default: None,
            allowed,
            narrowed_by_namespace: self.narrowed_by_namespace,
        };
        out.default = [&self.default, &outer.default]
            .into_iter()
            .flatten()
            .find(|d| out.allows(d))
            .cloned()
            .or_else(|| match out.allowed.as_deref() {
                Some([only]) => Some(only.clone()),
                _ => None,
            });
        out
    }

    /// The allowed classes for messages.
    fn describe_allowed(&self) -> String {
        match self.allowed.as_deref() {
            None => "any".into(),
            Some([]) => "none".into(),
            Some(list) => join(list),
        }
    }
}

/// The namespace annotations: default class and allowed classes.
fn annotations(ns: &Value) -> (Option<String>, Option<Vec<String>>) {
    let a = &ns["metadata"]["annotations"];
    let default = a[DEFAULT_CLASS_ANNOTATION]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let allowed = a[ALLOWED_CLASSES_ANNOTATION].as_str().map(split_list);
    (default, allowed)
}

/// The RuntimeClass policy plugin.
pub struct RuntimeClassPolicy {
    namespaces: Option<Arc<ResourceInfo>>,
}

impl RuntimeClassPolicy {
    /// The plugin, resolving the namespaces resource from `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            namespaces: catalog.get("", "v1", "namespaces").cloned(),
        }
    }

    /// The cluster's policy (`None` in the root cluster), narrowed by the
    /// policies of the clusters above it (which may have tightened since
    /// its VirtualCluster was admitted).
    fn cluster_policy(attrs: &Attributes<'_>) -> Option<RuntimePolicy> {
        let policy = |p: &crate::tenancy::Placement| {
            let iso = &p.spec.isolation;
            RuntimePolicy::cluster(
                iso.runtime_class_name.as_deref(),
                &iso.allowed_runtime_class_names,
            )
        };
        let own = policy(attrs.placement()?.as_ref());
        Some(
            attrs
                .ancestors
                .iter()
                .fold(own, |p, a| p.within(&policy(a))),
        )
    }

    /// The policy for a pod in the namespace being written to.
    async fn pod_policy(
        &self,
        attrs: &Attributes<'_>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<RuntimePolicy, ApiError> {
        let base = Self::cluster_policy(attrs).unwrap_or_default();
        let (Some(namespaces), Some(ns)) = (&self.namespaces, attrs.namespace) else {
            return Ok(base);
        };
        match get_namespace(store, attrs, namespaces, ns).await? {
            Some(obj) => {
                let (d, a) = annotations(&obj);
                Ok(base.narrowed(d.as_deref(), a.as_deref()))
            }
            None => Ok(base),
        }
    }
}

#[async_trait]
impl Plugin for RuntimeClassPolicy {
    fn name(&self) -> &'static str {
        "RuntimeClassPolicy"
    }

    async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        _old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if !attrs.is_pod() || attrs.operation != Operation::Create {
            return Ok(());
        }
        let has_class = obj["spec"]["runtimeClassName"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
        if has_class {
            return Ok(());
        }
        if let Some(default) = self.pod_policy(attrs, store).await?.default
            && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("runtimeClassName".into(), default.into());
        }
        Ok(())
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if attrs.is("", "namespaces") && attrs.operation != Operation::Delete {
            return self.validate_namespace(attrs, obj, old);
        }
        if !attrs.is_pod() || attrs.operation != Operation::Create {
            return Ok(());
        }
        let policy = self.pod_policy(attrs, store).await?;
        let Some(allowed) = &policy.allowed else {
            return Ok(());
        };
        let scope = if policy.narrowed_by_namespace {
            format!("namespace {:?}", attrs.namespace.unwrap_or_default())
        } else {
            format!("cluster {:?}", attrs.path)
        };
        match obj["spec"]["runtimeClassName"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            Some(class) if allowed.iter().any(|c| c == class) => Ok(()),
            Some(class) => Err(attrs.forbidden(format!(
                "spec.runtimeClassName: RuntimeClass {class:?} is not allowed in {scope} (allowed: {})",
                policy.describe_allowed()
            ))),
            None => Err(attrs.forbidden(format!(
                "spec.runtimeClassName: a RuntimeClass is required in {scope} (allowed: {})",
                policy.describe_allowed()
            ))),
        }
    }
}

impl RuntimeClassPolicy {
    /// Refuses namespace annotations that would widen the cluster's policy.
    fn validate_namespace(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let new = annotations(obj);
        if old.is_some_and(|o| annotations(o) == new) {
            return Ok(());
        }
        let Some(policy) = Self::cluster_policy(attrs) else {
            return Ok(());
        };
        let (default, allowed) = new;
        let mut named: Vec<(&str, String)> = Vec::new();
        if let Some(d) = default {
            named.push((DEFAULT_CLASS_ANNOTATION, d));
        }
        for c in allowed.unwrap_or_default() {
            named.push((ALLOWED_CLASSES_ANNOTATION, c));
        }
        match named.iter().find(|(_, c)| !policy.allows(c)) {
            None => Ok(()),
            Some((annotation, class)) => Err(attrs.forbidden(format!(
                "metadata.annotations[{annotation}]: RuntimeClass {class:?} is not allowed in cluster {:?} (allowed: {}); a namespace may only narrow the cluster's runtime classes",
                attrs.path,
                policy.describe_allowed()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn policies_within_a_tighter_ancestor() {
        let child = RuntimePolicy::cluster(Some("runc"), &v(&["runc", "kata"]));
        let tightened = RuntimePolicy::cluster(Some("kata"), &v(&["kata"]));
        let p = child.within(&tightened);
        assert_eq!(p.allowed, Some(v(&["kata"])));
        assert_eq!(p.default.as_deref(), Some("kata"));
        // An ancestor without a policy changes nothing.
        let open = RuntimePolicy::cluster(None, &[]);
        assert_eq!(child.within(&open), child);
        // A child without a policy takes its ancestor's.
        assert_eq!(open.within(&tightened), tightened);
        // Nothing in common: nothing allowed, no default.
        let gvisor = RuntimePolicy::cluster(Some("gvisor"), &[]);
        let none = child.within(&gvisor);
        assert_eq!(none.allowed, Some(vec![]));
        assert_eq!(none.default, None);
    }

    #[test]
    fn cluster_policy_sets() {
        let none = RuntimePolicy::cluster(None, &[]);
        assert!(none.allows("anything"));
        assert_eq!(none.allowed, None);
        let only_default = RuntimePolicy::cluster(Some("kata"), &[]);
        assert!(only_default.allows("kata") && !only_default.allows("runc"));
        let list = RuntimePolicy::cluster(Some("kata"), &v(&["kata", "gvisor"]));
        assert!(list.allows("gvisor") && !list.allows("runc"));
    }

    #[test]
    fn namespaces_narrow_never_widen() {
        let cluster = RuntimePolicy::cluster(Some("kata"), &v(&["kata", "gvisor"]));
        let n = cluster.narrowed(Some("gvisor"), Some(&v(&["gvisor", "runc"])));
        assert_eq!(n.allowed, Some(v(&["gvisor"])), "runc is ignored");
        assert_eq!(n.default.as_deref(), Some("gvisor"));
        // A default the namespace does not allow is ignored; the only
        // allowed class becomes the default.
        let n = cluster.narrowed(Some("runc"), Some(&v(&["gvisor"])));
        assert_eq!(n.default.as_deref(), Some("gvisor"));
        // Only a default annotation: it must be allowed by the cluster.
        let n = cluster.narrowed(Some("runc"), None);
        assert_eq!(n.default.as_deref(), Some("kata"));
        let n = cluster.narrowed(Some("gvisor"), None);
        assert_eq!(n.default.as_deref(), Some("gvisor"));
        // In a cluster without policy, a namespace may narrow.
        let open = RuntimePolicy::default().narrowed(None, Some(&v(&["kata"])));
        assert!(open.allows("kata") && !open.allows("runc"));
    }
}
