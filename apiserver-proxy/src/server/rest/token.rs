//! `serviceaccounts/token`: TokenRequest ([`crate::auth::tokens_api`]).

use async_trait::async_trait;
use http::{Response, StatusCode};

use super::{Rest, RestRequest};
use crate::auth::tokens_api;
use crate::error::ApiError;
use crate::server::handler::Body;
use crate::server::response::{output_plain, respond};

/// Serves `POST serviceaccounts/<name>/token`.
pub(crate) struct TokenRequest;

#[async_trait]
impl Rest for TokenRequest {
    async fn create(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let cluster = req
            .server
            .clusters
            .get(&req.info.cluster)
            .ok_or(ApiError::Unauthorized)?;
        let value = tokens_api::token_request(
            &req.server.store,
            &req.server.catalog,
            &cluster,
            req.rr.namespace.as_deref().unwrap_or(""),
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
