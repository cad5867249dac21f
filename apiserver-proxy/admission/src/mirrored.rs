//! Resources a virtual cluster mirrors from its parent are read-only for
//! its tenants: in every non-root cluster, a create, update or delete of a
//! [`MIRRORED`] resource (today `node.k8s.io` RuntimeClasses) by a user is
//! refused with 403 Forbidden. Writes by in-process components pass: the
//! store's own controllers (no user) and in-process clients such as the
//! syncer, recognised by the mark only an in-process client's request
//! carries ([`super::in_process`]), never by a user name: impersonation
//! (or a certificate) can claim any name, including the in-process
//! client's [`crate::auth::SYSTEM_USER`]. See
//! [`is_mirror_writer`], the one place to change who may keep the mirror
//! up to date.
//!
//! The root cluster is a plain cluster and is not affected. This module must
//! never change an object.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Plugin};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;

/// `(group, resource)` of the resources mirrored from the parent cluster.
pub const MIRRORED: &[(&str, &str)] = &[("node.k8s.io", "runtimeclasses")];

/// Whether a write may change mirrored resources: one by an in-process
/// controller writing through the store (no `user`) or by an in-process
/// client (`in_process`), whatever user name it claims.
pub fn is_mirror_writer(user: Option<&UserInfo>, in_process: bool) -> bool {
    user.is_none() || in_process
}

/// The read-only guard of mirrored resources.
pub struct Mirrored;

#[async_trait]
impl Plugin for Mirrored {
    fn name(&self) -> &'static str {
        "MirroredReadOnly"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        _obj: &Value,
        _old: Option<&Value>,
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let mirrored = MIRRORED
            .iter()
            .any(|(g, r)| attrs.resource.group == *g && attrs.resource.resource == *r);
        if !mirrored || attrs.is_root() || is_mirror_writer(attrs.user.as_deref(), attrs.in_process)
        {
            return Ok(());
        }
        Err(attrs.forbidden(format!(
            "{} of virtual cluster {:?} are mirrored from its parent cluster and read-only",
            attrs.resource.resource, attrs.path
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_in_process_components_write_mirrors() {
        assert!(is_mirror_writer(None, false));
        // The in-process client's name, claimed by a certificate or an
        // impersonation header, is not enough.
        let claimed = UserInfo {
            name: crate::auth::SYSTEM_USER.into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        assert!(!is_mirror_writer(Some(&claimed), false));
        assert!(is_mirror_writer(Some(&claimed), true));
        let admin = UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        assert!(!is_mirror_writer(Some(&admin), false));
    }
}
