//! The generic store's endpoint: every verb of every catalog resource (and
//! its `status` and `finalize` subresources) through [`Store`], rendered in
//! the negotiated representation (object, Table, PartialObjectMetadata).
//!
//! This module must never hold code for one resource: that belongs to a
//! strategy (registry) or a row of the REST table.

use async_trait::async_trait;
use http::{Response, StatusCode};
use nestkube_patch::PatchType;
use serde_json::{Value, json};

use super::options::{bool_param, delete_options, list_options, write_options};
use super::{Rest, RestRequest};
use crate::error::{ApiError, FieldError, Subject};
use crate::registry::catalog::ResourceInfo;
use crate::registry::managed_fields;
use crate::registry::meta;
#[cfg(doc)]
use crate::registry::store::Store;
use crate::registry::store::{self, Deleted, ListPage};
use crate::registry::table;
use crate::server::handler::{ApiServer, Body};
use crate::server::negotiate::Output;
use crate::server::response::{add_warnings, output_plain, respond};

/// Serves a resource with the generic store.
pub(crate) struct StoreRest;

#[async_trait]
impl Rest for StoreRest {
    async fn get(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let obj = req.server.store.get(&req.target(), req.name()).await?;
        Ok(object_response(req, obj))
    }

    async fn list(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let opts = list_options(req.info)?;
        let page = req.server.store.list(&req.target(), &opts).await?;
        Ok(list_response(req, page))
    }

    async fn watch(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        super::watch::watch(req, Vec::new()).await
    }

    async fn create(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let written = req
            .server
            .store
            .create(&req.target(), req.decode_body()?, write_options(req.info)?)
            .await?;
        Ok(written_response(req, StatusCode::CREATED, written))
    }

    async fn update(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let written = req
            .server
            .store
            .update(
                &req.target(),
                req.name(),
                req.rr.subresource.as_deref(),
                req.decode_body()?,
                write_options(req.info)?,
            )
            .await?;
        Ok(written_response(req, StatusCode::OK, written))
    }

    async fn patch(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let opts = write_options(req.info)?;
        let pt = patch_type(req.content_type)?;
        if pt == PatchType::Apply {
            return server_side_apply(req, opts).await;
        }
        if req.info.param("force").is_some_and(|f| !f.is_empty()) {
            return Err(patch_options_invalid(FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )));
        }
        let r = &req.resource;
        if r.custom.is_some() && pt == PatchType::StrategicMerge {
            // Custom resources have no patch strategies (as upstream).
            return Err(ApiError::Other {
                code: 415,
                reason: "UnsupportedMediaType",
                message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                causes: Vec::new(),
            });
        }
        let schema = req.server.schema_root(&r.group, &r.version, &r.kind);
        let written = req
            .server
            .store
            .update_with(
                &req.target(),
                req.name(),
                req.rr.subresource.as_deref(),
                opts,
                |old| {
                    let patched = nestkube_patch::apply_patch(old, req.body, pt, schema)
                        .map_err(patch_error)?;
                    store::decode_body(
                        r,
                        &r.group,
                        &r.version,
                        &r.kind,
                        patched,
                        opts.field_validation,
                    )
                },
            )
            .await?;
        Ok(written_response(req, StatusCode::OK, written))
    }

    async fn delete(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        if req.rr.subresource.is_some() {
            return Err(ApiError::MethodNotAllowed);
        }
        let opts = delete_options(req.info, req.content_type, req.body)?;
        let r = &req.resource;
        match req
            .server
            .store
            .delete(&req.target(), req.name(), &opts)
            .await?
        {
            Deleted::Pending(obj) => {
                let status = if opts.propagation.as_deref() == Some("Foreground") {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::OK
                };
                Ok(respond(status, &render(r, obj, req.output), req.output))
            }
            Deleted::Gone(obj) => {
                let mut details =
                    json!({"name": req.name(), "kind": r.resource, "uid": meta::uid(&obj)});
                if !r.group.is_empty() {
                    details["group"] = r.group.clone().into();
                }
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success", "details": details});
                Ok(respond(StatusCode::OK, &status, output_plain(req.output)))
            }
        }
    }

    async fn delete_collection(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        if req.rr.subresource.is_some() {
            return Err(ApiError::MethodNotAllowed);
        }
        let list = list_options(req.info)?;
        let opts = delete_options(req.info, req.content_type, req.body)?;
        let items = req
            .server
            .store
            .delete_collection(&req.target(), &list, &opts)
            .await?;
        let r = &req.resource;
        let value = json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
                           "metadata": {}, "items": items});
        Ok(respond(StatusCode::OK, &value, output_plain(req.output)))
    }
}

/// `422 Invalid` about the PATCH options (upstream's `ValidatePatchOptions`).
fn patch_options_invalid(e: FieldError) -> ApiError {
    ApiError::invalid(
        Subject {
            group: "meta.k8s.io".into(),
            kind: "PatchOptions".into(),
            name: String::new(),
        },
        e,
    )
}

/// `PATCH` with `application/apply-patch+yaml`: the configuration merged
/// into the live object with field ownership ([`managed_fields::apply`]),
/// or the object created from it when there is none (`201`).
async fn server_side_apply(
    req: &RestRequest<'_>,
    opts: store::WriteOptions,
) -> Result<Response<Body>, ApiError> {
    let (config, manager, force) = apply_request(req)?;
    let manager = manager.as_str();
    let opts = store::WriteOptions {
        applied: true,
        ..opts
    };
    let r = &req.resource;
    let subresource = req.rr.subresource.as_deref();
    let fv = opts.field_validation;
    let ctx = managed_fields::Context {
        schema: req.server.store.field_schema().map(|s| &**s),
        resource: r,
        subresource,
    };
    let decode = |obj: Value| store::decode_body(r, &r.group, &r.version, &r.kind, obj, fv);
    let updated = req
        .server
        .store
        .update_with(&req.target(), req.name(), subresource, opts, |live| {
            decode(managed_fields::apply(
                &ctx,
                Some(live),
                &config,
                manager,
                force,
            )?)
        })
        .await;
    match updated {
        Ok(written) => Ok(written_response(req, StatusCode::OK, written)),
        // Create on apply (the main resource only, as upstream).
        Err(ApiError::NotFound(_)) if subresource.is_none() => {
            let obj = managed_fields::apply(&ctx, None, &config, manager, force)?;
            let body_name = meta::name(&obj).to_string();
            if !body_name.is_empty() && body_name != req.name() {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({})",
                    req.name()
                )));
            }
            let mut obj = obj;
            meta::set(&mut obj, "name", Some(req.name().into()));
            let written = req.server.store.create(&req.target(), obj, opts).await?;
            Ok(written_response(req, StatusCode::CREATED, written))
        }
        Err(e) => Err(e),
    }
}

/// The configuration, field manager and `force` of an apply request
/// (upstream's apply patch options: `fieldManager` is required).
pub(crate) fn apply_request(req: &RestRequest<'_>) -> Result<(Value, String, bool), ApiError> {
    let manager = req.info.param("fieldManager").unwrap_or("");
    if manager.is_empty() {
        return Err(patch_options_invalid(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        )));
    }
    let force = bool_param(req.info, "force")?.unwrap_or(false);
    let config = nestkube_patch::apply::parse_apply_body(req.body).map_err(ApiError::BadRequest)?;
    Ok((config, manager.to_string(), force))
}

/// A list page in the negotiated representation.
pub(crate) fn list_response(req: &RestRequest<'_>, page: ListPage) -> Response<Body> {
    let r = &req.resource;
    let mut list_meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        list_meta["continue"] = c.clone().into();
    }
    if let Some(n) = page.remaining {
        list_meta["remainingItemCount"] = n.into();
    }
    let value = match req.output {
        Output::Table(include) => table::table(r, &page.items, list_meta, include, true),
        Output::PartialMetadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "items": page.items.iter().map(|o| json!({
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"],
            })).collect::<Vec<_>>(),
        }),
        _ => json!({
            "kind": format!("{}List", r.kind),
            "apiVersion": r.api_version(),
            "metadata": list_meta,
            "items": page.items,
        }),
    };
    respond(StatusCode::OK, &value, req.output)
}

/// `200` with one object in the negotiated representation.
pub(crate) fn object_response(req: &RestRequest<'_>, obj: Value) -> Response<Body> {
    respond(
        StatusCode::OK,
        &render(&req.resource, obj, req.output),
        req.output,
    )
}

/// One object in the negotiated representation.
pub(crate) fn render(r: &ResourceInfo, obj: Value, output: Output) -> Value {
    match output {
        Output::Table(include) => {
            let rv = meta::resource_version(&obj).to_string();
            table::table(r, &[obj], json!({"resourceVersion": rv}), include, true)
        }
        Output::PartialMetadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
        _ => obj,
    }
}

/// The response to a successful write: the object as rendered for the
/// client, with `Warning` headers for what decoding and admission reported.
fn written_response(
    req: &RestRequest<'_>,
    status: StatusCode,
    written: store::Written,
) -> Response<Body> {
    let mut resp = respond(
        status,
        &render(&req.resource, written.object, req.output),
        req.output,
    );
    add_warnings(&mut resp, &written.warnings);
    resp
}

/// The patch type a `Content-Type` names (415 for any other).
pub(crate) fn patch_type(content_type: Option<&str>) -> Result<PatchType, ApiError> {
    content_type
        .and_then(PatchType::from_content_type)
        .ok_or_else(|| patch_error(PatchType::unsupported_media_type()))
}

/// A patch failure as upstream's Status.
pub(crate) fn patch_error(e: nestkube_patch::PatchError) -> ApiError {
    ApiError::Other {
        code: e.status_code(),
        reason: e.reason(),
        message: e.status_message(),
        causes: e.causes(),
    }
}

impl ApiServer {
    /// The strategic-merge-patch schema of a kind, if known.
    pub(crate) fn schema_root(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<nestkube_patch::TypeRef<'_>> {
        self.patch_schema
            .as_ref()
            .and_then(|s| s.root(group, version, kind))
    }
}
