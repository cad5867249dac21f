//! nestkube's tenant-facing Kubernetes API: one process serving many virtual
//! clusters, each with its own objects, resourceVersions and watches.
//!
//! The request path, one module per arrow (see the repository's architecture notes):
//! `server` (which cluster, which resource) -> `auth` (who) -> `registry`
//! (strategy + generic store, which runs `admission` inside every write) ->
//! `nestkube_storage` (revisioned KV + watch).
//! `discovery` serves what clients learn before they ask for objects.

pub mod discovery;
pub mod server;

pub use nestkube_admission as admission;
pub use nestkube_api::{ApiError, error};
pub use nestkube_controllers as controllers;
pub use nestkube_registry as registry;
pub use nestkube_tenancy::kubeconfig;
pub use nestkube_tenancy::{self as tenancy, auth};
