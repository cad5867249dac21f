//! The syncer's adversarial suite: one module per class of attack, each
//! against real servers and sockets on 127.0.0.1.

#[path = "../common/mod.rs"]
mod common;

mod dns_connection_exhaustion;
