//! Adversarial tests: each module attacks one class of tenant-escape or
//! denial-of-service hole against a real server on 127.0.0.1, and would
//! fail on a server without the fix.

#[path = "../common/mod.rs"]
mod common;

mod host_escape_kernel;
mod host_namespace_placement;
mod mirrored_impersonation;
mod vcs;
