//! The integration tests of nestkube-tenant-crds, linked as one test binary: one link of
//! the crate and its dependencies instead of one per test file. Each module
//! is one former test file (run one with `cargo test --test it <module>::`).

mod crd_yaml;
mod host;
