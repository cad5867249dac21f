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

// --- OpenAPI v2 -------------------------------------------------------------

/// Keywords a structural schema does not keep (`NewStructural` drops them),
/// so upstream's v2 never shows them.
const NON_STRUCTURAL: &[&str] = &[
    "$schema",
    "$ref",
    "id",
    "example",
    "externalDocs",
    "definitions",
    "patternProperties",
    "dependencies",
    "additionalItems",
];

/// Upstream's `ToStructuralOpenAPIV2` on a JSON schema: OpenAPI v2 (and
/// the kubectl versions that read it) cannot express junctors, `nullable`
/// or arrays without items, so a nullable node loses its type, items and
/// properties, a node preserving unknown fields loses its items and
/// properties (and its type when an object), and a nullable property is no
/// longer required. Defaults are pruned as upstream prunes them before
/// merging into the static document; `x-kubernetes-int-or-string` keeps no
/// type (its unfolded `anyOf` is a junctor).
pub fn to_v2_schema(s: &mut Value) {
    let Some(node) = s.as_object_mut() else {
        return;
    };
    for k in NON_STRUCTURAL
        .iter()
        .chain(&["allOf", "oneOf", "anyOf", "not", "default"])
    {
        node.remove(*k);
    }
    let nullable = node.remove("nullable") == Some(Value::Bool(true));
    let preserve = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if nullable {
        node.remove("type");
        node.remove("items");
        node.remove("properties");
    }
    if preserve {
        node.remove("items");
        node.remove("properties");
    }
    if node.get("type").and_then(Value::as_str) == Some("array") && !node.contains_key("items") {
        node.remove("type");
    }
    if preserve && node.get("type").and_then(Value::as_str) == Some("object") {
        node.remove("type");
    }
    let nullable_props: Vec<String> = node
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, p)| p["nullable"] == true)
        .map(|(k, _)| k.clone())
        .collect();
    if let Some(req) = node.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| {
            !r.as_str()
                .is_some_and(|r| nullable_props.iter().any(|p| p == r))
        });
    }
    if node
        .get("additionalProperties")
        .is_some_and(|a| a["nullable"] == true)
    {
        node.remove("required");
    }
    if node
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        node.remove("required");
    }
    // Upstream adds apiVersion, kind and metadata to an embedded resource
    // (unless it preserves unknown fields, which would stop kubectl from
    // validating them).
    let embedded = node.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
    if let Some(Value::Object(props)) = node.get_mut("properties") {
        for p in props.values_mut() {
            to_v2_schema(p);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get_mut(key).filter(|c| c.is_object()) {
            to_v2_schema(child);
        }
    }
    if embedded && !preserve {
        let props = node.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            props.insert("apiVersion".into(), json!({"description": "apiVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}));
            props.insert("kind".into(), json!({"description": "kind is a string value representing the type of this object. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}));
            props.insert("metadata".into(), json!({"description": METADATA_DESCRIPTION, "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}));
        }
        let req = node.entry("required").or_insert_with(|| json!([]));
        if let Some(req) = req.as_array_mut() {
            for k in ["kind", "apiVersion"] {
                if !req.iter().any(|r| r == k) {
                    req.push(k.into());
                }
            }
        }
    }
}

/// `PartialObjectMetadata`'s description of `metadata` (upstream's builder).
const METADATA_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The v2 definition of a version's objects, as upstream's `BuildOpenAPIV2`
/// builds it: the converted schema with apiVersion, kind and metadata, or
/// a bare object when there is no schema or it preserves unknown fields at
/// the root (kubectl would otherwise refuse every field it does not list).
fn v2_object_definition(schema: Option<&Value>, preserve_all: bool, gvk: Value) -> Value {
    let mut def = match schema {
        Some(schema) if !preserve_all && schema["x-kubernetes-preserve-unknown-fields"] != true => {
            let mut s = schema.clone();
            to_v2_schema(&mut s);
            if let Some(props) = s
                .as_object_mut()
                .map(|m| m.entry("properties").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
            {
                props.insert("metadata".into(), json!({"description": METADATA_DESCRIPTION, "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}));
                props.insert("apiVersion".into(), json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}));
                props.insert("kind".into(), json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}));
            }
            s
        }
        _ => json!({"type": "object"}),
    };
    def["x-kubernetes-group-version-kind"] = json!([gvk]);
    def
}

/// Retargets a v2 operation: no strategic merge patch and no protobuf for
/// custom resources.
fn retarget_v2_operations(path_item: &mut Value, group: &str, version: &str) {
    let Some(item) = path_item.as_object_mut() else {
        return;
    };
    for op in item.values_mut() {
        if let Some(gvk) = op.get_mut("x-kubernetes-group-version-kind") {
            gvk["group"] = group.into();
            gvk["version"] = version.into();
        }
        if let Some(c) = op.get_mut("consumes").and_then(Value::as_array_mut) {
            c.retain(|t| t != "application/strategic-merge-patch+json");
        }
        if let Some(p) = op.get_mut("produces").and_then(Value::as_array_mut) {
            p.retain(|t| t != "application/vnd.kubernetes.protobuf");
        }
    }
}

/// The `<name>/scale` path item of a custom resource, from the embedded
/// document's Deployment scale (`autoscaling/v1` Scale bodies), its
/// operations tagged with the CRD's group, version and kind as upstream's
/// builder tags every route of a CRD.
fn scale_path_item(
    template: &Value,
    group: &str,
    version: &str,
    kind: &str,
    namespaced: bool,
) -> Option<Value> {
    let mut item = template["paths"]
        .get("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale")?
        .clone();
    let renames: Vec<(String, String)> = vec![
        ("AppsV1".into(), operation_infix(group, version)),
        (
            "apps_v1".into(),
            format!("{}_{version}", group.replace('.', "_")),
        ),
        ("Deployment".into(), kind.into()),
        ("name of the Scale".into(), format!("name of the {kind}")),
    ];
    rename_strings(&mut item, &renames);
    retarget_v2_operations(&mut item, group, version);
    for op in item.as_object_mut()?.values_mut() {
        if let Some(gvk) = op.get_mut("x-kubernetes-group-version-kind") {
            gvk["kind"] = kind.into();
        }
    }
    if !namespaced {
        drop_namespace_parameter(&mut item);
        if let Some(ops) = item.as_object_mut() {
            for op in ops.values_mut() {
                if let Some(id) = op["operationId"].as_str() {
                    op["operationId"] = id.replacen("Namespaced", "", 1).into();
                }
            }
        }
    }
    Some(item)
}

/// What a CRD (its stored `spec`) adds to `/openapi/v2`: `{"paths": ..,
/// "definitions": ..}` for every served version. The operations are the
/// embedded upstream document's (`template`, the whole v2 document) for
/// Leases, renamed, as for v3; watch paths are left out as upstream's CRD
/// builder leaves them out.
pub fn v2_fragment(spec: &Value, template: &Value) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    let group = spec["group"].as_str().unwrap_or("");
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("");
    let kind = names["kind"].as_str().unwrap_or("");
    let list_kind = match names["listKind"].as_str() {
        Some(l) if !l.is_empty() => l.to_string(),
        _ => format!("{kind}List"),
    };
    let namespaced = spec["scope"] != "Cluster";
    let preserve_all = spec["preserveUnknownFields"] == true;
    let template_prefix = format!("/apis/{TEMPLATE_GROUP}/{TEMPLATE_VERSION}/");
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"] != true {
            continue;
        }
        let version = v["name"].as_str().unwrap_or("");
        let object_name = schema_name(group, version, kind);
        let list_name = schema_name(group, version, &list_kind);
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
        let prefix = format!("/apis/{group}/{version}/");
        let has_status = v["subresources"].get("status").is_some();
        for (path, item) in template["paths"].as_object().into_iter().flatten() {
            let Some(rest) = path.strip_prefix(&template_prefix) else {
                continue;
            };
            if rest.is_empty() || rest.starts_with("watch/") {
                continue;
            }
            let mut rest = rest.replace(TEMPLATE_PLURAL, plural);
            let mut item = item.clone();
            rename_strings(&mut item, &renames);
            retarget_v2_operations(&mut item, group, version);
            if !namespaced {
                if !rest.contains("namespaces/{namespace}/") {
                    continue;
                }
                rest = rest.replace("namespaces/{namespace}/", "");
                drop_namespace_parameter(&mut item);
            }
            let object_path = if namespaced {
                format!("namespaces/{{namespace}}/{plural}/{{name}}")
            } else {
                format!("{plural}/{{name}}")
            };
            if has_status && rest == object_path {
                paths.insert(
                    format!("{prefix}{rest}/status"),
                    status_path_item(&item, kind),
                );
            }
            paths.insert(format!("{prefix}{rest}"), item);
        }
        if v["subresources"].get("scale").is_some()
            && let Some(item) = scale_path_item(template, group, version, kind, namespaced)
        {
            let at = if namespaced {
                format!("{prefix}namespaces/{{namespace}}/{plural}/{{name}}/scale")
            } else {
                format!("{prefix}{plural}/{{name}}/scale")
            };
            paths.insert(at, item);
        }
        let gvk = json!({"group": group, "kind": kind, "version": version});
        definitions.insert(
            object_name.clone(),
            v2_object_definition(v["schema"].get("openAPIV3Schema"), preserve_all, gvk),
        );
        definitions.insert(
            list_name,
            json!({
                "description": format!("{list_kind} is a list of {kind}"),
                "required": ["items"],
                "properties": {
                    "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"},
                    "items": {"description": format!("List of {plural}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"), "type": "array", "items": {"$ref": format!("#/definitions/{object_name}")}},
                    "kind": {"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"},
                    "metadata": {"description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"},
                },
                "x-kubernetes-group-version-kind": [{"group": group, "kind": list_kind, "version": version}],
            }),
        );
    }
    json!({"paths": paths, "definitions": definitions})
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

    #[test]
    fn v2_schemas_drop_what_v2_cannot_say() {
        let mut s = json!({
            "type": "object",
            "required": ["a", "b"],
            "properties": {
                "a": {"type": "string", "nullable": true, "default": "x"},
                "b": {"type": "integer", "minimum": 1, "maximum": 10},
                "c": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                      "properties": {"d": {"type": "string"}}},
                "e": {"x-kubernetes-int-or-string": true,
                      "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "f": {"type": "array", "nullable": true, "items": {"type": "string"}},
                "g": {"type": "object", "x-kubernetes-embedded-resource": true,
                      "properties": {"spec": {"type": "object", "example": {}}}},
            },
        });
        to_v2_schema(&mut s);
        assert_eq!(s["required"], json!(["b"]));
        assert_eq!(s["properties"]["a"], json!({}));
        assert_eq!(
            s["properties"]["b"],
            json!({"type": "integer", "minimum": 1, "maximum": 10})
        );
        assert_eq!(
            s["properties"]["c"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            s["properties"]["e"],
            json!({"x-kubernetes-int-or-string": true})
        );
        assert_eq!(s["properties"]["f"], json!({}));
        let g = &s["properties"]["g"];
        assert_eq!(g["required"], json!(["kind", "apiVersion"]));
        assert!(g["properties"]["metadata"]["$ref"].is_string());
        assert_eq!(g["properties"]["spec"], json!({"type": "object"}));
    }

    #[test]
    fn v2_fragment_paths_and_definitions() {
        let template = json!({"paths": {
            "/apis/coordination.k8s.io/v1/": {"get": {}},
            "/apis/coordination.k8s.io/v1/leases": {"get": {"operationId": "listCoordinationV1LeaseForAllNamespaces",
                "x-kubernetes-group-version-kind": {"group": "coordination.k8s.io", "kind": "Lease", "version": "v1"}}},
            "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}": {
                "patch": {"operationId": "patchCoordinationV1NamespacedLease", "tags": ["coordination_v1"],
                    "consumes": ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"],
                    "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
                    "responses": {"200": {"schema": {"$ref": "#/definitions/io.k8s.api.coordination.v1.Lease"}}},
                    "x-kubernetes-group-version-kind": {"group": "coordination.k8s.io", "kind": "Lease", "version": "v1"}}},
            "/apis/coordination.k8s.io/v1/watch/leases": {"get": {}},
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale": {
                "get": {"operationId": "readAppsV1NamespacedDeploymentScale", "description": "read scale of the specified Deployment",
                    "tags": ["apps_v1"], "produces": ["application/json", "application/vnd.kubernetes.protobuf"],
                    "responses": {"200": {"schema": {"$ref": "#/definitions/io.k8s.api.autoscaling.v1.Scale"}}},
                    "x-kubernetes-group-version-kind": {"group": "autoscaling", "kind": "Scale", "version": "v1"}},
                "parameters": [{"name": "name", "in": "path", "description": "name of the Scale"}]},
        }});
        let spec = json!({"group": "samplecontroller.k8s.io", "scope": "Namespaced",
        "names": {"plural": "foos", "kind": "Foo", "listKind": "FooList"},
        "versions": [
            {"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
             "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                 "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 1}}}}}}},
            {"name": "v1beta1", "served": false, "storage": false},
        ]});
        let f = v2_fragment(&spec, &template);
        let paths: Vec<&String> = f["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            paths,
            [
                "/apis/samplecontroller.k8s.io/v1alpha1/foos",
                "/apis/samplecontroller.k8s.io/v1alpha1/namespaces/{namespace}/foos/{name}/status",
                "/apis/samplecontroller.k8s.io/v1alpha1/namespaces/{namespace}/foos/{name}",
                "/apis/samplecontroller.k8s.io/v1alpha1/namespaces/{namespace}/foos/{name}/scale",
            ]
        );
        let scale = &f["paths"]["/apis/samplecontroller.k8s.io/v1alpha1/namespaces/{namespace}/foos/{name}/scale"];
        assert_eq!(
            scale["get"]["operationId"],
            "readSamplecontrollerK8sIoV1alpha1NamespacedFooScale"
        );
        assert_eq!(
            scale["get"]["description"],
            "read scale of the specified Foo"
        );
        assert_eq!(scale["get"]["produces"], json!(["application/json"]));
        assert_eq!(
            scale["get"]["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.autoscaling.v1.Scale"
        );
        assert_eq!(
            scale["get"]["x-kubernetes-group-version-kind"],
            json!({"group": "samplecontroller.k8s.io", "kind": "Foo", "version": "v1alpha1"})
        );
        assert_eq!(scale["parameters"][0]["description"], "name of the Foo");
        let patch = &f["paths"]["/apis/samplecontroller.k8s.io/v1alpha1/namespaces/{namespace}/foos/{name}"]
            ["patch"];
        assert_eq!(
            patch["operationId"],
            "patchSamplecontrollerK8sIoV1alpha1NamespacedFoo"
        );
        assert_eq!(patch["tags"], json!(["samplecontroller_k8s_io_v1alpha1"]));
        assert_eq!(
            patch["consumes"],
            json!([
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml"
            ])
        );
        assert_eq!(
            patch["produces"],
            json!(["application/json", "application/yaml"])
        );
        assert_eq!(
            patch["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.samplecontroller.v1alpha1.Foo"
        );
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "samplecontroller.k8s.io", "kind": "Foo", "version": "v1alpha1"})
        );
        let foo = &f["definitions"]["io.k8s.samplecontroller.v1alpha1.Foo"];
        assert_eq!(
            foo["properties"]["spec"]["properties"]["replicas"],
            json!({"type": "integer"})
        );
        assert!(foo["properties"]["metadata"]["$ref"].is_string());
        assert_eq!(
            foo["x-kubernetes-group-version-kind"],
            json!([{"group": "samplecontroller.k8s.io", "kind": "Foo", "version": "v1alpha1"}])
        );
        let list = &f["definitions"]["io.k8s.samplecontroller.v1alpha1.FooList"];
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/definitions/io.k8s.samplecontroller.v1alpha1.Foo"
        );
        assert!(
            f["definitions"]
                .get("io.k8s.samplecontroller.v1beta1.Foo")
                .is_none()
        );
    }
}
