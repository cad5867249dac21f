//! RBAC escalation prevention as an admission step: the Role, ClusterRole,
//! RoleBinding and ClusterRoleBinding a user writes must not grant more than
//! that user holds ([`crate::auth::rbac_escalation::confirm`]).
//!
//! Upstream checks this in the RBAC resources' storage, on the object as it
//! would be stored: after mutating admission, before the strategy's
//! validation. Here it is the last mutating step, which is the same place,
//! so the check judges the final object of a create, update or patch (a
//! patch is applied once, by the store). Writes without a requesting user
//! (in-process controllers) and by `system:masters` are not checked.
//!
//! This module must never change the object it judges.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::auth::rbac::{Authorizer, MASTERS_GROUP, RBAC_GROUP, RequestDenied};
use crate::auth::rbac_escalation;
use crate::error::{ApiError, Subject};
use crate::registry::admission_hook::ReadOnlyStore;
use nestkube_api::request::ResourceRequest;

/// The escalation check, with the authorizer whose policies it reads.
pub struct RbacEscalation {
    authorizer: Arc<Authorizer>,
}

impl RbacEscalation {
    /// The check over `authorizer`'s policies.
    pub fn new(authorizer: Arc<Authorizer>) -> Self {
        Self { authorizer }
    }
}

#[async_trait]
impl Plugin for RbacEscalation {
    fn name(&self) -> &'static str {
        "RBACEscalation"
    }

    async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        _old: Option<&Value>,
        _store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        let r = attrs.resource;
        let verb = match attrs.operation {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete | Operation::Connect => return Ok(()),
        };
        let guarded = r.group == RBAC_GROUP
            && matches!(
                r.resource.as_str(),
                "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
            )
            && attrs.subresource.is_none();
        let Some(user) = attrs.user.as_ref().filter(|_| guarded) else {
            return Ok(());
        };
        if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Ok(());
        }
        let rr = ResourceRequest {
            group: r.group.clone(),
            version: r.version.clone(),
            namespace: attrs.namespace.map(str::to_string),
            resource: r.resource.clone(),
            name: Some(attrs.name.to_string()),
            subresource: None,
            proxy_path: None,
            verb,
        };
        match rbac_escalation::confirm(&self.authorizer, attrs.path, user, &rr, obj).await {
            Ok(()) => Ok(()),
            Err(RequestDenied::Forbidden(f)) => Err(ApiError::ForbiddenObject {
                subject: Subject {
                    group: f.group,
                    kind: f.kind,
                    name: f.name,
                },
                message: f.message,
            }),
            Err(RequestDenied::Other(e)) => Err(e),
        }
    }
}
