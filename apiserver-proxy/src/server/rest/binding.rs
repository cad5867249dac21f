//! `pods/binding`: assigning a pod to a node ([`crate::registry::binding`]),
//! as a scheduler does; the syncer binds through the same code.

use async_trait::async_trait;
use http::{Response, StatusCode};
use serde_json::json;

use super::options::write_options;
use super::{Rest, RestRequest};
use crate::error::ApiError;
use crate::server::handler::Body;
use crate::server::response::{output_plain, respond};

/// Serves `POST pods/<name>/binding`.
pub(crate) struct Binding;

#[async_trait]
impl Rest for Binding {
    async fn create(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let binding = req.decode_body()?;
        crate::registry::binding::bind(
            &req.server.store,
            &req.target(),
            req.name(),
            &binding,
            write_options(req.info)?,
        )
        .await?;
        // Upstream answers a binding with a bare success Status.
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success", "code": 201});
        Ok(respond(
            StatusCode::CREATED,
            &status,
            output_plain(req.output),
        ))
    }
}
