//! `pods/log`: answered in text from where the pod runs
//! ([`crate::server::pod_proxy`]), before any negotiation.

use async_trait::async_trait;
use http::Response;

use super::{Whole, WholeRequest};
use crate::error::ApiError;
use crate::server::handler::Body;

/// `GET pods/<name>/log`.
pub(crate) struct PodLog;

#[async_trait]
impl Whole for PodLog {
    fn long_running(&self) -> bool {
        true
    }

    async fn serve(&self, req: WholeRequest<'_>) -> Result<Response<Body>, ApiError> {
        req.server.pod_log(req.info, req.rr, req.raw_query).await
    }
}
