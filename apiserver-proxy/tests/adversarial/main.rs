//! The adversarial suite: the tenant boundary as an attacking tenant (or an
//! unauthenticated client) probes it, one module per class of finding, each
//! against a real server on 127.0.0.1. A test here names the mechanism it
//! guards, and failed before that mechanism was fixed.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod cluster_reuse;
mod connection_exhaustion;
mod cross_tenant;
mod exec_parameter_pollution;
