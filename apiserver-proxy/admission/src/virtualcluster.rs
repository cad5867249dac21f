//! VirtualCluster policy inheritance: a VirtualCluster created (or whose
//! spec is updated) inside a virtual cluster P may not be laxer than P, so
//! nesting can never widen what P's owner allowed.
//!
//! Checked against P's policy (its own VirtualCluster's spec, from P's
//! placement): every `spec.isolation.allowedRuntimeClassNames` entry and the
//! default `runtimeClassName` must be allowed by P; `podSecurity` must be at
//! least as strict as P's; every `allowedHostEscapes` entry must be allowed
//! by P's (never inherited: a child allows nothing beyond baseline unless it
//! says so); `limits.maxObjects`, `requestsPerSecond` and
//! `maxConcurrentRequests` may not exceed P's where P sets them, nor
//! `maxVirtualClusters` P's (unset meaning the default on both sides);
//! `spec.network` may not allow more than P's (Service types, CIDRs, Ingress
//! hosts and classes: [`nestkube_tenant_crds::NetworkSpec::wider_than`];
//! the syncer enforces each hop's own list anyway). What the
//! child leaves unset is inherited at admission (visible in its spec): P's
//! default class (when the child's list is empty or contains it), P's list
//! of allowed classes (when the child names no class at all), and P's
//! limits. `podSecurity` is defaulted to baseline before admission, so a
//! child of a restricted P must say `restricted` itself. Everywhere
//! (the root cluster included) the child's cluster path may be at most
//! [`super::AdmissionConfig::max_nesting_depth`] levels deep.
//!
//! Refusals are 403 Forbidden naming each offending field. In the root
//! cluster, and in a cluster without placement, there is no parent policy.
//! A later change of P's policy does not refuse existing children: their
//! status says they no longer fit
//! ([`crate::controllers::provision::Compliance`]). This
//! module must never change a VirtualCluster's status nor judge status or
//! metadata-only updates (controllers write those).

use async_trait::async_trait;
use nestkube_tenant_crds::VirtualClusterSpec;
use serde_json::{Value, json};

use super::hostescape::Allowance;
use super::podsecurity::at_least_as_strict;
use super::runtimeclass::RuntimePolicy;
use super::{AdmissionConfig, Attributes, Operation, Plugin, join};
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::meta;
use nestkube_api::request::ROOT_CLUSTER;

/// The API group of VirtualClusters.
const GROUP: &str = "tenancy.nestkube.io";

/// The cluster path a VirtualCluster named `name` in cluster `parent` serves.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == ROOT_CLUSTER {
        name.to_string()
    } else {
        format!("{parent}:{name}")
    }
}

/// Levels of a cluster path (`team-a` 1, `team-a:dev` 2; `root` 0).
pub fn depth(path: &str) -> usize {
    if path == ROOT_CLUSTER {
        0
    } else {
        path.split(':').count()
    }
}

/// Fills what the child spec (JSON) leaves unset from the parent's policy.
pub fn inherit(child: &mut Value, parent: &VirtualClusterSpec) {
    let p = &parent.isolation;
    let iso = &mut child["isolation"];
    if !iso.is_object() {
        *iso = json!({});
    }
    let list_empty = iso["allowedRuntimeClassNames"]
        .as_array()
        .is_none_or(|l| l.is_empty());
    let default_unset = iso["runtimeClassName"]
        .as_str()
        .is_none_or(|s| s.is_empty());
    if list_empty && default_unset && !p.allowed_runtime_class_names.is_empty() {
        iso["allowedRuntimeClassNames"] = json!(p.allowed_runtime_class_names);
    }
    if default_unset && let Some(d) = &p.runtime_class_name {
        let fits = iso["allowedRuntimeClassNames"]
            .as_array()
            .is_none_or(|l| l.is_empty() || l.iter().any(|c| c == d.as_str()));
        if fits {
            iso["runtimeClassName"] = json!(d);
        }
    }
    let limits = &mut child["limits"];
    if !limits.is_object() {
        *limits = json!({});
    }
    let inherited = parent_limits(parent).into_iter().chain([(
        "maxVirtualClusters",
        parent.limits.max_virtual_clusters.map(u64::from),
    )]);
    for (field, value) in inherited {
        if let Some(v) = value
            && limits[field].is_null()
        {
            limits[field] = json!(v);
        }
    }
}

fn parent_limits(p: &VirtualClusterSpec) -> [(&'static str, Option<u64>); 3] {
    [
        ("maxObjects", p.limits.max_objects),
        (
            "requestsPerSecond",
            p.limits.requests_per_second.map(u64::from),
        ),
        (
            "maxConcurrentRequests",
            p.limits.max_concurrent_requests.map(u64::from),
        ),
    ]
}

/// Every way `child` is laxer than `parent` (the cluster at `parent_path`).
pub fn violations(
    child: &VirtualClusterSpec,
    parent: &VirtualClusterSpec,
    parent_path: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let policy = RuntimePolicy::cluster(
        parent.isolation.runtime_class_name.as_deref(),
        &parent.isolation.allowed_runtime_class_names,
    );
    let allowed = match &policy.allowed {
        Some(list) => join(list),
        None => String::new(),
    };
    let not_allowed = |field: String, class: &str| {
        format!(
            "{field}: {class:?} is not allowed by the parent cluster {parent_path:?} (allowed: {allowed})"
        )
    };
    let c = &child.isolation;
    for (i, class) in c.allowed_runtime_class_names.iter().enumerate() {
        if !policy.allows(class) {
            out.push(not_allowed(
                format!("spec.isolation.allowedRuntimeClassNames[{i}]"),
                class,
            ));
        }
    }
    match &c.runtime_class_name {
        Some(class) if !policy.allows(class) => {
            out.push(not_allowed("spec.isolation.runtimeClassName".into(), class));
        }
        None if c.allowed_runtime_class_names.is_empty() && policy.allowed.is_some() => {
            out.push(format!(
                "spec.isolation.allowedRuntimeClassNames: Required value: the parent cluster {parent_path:?} only allows some runtime classes (allowed: {allowed})"
            ));
        }
        _ => {}
    }
    if !at_least_as_strict(c.pod_security, parent.isolation.pod_security) {
        out.push(format!(
            "spec.isolation.podSecurity: {:?} is less strict than the parent cluster {parent_path:?}'s {:?}",
            c.pod_security.as_str(),
            parent.isolation.pod_security.as_str()
        ));
    }
    let allowed = Allowance::from_spec(&parent.isolation.allowed_host_escapes);
    for (field, value) in allowed.exceeded_by(&c.allowed_host_escapes) {
        out.push(format!(
            "spec.isolation.allowedHostEscapes.{field}: {value} is not allowed by the parent cluster {parent_path:?}"
        ));
    }
    let mine = parent_limits(child);
    for ((field, theirs), (_, ours)) in parent_limits(parent).into_iter().zip(mine) {
        match (theirs, ours) {
            (Some(max), Some(v)) if v > max => out.push(format!(
                "spec.limits.{field}: {v} exceeds the parent cluster {parent_path:?}'s limit of {max}"
            )),
            (Some(max), None) => out.push(format!(
                "spec.limits.{field}: Required value: the parent cluster {parent_path:?} limits it to {max}"
            )),
            _ => {}
        }
    }
    out.extend(child.network.wider_than(&parent.network, parent_path));
    // Unset means the default, so a child is never wider than the default
    // of a parent that leaves it unset either.
    let (theirs, ours) = (
        parent.limits.effective_max_virtual_clusters(),
        child.limits.effective_max_virtual_clusters(),
    );
    if ours > theirs {
        out.push(format!(
            "spec.limits.maxVirtualClusters: {ours} exceeds the parent cluster {parent_path:?}'s limit of {theirs}"
        ));
    }
    out
}

/// The VirtualCluster policy plugin.
pub struct VirtualClusterPolicy {
    max_depth: usize,
}

impl VirtualClusterPolicy {
    /// The plugin with `config`'s nesting depth.
    pub fn new(config: &AdmissionConfig) -> Self {
        Self {
            max_depth: config.max_nesting_depth,
        }
    }

    /// Whether this write is judged: a create, or an update of the spec.
    fn judged(attrs: &Attributes<'_>, obj: &Value, old: Option<&Value>) -> bool {
        attrs.is(GROUP, "virtualclusters")
            && match attrs.operation {
                Operation::Create => true,
                Operation::Update => old.is_some_and(|o| o["spec"] != obj["spec"]),
                Operation::Delete | Operation::Connect => false,
            }
    }
}

#[async_trait]
impl Plugin for VirtualClusterPolicy {
    fn name(&self) -> &'static str {
        "VirtualClusterPolicy"
    }

    async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if !Self::judged(attrs, obj, old) {
            return Ok(());
        }
        if let Some(parent) = attrs.placement() {
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            inherit(&mut obj["spec"], &parent.spec);
        }
        Ok(())
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if !Self::judged(attrs, obj, old) {
            return Ok(());
        }
        let mut problems = Vec::new();
        let path = child_path(attrs.path, meta::name(obj));
        let levels = depth(&path);
        if levels > self.max_depth {
            problems.push(format!(
                "its cluster {path:?} would be nested {levels} levels deep, more than the maximum of {}",
                self.max_depth
            ));
        }
        if let Some(parent) = attrs.placement() {
            // The strategy validated the spec already; an undecodable one is
            // its business.
            if let Ok(child) = serde_json::from_value::<VirtualClusterSpec>(obj["spec"].clone()) {
                problems.extend(violations(&child, &parent.spec, attrs.path));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(attrs.forbidden(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> VirtualClusterSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn paths_and_depth() {
        assert_eq!(child_path("root", "a"), "a");
        assert_eq!(child_path("a:b", "c"), "a:b:c");
        assert_eq!(depth("root"), 0);
        assert_eq!(depth("a"), 1);
        assert_eq!(depth("a:b:c"), 3);
    }

    #[test]
    fn children_inherit_what_they_leave_unset() {
        let parent = spec(json!({"isolation": {"runtimeClassName": "kata",
            "allowedRuntimeClassNames": ["kata", "gvisor"], "podSecurity": "restricted"},
            "limits": {"maxObjects": 100, "requestsPerSecond": 10}}));
        let mut child =
            json!({"isolation": {"podSecurity": "restricted"}, "limits": {"maxObjects": 50}});
        inherit(&mut child, &parent);
        assert_eq!(child["isolation"]["runtimeClassName"], "kata");
        assert_eq!(
            child["isolation"]["allowedRuntimeClassNames"],
            json!(["kata", "gvisor"])
        );
        assert_eq!(
            child["limits"],
            json!({"maxObjects": 50, "requestsPerSecond": 10})
        );
        assert!(violations(&spec(child), &parent, "p").is_empty());
        // A child list without the parent's default: no default inherited.
        let mut child = json!({"isolation": {"allowedRuntimeClassNames": ["gvisor"]}});
        inherit(&mut child, &parent);
        assert!(child["isolation"].get("runtimeClassName").is_none());
        assert_eq!(
            child["isolation"]["allowedRuntimeClassNames"],
            json!(["gvisor"])
        );
    }

    #[test]
    fn laxer_children_are_named_field_by_field() {
        let parent = spec(json!({"isolation": {"runtimeClassName": "kata",
            "allowedRuntimeClassNames": ["kata"], "podSecurity": "restricted"},
            "limits": {"maxObjects": 100}}));
        let child = spec(json!({"isolation": {"runtimeClassName": "runc",
            "allowedRuntimeClassNames": ["kata", "runc"], "podSecurity": "baseline"},
            "limits": {"maxObjects": 1000}}));
        assert_eq!(
            violations(&child, &parent, "team-a"),
            [
                "spec.isolation.allowedRuntimeClassNames[1]: \"runc\" is not allowed by the parent cluster \"team-a\" (allowed: kata)",
                "spec.isolation.runtimeClassName: \"runc\" is not allowed by the parent cluster \"team-a\" (allowed: kata)",
                "spec.isolation.podSecurity: \"baseline\" is less strict than the parent cluster \"team-a\"'s \"restricted\"",
                "spec.limits.maxObjects: 1000 exceeds the parent cluster \"team-a\"'s limit of 100",
            ]
        );
        // Host escapes: never more than the parent allows.
        let narrow = spec(json!({"isolation": {"allowedHostEscapes": {
            "capabilities": ["CAP_NET_ADMIN"], "probeHosts": true}}}));
        let wide = spec(json!({"isolation": {"allowedHostEscapes": {
            "capabilities": ["NET_ADMIN", "SYS_ADMIN"], "probeHosts": true,
            "seccompUnconfined": true, "sysctls": ["kernel.msgmax"]}}}));
        assert_eq!(
            violations(&wide, &narrow, "team-a"),
            [
                "spec.isolation.allowedHostEscapes.capabilities[1]: \"SYS_ADMIN\" is not allowed by the parent cluster \"team-a\"",
                "spec.isolation.allowedHostEscapes.seccompUnconfined: true is not allowed by the parent cluster \"team-a\"",
                "spec.isolation.allowedHostEscapes.sysctls[0]: \"kernel.msgmax\" is not allowed by the parent cluster \"team-a\"",
            ]
        );
        // A parent without policy allows anything.
        assert!(violations(&child, &VirtualClusterSpec::default(), "p").is_empty());
    }

    #[test]
    fn a_child_network_is_never_wider() {
        let parent = spec(json!({"network": {"allowedServiceTypes": ["NodePort"],
            "allowedCIDRs": ["203.0.113.0/24"], "ingress": {"allowedHosts": ["*.team-a.example.com"]}}}));
        let child = spec(
            json!({"network": {"allowedServiceTypes": ["NodePort", "LoadBalancer"],
            "allowedCIDRs": ["203.0.113.0/25", "0.0.0.0/0"],
            "ingress": {"allowedHosts": ["dev.team-a.example.com", "*.example.com"]}}}),
        );
        assert_eq!(
            violations(&child, &parent, "team-a"),
            [
                "spec.network.allowedServiceTypes[1]: \"LoadBalancer\" is not allowed by the parent cluster \"team-a\"",
                "spec.network.allowedCIDRs[1]: \"0.0.0.0/0\" is not inside the parent cluster \"team-a\"'s allowedCIDRs",
                "spec.network.ingress.allowedHosts[1]: \"*.example.com\" is not allowed by the parent cluster \"team-a\"",
            ]
        );
        // Unset: nothing is exposed, which fits every parent.
        assert!(violations(&spec(json!({})), &parent, "team-a").is_empty());
    }

    #[test]
    fn virtual_cluster_caps_are_inherited_and_never_wider() {
        let parent = spec(json!({"limits": {"maxVirtualClusters": 2}}));
        let mut child = json!({});
        inherit(&mut child, &parent);
        assert_eq!(child["limits"]["maxVirtualClusters"], 2);
        let wide = spec(json!({"limits": {"maxVirtualClusters": 3}}));
        assert_eq!(
            violations(&wide, &parent, "a"),
            ["spec.limits.maxVirtualClusters: 3 exceeds the parent cluster \"a\"'s limit of 2"]
        );
        // Unset on both sides is the default; wider than the default is not.
        let default = VirtualClusterSpec::default();
        assert!(violations(&default, &default, "a").is_empty());
        let mut child = json!({});
        inherit(&mut child, &default);
        assert!(child["limits"].get("maxVirtualClusters").is_none());
        let over = spec(json!({"limits": {"maxVirtualClusters": 11}}));
        assert_eq!(
            violations(&over, &default, "a"),
            ["spec.limits.maxVirtualClusters: 11 exceeds the parent cluster \"a\"'s limit of 10"]
        );
    }
}
