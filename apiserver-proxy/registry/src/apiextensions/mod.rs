//! CustomResourceDefinitions (`apiextensions.k8s.io`): the CRD object's own
//! strategy, and the custom resources every virtual cluster serves from its
//! established CRDs, after upstream's `apiextensions-apiserver`.
//!
//! The pieces, one concern each:
//! - [`definition`]: what one CRD spec serves (a [`ResourceInfo`] per served
//!   version), built once per distinct spec in the process and shared by
//!   every cluster that has an identical CRD;
//! - [`served`]: the per-cluster overlay of established definitions the
//!   catalog consults after its built-ins;
//! - [`resource_strategy`]: the generic store's strategy for custom resources
//!   (status, generation, printer columns, selectable fields);
//! - [`jsonpath`]: the JSONPath subset printer columns, scale paths and
//!   selectable fields use;
//! - [`conditions`]: the CRD's status conditions, as upstream's naming,
//!   establishing and finalizer controllers write them.
//!
//! Nothing here reads storage or runs a controller: the CRD controller (in
//! the controllers crate) decides what is established and installs it into
//! [`served::CustomResources`].
//!
//! [`ResourceInfo`]: crate::catalog::ResourceInfo

pub mod conditions;
pub mod crd_strategy;
pub mod definition;
pub mod jsonpath;
pub mod resource_strategy;
pub mod served;

/// The finalizer that holds a CRD being deleted until its custom resources
/// are gone (upstream's `CustomResourceCleanupFinalizer`).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The API group of CRDs.
pub const GROUP: &str = "apiextensions.k8s.io";
