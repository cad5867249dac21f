//! Client-side commands of the `nestkube` binary: thin wrappers over the
//! Kubernetes API (kube-rs), never touching a server's data directly.

pub mod vc;
