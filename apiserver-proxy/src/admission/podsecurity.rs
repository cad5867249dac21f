//! PodSecurity admission (work in progress).

use super::Plugin;
use crate::registry::catalog::{Catalog, ResourceInfo};
use std::sync::Arc;

/// The PodSecurity admission plugin.
pub struct PodSecurity {
    #[allow(dead_code)]
    namespaces: Option<Arc<ResourceInfo>>,
}

impl PodSecurity {
    /// The plugin, resolving the resources it reads from `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            namespaces: catalog.get("", "v1", "namespaces").cloned(),
        }
    }
}

impl Plugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }
}
