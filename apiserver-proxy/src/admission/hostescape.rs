//! Host-escape guard (work in progress).

use super::Plugin;

/// Refuses pods of virtual clusters that would reach the host.
pub struct HostEscape;

impl Plugin for HostEscape {
    fn name(&self) -> &'static str {
        "HostEscape"
    }
}
