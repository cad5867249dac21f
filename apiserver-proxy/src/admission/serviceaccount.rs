//! ServiceAccount admission (work in progress).

use super::Plugin;
use crate::registry::catalog::{Catalog, ResourceInfo};
use std::sync::Arc;

/// The ServiceAccount admission plugin.
pub struct ServiceAccount {
    #[allow(dead_code)]
    namespaces: Option<Arc<ResourceInfo>>,
}

impl ServiceAccount {
    /// The plugin, resolving the resources it reads from `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            namespaces: catalog.get("", "v1", "namespaces").cloned(),
        }
    }
}

impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }
}
