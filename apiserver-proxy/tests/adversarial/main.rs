//! Adversarial tests: a tenant trying to get past the boundary, against a
//! real server on 127.0.0.1, one module per class of hole.

#[path = "../common/mod.rs"]
mod common;

mod limit_bypass;
