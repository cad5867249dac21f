//! Strategies for the `misc` resources (work in progress).

use std::sync::Arc;

use super::super::strategy::Strategy;

/// The strategy for `resource` in `group`, if this module serves it.
pub fn strategy(_group: &str, _resource: &str) -> Option<Arc<dyn Strategy>> {
    None
}
