//! The integration tests of nestkube-patch, linked as one test binary: one link of
//! the crate and its dependencies instead of one per test file. Each module
//! is one former test file (run one with `cargo test --test it <module>::`).

mod amplification;
mod fuzz;
mod json_and_merge;
mod kubectl;
mod robustness;
mod upstream_cases;
