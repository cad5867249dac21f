//! The adversarial suite: the tenant boundary as an attacking tenant (or an
//! unauthenticated client) probes it, one module per class of finding, each
//! against a real server on 127.0.0.1. A test here names the mechanism it
//! guards, and failed before that mechanism was fixed; each asserts
//! upstream's `Status`, that the attack changed nothing, and (where the
//! class is amplification) bounds what it costs the server.

mod memory;
mod support;
mod vcs;

mod cluster_reuse;
mod connection_exhaustion;
mod cross_tenant;
mod exec_parameter_pollution;
mod fuzz_decoders;
mod fuzz_selectors;
mod host_escape_kernel;
mod host_namespace_placement;
mod limit_bypass;
mod mirrored_impersonation;
mod nesting_limits;
mod patch_amplification;
mod rbac_escalation_expansion;
