//! The registry: one generic store serving every resource through a
//! per-type [`strategy::Strategy`], after `k8s.io/apiserver`'s
//! `registry/generic/registry/store.go`.
//!
//! Layering: this crate builds only on `nestkube-api` and storage. It must
//! never name admission plugins, controllers, tenancy or the HTTP server:
//! what it needs of them it is given (an [`admission_hook::AdmissionHook`],
//! [`object_limits::ObjectLimits`], a [`conversion_hook::Converter`]) or
//! asks through a strategy hook.

pub mod admission_hook;
pub mod apiextensions;
pub mod binding;
pub mod catalog;
pub mod conversion_hook;
pub mod eviction;
pub mod keys;
pub mod kinds;
pub mod managed_fields;
pub mod object_limits;
pub mod store;
pub mod strategy;
pub mod table;
pub mod typed;
pub mod validation;
pub mod watch;

pub use nestkube_api::{error, meta, selector};
