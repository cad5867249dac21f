//! `pods/eviction`: a delete that respects PodDisruptionBudgets
//! ([`crate::registry::eviction`]).

use async_trait::async_trait;
use http::{Response, StatusCode};

use super::{Rest, RestRequest};
use crate::error::ApiError;
use crate::server::handler::Body;
use crate::server::response::{output_plain, respond};

/// Serves `POST pods/<name>/eviction`.
pub(crate) struct Eviction;

#[async_trait]
impl Rest for Eviction {
    async fn create(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let value = crate::registry::eviction::evict(
            &req.server.store,
            &req.server.catalog,
            &req.target(),
            req.name(),
            req.decode_body()?,
        )
        .await?;
        Ok(respond(
            StatusCode::CREATED,
            &value,
            output_plain(req.output),
        ))
    }
}
