//! What one CRD spec serves: a [`ResourceInfo`] per served version, with its
//! strategy, codec and the version facts requests need.
//!
//! Built from `spec` alone, so every cluster whose CRD has an identical spec
//! shares one [`Definition`] ([`Definition::shared`]): a thousand clusters
//! with the same thirty CRDs hold thirty definitions, not thirty thousand.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::Value;

use super::jsonpath::{JsonPath, JsonPathError};
use super::resource_strategy::{CustomResourceStrategy, PrinterColumn, ResourceSchema, ScalePaths};
use crate::catalog::{ResourceInfo, SubresourceInfo, strings};
use crate::error::FieldError;
use crate::typed::Codec;

/// Verbs of every custom resource (as kube-apiserver advertises them).
pub const VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

/// Verbs of the status and scale subresources.
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// Facts about one served version of a CRD that requests need beyond the
/// [`ResourceInfo`].
#[derive(Debug)]
pub struct CustomVersion {
    /// The CRD's storage version: objects are written with its apiVersion.
    pub storage_version: String,
    /// The `Warning` a request to a deprecated version gets.
    pub deprecation_warning: Option<String>,
    /// The CRD's conversion webhook (`strategy: Webhook`); `None`: versions
    /// differ only in `apiVersion` (`strategy: None`).
    pub conversion: Option<Arc<WebhookConversion>>,
    /// The version's `openAPIV3Schema` (field ownership of server-side
    /// apply follows its list and map types).
    pub schema: Option<Value>,
}

/// A CRD's `spec.conversion.webhook` (`strategy: Webhook`), shared by all
/// its versions.
#[derive(Debug, PartialEq)]
pub struct WebhookConversion {
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
    /// `clientConfig` as stored: `url` or `service`, and `caBundle`.
    pub client_config: Value,
    /// `conversionReviewVersions`, in order of preference.
    pub review_versions: Vec<String>,
}

impl WebhookConversion {
    /// The webhook of `spec`, if it converts by webhook.
    fn of(spec: &Value, group: &str, plural: &str) -> Option<Self> {
        if spec["conversion"]["strategy"] != "Webhook" {
            return None;
        }
        let webhook = &spec["conversion"]["webhook"];
        Some(Self {
            crd_name: format!("{plural}.{group}"),
            client_config: webhook["clientConfig"].clone(),
            review_versions: strings(&webhook["conversionReviewVersions"]),
        })
    }
}

/// What a CRD spec serves.
#[derive(Debug)]
pub struct Definition {
    /// The spec it was built from.
    pub spec: Value,
    /// `spec.group`.
    pub group: String,
    /// `spec.names.plural`.
    pub plural: String,
    /// `spec.names.kind`.
    pub kind: String,
    /// One resource per served version, in spec order.
    pub versions: Vec<Arc<ResourceInfo>>,
    /// OpenAPI v3 documents (path, JSON) of the served versions, built on
    /// first use.
    pub openapi_v3: OnceLock<Vec<(String, Vec<u8>)>>,
    /// What the served versions add to `/openapi/v2` (`paths` and
    /// `definitions`), built on first use.
    pub openapi_v2: OnceLock<Value>,
}

/// A CRD spec the server cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A required field is missing.
    #[error("spec.{0} is required")]
    Missing(&'static str),
    /// A JSONPath is outside the supported subset.
    #[error(transparent)]
    JsonPath(#[from] JsonPathError),
}

impl ResourceSchema for nestkube_schema::Schema {
    fn prune(&self, obj: &mut Value) -> Vec<String> {
        nestkube_schema::Schema::prune(self, obj)
    }
    fn apply_defaults(&self, obj: &mut Value) {
        nestkube_schema::Schema::apply_defaults(self, obj)
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        nestkube_schema::Schema::validate(self, obj, old)
    }
}

/// The compiled schema of a version (shared through the process-wide
/// cache). A schema that does not compile cannot have passed CRD
/// validation; it enforces nothing rather than refusing every object.
fn compile_schema(schema: &Value, path: &str) -> Option<Arc<dyn ResourceSchema>> {
    match nestkube_schema::SchemaCache::global().get_or_compile(schema, path) {
        Ok(s) => Some(s),
        Err(errors) => {
            tracing::warn!(path, errors = errors.len(), "CRD schema does not compile");
            None
        }
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Decodes `metadata` as the typed `ObjectMeta` (as upstream's unstructured
/// decoder coerces it), then prunes the rest by the schema.
fn decode(strategy: &CustomResourceStrategy, mut obj: Value) -> Result<Value, String> {
    if let Some(meta) = obj.get_mut("metadata") {
        let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_path_to_error::deserialize(meta.take()).map_err(|e| {
                format!("metadata.{}: {}", e.path(), e.inner())
                    .replace("metadata..: ", "metadata: ")
            })?;
        *meta = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    }
    strategy.prune(&mut obj);
    Ok(obj)
}

/// The storage segment of a custom resource: `crd:<group>/<plural>`. The
/// `crd:` mark (a colon never appears in a group name) keeps custom
/// resources apart from every built-in's storage, so a CRD that names a
/// built-in resource (`leases.coordination.k8s.io`, `virtualclusters.…`)
/// and is then deleted only ever deletes objects of its own.
pub fn storage_segment(group: &str, plural: &str) -> String {
    format!("crd:{group}/{plural}")
}

impl Definition {
    /// The definition for `spec`, shared with every other CRD in the
    /// process whose spec is identical.
    pub fn shared(spec: &Value) -> Result<Arc<Self>, DefinitionError> {
        static CACHE: OnceLock<Mutex<HashMap<u64, Vec<Weak<Definition>>>>> = OnceLock::new();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        spec.to_string().hash(&mut hasher);
        let key = hasher.finish();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(found) = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .find(|d| d.spec == *spec)
        {
            return Ok(found);
        }
        let built = Arc::new(Self::build(spec)?);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        let slot = cache.entry(key).or_default();
        slot.retain(|w| w.strong_count() > 0);
        slot.push(Arc::downgrade(&built));
        Ok(built)
    }

    /// Builds the definition of `spec` (not shared; see [`Definition::shared`]).
    pub fn build(spec: &Value) -> Result<Self, DefinitionError> {
        let group = str_at(spec, "group");
        let names = &spec["names"];
        let plural = str_at(names, "plural");
        let kind = str_at(names, "kind");
        if group.is_empty() {
            return Err(DefinitionError::Missing("group"));
        }
        if plural.is_empty() {
            return Err(DefinitionError::Missing("names.plural"));
        }
        if kind.is_empty() {
            return Err(DefinitionError::Missing("names.kind"));
        }
        let singular = match str_at(names, "singular") {
            "" => kind.to_lowercase(),
            s => s.to_string(),
        };
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        let storage_version = versions
            .iter()
            .find(|v| v["storage"].as_bool() == Some(true))
            .map(|v| str_at(v, "name").to_string())
            .unwrap_or_default();
        let conversion = WebhookConversion::of(spec, group, plural).map(Arc::new);
        let mut served = Vec::new();
        for (n, v) in versions.iter().enumerate() {
            if v["served"].as_bool() != Some(true) {
                continue;
            }
            let version = str_at(v, "name");
            let path = format!("spec.versions[{n}].schema.openAPIV3Schema");
            let strategy = Arc::new(version_strategy(v, &path)?);
            let mut subresources = Vec::new();
            if strategy.has_status {
                subresources.push(SubresourceInfo {
                    name: "status".into(),
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                    verbs: SUBRESOURCE_VERBS.iter().map(|s| s.to_string()).collect(),
                });
            }
            if strategy.scale.is_some() {
                subresources.push(SubresourceInfo {
                    name: "scale".into(),
                    group: "autoscaling".into(),
                    version: "v1".into(),
                    kind: "Scale".into(),
                    verbs: SUBRESOURCE_VERBS.iter().map(|s| s.to_string()).collect(),
                });
            }
            let deprecation_warning =
                (v["deprecated"].as_bool() == Some(true)).then(|| {
                    match str_at(v, "deprecationWarning") {
                        "" => format!("{group}/{version} {kind} is deprecated"),
                        w => w.to_string(),
                    }
                });
            let codec_strategy = strategy.clone();
            served.push(Arc::new(ResourceInfo {
                group: group.into(),
                version: version.into(),
                resource: plural.into(),
                singular: singular.clone(),
                kind: kind.into(),
                namespaced: spec["scope"] != "Cluster",
                verbs: VERBS.iter().map(|s| s.to_string()).collect(),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                subresources,
                codec: Codec::Dynamic(Arc::new(move |obj| decode(&codec_strategy, obj))),
                strategy,
                storage_segment: storage_segment(group, plural),
                custom: Some(Arc::new(CustomVersion {
                    storage_version: storage_version.clone(),
                    deprecation_warning,
                    conversion: conversion.clone(),
                    schema: v["schema"].get("openAPIV3Schema").cloned(),
                })),
            }));
        }
        Ok(Self {
            spec: spec.clone(),
            group: group.into(),
            plural: plural.into(),
            kind: kind.into(),
            versions: served,
            openapi_v3: OnceLock::new(),
            openapi_v2: OnceLock::new(),
        })
    }
}

/// The strategy of one version entry of `spec.versions`.
fn version_strategy(
    v: &Value,
    schema_path: &str,
) -> Result<CustomResourceStrategy, DefinitionError> {
    let subresources = &v["subresources"];
    let scale = match subresources.get("scale").filter(|s| s.is_object()) {
        Some(s) => Some(ScalePaths {
            spec_replicas: JsonPath::parse(str_at(s, "specReplicasPath"))?,
            status_replicas: JsonPath::parse(str_at(s, "statusReplicasPath"))?,
            label_selector: match str_at(s, "labelSelectorPath") {
                "" => None,
                p => Some(JsonPath::parse(p)?),
            },
        }),
        None => None,
    };
    let mut columns = Vec::new();
    let listed = v["additionalPrinterColumns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if listed.is_empty() {
        // Upstream serves an Age column when a version defines none.
        columns.push(PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata".into(),
            priority: 0,
            path: JsonPath::parse(".metadata.creationTimestamp")?,
        });
    }
    for c in &listed {
        columns.push(PrinterColumn {
            name: str_at(c, "name").into(),
            type_: str_at(c, "type").into(),
            format: str_at(c, "format").into(),
            description: str_at(c, "description").into(),
            priority: c["priority"].as_i64().unwrap_or(0),
            path: JsonPath::parse(str_at(c, "jsonPath"))?,
        });
    }
    let mut selectable_fields = Vec::new();
    for f in v["selectableFields"].as_array().into_iter().flatten() {
        let path = str_at(f, "jsonPath");
        selectable_fields.push((
            path.trim_start_matches('.').to_string(),
            JsonPath::parse(path)?,
        ));
    }
    let schema = v["schema"]
        .get("openAPIV3Schema")
        .and_then(|s| compile_schema(s, schema_path));
    Ok(CustomResourceStrategy {
        has_status: subresources.get("status").is_some_and(|s| !s.is_null()),
        columns,
        selectable_fields,
        scale,
        schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
            "scope": "Namespaced",
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                 "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                {"name": "v1beta1", "served": true, "storage": false, "deprecated": true},
                {"name": "v1alpha1", "served": false, "storage": false},
            ],
        })
    }

    #[test]
    fn serves_each_served_version() {
        let d = Definition::build(&spec()).unwrap();
        let names: Vec<&str> = d.versions.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(names, ["v1", "v1beta1"]);
        let v1 = &d.versions[0];
        assert_eq!(v1.singular, "widget");
        assert!(v1.namespaced && v1.has_status());
        assert_eq!(v1.subresource("scale").unwrap().kind, "Scale");
        assert_eq!(v1.storage_segment, "crd:example.com/widgets");
        assert_eq!(v1.short_names, ["wd"]);
        let beta = d.versions[1].custom.as_ref().unwrap();
        assert_eq!(beta.storage_version, "v1");
        assert_eq!(
            beta.deprecation_warning.as_deref(),
            Some("example.com/v1beta1 Widget is deprecated")
        );
        assert!(!d.versions[1].has_status());
    }

    #[test]
    fn a_webhook_conversion_is_shared_by_every_version() {
        let d = Definition::build(&spec()).unwrap();
        assert!(d.versions[1].custom.as_ref().unwrap().conversion.is_none());
        let mut s = spec();
        s["conversion"] = json!({"strategy": "Webhook", "webhook": {
            "conversionReviewVersions": ["v1", "v1beta1"],
            "clientConfig": {"url": "https://hooks.example.com/convert"}}});
        let d = Definition::build(&s).unwrap();
        let conversions: Vec<_> = d
            .versions
            .iter()
            .map(|r| r.custom.as_ref().unwrap().conversion.clone().unwrap())
            .collect();
        assert!(Arc::ptr_eq(&conversions[0], &conversions[1]));
        assert_eq!(conversions[0].crd_name, "widgets.example.com");
        assert_eq!(conversions[0].review_versions, ["v1", "v1beta1"]);
        assert_eq!(
            conversions[0].client_config["url"],
            "https://hooks.example.com/convert"
        );
    }

    #[test]
    fn identical_specs_share_one_definition() {
        let a = Definition::shared(&spec()).unwrap();
        let b = Definition::shared(&spec()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut other = spec();
        other["names"]["shortNames"] = json!([]);
        assert!(!Arc::ptr_eq(&a, &Definition::shared(&other).unwrap()));
    }
}
