//! The integration tests of nestkube-syncer, linked as one test binary: one link of
//! the crate and its dependencies instead of one per test file. Each module
//! is one former test file (run one with `cargo test --test it <module>::`);
//! `common` holds the helpers they share (servers, clients, `wait_for`).

mod common;

mod adversarial;
mod dns;
mod endpoints;
mod events;
mod host;
mod logs;
mod nesting;
mod networking;
mod outage;
mod standalone;
mod streams;
