//! The shared default ClusterRoles and ClusterRoleBindings
//! ([`crate::auth::rbac_served`]): served by every cluster without being
//! stored in it, unless the cluster stored its own under the same name.
//! Reads merge them in; writes are the generic store's.

use async_trait::async_trait;
use http::Response;

use super::generic::{StoreRest, list_response, object_response};
use super::options::list_options;
use super::{Rest, RestRequest};
use crate::auth::rbac_served;
use crate::error::ApiError;
use crate::server::handler::Body;

/// The generic store, with the served defaults merged into reads.
pub(crate) struct ServedDefaults;

#[async_trait]
impl Rest for ServedDefaults {
    async fn get(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let obj = match req.server.store.get(&req.target(), req.name()).await {
            Err(ApiError::NotFound(m)) => {
                rbac_served::get(&req.resource, req.name()).ok_or(ApiError::NotFound(m))?
            }
            other => other?,
        };
        Ok(object_response(req, obj))
    }

    async fn list(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let opts = list_options(req.info)?;
        let target = req.target();
        let mut page = req.server.store.list(&target, &opts).await?;
        rbac_served::merge_list(&req.server.store, &target, &opts, &mut page).await?;
        Ok(list_response(req, page))
    }

    async fn watch(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let list = list_options(req.info)?;
        // The defaults join the initial events when those are asked for.
        let initial = if super::options::bool_param(req.info, "sendInitialEvents")? == Some(true) {
            rbac_served::initial_events(
                &req.server.store,
                &req.target(),
                &list.label_selector,
                &list.field_selector,
            )
            .await?
        } else {
            Vec::new()
        };
        super::watch::watch(req, initial).await
    }

    async fn create(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        StoreRest.create(req).await
    }

    async fn update(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        StoreRest.update(req).await
    }

    async fn patch(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        StoreRest.patch(req).await
    }

    async fn delete(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        StoreRest.delete(req).await
    }

    async fn delete_collection(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        StoreRest.delete_collection(req).await
    }
}
