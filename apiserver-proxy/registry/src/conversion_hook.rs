//! The conversion hook the generic store is given, as upstream's CRD
//! handler gives each version's storage a converter
//! (`apiextensions-apiserver/pkg/apiserver/conversion`): the store decides
//! *when* objects change version (a read at another version than the
//! stored one, a write at another version than the storage version), the
//! hook decides *how* (a CRD's conversion webhook).
//!
//! A CRD with `strategy: None` never reaches the hook: the store rewrites
//! `apiVersion` itself (upstream's `nopConverter`). This module must never
//! name the webhook transport.

use std::fmt;

use async_trait::async_trait;
use serde_json::Value;

use crate::apiextensions::definition::WebhookConversion;
use crate::catalog::ResourceInfo;

/// One batch of objects of a cluster's CRD to convert to one version.
#[derive(Clone, Copy, Debug)]
pub struct ConversionRequest<'a> {
    /// The cluster whose CRD it is (its webhook is reached as that
    /// cluster's, never another's).
    pub cluster: &'a str,
    /// A served version of the CRD (its group and kind).
    pub resource: &'a ResourceInfo,
    /// The CRD's `spec.conversion.webhook`.
    pub webhook: &'a WebhookConversion,
    /// `<group>/<version>` the objects are wanted at.
    pub desired_api_version: &'a str,
}

/// Why a conversion failed, worded as upstream's webhook converter
/// (`conversion webhook for <gvk> failed: ...`); the store wraps it as
/// upstream's storage does for the operation that needed it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConversionError(pub String);

/// Conversion as the store sees it.
#[async_trait]
pub trait Converter: Send + Sync + fmt::Debug {
    /// Converts `objects` (none already at the desired version) and returns
    /// them in the same order, each verified as upstream verifies a
    /// webhook's answer (same kind, name, namespace and UID; metadata
    /// restored but for labels and annotations).
    async fn convert(
        &self,
        request: ConversionRequest<'_>,
        objects: Vec<Value>,
    ) -> Result<Vec<Value>, ConversionError>;
}

/// `<apiVersion>, Kind=<kind>` of an object, as Go prints its
/// GroupVersionKind in upstream's messages (`stable.example.com/v1,
/// Kind=CronTab`).
pub fn gvk_string(obj: &Value) -> String {
    format!(
        "{}, Kind={}",
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default()
    )
}
