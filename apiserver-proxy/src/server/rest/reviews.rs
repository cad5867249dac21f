//! The review resources: TokenReview ([`crate::auth::tokens_api`]) and the
//! access and rules reviews ([`crate::auth::rbac_review`]). They are
//! created and answered, never stored.

use async_trait::async_trait;
use http::{Response, StatusCode};

use super::{Whole, WholeRequest};
use crate::auth::{rbac_review, tokens_api};
use crate::error::ApiError;
use crate::server::handler::Body;
use crate::server::negotiate::{self, Output};
use crate::server::response::respond;

/// `POST tokenreviews` (v1 only, cluster-scoped).
pub(crate) struct TokenReview;

#[async_trait]
impl Whole for TokenReview {
    async fn serve(&self, req: WholeRequest<'_>) -> Result<Response<Body>, ApiError> {
        let rr = req.rr;
        if rr.version != "v1" {
            return Err(ApiError::PathNotFound);
        }
        if rr.verb != "create" || rr.namespace.is_some() {
            return Err(ApiError::MethodNotAllowed);
        }
        let review = tokens_api::token_review(
            &req.server.clusters,
            &req.server.store,
            &req.server.catalog,
            &req.info.cluster,
            negotiate::decode_body(req.content_type, req.body)?,
        )
        .await?;
        Ok(respond(StatusCode::CREATED, &review, Output::Json))
    }
}

/// `POST` of a SubjectAccessReview (all four kinds) or SelfSubjectReview.
pub(crate) struct AccessReview;

#[async_trait]
impl Whole for AccessReview {
    async fn serve(&self, req: WholeRequest<'_>) -> Result<Response<Body>, ApiError> {
        let review = rbac_review::review(
            &req.server.authorizer,
            &req.info.cluster,
            req.user,
            req.rr,
            || negotiate::decode_body(req.content_type, req.body),
        )
        .await?;
        Ok(respond(StatusCode::CREATED, &review, Output::Json))
    }
}
