//! The `scale` subresource (`autoscaling/v1 Scale`) of every resource that
//! has one in the catalog: a view of `spec.replicas`, `status.replicas` and
//! the selector (for a custom resource, of the paths its CRD names); writes
//! change the replicas only.

use async_trait::async_trait;
use http::{Response, StatusCode};
use nestkube_patch::PatchType;
use serde_json::{Value, json};

use super::generic::{apply_request, patch_error, patch_type};
use super::options::write_options;
use super::{Rest, RestRequest};
use crate::error::ApiError;
use crate::registry::catalog::ResourceInfo;
use crate::registry::managed_fields::{self, ScaleFields};
use crate::registry::meta;
use crate::registry::store;
use crate::server::handler::Body;
use crate::server::response::{add_warnings, output_plain, respond};

/// Serves `<resource>/scale`.
pub(crate) struct Scale;

#[async_trait]
impl Rest for Scale {
    async fn get(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        let obj = req.server.store.get(&req.target(), req.name()).await?;
        Ok(respond(
            StatusCode::OK,
            &to_scale(&req.resource, &obj),
            output_plain(req.output),
        ))
    }

    async fn update(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        write(req, false).await
    }

    async fn patch(&self, req: &RestRequest<'_>) -> Result<Response<Body>, ApiError> {
        write(req, true).await
    }
}

/// An update or patch of the Scale: the new `spec.replicas` is written to
/// the object (decoded and validated as a Scale first). Field ownership is
/// computed on the Scale, as upstream's field manager of this endpoint does,
/// and mapped back onto the object's entries ([`ScaleFields`]).
async fn write(req: &RestRequest<'_>, is_patch: bool) -> Result<Response<Body>, ApiError> {
    let opts = write_options(req.info)?;
    let patch_type = if is_patch {
        Some(patch_type(req.content_type)?)
    } else {
        None
    };
    let apply = match patch_type {
        Some(PatchType::Apply) => Some(apply_request(req)?),
        _ => None,
    };
    let body_value = if is_patch {
        Value::Null
    } else {
        req.decode_body()?
    };
    let r = &req.resource;
    let manager = managed_fields::current_manager();
    let ctx = managed_fields::Context {
        schema: req.server.store.field_schema().map(|s| &**s),
        resource: r,
        subresource: Some("scale"),
    };
    let fields = ScaleFields::new(r, &replicas_path(r)?);
    // The store keeps the entries computed here.
    let opts = store::WriteOptions {
        applied: true,
        ..opts
    };
    let written = req
        .server
        .store
        .update_with(&req.target(), req.name(), Some("scale"), opts, |old| {
            let parent_fields = &old["metadata"]["managedFields"];
            let mut live = to_scale(r, old);
            let entries = fields.to_scale(parent_fields)?;
            meta::set(
                &mut live,
                "managedFields",
                entries
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
                    .then_some(entries),
            );
            let scale_in = match (patch_type, &apply) {
                (Some(_), Some((config, manager, force))) => {
                    managed_fields::apply(&ctx, Some(&live), config, manager, *force)?
                }
                (Some(pt), None) => {
                    let schema = req.server.schema_root("autoscaling", "v1", "Scale");
                    nestkube_patch::apply_patch(&live, req.body, pt, schema).map_err(patch_error)?
                }
                (None, _) => body_value.clone(),
            };
            let (mut scale, warnings) = store::decode_body(
                r,
                "autoscaling",
                "v1",
                "Scale",
                scale_in,
                opts.field_validation,
            )?;
            if apply.is_none() {
                managed_fields::record_update(&ctx, Some(&live), &mut scale, &manager);
            }
            let mut obj = old.clone();
            let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
            set_replicas(r, &mut obj, replicas)?;
            let rv = meta::resource_version(&scale);
            meta::set(&mut obj, "resourceVersion", Some(rv.into()));
            let entries = fields.to_parent(parent_fields, &scale["metadata"]["managedFields"])?;
            meta::set(&mut obj, "managedFields", Some(entries));
            Ok((obj, warnings))
        })
        .await?;
    let mut resp = respond(
        StatusCode::OK,
        &to_scale(r, &written.object),
        output_plain(req.output),
    );
    add_warnings(&mut resp, &written.warnings);
    Ok(resp)
}

/// The fields of the desired replicas: `spec.replicas`, or a custom
/// resource's `specReplicasPath`.
fn replicas_path(r: &ResourceInfo) -> Result<Vec<&str>, ApiError> {
    let Some(paths) = r.strategy.scale_paths() else {
        return Ok(vec!["spec", "replicas"]);
    };
    match paths.spec_replicas.field_names() {
        Some(f) if !f.is_empty() => Ok(f),
        _ => Err(ApiError::Internal(format!(
            "specReplicasPath {} is not a field path",
            paths.spec_replicas.as_str()
        ))),
    }
}

/// Writes the desired replicas: `spec.replicas`, or a custom resource's
/// `specReplicasPath`.
fn set_replicas(r: &ResourceInfo, obj: &mut Value, replicas: i64) -> Result<(), ApiError> {
    let fields = replicas_path(r)?;
    let Some((last, parents)) = fields.split_last() else {
        return Ok(());
    };
    let mut at = obj;
    for f in parents {
        if !at[*f].is_object() {
            at[*f] = json!({});
        }
        at = &mut at[*f];
    }
    at[*last] = replicas.into();
    Ok(())
}

/// `autoscaling/v1 Scale` view of an object: `spec.replicas`,
/// `status.replicas` and the selector, or the paths a CRD names (upstream's
/// `scaleFromCustomResource`).
fn to_scale(r: &ResourceInfo, obj: &Value) -> Value {
    let (spec_replicas, status_replicas, selector) = match r.strategy.scale_paths() {
        None => (
            obj["spec"]["replicas"].as_i64().unwrap_or(0),
            obj["status"]["replicas"].as_i64().unwrap_or(0),
            selector_string(&obj["spec"]["selector"]),
        ),
        Some(p) => (
            p.spec_replicas
                .first(obj)
                .and_then(Value::as_i64)
                .unwrap_or(0),
            p.status_replicas
                .first(obj)
                .and_then(Value::as_i64)
                .unwrap_or(0),
            p.label_selector
                .as_ref()
                .and_then(|l| l.first(obj))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta::name(obj),
            "namespace": meta::namespace(obj),
            "uid": meta::uid(obj),
            "resourceVersion": meta::resource_version(obj),
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": spec_replicas},
        "status": {"replicas": status_replicas, "selector": selector},
    })
}

/// A label selector (`LabelSelector` object or a plain map) in string form.
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    let labels = sel.get("matchLabels").unwrap_or(sel);
    if let Some(m) = labels.as_object() {
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e["operator"].as_str() {
            Some("In") => parts.push(format!("{key} in ({})", values.join(","))),
            Some("NotIn") => parts.push(format!("{key} notin ({})", values.join(","))),
            Some("Exists") => parts.push(key.to_string()),
            Some("DoesNotExist") => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}
