//! The VirtualCluster API: `tenancy.nestkube.io/v1alpha1` `VirtualCluster`
//! (short name `vc`), as Rust types and as the CustomResourceDefinition
//! generated from them.
//!
//! This crate owns the API types only: their schema (including the validation
//! OpenAPI can express), the generated CRD ([`crd`], [`crd_yaml`]; checked in
//! at `tenant-crds/crd/virtualcluster.yaml`), and [`validate`], the same rules
//! in Rust for servers that do not evaluate CEL. It must never contain
//! controller logic (provisioning, reconciling, syncing, auth): those live in
//! the crates that depend on it.
//!
//! Regenerate the checked-in CRD after changing a type:
//!
//! ```sh
//! cargo run -p nestkube-tenant-crds --bin gen-crd > tenant-crds/crd/virtualcluster.yaml
//! ```
//!
//! (or `NESTKUBE_UPDATE_CRD=1 cargo test -p nestkube-tenant-crds --test it crd_yaml`);
//! the `crd_yaml` test fails while the file differs from the types.

mod network;
mod types;
mod validation;

pub use network::{
    Cidr, CidrError, ExposedServiceType, IngressPolicy, MAX_NETWORK_ENTRIES, NOT_IN_ALLOWED_CIDRS,
    NetworkIsolation, NetworkSpec, host_allowed, parse_cidrs, refused_address,
};
pub use types::{
    CONDITION_POLICY_COMPLIANT, CONDITION_READY, DEFAULT_MAX_VIRTUAL_CLUSTERS, GROUP,
    HostEscapesSpec, IsolationSpec, KUBECONFIG_SECRET_KEY, LimitsSpec, MAX_ALLOWED_HOST_ESCAPES,
    MAX_ALLOWED_RUNTIME_CLASSES, PodSecurityLevel, SecretKeyRef, SyncSpec, VERSION, VirtualCluster,
    VirtualClusterPhase, VirtualClusterSpec, VirtualClusterStatus,
};
pub use validation::{SpecError, validate, validate_name};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The command that regenerates the checked-in CRD YAML (run from the repository root).
pub const REGENERATE_COMMAND: &str =
    "cargo run -p nestkube-tenant-crds --bin gen-crd > tenant-crds/crd/virtualcluster.yaml";

/// The path of the checked-in CRD YAML, relative to the repository root.
pub const CRD_YAML_PATH: &str = "tenant-crds/crd/virtualcluster.yaml";

/// The VirtualCluster CustomResourceDefinition, generated from the types.
pub fn crd() -> CustomResourceDefinition {
    VirtualCluster::crd()
}

/// The VirtualCluster CRD as YAML, exactly as checked in at [`CRD_YAML_PATH`]
/// (a header comment naming [`REGENERATE_COMMAND`], then the document).
pub fn crd_yaml() -> String {
    let body =
        serde_yaml::to_string(&crd()).expect("a CustomResourceDefinition serializes to YAML");
    format!(
        "# Generated from the Rust types in tenant-crds/src; do not edit.\n\
         # Regenerate: {REGENERATE_COMMAND}\n\
         ---\n\
         {body}"
    )
}
