//! The `tenancy.nestkube.io/v1alpha1` `VirtualCluster` types.
//!
//! Doc comments on fields become the descriptions in the generated CRD
//! schema (`kubectl explain vc.spec.isolation`), so they are written for
//! users of the API, not for Rust readers.

use k8s_openapi::api::core::v1::ResourceQuotaSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::network::NetworkSpec;

/// The API group of every nestkube tenancy resource.
pub const GROUP: &str = "tenancy.nestkube.io";
/// The served (and stored) version of [`VirtualCluster`].
pub const VERSION: &str = "v1alpha1";
/// The `type` of the condition that says whether a virtual cluster serves requests.
pub const CONDITION_READY: &str = "Ready";
/// The `type` of the condition that says whether a nested virtual cluster's
/// spec still fits its parent cluster's policy (which may have tightened
/// since it was created).
pub const CONDITION_POLICY_COMPLIANT: &str = "PolicyCompliant";
/// The default key, inside the kubeconfig Secret, that holds the kubeconfig.
pub const KUBECONFIG_SECRET_KEY: &str = "value";

/// Regular expression (as used in the schema) for an RFC 1123 subdomain,
/// e.g. a RuntimeClass name.
pub(crate) const DNS1123_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Regular expression (as used in the schema) for an RFC 1123 label,
/// e.g. a namespace name.
pub(crate) const DNS1123_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest RFC 1123 subdomain.
pub(crate) const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest RFC 1123 label.
pub(crate) const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Most entries accepted in `spec.isolation.allowedRuntimeClassNames`
/// (bounds the cost of the CEL rule that checks membership).
pub const MAX_ALLOWED_RUNTIME_CLASSES: usize = 64;

/// Desired state of a VirtualCluster: a tenant's own Kubernetes API, served
/// by nestkube, whose workloads run on this (the parent) cluster.
// Clippy sees the repeated `type_ = "string"` of separate printcolumns as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tenancy.nestkube.io",
    version = "v1alpha1",
    kind = "VirtualCluster",
    namespaced,
    shortname = "vc",
    category = "nestkube",
    status = "VirtualClusterStatus",
    derive = "PartialEq",
    doc = "VirtualCluster is a tenant's own Kubernetes API (a virtual cluster) served by nestkube; its pods run on this cluster.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the virtual cluster serves requests"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Runtime",
        type_ = "string",
        json_path = ".spec.isolation.runtimeClassName",
        description = "Default RuntimeClass of the tenant's pods"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        description = "URL of the virtual cluster's API",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterSpec {
    /// How the tenant's workloads are isolated on the parent cluster.
    #[serde(default)]
    pub isolation: IsolationSpec,

    /// Limits on the tenant's API and on what it may consume on the parent cluster.
    #[serde(default)]
    pub limits: LimitsSpec,

    /// Namespace of the parent cluster where the tenant's pods (and the other
    /// objects synced down) are created. Defaults to the VirtualCluster's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS1123_LABEL_PATTERN))]
    pub host_namespace: Option<String>,

    /// Optional kinds of the tenant's objects copied to the parent cluster
    /// besides pods and what they need (all off by default).
    #[serde(default)]
    pub sync: SyncSpec,

    /// What of the parent cluster's network the tenant's synced objects may
    /// use (Service types, Ingress hosts and classes, address ranges).
    #[serde(default)]
    pub network: NetworkSpec,
}

/// Optional kinds of objects synced from the virtual cluster to the parent
/// cluster. Turning a kind off deletes its copies from the parent cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSpec {
    /// Copy the tenant's Ingresses (networking.k8s.io/v1), with their Service
    /// backends and TLS Secrets (the Secrets are copied too) translated to the
    /// copies' names, so the parent cluster's ingress controllers serve them;
    /// the load balancer status comes back up. Annotations are not copied.
    /// Only Ingresses whose hosts and class spec.network.ingress allows are
    /// copied.
    /// Ingresses with a `resource` backend are not copied (a Warning event
    /// says so).
    #[serde(default)]
    pub ingresses: bool,

    /// Copy the tenant's NetworkPolicies (networking.k8s.io/v1) so the parent
    /// cluster's network plugin enforces them on the tenant's pods. Pod and
    /// namespace selectors are translated so that a policy only ever selects
    /// pods of the same virtual cluster; ports are kept, and ipBlock peers
    /// when they lie inside spec.network.allowedCIDRs (else the peer matches
    /// nothing, and a Warning event says why).
    #[serde(default)]
    pub network_policies: bool,
}

/// Isolation of the tenant's workloads on the parent cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.runtimeClassName) || !has(self.allowedRuntimeClassNames) || size(self.allowedRuntimeClassNames) == 0 || self.runtimeClassName in self.allowedRuntimeClassNames",
    "message": "must be one of spec.isolation.allowedRuntimeClassNames",
    "fieldPath": ".runtimeClassName",
    "reason": "FieldValueInvalid"
}]))]
pub struct IsolationSpec {
    /// RuntimeClass given to the tenant's pods that do not name one
    /// (e.g. `kata`). Unset: pods keep their own runtimeClassName (none means
    /// the parent cluster's default runtime). Must be one of
    /// allowedRuntimeClassNames when that list is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS1123_SUBDOMAIN_PATTERN))]
    pub runtime_class_name: Option<String>,

    /// RuntimeClasses the tenant's pods may request. Empty: only
    /// runtimeClassName (if set) is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 253), pattern(DNS1123_SUBDOMAIN_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed_runtime_class_names: Vec<String>,

    /// Pod Security Standard enforced on every namespace of the virtual
    /// cluster: privileged, baseline or restricted.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,

    /// What the tenant's pods may use beyond the Pod Security baseline,
    /// whatever podSecurity says: each of these reaches past the virtual
    /// cluster into the parent's nodes (kernel, network, other pools), so
    /// every virtual cluster refuses them unless its VirtualCluster lists
    /// them here. A VirtualCluster inside a virtual cluster may allow at
    /// most what its parent's allows. hostPath volumes, host namespaces,
    /// privileged containers, host ports and the control-plane taints are
    /// never allowed. Empty: nothing beyond baseline.
    #[serde(default, skip_serializing_if = "HostEscapesSpec::is_empty")]
    pub allowed_host_escapes: HostEscapesSpec,
}

/// Most entries of each list in `spec.isolation.allowedHostEscapes`.
pub const MAX_ALLOWED_HOST_ESCAPES: usize = 64;

/// What a virtual cluster's pods may use beyond the Pod Security baseline
/// (<https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline>).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostEscapesSpec {
    /// Linux capabilities containers may add beyond baseline's (AUDIT_WRITE,
    /// CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE,
    /// SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT), e.g. NET_ADMIN. Names
    /// match with or without the CAP_ prefix; ALL allows only the literal ALL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 64)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub capabilities: Vec<String>,

    /// Allow the seccomp profile Unconfined (pod or container
    /// securityContext.seccompProfile, and the seccomp annotations).
    #[serde(default, skip_serializing_if = "is_false")]
    pub seccomp_unconfined: bool,

    /// Allow the AppArmor profile Unconfined (securityContext.appArmorProfile
    /// and the AppArmor annotations).
    #[serde(default, skip_serializing_if = "is_false")]
    pub app_armor_unconfined: bool,

    /// Allow seLinuxOptions baseline forbids: a type other than
    /// container_t, container_init_t and container_kvm_t, or any user or role.
    #[serde(default, skip_serializing_if = "is_false")]
    pub se_linux_options: bool,

    /// Allow securityContext.procMount: Unmasked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unmasked_proc_mount: bool,

    /// Sysctls pods may set beyond baseline's safe ones, by exact name
    /// (e.g. net.core.somaxconn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 253)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub sysctls: Vec<String>,

    /// Allow Windows host-process containers (windowsOptions.hostProcess).
    #[serde(default, skip_serializing_if = "is_false")]
    pub windows_host_process: bool,

    /// Allow probes and lifecycle handlers with a host (httpGet.host,
    /// tcpSocket.host): the parent's kubelet connects to that address from
    /// the node, e.g. to a cloud metadata endpoint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub probe_hosts: bool,

    /// Protected taints pods may tolerate, by key: today CriticalAddonsOnly
    /// (nodes kept for the parent's critical add-ons). A toleration of every
    /// taint (operator Exists without a key) and the control-plane taints
    /// are never allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 317)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub tolerations: Vec<String>,
}

impl HostEscapesSpec {
    /// Whether nothing beyond baseline is allowed.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A Pod Security Standards level
/// (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations (the default).
    #[default]
    Baseline,
    /// Hardened: follows current pod hardening best practices.
    Restricted,
}

impl PodSecurityLevel {
    /// The level as written in the API and in `pod-security.kubernetes.io/*` labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// Limits of a virtual cluster. Every unset limit means "unlimited".
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Most objects the tenant's API stores (all resources together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("format" = "int64"))]
    pub max_objects: Option<u64>,

    /// Sustained requests per second the tenant's API accepts before
    /// answering 429 Too Many Requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = u32::MAX), extend("format" = "int64"))]
    pub requests_per_second: Option<u32>,

    /// Most requests of the tenant's API in flight at once (long-running
    /// watches excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = u32::MAX), extend("format" = "int64"))]
    pub max_concurrent_requests: Option<u32>,

    /// Most VirtualClusters the tenant may create inside its virtual cluster,
    /// counting those nested inside them at any depth. Unset: the parent's
    /// limit, or 10 at the top level; never more than the parent's. 0: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = u32::MAX), extend("format" = "int64"))]
    pub max_virtual_clusters: Option<u32>,

    /// Most CustomResourceDefinitions the tenant's API stores, counting
    /// those of the virtual clusters nested in it. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = u32::MAX), extend("format" = "int64"))]
    pub max_custom_resource_definitions: Option<u32>,

    /// ResourceQuota created in the host namespace for what the tenant syncs
    /// to the parent cluster (e.g. hard: {requests.cpu: "8", pods: "100"}).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = compact_quantities)]
    pub synced_quota: Option<ResourceQuotaSpec>,
}

/// `maxVirtualClusters` of a virtual cluster whose VirtualCluster leaves it
/// unset (at the top level; nested ones inherit their parent's).
pub const DEFAULT_MAX_VIRTUAL_CLUSTERS: u32 = 10;

impl LimitsSpec {
    /// `maxVirtualClusters` in effect: the field, or
    /// [`DEFAULT_MAX_VIRTUAL_CLUSTERS`].
    pub fn effective_max_virtual_clusters(&self) -> u32 {
        self.max_virtual_clusters
            .unwrap_or(DEFAULT_MAX_VIRTUAL_CLUSTERS)
    }
}

/// Regular expression (as used in the schema) of a Kubernetes quantity,
/// as `controller-gen` writes it for `resource.Quantity`.
pub(crate) const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Replaces k8s-openapi's schema of `resource.Quantity` (a page of prose)
/// with a compact one: integer or string, with the pattern `controller-gen`
/// writes for quantities (checked by the API server on strings).
fn compact_quantities(schema: &mut schemars::Schema) {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map.get("x-kubernetes-int-or-string") == Some(&serde_json::Value::Bool(true)) {
                    *v = serde_json::json!({
                        "pattern": QUANTITY_PATTERN,
                        "x-kubernetes-int-or-string": true,
                    });
                    return;
                }
                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    if let Some(map) = schema.as_object_mut() {
        map.values_mut().for_each(walk);
    }
}

/// Observed state of a VirtualCluster, written by nestkube.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterStatus {
    /// Lifecycle phase: Pending, Ready, Terminating or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<VirtualClusterPhase>,

    /// Latest observations; type Ready says whether the virtual cluster serves requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// URL of the virtual cluster's API server, e.g. `https://nestkube.example:6443/clusters/team-a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Secret (in the VirtualCluster's namespace) holding an admin kubeconfig
    /// for the virtual cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,

    /// Pods of the virtual cluster that its current isolation policy (runtime
    /// classes, podSecurity) would refuse: admitted before the policy
    /// tightened. They keep running (never moved silently); new pods follow
    /// the current policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int64"))]
    pub non_compliant_pods: Option<u64>,
}

/// Lifecycle phase of a VirtualCluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum VirtualClusterPhase {
    /// Accepted, not serving yet.
    Pending,
    /// Serving requests.
    Ready,
    /// Being deleted.
    Terminating,
    /// Cannot be served; see the Ready condition's reason and message.
    Failed,
}

/// A key in a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

impl SecretKeyRef {
    /// The conventional kubeconfig Secret of the virtual cluster `vc_name`:
    /// `{name: "<vc_name>-kubeconfig", key: "value"}`.
    pub fn kubeconfig_for(vc_name: &str) -> Self {
        Self {
            name: format!("{vc_name}-kubeconfig"),
            key: KUBECONFIG_SECRET_KEY.to_string(),
        }
    }
}

impl VirtualClusterStatus {
    /// The condition of type `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the Ready condition is present with status "True".
    pub fn is_ready(&self) -> bool {
        self.condition(CONDITION_READY)
            .is_some_and(|c| c.status == "True")
    }
}
