//! Query parameters and option bodies, read into the store's typed
//! options (upstream's `metav1.ListOptions`, `CreateOptions`,
//! `DeleteOptions` conversion), with upstream's validation messages.
//!
//! Parsing only: nothing here reads storage.

use crate::error::{ApiError, Subject};
use crate::registry::selector::{FieldSelector, LabelSelector};
use crate::registry::store::{DeleteOptions, FieldValidation, ListOptions, WriteOptions};
use crate::server::negotiate;
use crate::server::request::{Api, RequestInfo};

pub(crate) fn bool_param(info: &RequestInfo, name: &str) -> Result<Option<bool>, ApiError> {
    match info.param(name) {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid value for {name}: {other:?}"
        ))),
    }
}

pub(crate) fn write_options(info: &RequestInfo) -> Result<WriteOptions, ApiError> {
    let dry_run = match info.param("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    // Upstream's ValidateFieldManager, for the options that carry one.
    if let Api::Resource(r) = &info.api
        && let Some(kind) = match r.verb {
            "create" => Some("CreateOptions"),
            "update" => Some("UpdateOptions"),
            "patch" => Some("PatchOptions"),
            _ => None,
        }
        && let Some(e) = crate::registry::managed_fields::validate_manager(
            info.param("fieldManager").unwrap_or(""),
        )
    {
        return Err(ApiError::invalid(
            Subject {
                group: "meta.k8s.io".into(),
                kind: kind.into(),
                name: String::new(),
            },
            e,
        ));
    }
    Ok(WriteOptions {
        dry_run,
        field_validation: FieldValidation::parse(info.param("fieldValidation"))?,
        exempt_from_limits: false,
        applied: false,
    })
}

pub(crate) fn list_options(info: &RequestInfo) -> Result<ListOptions, ApiError> {
    let label_selector = LabelSelector::parse(info.param("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let field_selector = FieldSelector::parse(info.param("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = match info.param("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("invalid limit: {l:?}")))?
            .max(0) as usize,
    };
    let rv_match = info
        .param("resourceVersionMatch")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    validate_list_options(info, rv_match.as_deref())?;
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: info.param("continue").map(str::to_string),
        resource_version: info.param("resourceVersion").map(str::to_string),
        resource_version_match: rv_match,
    })
}

/// Upstream's `ValidateListOptions` for the resourceVersion parameters.
pub(crate) fn validate_list_options(
    info: &RequestInfo,
    rv_match: Option<&str>,
) -> Result<(), ApiError> {
    let subject = || Subject {
        group: "meta.k8s.io".into(),
        kind: "ListOptions".into(),
        name: String::new(),
    };
    let forbidden = |field: &str, detail: &str| {
        ApiError::invalid(
            subject(),
            crate::error::FieldError::forbidden(field, detail),
        )
    };
    let is_watch = matches!(info.api, Api::Resource(ref r) if r.verb == "watch");
    let rv_empty = info.param("resourceVersion").unwrap_or("").is_empty();
    if bool_param(info, "sendInitialEvents")?.is_some() {
        if !is_watch {
            return Err(forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        if rv_match != Some("NotOlderThan") {
            return Err(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if bool_param(info, "allowWatchBookmarks")? != Some(true) {
            return Err(forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        return Ok(());
    }
    match rv_match {
        None => Ok(()),
        Some(_) if is_watch => Err(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch",
        )),
        Some(_) if rv_empty => Err(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        Some("Exact" | "NotOlderThan") => Ok(()),
        Some(other) => Err(ApiError::invalid(
            subject(),
            crate::error::FieldError::not_supported(
                "resourceVersionMatch",
                other,
                &["Exact", "NotOlderThan"],
            ),
        )),
    }
}

pub(crate) fn delete_options(
    info: &RequestInfo,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !body.is_empty() {
        let v = negotiate::decode_body(content_type, body)?;
        opts.grace_period_seconds = v["gracePeriodSeconds"].as_i64();
        opts.propagation = v["propagationPolicy"].as_str().map(str::to_string);
        opts.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        opts.precondition_resource_version = v["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        if v["orphanDependents"].as_bool() == Some(true) && opts.propagation.is_none() {
            opts.propagation = Some("Orphan".into());
        }
        opts.dry_run = v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All"));
    }
    if let Some(g) = info.param("gracePeriodSeconds").filter(|s| !s.is_empty()) {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds: {g:?}")))?,
        );
    }
    if let Some(p) = info.param("propagationPolicy").filter(|s| !s.is_empty()) {
        opts.propagation = Some(p.to_string());
    }
    if bool_param(info, "orphanDependents")? == Some(true) && opts.propagation.is_none() {
        opts.propagation = Some("Orphan".into());
    }
    if let Some(p) = &opts.propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::BadRequest(format!(
            "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Orphan\", \"Background\", \"Foreground\""
        )));
    }
    opts.dry_run |= write_options(info)?.dry_run;
    Ok(opts)
}
