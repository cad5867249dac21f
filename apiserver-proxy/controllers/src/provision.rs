//! The reconcile steps every VirtualCluster provisioner shares, whether the
//! VirtualCluster lives in a served cluster
//! ([`super::virtualcluster`]) or on a real host cluster
//! ([`super::host_virtualcluster`]): claiming a cluster path, validating the
//! spec, creating the cluster with its limits and placement, the admin
//! kubeconfig Secret's content, and the status written back.
//!
//! Both provisioners share one [`Claims`] table, so a path is owned by one
//! VirtualCluster whichever API it was created in.
//!
//! Policy compliance ([`Provisioner::compliance`]) is judged here too, the
//! same way for both: a parent's policy may tighten after a child was
//! admitted, and a cluster's own policy after its pods were. Nothing is
//! moved or stopped: the status says so (condition
//! [`CONDITION_POLICY_COMPLIANT`], `status.nonCompliantPods`), and
//! admission holds new objects to the current policy. Pods are counted
//! when the VirtualCluster is reconciled (its spec changed, its parent's
//! policy changed, a restart) and again every [`RECOUNT_INTERVAL`] while
//! some do not comply, never on the path of a pod write.
//!
//! This module never reads or writes a VirtualCluster or a Secret itself
//! (each provisioner does, through its own API); it only writes served
//! clusters through [`Clusters`], and only reads their pods (to count
//! compliance).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use nestkube_tenant_crds::{
    CONDITION_POLICY_COMPLIANT, CONDITION_READY, KUBECONFIG_SECRET_KEY, SecretKeyRef,
    VirtualClusterSpec,
};
use serde_json::{Value, json};

use super::runtime::ControllerContext;
use crate::admission::hostescape::{self, Allowance};
use crate::admission::podsecurity;
use crate::admission::runtimeclass::RuntimePolicy;
use crate::admission::virtualcluster::violations;
use crate::error::ApiError;
use crate::registry::catalog::Catalog;
use crate::registry::store::{ListOptions, Store, Target};
use crate::tenancy::limits::Limits;
use crate::tenancy::placement::HostNamespaceRefused;
use crate::tenancy::placement::VC_UID_LABEL;
use crate::tenancy::{Cluster, Clusters, Parent, Placement};
use nestkube_api::request::ROOT_CLUSTER;
use nestkube_tenancy::kubeconfig;

/// The finalizer that holds a VirtualCluster until its virtual cluster is
/// torn down; its presence also records that the VirtualCluster owns its path.
pub const FINALIZER: &str = "tenancy.nestkube.io/teardown";
/// Label on the kubeconfig Secret naming its VirtualCluster.
pub const SECRET_LABEL: &str = "tenancy.nestkube.io/virtual-cluster";

/// How often a cluster with pods that do not comply with its policy is
/// counted again (pods deleted or replaced meanwhile).
pub const RECOUNT_INTERVAL: Duration = Duration::from_secs(30);

/// How a virtual cluster measures up to the policies it is under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compliance {
    /// Every way its VirtualCluster's spec is laxer than the policy of the
    /// cluster holding it (each naming the field); empty when it fits or
    /// there is no such policy (root, the host).
    pub violations: Vec<String>,
    /// Its pods that its own policy would refuse now.
    pub non_compliant_pods: u64,
}

impl Compliance {
    /// Whether something does not comply (worth counting again later).
    pub fn is_violated(&self) -> bool {
        !self.violations.is_empty() || self.non_compliant_pods > 0
    }

    /// The [`CONDITION_POLICY_COMPLIANT`] condition saying so, for `vc`.
    pub fn condition(&self, vc: &Value) -> Value {
        let (status, reason, message) = if !self.violations.is_empty() {
            let mut m = self.violations.join("; ");
            if self.non_compliant_pods > 0 {
                m.push_str(&format!("; {}", self.pods_message()));
            }
            ("False", "ExceedsParentPolicy", m)
        } else if self.non_compliant_pods > 0 {
            ("False", "NonCompliantPods", self.pods_message())
        } else {
            (
                "True",
                "Compliant",
                "the spec fits the parent cluster's policy and every pod complies with its own"
                    .to_string(),
            )
        };
        let mut c = condition(status, reason, &message, vc);
        c["type"] = json!(CONDITION_POLICY_COMPLIANT);
        c
    }

    fn pods_message(&self) -> String {
        format!(
            "{} pod(s) admitted under an earlier policy would be refused now (spec.isolation); they keep running, new pods follow the current policy",
            self.non_compliant_pods
        )
    }
}

/// Whether `pod` complies with `spec`'s runtime-class, pod-security and
/// host-escape policy, as admission would judge it now (the cluster's policy only:
/// namespace narrowing is not judged here).
pub fn pod_complies(pod: &Value, spec: &VirtualClusterSpec) -> bool {
    let iso = &spec.isolation;
    let runtime = RuntimePolicy::cluster(
        iso.runtime_class_name.as_deref(),
        &iso.allowed_runtime_class_names,
    );
    let class_ok = match pod["spec"]["runtimeClassName"].as_str() {
        Some(class) if !class.is_empty() => runtime.allows(class),
        _ => runtime.allowed.is_none(),
    };
    let allowed = Allowance::from_spec(&iso.allowed_host_escapes);
    class_ok
        && podsecurity::evaluate(iso.pod_security, &pod["metadata"], &pod["spec"]).is_empty()
        && hostescape::escapes(&pod["metadata"], &pod["spec"], false, &allowed).is_empty()
}

/// One VirtualCluster: where it lives, its namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The API holding the VirtualCluster object.
    pub parent: Parent,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualCluster {}/{}", self.namespace, self.name)?;
        if self.parent == Parent::Host {
            write!(f, " on the host cluster")?;
        }
        Ok(())
    }
}

/// Who may use a path.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The asking VirtualCluster owns it.
    Ours,
    /// Someone else does (a description of whom).
    Taken(String),
}

/// Which VirtualCluster owns each cluster path (first claim wins). Shared
/// by every provisioner of a process; rebuilt at start from the
/// VirtualClusters carrying [`FINALIZER`] ([`Claims::restore`]).
#[derive(Default)]
pub struct Claims {
    by_path: Mutex<HashMap<String, Owner>>,
}

impl Claims {
    /// A table with no claims.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Records that `owner` holds `path` (it carries the finalizer), unless
    /// someone already does.
    pub fn restore(&self, path: &str, owner: &Owner) {
        if let Ok(mut map) = self.by_path.lock() {
            map.entry(path.to_string()).or_insert_with(|| owner.clone());
        }
    }

    /// Claims `path` for `owner` unless someone else owns it.
    /// `has_finalizer`: `owner` carries [`FINALIZER`] (so an existing
    /// cluster at `path` is its own, created before a restart).
    pub fn claim(
        &self,
        clusters: &Clusters,
        path: &str,
        owner: &Owner,
        has_finalizer: bool,
    ) -> Claim {
        if path == ROOT_CLUSTER {
            return Claim::Taken("the root cluster".into());
        }
        let Ok(mut map) = self.by_path.lock() else {
            return Claim::Taken("nobody (claims poisoned)".into());
        };
        match map.get(path) {
            Some(o) if o == owner => Claim::Ours,
            Some(o) => Claim::Taken(o.to_string()),
            // Served but unclaimed: a cluster no VirtualCluster created.
            None if !has_finalizer && clusters.contains(path) => {
                Claim::Taken("an existing cluster".into())
            }
            None => {
                map.insert(path.to_string(), owner.clone());
                Claim::Ours
            }
        }
    }

    /// Releases `owner`'s claim on `path` (if it holds it); returns whether it did.
    pub fn release(&self, path: &str, owner: &Owner) -> bool {
        let Ok(mut map) = self.by_path.lock() else {
            return false;
        };
        if map.get(path) == Some(owner) {
            map.remove(path);
            true
        } else {
            false
        }
    }

    /// Whether `owner` holds `path`.
    pub fn owns(&self, path: &str, owner: &Owner) -> bool {
        self.by_path
            .lock()
            .map(|m| m.get(path) == Some(owner))
            .unwrap_or(false)
    }

    /// Whether someone other than `owner` holds `path` (true when unsure).
    pub fn held_by_other(&self, path: &str, owner: &Owner) -> bool {
        self.by_path
            .lock()
            .map(|m| m.get(path).is_some_and(|o| o != owner))
            .unwrap_or(true)
    }
}

/// What a provisioner needs of the server: the clusters and their store,
/// the shared [`Claims`], and what tenants' kubeconfigs name and trust.
#[derive(Clone)]
pub struct Provisioner {
    /// The generic store (default namespaces of new clusters).
    pub store: Store,
    /// Served resources.
    pub catalog: Arc<Catalog>,
    /// Served clusters.
    pub clusters: Arc<Clusters>,
    /// Which VirtualCluster owns each path (one table per process).
    pub claims: Arc<Claims>,
    /// Base URL of the server (`https://host:port`), for endpoints and kubeconfigs.
    pub base_url: String,
    /// PEM of the CA that signed the server's serving certificate.
    pub server_ca_pem: String,
    /// Paths of clusters whose placement (so policy) [`Self::provision`]
    /// changed, for whoever judges the VirtualClusters inside them.
    policy_changed: tokio::sync::broadcast::Sender<String>,
}

impl Provisioner {
    /// A provisioner for the clusters of `ctx`.
    pub fn new(
        ctx: &ControllerContext,
        server_ca_pem: String,
        base_url: String,
        claims: Arc<Claims>,
    ) -> Self {
        Self {
            store: ctx.store.clone(),
            catalog: ctx.catalog.clone(),
            clusters: ctx.clusters.clone(),
            claims,
            base_url,
            server_ca_pem,
            policy_changed: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Paths of clusters whose placement changed from now on (lagging
    /// receivers are told so and should judge every cluster).
    pub fn policy_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.policy_changed.subscribe()
    }

    /// The URL of the cluster at `path`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/clusters/{path}", self.base_url.trim_end_matches('/'))
    }

    /// What a VirtualCluster's status should be, as far as its path and
    /// spec tell: `Err(status)` for an invalid spec or a path someone else
    /// owns (write it and stop); `Ok(())` (the path now claimed) to go on.
    pub fn admit(
        &self,
        path: &str,
        owner: &Owner,
        spec: &VirtualClusterSpec,
        vc: &Value,
    ) -> Result<(), Value> {
        if let Some(message) = spec_errors(spec) {
            return Err(not_ready("Failed", "InvalidSpec", &message, vc));
        }
        // The last segment is the VirtualCluster's own name: a DNS label,
        // as the copies' names in the parent rely on (a host cluster only
        // holds a custom resource's name to a DNS subdomain).
        let name = path.rsplit(':').next().unwrap_or(path);
        let name_errors = nestkube_tenant_crds::validate_name(name);
        if !name_errors.is_empty() {
            let message = name_errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(not_ready("Failed", "InvalidName", &message, vc));
        }
        let has_finalizer = crate::registry::meta::finalizers(vc)
            .iter()
            .any(|f| f == FINALIZER);
        if let Claim::Taken(by) = self
            .claims
            .claim(&self.clusters, path, owner, has_finalizer)
        {
            // Who holds it is for the operator's log only: the status is
            // read by the VirtualCluster's owner, who must not learn
            // another tenant's namespace.
            tracing::info!(%path, claimant = %owner, holder = %by, "cluster path taken");
            let message = format!("the cluster path {path:?} is taken by another VirtualCluster");
            return Err(not_ready("Pending", "NameTaken", &message, vc));
        }
        Ok(())
    }

    /// Creates (or finds) the cluster at `path` for VirtualCluster `owner`
    /// (uid `uid`), applies its current limits and records its placement.
    /// Idempotent: called on every reconcile, so a changed spec or a restart
    /// takes effect at once.
    pub async fn provision(
        &self,
        path: &str,
        owner: &Owner,
        uid: &str,
        spec: &VirtualClusterSpec,
    ) -> Result<Arc<Cluster>, ApiError> {
        let cluster = self
            .clusters
            .create(&self.store, &self.catalog, path)
            .await?;
        cluster.limits.set(Limits::from(&spec.limits));
        let placement = Placement::new(
            owner.parent.clone(),
            &owner.namespace,
            &owner.name,
            uid,
            spec.clone(),
        );
        if cluster.placement().as_deref() != Some(&placement) {
            self.clusters.set_placement(path, placement).await?;
            // No receiver is fine (no controller judges children).
            let _ = self.policy_changed.send(path.to_string());
        }
        Ok(cluster)
    }

    /// How the cluster at `path` (VirtualCluster spec `spec`, stored in
    /// `owner.parent`) measures up: the spec against the policy of the
    /// cluster holding the VirtualCluster, the cluster's pods against
    /// `spec`. Lists the cluster's pods: call it on reconcile, not per pod.
    pub async fn compliance(
        &self,
        path: &str,
        owner: &Owner,
        spec: &VirtualClusterSpec,
    ) -> Result<Compliance, ApiError> {
        let violations = match &owner.parent {
            Parent::Cluster(parent) => self
                .clusters
                .get(parent)
                .and_then(|c| c.placement())
                .map(|p| violations(spec, &p.spec, parent))
                .unwrap_or_default(),
            Parent::Host => Vec::new(),
        };
        let Some(pods) = self.catalog.get("", "v1", "pods") else {
            return Ok(Compliance {
                violations,
                non_compliant_pods: 0,
            });
        };
        let t = Target {
            cluster: path,
            resource: pods,
            namespace: None,
        };
        let items = self.store.list(&t, &ListOptions::default()).await?.items;
        let non_compliant_pods = items
            .iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .filter(|p| !pod_complies(p, spec))
            .count() as u64;
        Ok(Compliance {
            violations,
            non_compliant_pods,
        })
    }

    /// A new cluster-admin kubeconfig of `cluster` for VirtualCluster
    /// `vc_name`, naming its endpoint and trusting the server's CA.
    pub fn admin_kubeconfig(
        &self,
        cluster: &Cluster,
        vc_name: &str,
    ) -> Result<String, crate::auth::pki::PkiError> {
        let admin = cluster
            .client_ca
            .issue_client(&format!("{vc_name}-admin"), &["system:masters"])?;
        Ok(kubeconfig::render(
            &format!("nestkube-{}", cluster.path),
            &self.endpoint(&cluster.path),
            &self.server_ca_pem,
            &admin,
        ))
    }
}

/// The spec's validation errors joined into one message; `None` when valid.
pub fn spec_errors(spec: &VirtualClusterSpec) -> Option<String> {
    let errors = nestkube_tenant_crds::validate(spec);
    (!errors.is_empty()).then(|| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The `kubeconfigSecretRef` of VirtualCluster `vc_name`, as JSON.
pub fn secret_ref(vc_name: &str) -> Value {
    let r = SecretKeyRef::kubeconfig_for(vc_name);
    json!({"name": r.name, "key": r.key})
}

/// The kubeconfig Secret of VirtualCluster `owner` (uid `uid`) holding
/// `config`: labelled with [`SECRET_LABEL`], owned by the VirtualCluster.
pub fn kubeconfig_secret(owner: &Owner, uid: &str, config: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SecretKeyRef::kubeconfig_for(&owner.name).name,
            "namespace": owner.namespace,
            "labels": {SECRET_LABEL: owner.name},
            "ownerReferences": [{
                "apiVersion": format!("{}/{}", nestkube_tenant_crds::GROUP, nestkube_tenant_crds::VERSION),
                "kind": "VirtualCluster",
                "name": owner.name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "type": "Opaque",
        "data": {KUBECONFIG_SECRET_KEY: base64::engine::general_purpose::STANDARD.encode(config)},
    })
}

/// Name of the ResourceQuota carrying VirtualCluster `vc_name`'s
/// `spec.limits.syncedQuota` in its host namespace.
pub fn synced_quota_name(vc_name: &str) -> String {
    format!("{vc_name}-synced-quota")
}

/// The ResourceQuota that `spec.limits.syncedQuota` of VirtualCluster
/// `owner` (uid `uid`) asks for in its host namespace, labelled with
/// [`crate::tenancy::placement::VC_UID_LABEL`] (teardown deletes it with
/// the synced copies); `None` when unset. It bounds what the tenant's
/// copies consume there, enforced by the parent's own quota admission
/// (everything in that namespace counts, so a VirtualCluster sharing its
/// host namespace shares the quota).
pub fn synced_quota(owner: &Owner, uid: &str, spec: &VirtualClusterSpec) -> Option<Value> {
    let quota = spec.limits.synced_quota.as_ref()?;
    let host_namespace = spec.host_namespace.as_deref().unwrap_or(&owner.namespace);
    Some(json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": synced_quota_name(&owner.name),
            "namespace": host_namespace,
            "labels": {
                VC_UID_LABEL: uid,
                SECRET_LABEL: owner.name,
                "tenancy.nestkube.io/managed-by": "nestkube",
            },
        },
        "spec": quota,
    }))
}

/// Whether the stored ResourceQuota `current` was written for VirtualCluster
/// `uid` and already says what `desired` says.
pub fn synced_quota_is_current(current: &Value, desired: &Value) -> bool {
    current["metadata"]["labels"] == desired["metadata"]["labels"]
        && current["spec"] == desired["spec"]
}

/// Whether the stored ResourceQuota `quota` was written for VirtualCluster
/// `uid` (a provisioner never touches one it did not write).
pub fn synced_quota_owned_by(quota: &Value, uid: &str) -> bool {
    !uid.is_empty() && quota["metadata"]["labels"][VC_UID_LABEL] == uid
}

/// Whether `secret` was written by a provisioner for VirtualCluster `name`
/// (with `uid`, unless empty).
pub fn secret_owned_by(secret: &Value, name: &str, uid: &str) -> bool {
    secret["metadata"]["labels"][SECRET_LABEL] == name
        && secret["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["kind"] == "VirtualCluster" && (uid.is_empty() || o["uid"] == uid))
}

/// Whether `secret` already holds a kubeconfig for `server`, owned by `uid`.
pub fn secret_is_current(secret: &Value, uid: &str, server: &str) -> bool {
    let owned = secret["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["uid"] == uid);
    let config = secret["data"][KUBECONFIG_SECRET_KEY]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    owned && config.contains(&format!("server: {server}\n"))
}

/// A Ready condition (`metav1.Condition`) for `vc`.
pub fn condition(status: &str, reason: &str, message: &str, vc: &Value) -> Value {
    json!({
        "type": CONDITION_READY,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": vc["metadata"]["generation"],
        "lastTransitionTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

/// The status of `vc` serving at `endpoint`, measuring up as `compliance`
/// says.
pub fn ready(endpoint: &str, vc: &Value, compliance: &Compliance) -> Value {
    json!({
        "phase": "Ready",
        "conditions": [
            condition("True", "Provisioned", &format!("serving at {endpoint}"), vc),
            compliance.condition(vc),
        ],
        "observedGeneration": vc["metadata"]["generation"],
        "endpoint": endpoint,
        "kubeconfigSecretRef": secret_ref(crate::registry::meta::name(vc)),
        "nonCompliantPods": compliance.non_compliant_pods,
    })
}

/// Reason of the Ready condition of a VirtualCluster whose
/// `spec.hostNamespace` it may not use ([`crate::tenancy::placement::check_host_namespace`]).
pub const HOST_NAMESPACE_NOT_ALLOWED: &str = "HostNamespaceNotAllowed";

/// The status of `vc` refused its host namespace: nothing is provisioned
/// nor synced for the refused placement.
pub fn host_namespace_refused(refused: &HostNamespaceRefused, vc: &Value) -> Value {
    not_ready(
        "Failed",
        HOST_NAMESPACE_NOT_ALLOWED,
        &refused.to_string(),
        vc,
    )
}

/// A status saying `vc` does not serve (phase, reason, message).
pub fn not_ready(phase: &str, reason: &str, message: &str, vc: &Value) -> Value {
    json!({
        "phase": phase,
        "conditions": [condition("False", reason, message, vc)],
        "observedGeneration": vc["metadata"]["generation"],
    })
}

/// `vc`'s status while it is torn down (endpoint and Secret kept).
pub fn terminating(vc: &Value) -> Value {
    let mut status = vc.get("status").cloned().unwrap_or_else(|| json!({}));
    status["phase"] = "Terminating".into();
    status["conditions"] = json!([condition(
        "False",
        "Terminating",
        "the virtual cluster is being deleted",
        vc
    )]);
    status
}

/// Copies `lastTransitionTime` from `old`'s conditions into `new`'s where a
/// condition of the same type kept its status (as `meta.SetStatusCondition`).
pub fn keep_transition_times(new: &mut Value, old: &Value) {
    let Some(conditions) = new.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conditions {
        let previous = old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["type"] == c["type"] && o["status"] == c["status"]);
        if let Some(p) = previous {
            c["lastTransitionTime"] = p["lastTransitionTime"].clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::pki::Ca;
    use crate::auth::tokens::SigningKey;

    async fn clusters() -> (tempfile::TempDir, Clusters, Store, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let storage = nestkube_storage::Backend::default()
            .open(dir.path())
            .unwrap();
        let store = Store::new(storage.clone());
        let clusters = Clusters::load(
            storage,
            Ca::generate("root").unwrap(),
            SigningKey::generate().unwrap(),
        )
        .await
        .unwrap();
        (dir, clusters, store, Catalog::builtin().unwrap())
    }

    fn owner(parent: Parent, namespace: &str) -> Owner {
        Owner {
            parent,
            namespace: namespace.into(),
            name: "a".into(),
        }
    }

    #[tokio::test]
    async fn one_path_one_owner_across_parents() {
        let (_dir, clusters, store, catalog) = clusters().await;
        let claims = Claims::new();
        let host = owner(Parent::Host, "ns1");
        let root = owner(Parent::Cluster(ROOT_CLUSTER.into()), "ns1");
        assert_eq!(claims.claim(&clusters, "a", &host, false), Claim::Ours);
        assert_eq!(claims.claim(&clusters, "a", &host, true), Claim::Ours);
        assert_eq!(
            claims.claim(&clusters, "a", &root, false),
            Claim::Taken("VirtualCluster ns1/a on the host cluster".into())
        );
        assert!(claims.held_by_other("a", &root) && !claims.held_by_other("a", &host));
        assert!(!claims.release("a", &root), "only the owner releases");
        assert!(claims.release("a", &host));
        // A served cluster nobody claims is not taken over without the finalizer.
        clusters.create(&store, &catalog, "b").await.unwrap();
        let b = Owner {
            name: "b".into(),
            ..host.clone()
        };
        assert_eq!(
            claims.claim(&clusters, "b", &b, false),
            Claim::Taken("an existing cluster".into())
        );
        assert_eq!(claims.claim(&clusters, "b", &b, true), Claim::Ours);
        assert_eq!(
            claims.claim(&clusters, ROOT_CLUSTER, &host, true),
            Claim::Taken("the root cluster".into())
        );
        // Restored claims (the finalizer) win over later claimants.
        claims.restore("c", &root);
        claims.restore("c", &host);
        assert!(claims.owns("c", &root));
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let old = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]});
        let mut new = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t1"}]});
        keep_transition_times(&mut new, &old);
        assert_eq!(new["conditions"][0]["lastTransitionTime"], "t0");
        let mut flipped = json!({"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "t1"}]});
        keep_transition_times(&mut flipped, &old);
        assert_eq!(flipped["conditions"][0]["lastTransitionTime"], "t1");
    }

    #[test]
    fn synced_quota_goes_to_the_host_namespace_labelled_for_teardown() {
        let spec: VirtualClusterSpec = serde_json::from_value(json!({
            "hostNamespace": "copies",
            "limits": {"syncedQuota": {"hard": {"pods": "3"}}},
        }))
        .unwrap();
        let q = synced_quota(&owner(Parent::Host, "team"), "u1", &spec).unwrap();
        assert_eq!(q["metadata"]["name"], "a-synced-quota");
        assert_eq!(q["metadata"]["namespace"], "copies");
        assert_eq!(q["spec"], json!({"hard": {"pods": "3"}}));
        assert!(synced_quota_owned_by(&q, "u1"));
        assert!(!synced_quota_owned_by(&q, "u2") && !synced_quota_owned_by(&q, ""));
        assert!(synced_quota_is_current(&q, &q));
        let unset = VirtualClusterSpec::default();
        assert!(synced_quota(&owner(Parent::Host, "team"), "u1", &unset).is_none());
    }

    #[test]
    fn secrets_are_recognised_by_owner_and_server() {
        let owner = Owner {
            parent: Parent::Host,
            namespace: "ns".into(),
            name: "a".into(),
        };
        let s = kubeconfig_secret(&owner, "u1", "server: https://x/clusters/a\n");
        assert!(secret_owned_by(&s, "a", "u1"));
        assert!(secret_owned_by(&s, "a", ""));
        assert!(!secret_owned_by(&s, "a", "u2"));
        assert!(secret_is_current(&s, "u1", "https://x/clusters/a"));
        assert!(!secret_is_current(&s, "u1", "https://y/clusters/a"));
        assert_eq!(s["metadata"]["name"], "a-kubeconfig");
    }
}
