//! Validation of CustomResourceDefinition objects (apiextensions.k8s.io/v1),
//! as upstream's `ValidateCustomResourceDefinition` and
//! `ValidateCustomResourceDefinitionUpdate`: names, group, scope, versions,
//! per-version schemas (through [`Schema::compile`](crate::Schema::compile)),
//! subresources, printer columns, selectable fields, conversion, status and
//! stored versions, API approval of protected groups, and the update rules.
//!
//! Generic ObjectMeta validation (labels, annotations, finalizers…) is the
//! registry's; only the CRD-specific name rules are checked here. This module
//! reads the CRD JSON and never changes it.

use nestkube_api::error::FieldError;
use nestkube_api::webhook_client;
use serde_json::Value;

use crate::names;
use crate::path::{child, index, key};

const PRINTER_COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
const PRINTER_COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];
const MAX_SELECTABLE_FIELDS: i64 = 8;
const API_APPROVAL_ANNOTATION: &str = "api-approved.kubernetes.io";

/// The JSON keywords allowed at the root of a schema when the status
/// subresource is enabled, and their names in upstream's message.
const ALLOWED_AT_ROOT: &[(&str, &str)] = &[
    ("description", "Description"),
    ("type", "Type"),
    ("format", "Format"),
    ("title", "Title"),
    ("maximum", "Maximum"),
    ("exclusiveMaximum", "ExclusiveMaximum"),
    ("minimum", "Minimum"),
    ("exclusiveMinimum", "ExclusiveMinimum"),
    ("maxLength", "MaxLength"),
    ("minLength", "MinLength"),
    ("pattern", "Pattern"),
    ("maxItems", "MaxItems"),
    ("minItems", "MinItems"),
    ("uniqueItems", "UniqueItems"),
    ("multipleOf", "MultipleOf"),
    ("required", "Required"),
    ("items", "Items"),
    ("properties", "Properties"),
    ("externalDocs", "ExternalDocs"),
    ("example", "Example"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "XPreserveUnknownFields",
    ),
    ("x-kubernetes-validations", "XValidations"),
];

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn versions(crd: &Value) -> &[Value] {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Whether the CRD's `Established` condition is `True`.
fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Upstream's v1 defaulting of a CRD (`SetDefaults_CustomResourceDefinition`):
/// `singular` from `kind`, `listKind` as `<kind>List`, conversion strategy
/// `None`, webhook service port 443, and `status.storedVersions` from the
/// storage version when empty. Run it before [`validate_crd`].
pub fn default_crd(crd: &mut Value) {
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let empty = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
        if empty(names.get("singular")) {
            names.insert("singular".into(), kind.to_lowercase().into());
        }
        if empty(names.get("listKind")) && !kind.is_empty() {
            names.insert("listKind".into(), format!("{kind}List").into());
        }
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        let conversion = spec
            .entry("conversion")
            .or_insert_with(|| serde_json::json!({"strategy": "None"}));
        if let Some(service) = conversion
            .pointer_mut("/webhook/clientConfig/service")
            .and_then(Value::as_object_mut)
        {
            service.entry("port").or_insert(443.into());
        }
    }
    let storage = versions(crd)
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| str_at(v, &["name"]).to_string());
    if let Some(obj) = crd.as_object_mut() {
        let status = obj
            .entry("status")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(status) = status.as_object_mut() {
            let empty = status
                .get("storedVersions")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if empty && let Some(storage) = storage {
                status.insert("storedVersions".into(), serde_json::json!([storage]));
            }
        }
    }
}

/// Upstream's `ValidateCustomResourceDefinition` (create), on a CRD that went
/// through [`default_crd`] (upstream validates decoded, hence defaulted, objects).
pub fn validate_crd(crd: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta(crd);
    errs.extend(validate_spec(crd, true, None));
    errs.extend(validate_status(crd));
    errs.extend(validate_api_approval(crd, None));
    errs.extend(validate_preserve_unknown_fields(crd, None));
    errs
}

/// Upstream's `ValidateCustomResourceDefinitionUpdate`: the create rules plus
/// immutable `spec.group` and `spec.names.plural`, and, once the CRD is
/// established, immutable `spec.scope` and `spec.names.kind`.
pub fn validate_crd_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta(new);
    // Conversion review versions are only required to be recognised when the
    // old object had them right.
    let old_reviews_ok = old
        .pointer("/spec/conversion/conversionReviewVersions")
        .and_then(Value::as_array)
        .is_none_or(|vs| {
            vs.is_empty()
                || vs
                    .iter()
                    .any(|v| matches!(v.as_str(), Some("v1") | Some("v1beta1")))
        });
    errs.extend(validate_spec(new, old_reviews_ok, Some(old)));
    let immutable = |errs: &mut Vec<FieldError>, p: &[&str], field: &str| {
        let (n, o) = (str_at(new, p), str_at(old, p));
        if n != o {
            errs.push(FieldError::invalid(field, n, "field is immutable"));
        }
    };
    if established(old) {
        immutable(&mut errs, &["spec", "scope"], "spec.scope");
        immutable(&mut errs, &["spec", "names", "kind"], "spec.names.kind");
    }
    immutable(&mut errs, &["spec", "group"], "spec.group");
    immutable(&mut errs, &["spec", "names", "plural"], "spec.names.plural");
    errs.extend(validate_status(new));
    errs.extend(validate_api_approval(new, Some(old)));
    errs.extend(validate_preserve_unknown_fields(new, Some(old)));
    errs
}

/// The CRD-specific metadata rules: a DNS subdomain name that is
/// `<plural>.<group>`, and no namespace.
fn validate_meta(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = str_at(crd, &["metadata", "name"]);
    let generate_name = str_at(crd, &["metadata", "generateName"]);
    let required = format!(
        "{}.{}",
        str_at(crd, &["spec", "names", "plural"]),
        str_at(crd, &["spec", "group"])
    );
    let problems = |n: &str| {
        let mut p = names::dns1123_subdomain(n);
        if n != required {
            p.push("must be spec.names.plural+\".\"+spec.group".to_string());
        }
        p
    };
    if !generate_name.is_empty() {
        for e in problems(generate_name) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                e,
            ));
        }
    }
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for e in problems(name) {
            errs.push(FieldError::invalid("metadata.name", name, e));
        }
    }
    if !str_at(crd, &["metadata", "namespace"]).is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    errs
}

fn enum_string(field: &str, value: &str, accepted: &[&str]) -> Vec<FieldError> {
    if value.is_empty() {
        return vec![FieldError::required(field, "")];
    }
    if accepted.contains(&value) {
        return Vec::new();
    }
    vec![FieldError::not_supported(field, value, accepted)]
}

/// `old` is the stored CRD on update: version schemas it already had are not
/// compiled against the rules again (upstream relaxes its schema rules for
/// what the old object held and skips cost limits of unchanged schemas, so a
/// stored CRD stays updatable).
fn validate_spec(
    crd: &Value,
    require_recognized_review_version: bool,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let group = str_at(&spec, &["group"]);
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let problems = names::dns1123_subdomain(group);
        if !problems.is_empty() {
            errs.push(FieldError::invalid("spec.group", group, problems.join(",")));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    errs.extend(enum_string(
        "spec.scope",
        str_at(&spec, &["scope"]),
        &["Cluster", "Namespaced"],
    ));
    let versions = versions(crd);
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema")
            .is_none_or(Value::is_null)
        {
            errs.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    let preserve_unknown = spec.get("preserveUnknownFields").and_then(Value::as_bool);
    if has_defaults(versions) && preserve_unknown == Some(true) {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            true,
            "must be false in order to use defaults in the schema",
        ));
    }
    let hoisted = Hoisted::of(versions);
    let unchanged: Vec<&str> = versions
        .iter()
        .filter(|v| {
            let name = str_at(v, &["name"]);
            old.is_some_and(|o| {
                self::versions(o).iter().any(|ov| {
                    str_at(ov, &["name"]) == name
                        && ov.pointer("/schema/openAPIV3Schema")
                            == v.pointer("/schema/openAPIV3Schema")
                })
            })
        })
        .map(|v| str_at(v, &["name"]))
        .collect();
    let mut storage = 0;
    let mut seen: Vec<&str> = Vec::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let vp = index("spec.versions", i);
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
        let name = str_at(v, &["name"]);
        if seen.contains(&name) {
            unique = false;
        } else {
            seen.push(name);
        }
        let problems = names::dns1035_label(name);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                child(&vp, "name"),
                name,
                problems.join(","),
            ));
        }
        let compile = !unchanged.contains(&name);
        errs.extend(validate_version(v, &vp, &hoisted, compile));
    }
    let versions_value = Value::Array(versions.to_vec());
    if !unique {
        errs.push(FieldError::invalid(
            "spec.versions",
            versions_value.clone(),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            versions_value,
            "must have exactly one version marked as storage version",
        ));
    }
    // v1's conversion sets the internal `spec.version` to the first version's
    // name, which upstream checks again under that path.
    if let Some(first) = versions.first() {
        let name = str_at(first, &["name"]);
        let problems = names::dns1035_label(name);
        if !name.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(
                "spec.version",
                name,
                problems.join(","),
            ));
        }
    }
    for f in ["plural", "singular", "kind", "listKind"] {
        if str_at(&spec, &["names", f]).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{f}"), ""));
        }
    }
    errs.extend(validate_names(
        spec.get("names").unwrap_or(&Value::Null),
        "spec.names",
    ));
    errs.extend(validate_hoisted(
        versions,
        &hoisted,
        unchanged.len() < versions.len(),
    ));
    let conversion = spec.get("conversion").filter(|c| !c.is_null());
    if let Some(c) = conversion {
        let strategy = str_at(c, &["strategy"]);
        if strategy != "None" && preserve_unknown == Some(true) {
            errs.push(FieldError::invalid(
                "spec.conversion.strategy",
                strategy,
                "must be None if spec.preserveUnknownFields is true",
            ));
        }
        errs.extend(validate_conversion(c, require_recognized_review_version));
    }
    errs
}

fn has_defaults(versions: &[Value]) -> bool {
    fn has(v: &Value) -> bool {
        match v {
            Value::Object(o) => {
                o.get("default").is_some_and(|d| !d.is_null())
                    || o.iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "default" | "enum" | "example"))
                        .any(|(_, v)| has(v))
            }
            Value::Array(a) => a.iter().any(has),
            _ => false,
        }
    }
    versions
        .iter()
        .filter_map(|v| v.pointer("/schema/openAPIV3Schema"))
        .any(has)
}

/// Which per-version fields upstream's v1 conversion moves to the top level
/// (`spec.validation`, `spec.subresources`, `spec.additionalPrinterColumns`,
/// `spec.selectableFields`) because every version has the same value; errors
/// about those read with the top-level paths.
struct Hoisted {
    schema: bool,
    subresources: bool,
    columns: bool,
    selectable_fields: bool,
}

impl Hoisted {
    fn of(versions: &[Value]) -> Hoisted {
        let same = |field: &str| {
            let norm = |v: &Value| match v.get(field) {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Array(a)) if a.is_empty() => Value::Null,
                Some(x) => x.clone(),
            };
            !versions.is_empty() && versions.iter().all(|v| norm(v) == norm(&versions[0]))
        };
        Hoisted {
            schema: same("schema"),
            subresources: same("subresources"),
            columns: same("additionalPrinterColumns"),
            selectable_fields: same("selectableFields"),
        }
    }
}

/// The checks of the hoisted fields, at their top-level paths.
fn validate_hoisted(versions: &[Value], h: &Hoisted, compile: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(first) = versions.first() else {
        return errs;
    };
    let schema = first
        .pointer("/schema/openAPIV3Schema")
        .filter(|s| !s.is_null());
    if h.schema
        && let Some(schema) = schema
    {
        let any_status = versions.iter().any(|v| {
            v.pointer("/subresources/status")
                .is_some_and(|s| !s.is_null())
        });
        errs.extend(validate_version_schema(
            schema,
            "spec.validation",
            any_status,
            compile,
        ));
    }
    if h.subresources {
        errs.extend(validate_subresources(
            first.get("subresources").unwrap_or(&Value::Null),
            "spec.subresources",
        ));
    }
    if h.columns
        && let Some(cols) = first
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
    {
        for (i, c) in cols.iter().enumerate() {
            errs.extend(validate_column(
                c,
                &index("spec.additionalPrinterColumns", i),
            ));
        }
    }
    if h.selectable_fields
        && let Some(fields) = first
            .get("selectableFields")
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty())
    {
        match schema.filter(|_| h.schema) {
            None => errs.push(FieldError::invalid(
                "spec.selectableFields",
                "",
                "selectableFields may only be set when validations.schema is included",
            )),
            Some(schema) => errs.extend(validate_selectable_fields(
                fields,
                schema,
                "spec.selectableFields",
            )),
        }
    }
    errs
}

fn validate_version(v: &Value, vp: &str, hoisted: &Hoisted, compile: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let deprecated = v.get("deprecated").and_then(Value::as_bool) == Some(true);
    if let Some(w) = v.get("deprecationWarning").and_then(Value::as_str) {
        let wp = child(vp, "deprecationWarning");
        if !deprecated {
            errs.push(FieldError::invalid(
                wp.clone(),
                w,
                "can only be set for deprecated versions",
            ));
        } else {
            if w.len() > 256 {
                errs.push(FieldError::invalid(
                    wp.clone(),
                    w,
                    "must be <= 256 characters long",
                ));
            }
            if w.is_empty() {
                errs.push(FieldError::invalid(
                    wp.clone(),
                    w,
                    "must not be an empty string",
                ));
            }
            if let Some((i, _)) = w.char_indices().find(|(_, c)| c.is_control()) {
                errs.push(FieldError::invalid(
                    wp,
                    w,
                    format!(
                        "must only contain printable UTF-8 characters; non-printable character found at index {i}"
                    ),
                ));
            }
        }
    }
    let status_enabled = v
        .pointer("/subresources/status")
        .is_some_and(|s| !s.is_null());
    let schema_path = child(vp, "schema");
    let schema = v
        .pointer("/schema/openAPIV3Schema")
        .filter(|s| !s.is_null());
    if let Some(schema) = schema.filter(|_| !hoisted.schema) {
        errs.extend(validate_version_schema(
            schema,
            &schema_path,
            status_enabled,
            compile,
        ));
    }
    if !hoisted.subresources {
        errs.extend(validate_subresources(
            v.get("subresources").unwrap_or(&Value::Null),
            &child(vp, "subresources"),
        ));
    }
    if let Some(cols) = v
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .filter(|_| !hoisted.columns)
    {
        for (i, c) in cols.iter().enumerate() {
            errs.extend(validate_column(
                c,
                &index(&child(vp, "additionalPrinterColumns"), i),
            ));
        }
    }
    if let Some(fields) = v
        .get("selectableFields")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty() && !hoisted.selectable_fields)
    {
        match schema {
            None => errs.push(FieldError::invalid(
                child(vp, "selectableFields"),
                "",
                "selectableFields may only be set when version.schema.openAPIV3Schema is not included",
            )),
            Some(schema) => errs.extend(validate_selectable_fields(
                fields,
                schema,
                &child(vp, "selectableFields"),
            )),
        }
    }
    errs
}

/// The schema of a version: the root restrictions of the status subresource,
/// then, when `compile`, everything [`Schema::compile`](crate::Schema::compile) checks.
fn validate_version_schema(
    schema: &Value,
    path: &str,
    status_enabled: bool,
    compile: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let schema_path = child(path, "openAPIV3Schema");
    if status_enabled && let Some(o) = schema.as_object() {
        for (k, val) in o {
            let zero = match val {
                Value::Null => true,
                Value::Bool(b) => !b,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(m) => m.is_empty(),
                Value::Number(_) => false,
            };
            if zero {
                continue;
            }
            if k == "type" {
                if val.as_str() != Some("object") {
                    errs.push(FieldError::invalid(
                        child(&schema_path, "type"),
                        val.clone(),
                        "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                    ));
                    break;
                }
                continue;
            }
            if !ALLOWED_AT_ROOT.iter().any(|(json, _)| json == k) {
                let allowed: Vec<&str> = ALLOWED_AT_ROOT.iter().map(|(_, go)| *go).collect();
                errs.push(FieldError::invalid(
                    schema_path.clone(),
                    schema.clone(),
                    format!(
                        "only [{}] fields are allowed at the root of the schema if the status subresource is enabled",
                        allowed.join(" ")
                    ),
                ));
                break;
            }
        }
    }
    // Through the shared cache: a schema some cluster already serves (the
    // same CRD in another cluster) is not compiled again; errors are never
    // cached.
    if compile && let Err(e) = crate::SchemaCache::global().get_or_compile(schema, &schema_path) {
        errs.extend(e);
    }
    errs
}

/// `validateSimpleJSONPath`.
fn simple_json_path(s: &str, path: &str) -> Vec<FieldError> {
    if s.is_empty() {
        vec![FieldError::invalid(path, s, "must not be empty")]
    } else if !s.starts_with('.') {
        vec![FieldError::invalid(
            path,
            s,
            "must be a simple json path starting with .",
        )]
    } else {
        Vec::new()
    }
}

fn validate_subresources(sub: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(scale) = sub.get("scale").filter(|s| !s.is_null()) else {
        return errs;
    };
    for (field, prefix, under) in [
        ("specReplicasPath", ".spec.", ".spec"),
        ("statusReplicasPath", ".status.", ".status"),
    ] {
        let fp = format!("{path}.scale.{field}");
        let value = str_at(scale, &[field]);
        if value.is_empty() {
            errs.push(FieldError::required(fp, ""));
            continue;
        }
        let e = simple_json_path(value, &fp);
        if !e.is_empty() {
            errs.extend(e);
        } else if !value.starts_with(prefix) {
            errs.push(FieldError::invalid(
                fp,
                value,
                format!("should be a json path under {under}"),
            ));
        }
    }
    let selector = str_at(scale, &["labelSelectorPath"]);
    if !selector.is_empty() {
        let fp = format!("{path}.scale.labelSelectorPath");
        let e = simple_json_path(selector, &fp);
        if !e.is_empty() {
            errs.extend(e);
        } else if !selector.starts_with(".spec.") && !selector.starts_with(".status.") {
            errs.push(FieldError::invalid(
                fp,
                selector,
                "should be a json path under either .spec or .status",
            ));
        }
    }
    errs
}

fn validate_column(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if str_at(c, &["name"]).is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    }
    let ty = str_at(c, &["type"]);
    let must = format!("must be one of {}", PRINTER_COLUMN_TYPES.join(","));
    if ty.is_empty() {
        errs.push(FieldError::required(child(path, "type"), must));
    } else if !PRINTER_COLUMN_TYPES.contains(&ty) {
        errs.push(FieldError::invalid(child(path, "type"), ty, must));
    }
    let format = str_at(c, &["format"]);
    if !format.is_empty() && !PRINTER_COLUMN_FORMATS.contains(&format) {
        errs.push(FieldError::invalid(
            child(path, "format"),
            format,
            format!("must be one of {}", PRINTER_COLUMN_FORMATS.join(",")),
        ));
    }
    let json_path = str_at(c, &["jsonPath"]);
    if json_path.is_empty() {
        errs.push(FieldError::required(child(path, "JSONPath"), ""));
    } else {
        errs.extend(simple_json_path(json_path, &child(path, "JSONPath")));
    }
    errs
}

/// `ValidateCustomResourceSelectableFields`: each a dotted path to a string,
/// boolean or integer field outside metadata, no duplicates, at most 8.
fn validate_selectable_fields(fields: &[Value], schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut unique: Vec<String> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let jp_path = child(&index(path, i), "jsonPath");
        let jp = str_at(f, &["jsonPath"]);
        if jp.is_empty() {
            errs.push(FieldError::required(jp_path, ""));
            continue;
        }
        let (normalized, target) = match selectable_target(jp, schema) {
            Ok(t) => t,
            Err(e) => {
                errs.push(FieldError::invalid(
                    jp_path,
                    jp,
                    format!("is an invalid path: {e}"),
                ));
                continue;
            }
        };
        if normalized.split('.').next() == Some("metadata") {
            errs.push(FieldError::invalid(
                jp_path.clone(),
                jp,
                "must not point to fields in metadata",
            ));
        }
        let ty = target.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(ty, "string" | "boolean" | "integer") {
            errs.push(FieldError::invalid(
                jp_path.clone(),
                jp,
                "must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.",
            ));
        }
        if unique.contains(&normalized) {
            errs.push(FieldError::duplicate(jp_path, jp));
        } else {
            unique.push(normalized);
        }
    }
    if unique.len() as i64 > MAX_SELECTABLE_FIELDS {
        errs.push(FieldError::too_many(
            path,
            unique.len() as i64,
            MAX_SELECTABLE_FIELDS,
        ));
    }
    errs
}

/// Resolves a selectable field path (`.spec.color`, `.spec['a.b']`) in the
/// schema, without array steps.
fn selectable_target<'a>(jp: &str, schema: &'a Value) -> Result<(String, &'a Value), String> {
    let segments = crate::structural::parse_field_path(jp)
        .ok_or_else(|| format!("expected [ or . but got: {jp}"))?;
    let mut s = schema;
    let mut names = Vec::new();
    for seg in segments {
        match seg {
            crate::structural::Segment::Index => {
                return Err("array notation is not allowed".to_string());
            }
            crate::structural::Segment::Field(name) => {
                if let Some(p) = s.get("properties").and_then(|p| p.get(&name)) {
                    s = p;
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    s = ap;
                } else {
                    return Err(format!("does not refer to a valid field: {name}"));
                }
                names.push(name);
            }
        }
    }
    if names.is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok((names.join("."), s))
}

/// `ValidateCustomResourceDefinitionNames`.
fn validate_names(n: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = |f: &str| str_at(n, &[f]);
    for f in ["plural", "singular"] {
        let v = s(f);
        let problems = names::dns1035_label(v);
        if !v.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(child(path, f), v, problems.join(",")));
        }
    }
    for f in ["kind", "listKind"] {
        let v = s(f);
        let problems = names::dns1035_label(&v.to_lowercase());
        if !v.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(
                child(path, f),
                v,
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    problems.join(",")
                ),
            ));
        }
    }
    for f in ["shortNames", "categories"] {
        for (i, v) in n
            .get(f)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let v = v.as_str().unwrap_or("");
            let problems = names::dns1035_label(v);
            if !problems.is_empty() {
                errs.push(FieldError::invalid(
                    index(&child(path, f), i),
                    v,
                    problems.join(","),
                ));
            }
        }
    }
    if !s("kind").is_empty() && s("kind") == s("listKind") {
        errs.push(FieldError::invalid(
            child(path, "listKind"),
            s("listKind"),
            "kind and listKind may not be the same",
        ));
    }
    errs
}

fn validate_conversion(c: &Value, require_recognized: bool) -> Vec<FieldError> {
    let path = "spec.conversion";
    let strategy = str_at(c, &["strategy"]);
    let mut errs = enum_string(&child(path, "strategy"), strategy, &["None", "Webhook"]);
    let webhook = c.get("webhook").filter(|w| !w.is_null());
    let client_config = webhook
        .and_then(|w| w.get("clientConfig"))
        .filter(|c| !c.is_null());
    let review_versions: Vec<Value> = webhook
        .and_then(|w| w.get("conversionReviewVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // v1's `webhook.clientConfig` and `webhook.conversionReviewVersions` are the
    // internal `webhookClientConfig` and `conversionReviewVersions`, which is how
    // upstream names them in errors.
    if strategy == "Webhook" {
        match client_config {
            None => errs.push(FieldError::required(
                child(path, "webhookClientConfig"),
                "required when strategy is set to Webhook",
            )),
            Some(cc) => {
                let url = cc.get("url").and_then(Value::as_str);
                let service = cc.get("service").filter(|s| !s.is_null());
                let cp = child(path, "webhookClientConfig");
                match (url, service) {
                    (Some(_), Some(_)) | (None, None) => errs.push(FieldError::required(
                        cp,
                        "exactly one of url or service is required",
                    )),
                    (Some(u), None) => {
                        errs.extend(webhook_client::validate_url(&child(&cp, "url"), u))
                    }
                    (None, Some(s)) => {
                        errs.extend(webhook_client::validate_service(&child(&cp, "service"), s))
                    }
                }
            }
        }
        errs.extend(validate_review_versions(
            &review_versions,
            require_recognized,
            &child(path, "conversionReviewVersions"),
        ));
    } else {
        if client_config.is_some() {
            errs.push(FieldError::forbidden(
                child(path, "webhookClientConfig"),
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if !review_versions.is_empty() {
            errs.push(FieldError::forbidden(
                child(path, "conversionReviewVersions"),
                "should not be set when strategy is not set to Webhook",
            ));
        }
    }
    errs
}

fn validate_review_versions(
    versions: &[Value],
    require_recognized: bool,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if versions.is_empty() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    let mut seen = Vec::new();
    let mut accepted = false;
    for (i, v) in versions.iter().enumerate() {
        let v = v.as_str().unwrap_or("");
        if seen.contains(&v) {
            errs.push(FieldError::invalid(index(path, i), v, "duplicate version"));
            continue;
        }
        seen.push(v);
        for e in names::dns1035_label(v) {
            errs.push(FieldError::invalid(index(path, i), v, e));
        }
        if v == "v1" || v == "v1beta1" {
            accepted = true;
        }
    }
    if require_recognized && !accepted {
        errs.push(FieldError::invalid(
            path,
            Value::Array(versions.to_vec()),
            "must include at least one of v1, v1beta1",
        ));
    }
    errs
}

/// `ValidateCustomResourceDefinitionStatus` and
/// `ValidateCustomResourceDefinitionStoredVersions`.
fn validate_status(crd: &Value) -> Vec<FieldError> {
    let mut errs = validate_names(
        crd.pointer("/status/acceptedNames").unwrap_or(&Value::Null),
        "status.acceptedNames",
    );
    let path = "status.storedVersions";
    let stored: Vec<&str> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if stored.is_empty() {
        errs.push(FieldError::invalid(
            path,
            Value::Array(Vec::new()),
            "must have at least one stored version",
        ));
        return errs;
    }
    let stored_value = Value::from(stored.clone());
    let mut remaining: Vec<(usize, &str)> = stored.iter().copied().enumerate().collect();
    for v in versions(crd) {
        let name = str_at(v, &["name"]);
        let present = stored.contains(&name);
        if v.get("storage").and_then(Value::as_bool) == Some(true) && !present {
            errs.push(FieldError::invalid(
                path,
                stored_value.clone(),
                format!("must have the storage version {name}"),
            ));
        }
        remaining.retain(|(_, s)| *s != name);
    }
    for (i, v) in remaining {
        errs.push(FieldError::invalid(
            index(path, i),
            v,
            format!(
                "missing from spec.versions; {v} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {v} and removes {v} from status.storedVersions"
            ),
        ));
    }
    errs
}

#[derive(PartialEq)]
enum Approval {
    Missing,
    Invalid,
    Approved,
    Bypassed,
}

fn approval_state(crd: &Value) -> Approval {
    match crd
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(API_APPROVAL_ANNOTATION))
        .and_then(Value::as_str)
    {
        None => Approval::Missing,
        Some(v) if v.starts_with("unapproved") => Approval::Bypassed,
        Some(v) if v.contains("://") && !v.contains(char::is_whitespace) => Approval::Approved,
        Some(_) => Approval::Invalid,
    }
}

/// `validateAPIApproval`: protected community groups (`*.k8s.io`,
/// `*.kubernetes.io`) need the approval annotation.
fn validate_api_approval(new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let group = str_at(new, &["spec", "group"]);
    let protected = group == "k8s.io"
        || group.ends_with(".k8s.io")
        || group == "kubernetes.io"
        || group.ends_with(".kubernetes.io");
    if !protected {
        return Vec::new();
    }
    let state = approval_state(new);
    if old.is_some_and(|o| approval_state(o) == state) {
        return Vec::new();
    }
    let field = key("metadata.annotations", API_APPROVAL_ANNOTATION);
    match state {
        Approval::Missing => vec![FieldError::required(
            field,
            format!(
                "protected groups must have approval annotation {API_APPROVAL_ANNOTATION:?}, see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )],
        Approval::Invalid => vec![FieldError::invalid(
            field,
            str_at(new, &["metadata", "annotations", API_APPROVAL_ANNOTATION]),
            format!(
                "protected groups must have approval annotation {API_APPROVAL_ANNOTATION:?} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )],
        Approval::Approved | Approval::Bypassed => Vec::new(),
    }
}

/// `validatePreserveUnknownFields`: v1 CRDs cannot turn it on.
fn validate_preserve_unknown_fields(new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let on = |c: &Value| {
        c.pointer("/spec/preserveUnknownFields")
            .and_then(Value::as_bool)
            == Some(true)
    };
    if old.is_some_and(on) || !on(new) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.preserveUnknownFields",
        true,
        "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hoisting_needs_every_version_alike() {
        let v = |name: &str, schema: Value| json!({"name": name, "schema": {"openAPIV3Schema": schema}});
        let same = Hoisted::of(&[
            v("a", json!({"type": "object"})),
            v("b", json!({"type": "object"})),
        ]);
        assert!(same.schema && same.subresources && same.columns);
        let differ = Hoisted::of(&[v("a", json!({"type": "object"})), v("b", json!({}))]);
        assert!(!differ.schema);
    }
}
