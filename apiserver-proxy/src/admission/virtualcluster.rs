//! VirtualCluster policy inheritance (work in progress).

use super::{AdmissionConfig, Plugin};

/// Bounds a nested VirtualCluster's policy by its parent cluster's.
pub struct VirtualClusterPolicy {
    #[allow(dead_code)]
    max_depth: usize,
}

impl VirtualClusterPolicy {
    /// The plugin with `config`'s nesting depth.
    pub fn new(config: &AdmissionConfig) -> Self {
        Self {
            max_depth: config.max_nesting_depth,
        }
    }
}

impl Plugin for VirtualClusterPolicy {
    fn name(&self) -> &'static str {
        "VirtualClusterPolicy"
    }
}
