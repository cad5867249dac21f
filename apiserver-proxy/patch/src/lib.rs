//! Kubernetes patch formats.
