//! RuntimeClass admission (work in progress).

use super::Plugin;
use crate::registry::catalog::{Catalog, ResourceInfo};
use std::sync::Arc;

/// The RuntimeClass admission plugin.
pub struct RuntimeClassPolicy {
    #[allow(dead_code)]
    namespaces: Option<Arc<ResourceInfo>>,
}

impl RuntimeClassPolicy {
    /// The plugin, resolving the resources it reads from `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            namespaces: catalog.get("", "v1", "namespaces").cloned(),
        }
    }
}

impl Plugin for RuntimeClassPolicy {
    fn name(&self) -> &'static str {
        "RuntimeClass"
    }
}
