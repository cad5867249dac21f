//! OpenAPI v3 documents for resources defined by a CustomResourceDefinition
//! (nestkube's own `tenancy.nestkube.io`), shaped as kube-apiserver publishes
//! them for CRDs: per-resource paths whose PATCH operation names the GVK and
//! takes `fieldValidation` (kubectl's `--validate=strict` looks for exactly
//! that), a component schema per kind carrying `x-kubernetes-group-version-kind`
//! (`kubectl explain`), and the `meta/v1` schemas they reference.
//!
//! The paths and operations are derived from an embedded upstream document of
//! a namespaced built-in (coordination.k8s.io/v1 Leases), renamed; the object
//! schema is the CRD's `openAPIV3Schema`. Built once per process, never per
//! cluster.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Map, Value, json};

/// The embedded document used as the template for paths and meta schemas.
const TEMPLATE_PATH: &str = "apis/coordination.k8s.io/v1";
const TEMPLATE_GROUP: &str = "coordination.k8s.io";
const TEMPLATE_VERSION: &str = "v1";
const TEMPLATE_PLURAL: &str = "leases";
const TEMPLATE_KIND: &str = "Lease";
const TEMPLATE_SCHEMA_PREFIX: &str = "io.k8s.api.coordination.v1.";
const TEMPLATE_OPERATION_INFIX: &str = "CoordinationV1";

/// The schema name of `kind` in `group`/`version`, as upstream names CRD
/// schemas: the reversed group, the version, the kind
/// (`io.nestkube.tenancy.v1alpha1.VirtualCluster`).
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// `tenancy.nestkube.io` + `v1alpha1` -> `TenancyNestkubeIoV1alpha1` (operation ids).
fn operation_infix(group: &str, version: &str) -> String {
    let mut out = String::new();
    for part in group.split('.').chain([version]) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// Replaces every occurrence of each `(from, to)` in every string of `v`.
fn rename_strings(v: &mut Value, renames: &[(String, String)]) {
    match v {
        Value::String(s) => {
            for (from, to) in renames {
                if s.contains(from.as_str()) {
                    *s = s.replace(from.as_str(), to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_strings(i, renames)),
        Value::Object(map) => map.values_mut().for_each(|i| rename_strings(i, renames)),
        _ => {}
    }
}

/// Points every operation's `x-kubernetes-group-version-kind` at the CRD's
/// group and version, and drops strategic merge patch (custom resources do
/// not support it; kubectl then sends a JSON merge patch).
fn retarget_operations(path_item: &mut Value, group: &str, version: &str) {
    let Some(item) = path_item.as_object_mut() else {
        return;
    };
    for op in item.values_mut() {
        if let Some(gvk) = op.get_mut("x-kubernetes-group-version-kind") {
            gvk["group"] = group.into();
            gvk["version"] = version.into();
        }
        if let Some(content) = op
            .pointer_mut("/requestBody/content")
            .and_then(Value::as_object_mut)
        {
            content.remove("application/strategic-merge-patch+json");
        }
    }
}

/// The `<name>/status` path item, from the object's path item.
fn status_path_item(object_item: &Value, kind: &str) -> Value {
    let mut item = object_item.clone();
    if let Some(map) = item.as_object_mut() {
        map.retain(|k, _| matches!(k.as_str(), "get" | "put" | "patch" | "parameters"));
        for (verb, op) in map.iter_mut() {
            if verb == "parameters" {
                continue;
            }
            if let Some(id) = op["operationId"].as_str() {
                op["operationId"] = format!("{id}Status").into();
            }
            op["description"] = match verb.as_str() {
                "get" => format!("read status of the specified {kind}"),
                "put" => format!("replace status of the specified {kind}"),
                _ => format!("partially update status of the specified {kind}"),
            }
            .into();
        }
    }
    item
}

/// The object schema: the CRD's structural schema plus apiVersion, kind and
/// metadata (as upstream adds them), tagged with its GVK.
fn object_schema(mut schema: Value, group: &str, version: &str, kind: &str) -> Value {
    let props = schema
        .as_object_mut()
        .map(|m| m.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(props)) = props {
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
        props.insert("metadata".into(), json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}));
    }
    schema["type"] = "object".into();
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": group, "kind": kind, "version": version}]);
    schema
}

fn list_schema(group: &str, version: &str, kind: &str, item_ref: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind}"),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
            "items": {"type": "array", "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", kind.to_lowercase()), "items": {"$ref": format!("#/components/schemas/{item_ref}")}},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
            "metadata": {"description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}]},
        },
        "x-kubernetes-group-version-kind": [{"group": group, "kind": format!("{kind}List"), "version": version}],
    })
}

/// The OpenAPI v3 documents (`apis/<group>/<version>`, JSON) of every served
/// version of `crd`. `template` is the embedded upstream document at
/// [`TEMPLATE_PATH`]; `None` when it is missing or not JSON.
pub fn documents(crd: &CustomResourceDefinition, template: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Ok(template) = serde_json::from_slice::<Value>(template) else {
        return Vec::new();
    };
    let spec = &crd.spec;
    let kind = spec.names.kind.as_str();
    spec.versions
        .iter()
        .filter(|v| v.served)
        .filter_map(|v| {
            let schema = v.schema.as_ref()?.open_api_v3_schema.as_ref()?;
            let schema = serde_json::to_value(schema).ok()?;
            let doc = document(
                &template,
                &spec.group,
                &v.name,
                &spec.names.plural,
                kind,
                spec.scope != "Cluster",
                schema,
            );
            Some((
                format!("apis/{}/{}", spec.group, v.name),
                serde_json::to_vec(&doc).ok()?,
            ))
        })
        .collect()
}

/// The documents of every served version of a CRD given by its `spec`
/// (as stored); none when the spec does not decode.
pub fn documents_for_spec(spec: &Value, template: &[u8]) -> Vec<(String, Vec<u8>)> {
    match serde_json::from_value(spec.clone()) {
        Ok(spec) => documents(
            &CustomResourceDefinition {
                metadata: Default::default(),
                spec,
                status: None,
            },
            template,
        ),
        Err(_) => Vec::new(),
    }
}

/// Merges `doc` (another CRD's document for the same group version) into
/// `into`: paths and component schemas side by side.
pub fn merge(into: &mut Value, doc: Value) {
    for section in ["/paths", "/components/schemas"] {
        if let (Some(Value::Object(target)), Some(Value::Object(source))) =
            (into.pointer_mut(section), doc.pointer(section))
        {
            for (k, v) in source {
                target.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

/// Drops the namespace parameter of a cluster-scoped resource's operations.
fn drop_namespace_parameter(item: &mut Value) {
    let is_namespace = |p: &Value| {
        p["$ref"]
            .as_str()
            .is_some_and(|r| r.contains("/parameters/namespace-"))
            || p["name"] == "namespace"
    };
    if let Some(params) = item.get_mut("parameters").and_then(Value::as_array_mut) {
        params.retain(|p| !is_namespace(p));
    }
    if let Some(ops) = item.as_object_mut() {
        for op in ops.values_mut() {
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                params.retain(|p| !is_namespace(p));
            }
        }
    }
}

fn document(
    template: &Value,
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    schema: Value,
) -> Value {
    let object_name = schema_name(group, version, kind);
    let list_name = format!("{object_name}List");
    let renames: Vec<(String, String)> = vec![
        (
            format!("{TEMPLATE_SCHEMA_PREFIX}{TEMPLATE_KIND}List"),
            list_name.clone(),
        ),
        (
            format!("{TEMPLATE_SCHEMA_PREFIX}{TEMPLATE_KIND}"),
            object_name.clone(),
        ),
        (
            TEMPLATE_OPERATION_INFIX.into(),
            operation_infix(group, version),
        ),
        (
            format!(
                "{}_{TEMPLATE_VERSION}",
                TEMPLATE_GROUP.split('.').next().unwrap_or("")
            ),
            format!("{}_{version}", group.replace('.', "_")),
        ),
        (TEMPLATE_KIND.into(), kind.into()),
    ];
    let template_prefix = format!("/apis/{TEMPLATE_GROUP}/{TEMPLATE_VERSION}/");
    let prefix = format!("/apis/{group}/{version}/");
    let mut paths = Map::new();
    for (path, item) in template["paths"].as_object().into_iter().flatten() {
        let Some(rest) = path.strip_prefix(&template_prefix) else {
            continue;
        };
        let mut rest = rest.replace(TEMPLATE_PLURAL, plural);
        let mut item = item.clone();
        rename_strings(&mut item, &renames);
        retarget_operations(&mut item, group, version);
        if !namespaced {
            // Cluster-scoped: the namespaced paths lose their namespace; the
            // all-namespaces list and watch paths would duplicate them.
            if !rest.contains("namespaces/{namespace}/") {
                continue;
            }
            rest = rest.replace("namespaces/{namespace}/", "");
            drop_namespace_parameter(&mut item);
        }
        if rest == format!("namespaces/{{namespace}}/{plural}/{{name}}")
            || (!namespaced && rest == format!("{plural}/{{name}}"))
        {
            paths.insert(
                format!("{prefix}{rest}/status"),
                status_path_item(&item, kind),
            );
        }
        paths.insert(format!("{prefix}{rest}"), item);
    }
    let mut schemas: Map<String, Value> = template["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with(TEMPLATE_SCHEMA_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    schemas.insert(
        object_name.clone(),
        object_schema(schema, group, version, kind),
    );
    schemas.insert(list_name, list_schema(group, version, kind, &object_name));
    let mut components = template["components"].clone();
    components["schemas"] = Value::Object(schemas);
    json!({
        "openapi": template["openapi"].clone(),
        "info": template["info"].clone(),
        "paths": paths,
        "components": components,
    })
}

/// The template document's path among the embedded OpenAPI v3 documents.
pub fn template_path() -> &'static str {
    TEMPLATE_PATH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            schema_name("tenancy.nestkube.io", "v1alpha1", "VirtualCluster"),
            "io.nestkube.tenancy.v1alpha1.VirtualCluster"
        );
        assert_eq!(
            operation_infix("tenancy.nestkube.io", "v1alpha1"),
            "TenancyNestkubeIoV1alpha1"
        );
    }
}
