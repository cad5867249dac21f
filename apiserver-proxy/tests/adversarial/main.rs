//! The adversarial suite: one module per class of attack a tenant (or an
//! unauthenticated client) could try, each against a real server on
//! 127.0.0.1.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod connection_exhaustion;
mod exec_parameter_pollution;
