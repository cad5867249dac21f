//! The bottom layer of nestkube's API server: the vocabulary every other
//! layer speaks, with no knowledge of any of them.
//!
//! - [`error`]: `ApiError`, the Kubernetes `Status` every failure becomes.
//! - [`request`]: `RequestInfo`, what a URL addresses (cluster, group,
//!   version, resource, subresource, verb), as upstream's
//!   `endpoints/request` package.
//! - [`meta`]: reading and writing `metadata` of untyped objects.
//! - [`selector`]: label and field selectors; [`pod`]: pod readiness and
//!   `metav1.LabelSelector` JSON as a selector.
//! - [`quantity`]: resource quantities (`500m`, `1Gi`).
//! - [`names`]: name, label and key syntax checks with upstream's messages.
//! - [`webhook_client`]: a webhook's `clientConfig` (url, service) checks.
//!
//! This crate must never depend on another nestkube crate except storage
//! (whose errors it turns into Statuses): the registry, tenancy, auth,
//! admission, controllers and the server all build on it.

pub mod error;
pub mod meta;
pub mod names;
pub mod pod;
pub mod quantity;
pub mod request;
pub mod selector;
pub mod webhook_client;

pub use error::ApiError;
