//! Adversarial tests of the API server: what a hostile tenant (or an
//! unauthenticated client) can send, one module per class of attack.

#[path = "../common/mod.rs"]
mod common;

mod fuzz_decoders;
mod fuzz_selectors;
mod nesting_limits;
