//! The integration tests of nestkube-apiserver, linked as one test binary: one link of
//! the crate and its dependencies instead of one per test file. Each module
//! is one former test file (run one with `cargo test --test it <module>::`);
//! `common` holds the helpers they share (servers, clients, `wait_for`).
//! Modules behind `#[cfg(feature = "etcd")]` need the etcd backend
//! (`--all-features`), as their `required-features` targets did.

mod common;

mod admission;
mod admission_policies;
mod admission_webhooks;
mod adversarial;
mod controllers;
mod controllers_apps;
mod controllers_batch;
mod conversion_webhooks;
mod custom_resources;
#[cfg(feature = "etcd")]
mod etcd_replicas;
mod flow_control;
mod kube_rs;
mod limits;
mod quota;
mod rbac;
mod rbac_matrix;
mod server_side_apply;
mod service_account_tokens;
mod subresources;
mod tenant_isolation;
