//! The registry: one generic store serving every resource through a
//! per-type [`strategy::Strategy`], after `k8s.io/apiserver`'s
//! `registry/generic/registry/store.go`.

pub mod admission_hook;
pub mod catalog;
pub mod eviction;
pub mod kinds;
pub mod meta;
pub mod object_limits;
pub mod selector;
pub mod store;
pub mod strategy;
pub mod table;
pub mod typed;
pub mod validation;
pub mod watch;
