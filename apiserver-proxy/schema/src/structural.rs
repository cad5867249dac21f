//! The structural schema: one CRD version's `openAPIV3Schema` parsed into a
//! typed tree ([`Node`]), and upstream's checks that the JSON is an acceptable
//! v1 schema (`ValidateCustomResourceDefinitionOpenAPISchema`, the
//! `specStandardValidatorV3` rules, and `ValidateStructural`).
//!
//! This module owns the shape of a schema; pruning, defaulting and validation
//! walk the tree built here. It never looks at objects and never evaluates CEL
//! (rules are only checked for well-formedness here; `cel` compiles them).

use std::collections::BTreeMap;

use nestkube_api::error::FieldError;
use regex::Regex;
use serde_json::Value;

use crate::path::{child, index, key};

/// `additionalProperties` of a schema node.
#[derive(Debug, Default)]
pub(crate) enum Additional {
    /// Not specified.
    #[default]
    Absent,
    /// `true` or `false`.
    Allows(bool),
    /// A schema for every value of the map.
    Schema(Box<Node>),
}

impl Additional {
    /// The schema, when there is one.
    pub(crate) fn schema(&self) -> Option<&Node> {
        match self {
            Additional::Schema(s) => Some(s),
            _ => None,
        }
    }
    /// Whether keys outside `properties` are kept (`additionalProperties` is set
    /// at all, as upstream's `AdditionalProperties != nil`).
    pub(crate) fn is_set(&self) -> bool {
        !matches!(self, Additional::Absent)
    }
}

/// One schema node, as `JSONSchemaProps` restricted to what v1 CRDs accept.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub ty: String,
    pub format: String,
    pub nullable: bool,
    pub default: Option<Value>,
    pub properties: BTreeMap<String, Node>,
    pub items: Option<Box<Node>>,
    pub additional: Additional,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub enum_values: Option<Vec<Value>>,
    /// The pattern as written (for messages) and compiled (RE2-compatible).
    pub pattern: Option<(String, Option<Regex>)>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<f64>,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub unique_items: bool,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub required: Vec<String>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    /// Whether the node declares `x-kubernetes-validations`.
    pub has_rules: bool,
}

fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

impl Node {
    /// Parses a schema node. Unknown or mistyped keywords are ignored here;
    /// [`check_schema`] reports the ones upstream refuses.
    pub(crate) fn parse(v: &Value) -> Node {
        let Some(o) = v.as_object() else {
            return Node::default();
        };
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let b = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        let f = |k: &str| o.get(k).and_then(Value::as_f64);
        let list = |k: &str| -> Vec<Node> {
            o.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Node::parse).collect())
                .unwrap_or_default()
        };
        let properties = o
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.clone(), Node::parse(v))).collect())
            .unwrap_or_default();
        let additional = match o.get("additionalProperties") {
            None | Some(Value::Null) => Additional::Absent,
            Some(Value::Bool(b)) => Additional::Allows(*b),
            Some(v) => Additional::Schema(Box::new(Node::parse(v))),
        };
        let pattern = s("pattern").map(|p| {
            let re = Regex::new(&p).ok();
            (p, re)
        });
        Node {
            ty: s("type").unwrap_or_default(),
            format: s("format").unwrap_or_default(),
            nullable: b("nullable"),
            default: o.get("default").filter(|d| !d.is_null()).cloned(),
            properties,
            items: o
                .get("items")
                .filter(|i| i.is_object())
                .map(|i| Box::new(Node::parse(i))),
            additional,
            preserve_unknown: b("x-kubernetes-preserve-unknown-fields"),
            embedded: b("x-kubernetes-embedded-resource"),
            int_or_string: b("x-kubernetes-int-or-string"),
            list_type: s("x-kubernetes-list-type"),
            list_map_keys: o
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            map_type: s("x-kubernetes-map-type"),
            enum_values: o.get("enum").and_then(Value::as_array).cloned(),
            pattern,
            maximum: f("maximum"),
            exclusive_maximum: b("exclusiveMaximum"),
            minimum: f("minimum"),
            exclusive_minimum: b("exclusiveMinimum"),
            multiple_of: f("multipleOf"),
            max_length: int(o.get("maxLength")),
            min_length: int(o.get("minLength")),
            max_items: int(o.get("maxItems")),
            min_items: int(o.get("minItems")),
            unique_items: b("uniqueItems"),
            max_properties: int(o.get("maxProperties")),
            min_properties: int(o.get("minProperties")),
            required: o
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            all_of: list("allOf"),
            any_of: list("anyOf"),
            one_of: list("oneOf"),
            not: o
                .get("not")
                .filter(|n| n.is_object())
                .map(|n| Box::new(Node::parse(n))),
            has_rules: o
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
        }
    }

    /// The schema applying to the value under `key` of an object.
    pub(crate) fn field(&self, key: &str) -> Option<&Node> {
        self.properties
            .get(key)
            .or_else(|| self.additional.schema())
    }
}

/// The OpenAPI v3 types a CRD schema may name (`openapiV3Types`).
const OPENAPI_V3_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// Reasons a rule may carry (`supportedValidationReason`), sorted as upstream lists them.
const SUPPORTED_REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// The ObjectMeta and TypeMeta fields at a resource root.
const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// Context of [`check_schema`]'s walk, as upstream's `specStandardValidatorV3`.
#[derive(Clone, Default)]
struct Ctx {
    /// Why defaults are forbidden here, when they are.
    forbidden_defaults: Option<String>,
    inside_resource_meta: bool,
    /// The path below which `oldSelf` cannot be correlated.
    uncorrelatable: Option<String>,
}

/// Upstream's per-schema checks for a v1 CRD version schema rooted at `path`
/// (`…openAPIV3Schema`), in upstream's order: `ValidateStructural` (sorted),
/// the default checks when the schema is structural, then
/// `ValidateCustomResourceDefinitionOpenAPISchema`.
pub(crate) fn check_schema(raw: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if raw.get("nullable").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::forbidden(
            child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    // `NewStructural` refuses item tuples; the OpenAPI checks below report them.
    if !has_item_tuples(raw) {
        let node = Node::parse(raw);
        let mut structural = validate_structural(&node, path);
        structural.sort_by_key(|e| e.to_string());
        if structural.is_empty() {
            errs.extend(crate::defaults::check(&node, path));
        }
        errs.extend(structural);
    }
    check_openapi(raw, path, &Ctx::default(), true, &mut errs);
    errs
}

fn has_item_tuples(raw: &Value) -> bool {
    match raw {
        Value::Object(o) => {
            o.get("items").is_some_and(Value::is_array)
                || [
                    "properties",
                    "patternProperties",
                    "definitions",
                    "dependencies",
                ]
                .iter()
                .filter_map(|k| o.get(*k).and_then(Value::as_object))
                .any(|m| m.values().any(has_item_tuples))
                || ["allOf", "anyOf", "oneOf"]
                    .iter()
                    .filter_map(|k| o.get(*k).and_then(Value::as_array))
                    .any(|a| a.iter().any(has_item_tuples))
                || ["items", "not", "additionalProperties", "additionalItems"]
                    .iter()
                    .filter_map(|k| o.get(*k))
                    .any(has_item_tuples)
        }
        _ => false,
    }
}

fn has_newlines(s: &str) -> bool {
    s.contains('\n') || s.contains('\r')
}

/// `ValidateCustomResourceDefinitionOpenAPISchema` over the raw JSON.
fn check_openapi(raw: &Value, path: &str, ctx: &Ctx, is_root: bool, errs: &mut Vec<FieldError>) {
    let Some(o) = raw.as_object() else {
        return;
    };
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    standard_checks(o, ty, path, ctx, errs);

    if o.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::forbidden(
            child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let props = o.get("properties").and_then(Value::as_object);
    let has_props = props.is_some_and(|p| !p.is_empty());
    if let Some(ap) = o.get("additionalProperties").filter(|a| !a.is_null()) {
        if has_props && (ap != &Value::Bool(true)) {
            errs.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        let mut sub = ctx.clone();
        if ctx.inside_resource_meta {
            sub.forbidden_defaults =
                Some("inside additionalProperties applying to object metadata".into());
        }
        if ap.is_object() {
            check_openapi(ap, &child(path, "additionalProperties"), &sub, false, errs);
        }
    }
    let map_type = o.get("x-kubernetes-map-type").and_then(Value::as_str);
    if let Some(props) = props {
        for (name, schema) in props {
            let mut sub = ctx.clone();
            let correlatable = matches!(map_type, None | Some("granular") | Some("atomic"));
            if !correlatable && sub.uncorrelatable.is_none() {
                sub.uncorrelatable = Some(path.to_string());
            }
            let embedded = o
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            if (is_root || embedded) && META_FIELDS.contains(&name.as_str()) {
                sub.inside_resource_meta = true;
                if is_root {
                    sub.forbidden_defaults = Some(format!("in top-level {name}"));
                }
            }
            check_openapi(
                schema,
                &key(&child(path, "properties"), name),
                &sub,
                false,
                errs,
            );
        }
    }
    if let Some(not) = o.get("not") {
        check_openapi(not, &child(path, "not"), ctx, false, errs);
    }
    for junctor in ["allOf", "oneOf", "anyOf"] {
        if let Some(list) = o.get(junctor).and_then(Value::as_array) {
            for (i, s) in list.iter().enumerate() {
                check_openapi(s, &index(&child(path, junctor), i), ctx, false, errs);
            }
        }
    }
    let list_type = o.get("x-kubernetes-list-type").and_then(Value::as_str);
    if let Some(items) = o.get("items") {
        let mut sub = ctx.clone();
        if list_type != Some("map") && sub.uncorrelatable.is_none() {
            sub.uncorrelatable = Some(path.to_string());
        }
        match items {
            Value::Array(list) => {
                for (i, s) in list.iter().enumerate() {
                    check_openapi(s, &index(&child(path, "items"), i), &sub, false, errs);
                }
            }
            s => check_openapi(s, &child(path, "items"), &sub, false, errs),
        }
    }
    if o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            false,
            "must be true or undefined",
        ));
    }
    if let Some(mt) = map_type {
        if ty != "object" {
            type_must(
                path,
                ty,
                "must be object if x-kubernetes-map-type is specified",
                errs,
            );
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                child(path, "x-kubernetes-map-type"),
                mt,
                &["atomic", "granular"],
            ));
        }
    }
    let items_obj = o.get("items").filter(|i| i.is_object());
    if let Some(lt) = list_type {
        if ty != "array" {
            type_must(
                path,
                ty,
                "must be array if x-kubernetes-list-type is specified",
                errs,
            );
        } else if lt == "set"
            && let Some(is) = items_obj
        {
            let item_ty = is.get("type").and_then(Value::as_str).unwrap_or("");
            let item_lt = is.get("x-kubernetes-list-type").and_then(Value::as_str);
            let item_mt = is.get("x-kubernetes-map-type").and_then(Value::as_str);
            let items_path = child(path, "items");
            if item_ty == "array" && item_lt.is_some_and(|t| t != "atomic") {
                errs.push(FieldError::invalid(
                    child(&items_path, "x-kubernetes-list-type"),
                    item_lt.unwrap_or_default(),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
            if item_ty == "object" && item_mt != Some("atomic") {
                errs.push(FieldError::invalid(
                    child(&items_path, "x-kubernetes-map-type"),
                    item_lt.map(Value::from).unwrap_or(Value::Null),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
        }
        if !["atomic", "set", "map"].contains(&lt) {
            errs.push(FieldError::not_supported(
                child(path, "x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            ));
        }
    }
    let map_keys: Vec<&str> = o
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !map_keys.is_empty() {
        match list_type {
            None => errs.push(FieldError::required(
                child(path, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) if lt != "map" => errs.push(FieldError::invalid(
                child(path, "x-kubernetes-list-type"),
                lt,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    if list_type == Some("map") {
        check_list_map(o, path, &map_keys, errs);
    }
    map_list_keys_map_set(o, list_type, &map_keys, path, errs);
    check_default_list_sets_and_maps(o, path, errs);
    if let Some(rules) = o.get("x-kubernetes-validations").and_then(Value::as_array) {
        check_rules(o, rules, path, ctx, errs);
    }
}

/// `specStandardValidatorV3.validate`.
fn standard_checks(
    o: &serde_json::Map<String, Value>,
    ty: &str,
    path: &str,
    ctx: &Ctx,
    errs: &mut Vec<FieldError>,
) {
    if !ty.is_empty() && !OPENAPI_V3_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            child(path, "type"),
            ty,
            OPENAPI_V3_TYPES,
        ));
    }
    if o.get("default").is_some_and(|d| !d.is_null())
        && let Some(reason) = &ctx.forbidden_defaults
    {
        errs.push(FieldError::forbidden(
            child(path, "default"),
            format!("must not be set {reason}"),
        ));
    }
    let present = |k: &str| match o.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Object(m)) => !m.is_empty() || k == "dependencies",
        Some(_) => true,
    };
    for (k, msg) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if present(k) {
            errs.push(FieldError::forbidden(child(path, k), msg));
        }
    }
    if ty == "null" {
        errs.push(FieldError::forbidden(
            child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if o.get("items").is_some_and(Value::is_array) {
        errs.push(FieldError::forbidden(
            child(path, "items"),
            "items must be a schema object and not an array",
        ));
    }
    if ctx.inside_resource_meta
        && o.get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true)
    {
        errs.push(FieldError::forbidden(
            child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
}

fn type_must(path: &str, ty: &str, detail: &str, errs: &mut Vec<FieldError>) {
    if ty.is_empty() {
        errs.push(FieldError::required(child(path, "type"), detail));
    } else {
        errs.push(FieldError::invalid(child(path, "type"), ty, detail));
    }
}

fn check_list_map(
    o: &serde_json::Map<String, Value>,
    path: &str,
    map_keys: &[&str],
    errs: &mut Vec<FieldError>,
) {
    if map_keys.is_empty() {
        errs.push(FieldError::required(
            child(path, "x-kubernetes-list-map-keys"),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    match o.get("items") {
        None | Some(Value::Null) => errs.push(FieldError::required(
            child(path, "items"),
            "must have a schema if x-kubernetes-list-type is map",
        )),
        Some(items @ Value::Array(_)) => errs.push(FieldError::invalid(
            child(path, "items"),
            items.clone(),
            "must only have a single schema if x-kubernetes-list-type is map",
        )),
        Some(items) => {
            let item_ty = items.get("type").and_then(Value::as_str).unwrap_or("");
            if item_ty != "object" {
                errs.push(FieldError::invalid(
                    child(&child(path, "items"), "type"),
                    item_ty,
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
                return;
            }
            let keys_value = Value::from(map_keys.to_vec());
            let mut seen = Vec::new();
            for k in map_keys {
                match items.get("properties").and_then(|p| p.get(*k)) {
                    Some(prop) => {
                        let t = prop.get("type").and_then(Value::as_str).unwrap_or("");
                        if t == "array" || t == "object" {
                            errs.push(FieldError::invalid(
                                child(
                                    &key(&child(&child(path, "items"), "properties"), k),
                                    "type",
                                ),
                                item_ty,
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            ));
                        }
                    }
                    None => errs.push(FieldError::invalid(
                        child(path, "x-kubernetes-list-map-keys"),
                        keys_value.clone(),
                        "entries must all be names of item properties",
                    )),
                }
                if seen.contains(k) {
                    errs.push(FieldError::invalid(
                        child(path, "x-kubernetes-list-map-keys"),
                        keys_value.clone(),
                        "must not contain duplicate entries",
                    ));
                }
                seen.push(*k);
            }
        }
    }
}

/// `validateMapListKeysMapSet`: items of `set` and `map` lists are not
/// nullable, and map keys are required or defaulted, and not nullable.
fn map_list_keys_map_set(
    o: &serde_json::Map<String, Value>,
    list_type: Option<&str>,
    map_keys: &[&str],
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(items) = o.get("items").filter(|i| i.is_object()) else {
        return;
    };
    let Some(lt) = list_type.filter(|t| *t == "set" || *t == "map") else {
        return;
    };
    let items_path = child(path, "items");
    if items.get("nullable").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::forbidden(
            child(&items_path, "nullable"),
            format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
        ));
    }
    if lt != "map" {
        return;
    }
    let required: Vec<&str> = items
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for k in map_keys {
        let Some(prop) = items.get("properties").and_then(|p| p.get(*k)) else {
            continue;
        };
        let kp = key(&child(&items_path, "properties"), k);
        if !required.contains(k) && prop.get("default").is_none_or(Value::is_null) {
            errs.push(FieldError::required(
                child(&kp, "default"),
                "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            ));
        }
        if prop.get("nullable").and_then(Value::as_bool) == Some(true) {
            errs.push(FieldError::forbidden(
                child(&kp, "nullable"),
                "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
            ));
        }
    }
}

/// `ValidateListSetsAndMaps` applied to a default of a list schema.
fn check_default_list_sets_and_maps(
    o: &serde_json::Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(default) = o.get("default").filter(|d| !d.is_null()) else {
        return;
    };
    let node = Node::parse(&Value::Object(o.clone()));
    errs.extend(crate::validate::list_sets_and_maps(
        &node,
        default,
        &child(path, "default"),
    ));
}

/// The static checks of `x-kubernetes-validations` entries (CEL compilation
/// itself is `cel`'s).
fn check_rules(
    o: &serde_json::Map<String, Value>,
    rules: &[Value],
    path: &str,
    ctx: &Ctx,
    errs: &mut Vec<FieldError>,
) {
    for (i, rule) in rules.iter().enumerate() {
        let rp = index(&child(path, "x-kubernetes-validations"), i);
        let get = |k: &str| rule.get(k).and_then(Value::as_str).unwrap_or("");
        let (text, message, message_expr, field_path) = (
            get("rule"),
            get("message"),
            get("messageExpression"),
            get("fieldPath"),
        );
        let (t_rule, t_msg, t_expr) = (text.trim(), message.trim(), message_expr.trim());
        if t_rule.is_empty() {
            errs.push(FieldError::required(
                child(&rp, "rule"),
                "rule is not specified",
            ));
        } else if !message.is_empty() && t_msg.is_empty() {
            errs.push(FieldError::invalid(
                child(&rp, "message"),
                message,
                "message must be non-empty if specified",
            ));
        } else if has_newlines(t_msg) {
            errs.push(FieldError::invalid(
                child(&rp, "message"),
                message,
                "message must not contain line breaks",
            ));
        } else if has_newlines(t_rule) && t_msg.is_empty() {
            errs.push(FieldError::required(
                child(&rp, "message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        if !message_expr.is_empty() && t_expr.is_empty() {
            errs.push(FieldError::required(
                child(&rp, "messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = rule.get("reason").and_then(Value::as_str)
            && !SUPPORTED_REASONS.contains(&reason)
        {
            errs.push(FieldError::not_supported(
                child(&rp, "reason"),
                reason,
                SUPPORTED_REASONS,
            ));
        }
        if !field_path.is_empty() && field_path.trim().is_empty() {
            errs.push(FieldError::invalid(
                child(&rp, "fieldPath"),
                field_path,
                "fieldPath must be non-empty if specified",
            ));
        }
        if has_newlines(field_path) {
            errs.push(FieldError::invalid(
                child(&rp, "fieldPath"),
                field_path,
                "fieldPath must not contain line breaks",
            ));
        }
        if !field_path.is_empty() && !field_path_valid(&Value::Object(o.clone()), field_path) {
            errs.push(FieldError::invalid(
                child(&rp, "fieldPath"),
                field_path,
                "fieldPath must be a valid path",
            ));
        }
        if !t_rule.is_empty() {
            let uses_old_self = crate::cel::references_old_self(text);
            if uses_old_self {
                if let Some(at) = &ctx.uncorrelatable {
                    errs.push(FieldError::invalid(
                        child(&rp, "rule"),
                        text,
                        format!(
                            "oldSelf cannot be used on the uncorrelatable portion of the schema within {at}"
                        ),
                    ));
                }
            } else if let Some(opt) = rule.get("optionalOldSelf").and_then(Value::as_bool) {
                errs.push(FieldError::invalid(
                    child(&rp, "optionalOldSelf"),
                    opt,
                    "may not be set if oldSelf is not used in rule",
                ));
            }
        }
    }
}

/// Whether a rule's `fieldPath` (`.spec.x`, `.a['b.c']`, `.list[0]`) names a
/// field the schema declares (`pathValid` upstream: properties, map keys and
/// list indexes only).
pub(crate) fn field_path_valid(schema: &Value, field_path: &str) -> bool {
    let Some(segments) = parse_field_path(field_path) else {
        return false;
    };
    let mut s = schema;
    for seg in segments {
        match seg {
            Segment::Field(name) => {
                if let Some(p) = s.get("properties").and_then(|p| p.get(&name)) {
                    s = p;
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    s = ap;
                } else {
                    return false;
                }
            }
            Segment::Index => match s.get("items") {
                Some(items) if items.is_object() => s = items,
                _ => return false,
            },
        }
    }
    true
}

/// One step of a rule `fieldPath`.
#[derive(Debug, PartialEq)]
pub(crate) enum Segment {
    /// `.name` or `['name']`.
    Field(String),
    /// `[3]`.
    Index,
}

/// Splits a rule `fieldPath` into steps; `None` when malformed.
pub(crate) fn parse_field_path(p: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                if j == start {
                    return None;
                }
                out.push(Segment::Field(chars[start..j].iter().collect()));
                i = j;
            }
            '[' => {
                let close = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    out.push(Segment::Field(q.to_string()));
                } else if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit()) {
                    out.push(Segment::Index);
                } else {
                    return None;
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Which kind of place a structural node sits in.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

/// `ValidateStructural`: invariants and completeness.
pub(crate) fn validate_structural(node: &Node, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    invariants(node, Level::Root, path, &mut errs);
    completeness(node, path, &mut errs);
    errs
}

fn is_int_or_string_any_of(any_of: &[Node]) -> bool {
    any_of.len() == 2
        && any_of[0].ty == "integer"
        && any_of[1].ty == "string"
        && any_of.iter().all(|n| {
            n.properties.is_empty() && n.items.is_none() && n.format.is_empty() && !n.nullable
        })
}

fn invariants(s: &Node, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    if s.ty == "array" && s.items.is_none() {
        errs.push(FieldError::required(
            child(path, "items"),
            "must be specified",
        ));
    }
    if let Some(items) = &s.items {
        invariants(items, Level::Item, &child(path, "items"), errs);
    }
    for (k, v) in &s.properties {
        invariants(v, Level::Field, &key(&child(path, "properties"), k), errs);
    }
    if s.additional.is_set() {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(ap) = s.additional.schema() {
            invariants(ap, Level::Field, &child(path, "additionalProperties"), errs);
        }
    }
    if s.int_or_string && s.preserve_unknown {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-embedded-resource"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = is_int_or_string_any_of(&s.any_of);
    let skip_first_all_of_any_of = s
        .all_of
        .first()
        .is_some_and(|a| is_int_or_string_any_of(&a.any_of));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errs);

    let check_metadata = lvl == Level::Root || s.embedded;
    if s.embedded && s.ty != "object" {
        type_must(
            path,
            &s.ty,
            "must be object if x-kubernetes-embedded-resource is true",
            errs,
        );
    } else if s.ty.is_empty() && !s.int_or_string && !s.preserve_unknown {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(child(path, "type"), detail));
    }
    if s.embedded && s.additional.is_set() {
        errs.push(FieldError::forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !s.ty.is_empty() && s.ty != "object" {
        errs.push(FieldError::invalid(
            child(path, "type"),
            s.ty.as_str(),
            "must be object at the root",
        ));
    }
    for f in ["kind", "apiVersion"] {
        if let Some(p) = s.properties.get(f)
            && check_metadata
            && p.ty != "string"
        {
            errs.push(FieldError::invalid(
                child(&key(&child(path, "properties"), f), "type"),
                p.ty.as_str(),
                "must be string",
            ));
        }
    }
    if let Some(meta) = s.properties.get("metadata") {
        let mp = key(&child(path, "properties"), "metadata");
        if check_metadata && meta.ty != "object" {
            errs.push(FieldError::invalid(
                child(&mp, "type"),
                meta.ty.as_str(),
                "must be object",
            ));
        }
        if lvl == Level::Root && !metadata_only_names(meta) {
            errs.push(FieldError::forbidden(
                mp,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if s.embedded && !s.preserve_unknown && s.properties.is_empty() {
        errs.push(FieldError::required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// Whether a root `metadata` schema restricts nothing but `name` and
/// `generateName` (its type, default and description aside).
fn metadata_only_names(m: &Node) -> bool {
    let only_names = m
        .properties
        .keys()
        .all(|k| k == "name" || k == "generateName");
    only_names
        && m.items.is_none()
        && !m.additional.is_set()
        && !m.nullable
        && m.format.is_empty()
        && !m.preserve_unknown
        && !m.embedded
        && !m.int_or_string
        && m.list_type.is_none()
        && m.map_type.is_none()
        && m.enum_values.is_none()
        && m.pattern.is_none()
        && m.maximum.is_none()
        && m.minimum.is_none()
        && m.multiple_of.is_none()
        && m.max_length.is_none()
        && m.min_length.is_none()
        && m.max_items.is_none()
        && m.min_items.is_none()
        && m.max_properties.is_none()
        && m.min_properties.is_none()
        && m.required.is_empty()
        && m.all_of.is_empty()
        && m.any_of.is_empty()
        && m.one_of.is_empty()
        && m.not.is_none()
        && !m.has_rules
}

fn value_validation(
    s: &Node,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, n) in s.any_of.iter().enumerate() {
            nested(n, false, &index(&child(path, "anyOf"), i), errs);
        }
    }
    for (i, n) in s.all_of.iter().enumerate() {
        nested(
            n,
            skip_first_all_of_any_of && i == 0,
            &index(&child(path, "allOf"), i),
            errs,
        );
    }
    for (i, n) in s.one_of.iter().enumerate() {
        nested(n, false, &index(&child(path, "oneOf"), i), errs);
    }
    if let Some(n) = &s.not {
        nested(n, false, &child(path, "not"), errs);
    }
    if let Some((p, None)) = &s.pattern {
        let err = Regex::new(p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        errs.push(FieldError::invalid(
            child(path, "pattern"),
            p.as_str(),
            format!("must be a valid regular expression, but isn't: {err}"),
        ));
    }
}

/// `validateNestedValueValidation`: what a schema under a junctor may not say.
fn nested(v: &Node, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    value_validation(v, skip_any_of, false, path, errs);
    if let Some(items) = &v.items {
        nested(items, false, &child(path, "items"), errs);
    }
    for (k, p) in &v.properties {
        nested(p, false, &key(&child(path, "properties"), k), errs);
    }
    if !v.ty.is_empty() {
        errs.push(FieldError::forbidden(
            child(path, "type"),
            "must be empty to be structural",
        ));
    }
    if v.additional.is_set() {
        errs.push(FieldError::forbidden(
            child(path, "additionalProperties"),
            "must be undefined to be structural",
        ));
    }
    if v.default.is_some() {
        errs.push(FieldError::forbidden(
            child(path, "default"),
            "must be undefined to be structural",
        ));
    }
    if v.nullable {
        errs.push(FieldError::forbidden(
            child(path, "nullable"),
            "must be false to be structural",
        ));
    }
    for (set, name, detail) in [
        (
            v.preserve_unknown,
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            v.embedded,
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            v.int_or_string,
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            !v.list_map_keys.is_empty(),
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            v.list_type.is_some(),
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            v.map_type.is_some(),
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
        (
            v.has_rules,
            "x-kubernetes-validations",
            "must be empty to be structural",
        ),
    ] {
        if set {
            errs.push(FieldError::forbidden(child(path, name), detail));
        }
    }
    if v.properties.contains_key("metadata") {
        errs.push(FieldError::forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// `validateStructuralCompleteness`: every field a junctor mentions is also
/// specified structurally.
fn completeness(s: &Node, s_path: &str, errs: &mut Vec<FieldError>) {
    if let Some(items) = &s.items {
        completeness(items, &child(s_path, "items"), errs);
    }
    for (k, p) in &s.properties {
        completeness(p, &key(&child(s_path, "properties"), k), errs);
    }
    let v_path = s_path;
    let branches = s
        .not
        .iter()
        .map(|n| (n.as_ref(), child(v_path, "not")))
        .chain(
            s.all_of
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(&child(v_path, "allOf"), i))),
        )
        .chain(
            s.any_of
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(&child(v_path, "anyOf"), i))),
        )
        .chain(
            s.one_of
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(&child(v_path, "oneOf"), i))),
        );
    for (v, vp) in branches {
        nested_completeness(v, Some(s), s_path, &vp, errs);
    }
}

fn nested_completeness(
    v: &Node,
    s: Option<&Node>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_path,
            format!("because it is defined in {v_path}"),
        ));
        return;
    };
    // The junctors nested in `v` are checked against the same structural node.
    for (n, vp) in v
        .not
        .iter()
        .map(|n| (n.as_ref(), child(v_path, "not")))
        .chain(
            v.all_of
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(&child(v_path, "allOf"), i))),
        )
        .chain(
            v.any_of
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(&child(v_path, "anyOf"), i))),
        )
        .chain(
            v.one_of
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(&child(v_path, "oneOf"), i))),
        )
    {
        nested_completeness(n, Some(s), s_path, &vp, errs);
    }
    if let Some(items) = &v.items {
        nested_completeness(
            items,
            s.items.as_deref(),
            &child(s_path, "items"),
            &child(v_path, "items"),
            errs,
        );
    }
    for (k, vf) in &v.properties {
        let sp = key(&child(s_path, "properties"), k);
        let vp = key(&child(v_path, "properties"), k);
        match s.properties.get(k) {
            Some(sf) => nested_completeness(vf, Some(sf), &sp, &vp, errs),
            None => errs.push(FieldError::required(
                sp,
                format!("because it is defined in {vp}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn type_is_required_below_the_root() {
        let s = json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}});
        assert_eq!(
            msgs(&check_schema(&s, "schema")),
            [
                "schema.properties[spec].type: Required value: must not be empty for specified object fields"
            ]
        );
    }

    #[test]
    fn forbidden_keywords_are_reported() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "b": {"$ref": "#/x", "type": "string"},
            "c": {"type": "null"}}});
        let m = msgs(&check_schema(&s, "s"));
        assert!(m.contains(&"s.properties[a].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic".to_string()), "{m:?}");
        assert!(
            m.contains(&"s.properties[b].$ref: Forbidden: $ref is not supported".to_string()),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|e| e.starts_with("s.properties[c].type: Unsupported value: \"null\"")),
            "{m:?}"
        );
    }

    #[test]
    fn junctors_may_not_carry_structure() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string",
            "anyOf": [{"type": "string"}, {"properties": {"b": {"maxLength": 2}}}]}}});
        let m = msgs(&check_schema(&s, "s"));
        assert_eq!(
            m,
            [
                "s.properties[a].anyOf[0].type: Forbidden: must be empty to be structural",
                "s.properties[a].properties[b]: Required value: because it is defined in s.properties[a].anyOf[1].properties[b]",
            ]
        );
    }

    #[test]
    fn int_or_string_any_of_is_allowed() {
        let s = json!({"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]}}});
        assert!(check_schema(&s, "s").is_empty());
    }

    #[test]
    fn root_metadata_may_only_restrict_names() {
        let ok = json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"name": {"type": "string", "maxLength": 10}}}}});
        assert!(check_schema(&ok, "s").is_empty());
        let bad = json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}});
        assert_eq!(
            msgs(&check_schema(&bad, "s")),
            [
                "s.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ]
        );
    }

    #[test]
    fn list_map_needs_keys_and_object_items() {
        let s = json!({"type": "object", "properties": {"l": {"type": "array",
            "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {"a": {"type": "object"}}},
            "x-kubernetes-list-map-keys": ["a", "b"]}}});
        let m = msgs(&check_schema(&s, "s"));
        assert!(m.contains(&"s.properties[l].items.properties[a].type: Invalid value: \"object\": must be a scalar type if parent array's x-kubernetes-list-type is map".to_string()), "{m:?}");
        assert!(m.contains(&"s.properties[l].x-kubernetes-list-map-keys: Invalid value: [\"a\",\"b\"]: entries must all be names of item properties".to_string()), "{m:?}");
    }

    #[test]
    fn field_paths_parse() {
        assert_eq!(
            parse_field_path(".a['b.c'][0]"),
            Some(vec![
                Segment::Field("a".into()),
                Segment::Field("b.c".into()),
                Segment::Index
            ])
        );
        assert_eq!(parse_field_path("a"), None);
        let s = json!({"properties": {"a": {"type": "array", "items": {"type": "object", "properties": {"b": {}}}}}});
        assert!(field_path_valid(&s, ".a[1].b"));
        assert!(!field_path_valid(&s, ".a.c"));
    }
}
