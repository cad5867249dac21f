//! The integration tests of nestkube-storage, linked as one test binary: one link of
//! the crate and its dependencies instead of one per test file. Each module
//! is one former test file (run one with `cargo test --test it <module>::`);
//! `common` holds the helpers they share.
//! Modules behind `#[cfg(feature = "etcd")]` need the etcd backend
//! (`--all-features`), as their `required-features` targets did.

mod common;

mod crash;
#[cfg(feature = "etcd")]
mod etcd;
mod idle;
#[cfg(feature = "etcd")]
mod lease;
mod storage;
