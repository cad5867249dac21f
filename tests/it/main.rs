//! The integration tests of nestkube (the binary), linked as one test binary: one link of
//! the crate and its dependencies instead of one per test file. Each module
//! is one former test file (run one with `cargo test --test it <module>::`);
//! `support` holds the helpers they share (servers, clients, `wait_for`).

mod support;

mod admission_webhooks;
mod chart;
mod conversion_parity;
mod crd_parity;
mod custom_resources;
mod host_mode;
mod image;
mod kubectl_suite;
mod real_clients;
mod resource_guard;
mod sample_controller;
mod service_account_tokens;
mod ssa_parity;
mod tenant_workloads;
mod tenants_runtime;
mod third_party_webhooks;
mod upstream_parity;
mod vap_parity;
mod virtual_clusters;
mod webhook_parity;
