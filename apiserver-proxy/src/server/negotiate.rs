//! Content negotiation: which representation a response takes (`Accept`) and
//! how a request body is read (`Content-Type`).
//!
//! JSON and YAML are served; `as=Table`, `as=PartialObjectMetadata[List]` and
//! aggregated discovery are JSON variants selected by media-type parameters.
//! Protobuf request bodies are read (typed clients send them); responses are
//! never protobuf: a protobuf-only `Accept` gets 406, a mixed one JSON.

use serde_json::Value;

use crate::error::ApiError;
use crate::registry::table::IncludeObject;

/// Media types we produce, for 406 messages.
const ACCEPTED: &str = "application/json, application/yaml";

/// A response representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`.
    Table(IncludeObject),
    /// `application/json;as=PartialObjectMetadata[List];v=v1;g=meta.k8s.io`.
    PartialMetadata,
    /// `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`.
    AggregatedDiscovery,
}

/// What the endpoint can produce besides JSON/YAML.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offers {
    /// Tables and partial metadata (resource reads).
    pub resource_views: bool,
    /// Aggregated discovery (`/api`, `/apis`).
    pub aggregated_discovery: bool,
}

struct MediaType<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

fn parse_media_type(s: &str) -> MediaType<'_> {
    let mut parts = s.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
        .collect();
    MediaType { essence, params }
}

impl MediaType<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Chooses the response representation from an `Accept` header.
pub fn negotiate(
    accept: Option<&str>,
    offers: Offers,
    include: IncludeObject,
) -> Result<Output, ApiError> {
    let accept = accept
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("*/*");
    for candidate in accept.split(',') {
        let mt = parse_media_type(candidate);
        let as_ = mt.param("as");
        match (mt.essence, as_) {
            ("application/json", None) | ("*/*", None) | ("application/*", None) => {
                return Ok(Output::Json);
            }
            ("application/yaml", None) => return Ok(Output::Yaml),
            ("application/json", Some("Table"))
                if offers.resource_views
                    && mt.param("g") == Some("meta.k8s.io")
                    && matches!(mt.param("v"), Some("v1") | Some("v1beta1")) =>
            {
                return Ok(Output::Table(include));
            }
            ("application/json", Some("PartialObjectMetadata" | "PartialObjectMetadataList"))
                if offers.resource_views && mt.param("g") == Some("meta.k8s.io") =>
            {
                return Ok(Output::PartialMetadata);
            }
            ("application/json", Some("APIGroupDiscoveryList"))
                if offers.aggregated_discovery
                    && mt.param("g") == Some("apidiscovery.k8s.io")
                    && mt.param("v") == Some("v2") =>
            {
                return Ok(Output::AggregatedDiscovery);
            }
            _ => continue,
        }
    }
    Err(ApiError::NotAcceptable(ACCEPTED.into()))
}

/// Reads a request body (JSON, YAML or Kubernetes protobuf) according to its `Content-Type`.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let essence = content_type.map(|c| parse_media_type(c).essence.to_ascii_lowercase());
    match essence.as_deref() {
        None | Some("application/json") | Some("") | Some("*/*") => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))),
        Some("application/yaml") | Some("application/x-yaml") | Some("text/yaml") => {
            // Within a budget: YAML aliases could otherwise expand a small
            // body into gigabytes.
            super::bounded_value::yaml_to_value(body).map_err(|e| {
                ApiError::BadRequest(format!("the request body is not valid YAML: {e}"))
            })
        }
        // What client-go's typed clients (kubectl's generators) send.
        Some("application/vnd.kubernetes.protobuf") => nestkube_protobuf::decode(body)
            .map(|d| d.object)
            .map_err(|e| {
                ApiError::BadRequest(format!("the request body is not valid protobuf: {e}"))
            }),
        Some(_) => Err(ApiError::UnsupportedMediaType(
            "application/json, application/yaml, application/vnd.kubernetes.protobuf".into(),
        )),
    }
}

/// Encodes a response body; returns bytes and `Content-Type`.
pub fn encode(value: &Value, output: Output) -> (Vec<u8>, &'static str) {
    match output {
        Output::Yaml => (
            serde_yaml::to_string(value)
                .unwrap_or_default()
                .into_bytes(),
            "application/yaml",
        ),
        Output::AggregatedDiscovery => (
            serde_json::to_vec(value).unwrap_or_default(),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
        _ => (
            serde_json::to_vec(value).unwrap_or_default(),
            "application/json",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEWS: Offers = Offers {
        resource_views: true,
        aggregated_discovery: false,
    };

    #[test]
    fn kubectl_get_prefers_tables() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(a), VIEWS, IncludeObject::Metadata).unwrap(),
            Output::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            negotiate(Some(a), Offers::default(), IncludeObject::Metadata).unwrap(),
            Output::Json
        );
    }

    #[test]
    fn protobuf_only_is_not_acceptable() {
        assert!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf"),
                VIEWS,
                IncludeObject::Metadata
            )
            .is_err()
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf, application/json"),
                VIEWS,
                IncludeObject::Metadata
            )
            .unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate(None, VIEWS, IncludeObject::Metadata).unwrap(),
            Output::Json
        );
    }
}
