//! Controllers that make a virtual cluster behave like Kubernetes.
//!
//! Each controller is cluster-aware: one instance serves every cluster in
//! the process from one storage watch, and does work only when something
//! changes, so an idle cluster costs nothing. Every controller runs on the
//! shared [`runtime`] (watch -> mapper -> queue -> [`runtime::Reconciler`])
//! and gets a [`runtime::ControllerContext`], never the API server itself;
//! where a controller's decision is more than a few lines it is a pure
//! `plan` function, apart from the reconcile's reads and writes.

pub mod cronjob;
pub mod customresourcedefinition;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod garbagecollector;
pub mod history;
pub mod host_virtualcluster;
pub mod job;
pub mod namespace;
pub mod podutil;
pub mod provision;
pub mod replicaset;
pub mod resourcequota;
pub mod serviceaccount;
pub mod statefulset;
pub mod util;
pub mod virtualcluster;

// The runtime's stages under their former paths (the syncer uses them).
pub use nestkube_controller_runtime as runtime;
pub use runtime::{queue, watch};

// The layers below, under the names the controllers use.
use nestkube_admission as admission;
use nestkube_api::error;
use nestkube_registry as registry;
use nestkube_tenancy::{self as tenancy, auth};
