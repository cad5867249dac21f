//! The adversarial suite: a tenant attacking a real server on 127.0.0.1,
//! one module per class of finding. Every test here failed (or worse) on
//! the code before its fix; each asserts upstream's `Status` and that the
//! attack changed nothing, and bounds what it costs the server.

#[path = "../common/mod.rs"]
mod common;

mod memory;
mod patch_amplification;
mod rbac_escalation_expansion;
