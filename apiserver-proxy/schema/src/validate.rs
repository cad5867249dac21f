//! OpenAPI v3 validation of custom resources, as kube-openapi's
//! `validate.SchemaValidator` with apiextensions-apiserver's conversion of its
//! results to field errors (`kubeOpenAPIResultToFieldErrors`), plus the
//! structural checks that follow it upstream: list-type set/map uniqueness
//! (`ValidateListSetsAndMaps`) and embedded resources' `apiVersion`, `kind` and
//! `metadata` (`objectmeta.Validate`), and validation ratcheting on update.
//!
//! This module only reads objects; it never prunes, defaults or evaluates CEL.

use nestkube_api::error::FieldError;
use serde_json::{Map, Value};

use crate::formats;
use crate::names;
use crate::path::{child, index};
use crate::structural::{Additional, Node};

/// The validation result of one schema, before conversion: errors plus how
/// many checks ran (kube-openapi's `MatchCount`, used to pick the branch of an
/// `anyOf`/`oneOf` whose errors are reported).
#[derive(Default)]
struct Outcome {
    errors: Vec<FieldError>,
    checks: usize,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.errors.extend(other.errors);
        self.checks += other.checks;
    }
    fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// kube-openapi's message name for a path (`spec.x`); the field error path is
/// the same with a leading dot trimmed.
fn field_of(name: &str) -> String {
    match name.trim_start_matches('.') {
        "" => NIL_PATH.to_string(),
        n => n.to_string(),
    }
}

/// How upstream prints the nil `field.Path` of root-level errors.
pub(crate) const NIL_PATH: &str = "<nil>";

/// A plain `error` (not an `errors.Validation`) converts at the nil path with `""`.
fn plain(message: String) -> FieldError {
    FieldError::invalid(NIL_PATH, "", message)
}

/// An `errors.Validation` that converts through the default branch.
fn invalid(name: &str, value: Value, message: String) -> FieldError {
    FieldError::invalid(field_of(name), value, message)
}

/// The JSON type kube-openapi infers for a value (`schemaInfoForType`).
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The format kube-openapi infers for a value.
fn json_format(v: &Value) -> &'static str {
    match v {
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        _ => "",
    }
}

/// Go's `%v` of a float64.
pub(crate) fn go_float(f: f64) -> String {
    if f == f.trunc() && f.abs() < 1e21 {
        return format!("{}", f as i128);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Rust prints `1e21`/`1.5e-7`; Go prints `1e+21`/`1.5e-07`.
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{f}")
}

fn is_json_integer(f: f64) -> bool {
    f.is_finite() && f == f.trunc() && f.abs() <= 9_007_199_254_740_992.0
}

/// The types a node accepts, as kube-openapi sees the converted schema.
fn types(s: &Node) -> Vec<&str> {
    if s.int_or_string {
        vec!["integer", "string"]
    } else if s.ty.is_empty() {
        vec![]
    } else {
        vec![s.ty.as_str()]
    }
}

/// Validates `data` against `s` at kube-openapi path `name` (`""` at the root).
/// Validates `data` against `s`; `old` is the correlated old value on update
/// (ratcheting: an unchanged value is not validated at all, as upstream's
/// ratcheting validator does).
fn validate_node(s: &Node, data: &Value, old: Option<&Value>, name: &str) -> Outcome {
    let mut out = Outcome::default();
    if old == Some(data) {
        return out;
    }
    let tys = types(s);
    if data.is_null() {
        out.merge(type_check(s, &tys, data, name));
        out.merge(enum_check(s, data, name));
        return out;
    }
    if !tys.is_empty() || !s.format.is_empty() {
        out.merge(type_check(s, &tys, data, name));
        out.checks += 1;
    }
    out.merge(junctors(s, data, name));
    out.checks += 1;
    if let Value::String(text) = data {
        out.merge(string_checks(s, text, name));
        out.checks += 1;
        if formats::is_known(&s.format) {
            if !formats::validates(&s.format, text) {
                out.errors.push(FieldError::type_invalid(
                    field_of(name),
                    text.as_str(),
                    format!("{name} in body must be of type {}: {text:?}", s.format),
                ));
            }
            out.checks += 1;
        }
    }
    if let Value::Number(_) = data {
        out.merge(number_checks(s, &tys, data, name));
        out.checks += 1;
    }
    if let Value::Array(items) = data {
        out.merge(slice_checks(s, items, old.and_then(Value::as_array), name));
        out.checks += 1;
    }
    out.merge(enum_check(s, data, name));
    out.checks += 1;
    if let Value::Object(map) = data {
        out.merge(object_checks(s, map, old.and_then(Value::as_object), name));
        out.checks += 1;
    }
    out.checks += 1;
    out
}

fn type_error(name: &str, expected: &str, value: &str) -> FieldError {
    FieldError::type_invalid(
        field_of(name),
        value,
        format!("{name} in body must be of type {expected}: {value:?}"),
    )
}

/// kube-openapi's `typeValidator`.
fn type_check(s: &Node, tys: &[&str], data: &Value, name: &str) -> Outcome {
    let mut out = Outcome {
        checks: 1,
        ..Default::default()
    };
    if data.is_null() {
        if !tys.is_empty() && !tys.contains(&"null") && !s.nullable {
            out.errors.push(type_error(name, &tys.join(","), "null"));
        }
        return out;
    }
    let sch = json_type(data);
    let fmt = json_format(data);
    let contains = |t: &str| tys.contains(&t);
    let is_float_int =
        sch == "number" && data.as_f64().is_some_and(is_json_integer) && contains("integer");
    let is_int_float = sch == "integer" && contains("number");
    let is_string_or_slice = matches!(data, Value::String(_) | Value::Array(_));
    let has_format = !s.format.is_empty();
    let numeric = contains("number") || contains("integer");
    let format_fits = contains(sch) || fmt == s.format || is_float_int || is_int_float;
    if has_format && !is_string_or_slice && !format_fits {
        out.errors.push(type_error(name, &s.format, fmt));
        return out;
    }
    // A format on a non-numeric schema makes kube-openapi skip the type of
    // strings and arrays.
    if has_format && !numeric && is_string_or_slice {
        return out;
    }
    if !(contains(sch) || is_float_int || is_int_float) {
        out.errors.push(type_error(name, &tys.join(","), sch));
    }
    out
}

/// `basicCommonValidator`: `enum`.
fn enum_check(s: &Node, data: &Value, name: &str) -> Outcome {
    let mut out = Outcome::default();
    let Some(values) = &s.enum_values else {
        return out;
    };
    if values.is_empty() {
        return out;
    }
    if !data.is_null() && values.iter().any(|e| enum_equal(data, e)) {
        return out;
    }
    let supported: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
    out.errors.push(FieldError::not_supported(
        field_of(name),
        data.clone(),
        &refs,
    ));
    out
}

/// Go's `reflect.DeepEqual` after converting the data to the enum value's
/// type: numbers compare by value whatever their representation.
fn enum_equal(data: &Value, e: &Value) -> bool {
    match (data, e) {
        (Value::Number(a), Value::Number(b)) => {
            if b.is_f64() || a.is_f64() {
                a.as_f64() == b.as_f64()
            } else {
                a.as_i64() == b.as_i64() && a.as_u64() == b.as_u64()
            }
        }
        _ => data == e,
    }
}

/// `schemaPropsValidator`: `allOf`, `anyOf`, `oneOf`, `not`.
fn junctors(s: &Node, data: &Value, name: &str) -> Outcome {
    let mut out = Outcome::default();
    if !s.any_of.is_empty() {
        let mut best: Option<Outcome> = None;
        let mut ok = false;
        for branch in &s.any_of {
            let r = validate_node(branch, data, None, name);
            if r.valid() {
                ok = true;
                best = None;
                break;
            }
            if best.as_ref().is_none_or(|b| r.checks > b.checks) {
                best = Some(r);
            }
        }
        if !ok {
            out.errors.push(plain(format!(
                "{name:?} must validate at least one schema (anyOf)"
            )));
        }
        if let Some(b) = best {
            out.merge(b);
        }
    }
    if !s.one_of.is_empty() {
        let mut best: Option<Outcome> = None;
        let mut validated = 0;
        for branch in &s.one_of {
            let r = validate_node(branch, data, None, name);
            if r.valid() {
                validated += 1;
                best = None;
                continue;
            }
            if validated == 0 && best.as_ref().is_none_or(|b| r.checks > b.checks) {
                best = Some(r);
            }
        }
        if validated != 1 {
            let more = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {validated} valid alternatives")
            };
            out.errors.push(plain(format!(
                "{name:?} must validate one and only one schema (oneOf). {more}"
            )));
            if let Some(b) = best {
                out.merge(b);
            }
        }
    }
    if !s.all_of.is_empty() {
        let mut validated = 0;
        for branch in &s.all_of {
            let r = validate_node(branch, data, None, name);
            if r.valid() {
                validated += 1;
            }
            out.merge(r);
        }
        if validated != s.all_of.len() {
            let more = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            out.errors.push(plain(format!(
                "{name:?} must validate all the schemas (allOf){more}"
            )));
        }
    }
    if let Some(not) = &s.not
        && validate_node(not, data, None, name).valid()
    {
        out.errors.push(plain(format!(
            "{name:?} must not validate the schema (not)"
        )));
    }
    out
}

/// `stringValidator`: the first failing of `maxLength`, `minLength`, `pattern`.
fn string_checks(s: &Node, text: &str, name: &str) -> Outcome {
    let mut out = Outcome::default();
    let len = text.chars().count() as i64;
    if let Some(max) = s.max_length
        && len > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        out.errors.push(FieldError {
            kind: nestkube_api::error::FieldErrorType::TooLong,
            field: field_of(name),
            value: None,
            detail: format!("may not be more than {max} {unit}"),
        });
        return out;
    }
    if let Some(min) = s.min_length
        && len < min
    {
        out.errors.push(invalid(
            name,
            text.into(),
            format!("{name} in body should be at least {min} chars long"),
        ));
        return out;
    }
    if let Some((pattern, re)) = &s.pattern {
        match re {
            Some(re) if re.is_match(text) => {}
            Some(_) => out.errors.push(invalid(
                name,
                text.into(),
                format!("{name} in body should match '{pattern}'"),
            )),
            None => out.errors.push(invalid(
                name,
                text.into(),
                format!("{name} in body should match '{pattern}, but pattern is invalid'"),
            )),
        }
    }
    out
}

/// `IsValueValidAgainstRange`: whether a number fits the declared format.
fn fits_format(v: f64, int: Option<i64>, ty: &str, format: &str) -> bool {
    match ty {
        "integer" => {
            let Some(i) = int.or_else(|| is_json_integer(v).then_some(v as i64)) else {
                return false;
            };
            match format {
                "int32" => i32::try_from(i).is_ok(),
                _ => true,
            }
        }
        _ => match format {
            "float" | "float32" => v.abs() <= f32::MAX as f64,
            _ => true,
        },
    }
}

/// `numberValidator`: range of the format, `multipleOf`, `maximum`, `minimum`.
fn number_checks(s: &Node, tys: &[&str], data: &Value, name: &str) -> Outcome {
    let mut out = Outcome::default();
    let (ty, format) = match tys {
        ["integer"] => (
            "integer",
            if ["int32", "int64"].contains(&s.format.as_str()) {
                s.format.as_str()
            } else {
                ""
            },
        ),
        ["number"] => (
            "number",
            if ["float", "double"].contains(&s.format.as_str()) {
                s.format.as_str()
            } else {
                ""
            },
        ),
        _ => ("", ""),
    };
    let f = data.as_f64().unwrap_or_default();
    let int = data
        .as_i64()
        .filter(|_| !data.as_number().is_some_and(|n| n.is_f64()));
    let range_error = |prefix: &str| {
        if format.is_empty() {
            format!("{prefix} value must be of type {ty} (default format) in {name}")
        } else {
            format!("{prefix} value must be of type {ty} with format {format} in {name}")
        }
    };
    if !ty.is_empty() && !fits_format(f, int, ty, format) {
        out.errors.push(plain(range_error("Checked")));
    }
    let bound_fits = |b: f64| ty.is_empty() || fits_format(b, None, ty, format);
    if let Some(m) = s.multiple_of {
        if !bound_fits(m) {
            out.errors.push(plain(range_error("MultipleOf")));
        }
        let failed = if m <= 0.0 {
            out.errors.push(invalid(
                name,
                go_float(m)
                    .parse::<f64>()
                    .map(Value::from)
                    .unwrap_or_default(),
                format!(
                    "factor MultipleOf declared for {name} must be positive: {}",
                    go_float(m)
                ),
            ));
            false
        } else if let (Some(i), true) = (int, bound_fits(m)) {
            let fm = m as i64;
            fm != 0 && i % fm != 0
        } else {
            let mult = if m < 1.0 { 1.0 / m * f } else { f / m };
            !is_json_integer(mult)
        };
        if failed {
            let factor = match (int, bound_fits(m)) {
                (Some(_), true) => (m as i64).to_string(),
                _ => go_float(m),
            };
            out.errors.push(invalid(
                name,
                data.clone(),
                format!("{name} in body should be a multiple of {factor}"),
            ));
        }
    }
    for (bound, exclusive, is_max) in [
        (s.maximum, s.exclusive_maximum, true),
        (s.minimum, s.exclusive_minimum, false),
    ] {
        let Some(b) = bound else { continue };
        if !bound_fits(b) {
            out.errors.push(plain(range_error(if is_max {
                "Maximum boundary"
            } else {
                "Minimum boundary"
            })));
        }
        let (fails, shown) = match (int, bound_fits(b)) {
            (Some(i), true) => {
                let bi = b as i64;
                let fails = if is_max {
                    i > bi || (exclusive && i >= bi)
                } else {
                    i < bi || (exclusive && i <= bi)
                };
                (fails, bi.to_string())
            }
            _ => {
                let fails = if is_max {
                    f > b || (exclusive && f >= b)
                } else {
                    f < b || (exclusive && f <= b)
                };
                (fails, go_float(b))
            }
        };
        if fails {
            let relation = match (is_max, exclusive) {
                (true, false) => "less than or equal to",
                (true, true) => "less than",
                (false, false) => "greater than or equal to",
                (false, true) => "greater than",
            };
            out.errors.push(invalid(
                name,
                data.clone(),
                format!("{name} in body should be {relation} {shown}"),
            ));
        }
    }
    out
}

/// `schemaSliceValidator`: items, `minItems`, `maxItems`, `uniqueItems`.
fn slice_checks(s: &Node, items: &[Value], old: Option<&Vec<Value>>, name: &str) -> Outcome {
    let mut out = Outcome::default();
    if let Some(item_schema) = &s.items {
        for (i, item) in items.iter().enumerate() {
            let old_item = old.and_then(|o| correlate_item(s, item, o));
            out.merge(validate_node(
                item_schema,
                item,
                old_item,
                &format!("{name}[{i}]"),
            ));
        }
    }
    let size = items.len() as i64;
    if let Some(min) = s.min_items
        && size < min
    {
        out.errors.push(invalid(
            name,
            size.into(),
            format!("{name} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = s.max_items
        && size > max
    {
        out.errors
            .push(FieldError::too_many(field_of(name), size, max));
    }
    if s.unique_items
        && items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].contains(a))
    {
        out.errors.push(invalid(
            name,
            "".into(),
            format!("{name} in body shouldn't contain duplicates"),
        ));
    }
    out
}

/// `objectValidator`: property counts, additional properties, properties, required.
/// The old item a list item is correlated with: by key in `map` lists, by
/// value in `set` lists; `atomic` lists correlate nothing.
fn correlate_item<'a>(s: &Node, item: &Value, old: &'a [Value]) -> Option<&'a Value> {
    match s.list_type.as_deref() {
        Some("map") => old
            .iter()
            .find(|o| s.list_map_keys.iter().all(|k| o.get(k) == item.get(k))),
        Some("set") => old.iter().find(|o| *o == item),
        _ => None,
    }
}

fn object_checks(
    s: &Node,
    map: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
    name: &str,
) -> Outcome {
    let mut out = Outcome::default();
    let n = map.len() as i64;
    if let Some(min) = s.min_properties
        && n < min
    {
        out.errors.push(invalid(
            name,
            n.into(),
            format!("{name} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = s.max_properties
        && n > max
    {
        out.errors
            .push(FieldError::too_many(field_of(name), n, max));
    }
    match &s.additional {
        Additional::Allows(false) => {
            for k in map.keys() {
                if !s.properties.contains_key(k) {
                    out.errors.push(invalid(
                        name,
                        k.as_str().into(),
                        format!("{name}.{k} in body is a forbidden property"),
                    ));
                }
            }
        }
        Additional::Schema(ap) => {
            for (k, v) in map {
                if !s.properties.contains_key(k) {
                    let old_v = old.and_then(|o| o.get(k));
                    out.merge(validate_node(ap, v, old_v, &format!("{name}.{k}")));
                }
            }
        }
        _ => {}
    }
    for (k, prop) in &s.properties {
        if let Some(v) = map.get(k) {
            let child_name = if name.is_empty() {
                k.clone()
            } else {
                format!("{name}.{k}")
            };
            out.merge(validate_node(
                prop,
                v,
                old.and_then(|o| o.get(k)),
                &child_name,
            ));
        }
    }
    for k in &s.required {
        if !map.contains_key(k) {
            out.errors
                .push(FieldError::required(field_of(&format!("{name}.{k}")), ""));
        }
    }
    out
}

/// Upstream's `ValidateCustomResource` (`old` is None) and
/// `ValidateCustomResourceUpdate` with ratcheting: the OpenAPI schema errors
/// of `obj`.
pub(crate) fn openapi(s: &Node, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    validate_node(s, obj, old, "").errors
}

/// The OpenAPI errors of a default value declared at schema path `path`, as
/// upstream reports them (`ValidateCustomResource(fldPath.Child("default"), …)`):
/// the error path is prefixed, kube-openapi's names start empty.
pub(crate) fn openapi_at(s: &Node, value: &Value, path: &str) -> Vec<FieldError> {
    validate_node(s, value, None, "")
        .errors
        .into_iter()
        .map(|mut e| {
            e.field = if e.field == NIL_PATH {
                path.to_string()
            } else {
                child(path, &e.field)
            };
            e
        })
        .collect()
}

/// The path of an object entry: a declared property is a child (`a.b`), a map
/// entry a key (`a[b]`), as upstream's structural walks name them.
fn entry_path(s: &Node, path: &str, k: &str) -> String {
    if s.properties.contains_key(k) {
        child(path, k)
    } else {
        crate::path::key(path, k)
    }
}

/// `ValidateListSetsAndMaps`: no duplicate items in `set` lists, unique keys
/// (all present) in `map` lists.
pub(crate) fn list_sets_and_maps(s: &Node, v: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    list_walk(s, v, path, &mut errs);
    errs
}

fn list_walk(s: &Node, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                if let Some(p) = s.field(k) {
                    list_walk(p, val, &entry_path(s, path, k), errs);
                }
            }
        }
        Value::Array(items) => {
            match s.list_type.as_deref() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].iter().any(|prev| enum_equal(prev, item)) {
                            errs.push(FieldError::duplicate(index(path, i), item.clone()));
                        }
                    }
                }
                Some("map") => list_map(s, items, path, errs),
                _ => {}
            }
            if let Some(item_schema) = &s.items {
                for (i, item) in items.iter().enumerate() {
                    list_walk(item_schema, item, &index(path, i), errs);
                }
            }
        }
        _ => {}
    }
}

fn list_map(s: &Node, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let before = errs.len();
    for (i, item) in items.iter().enumerate() {
        if !item.is_null() && !item.is_object() {
            errs.push(FieldError::invalid(
                index(path, i),
                item.clone(),
                "must be an object for an array of list-type map",
            ));
        }
    }
    if errs.len() > before {
        return;
    }
    let mut keys: Vec<Option<Value>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            keys.push(None);
            continue;
        };
        let mut key_map = Map::new();
        for k in &s.list_map_keys {
            match obj.get(k) {
                Some(v) => {
                    key_map.insert(k.clone(), v.clone());
                }
                None => {
                    // Upstream defaults missing keys with their schema default
                    // before comparing; a key without one is required.
                    let default = s
                        .items
                        .as_ref()
                        .and_then(|it| it.properties.get(k))
                        .and_then(|p| p.default.clone());
                    match default {
                        Some(d) => {
                            key_map.insert(k.clone(), d);
                        }
                        None => errs.push(FieldError::required(child(&index(path, i), k), "")),
                    }
                }
            }
        }
        keys.push(Some(Value::Object(key_map)));
    }
    if errs.len() > before {
        return;
    }
    for (i, k) in keys.iter().enumerate() {
        if let Some(k) = k
            && keys[..i].iter().any(|prev| prev.as_ref() == Some(k))
        {
            errs.push(FieldError::duplicate(index(path, i), k.clone()));
        }
    }
}

/// `objectmeta.Validate` below the root: every `x-kubernetes-embedded-resource`
/// value needs a valid `apiVersion` and `kind`, and its `metadata` must be a
/// valid ObjectMeta.
pub(crate) fn embedded_resources(s: &Node, v: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    embedded_walk(s, v, path, true, &mut errs);
    errs
}

fn embedded_walk(s: &Node, v: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    match v {
        Value::Object(map) => {
            if s.embedded && !root {
                embedded_resource(map, path, errs);
            }
            for (k, val) in map {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(p) = s.field(k) {
                    embedded_walk(p, val, &entry_path(s, path, k), false, errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &s.items {
                for (i, item) in items.iter().enumerate() {
                    embedded_walk(item_schema, item, &index(path, i), false, errs);
                }
            }
        }
        _ => {}
    }
}

fn embedded_resource(x: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if !x.contains_key("apiVersion") {
        errs.push(FieldError::required(
            child(path, "apiVersion"),
            "must not be empty",
        ));
    }
    if !x.contains_key("kind") {
        errs.push(FieldError::required(
            child(path, "kind"),
            "must not be empty",
        ));
    }
    for (k, v) in x {
        match k.as_str() {
            "apiVersion" => match v.as_str() {
                None => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must be a string",
                )),
                Some("") => errs.push(FieldError::invalid(child(path, k), "", "must not be empty")),
                Some(av) => {
                    if let Err(e) = names::parse_group_version(av) {
                        errs.push(FieldError::invalid(child(path, k), av, e));
                    }
                }
            },
            "kind" => match v.as_str() {
                None => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must be a string",
                )),
                Some("") => errs.push(FieldError::invalid(child(path, k), "", "must not be empty")),
                Some(kind) => {
                    let problems = names::dns1035_label(&kind.to_lowercase());
                    if !problems.is_empty() {
                        errs.push(FieldError::invalid(
                            child(path, k),
                            kind,
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                problems.join(",")
                            ),
                        ));
                    }
                }
            },
            "metadata" => errs.extend(crate::meta::validate_embedded(v, &child(path, k))),
            _ => {}
        }
    }
}

/// Whether the value at `field` (an error path) is correlated with, and equal
/// to, the old object's (or, below an `atomic` list, whether that list is).
pub(crate) fn unchanged_at(s: &Node, new: &Value, old: &Value, field: &str) -> bool {
    if field.is_empty() {
        return false;
    }
    let Some(steps) = split_path(field) else {
        return false;
    };
    let (mut s, mut n, mut o) = (Some(s), new, old);
    for step in steps {
        match step {
            Step::Key(k) => {
                let (Some(nn), Some(oo)) = (n.get(&k), o.get(&k)) else {
                    return false;
                };
                s = s.and_then(|s| s.field(&k));
                n = nn;
                o = oo;
            }
            Step::Index(i) if n.is_object() => {
                let k = i.to_string();
                let (Some(nn), Some(oo)) = (n.get(&k), o.get(&k)) else {
                    return false;
                };
                s = s.and_then(|s| s.field(&k));
                n = nn;
                o = oo;
            }
            Step::Index(i) => {
                let Some(schema) = s else { return false };
                let (Some(items), Some(old_items)) = (n.as_array(), o.as_array()) else {
                    return false;
                };
                let Some(item) = items.get(i) else {
                    return false;
                };
                let correlated = match schema.list_type.as_deref() {
                    Some("map") => old_items.iter().find(|oi| {
                        schema
                            .list_map_keys
                            .iter()
                            .all(|k| oi.get(k) == item.get(k))
                    }),
                    Some("set") => old_items.iter().find(|oi| *oi == item),
                    _ => None,
                };
                // Past an uncorrelatable list, upstream decides by the nearest
                // correlatable ancestor: the list itself.
                let Some(oi) = correlated else { return n == o };
                s = schema.items.as_deref();
                n = item;
                o = oi;
            }
        }
    }
    n == o
}

/// The value at an error path (`spec.list[2].name`), if present.
pub(crate) fn value_at<'a>(obj: &'a Value, field: &str) -> Option<&'a Value> {
    if field.is_empty() {
        return Some(obj);
    }
    let mut v = obj;
    for step in split_path(field)? {
        v = match step {
            Step::Key(k) => v.get(&k)?,
            Step::Index(i) if v.is_object() => v.get(i.to_string())?,
            Step::Index(i) => v.get(i)?,
        };
    }
    Some(v)
}

enum Step {
    Key(String),
    Index(usize),
}

/// Splits an error path (`spec.list[2].name`, `spec.labels[app.kubernetes.io/name]`)
/// into steps; a bracketed number reads as an index (and as a key on objects).
fn split_path(p: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !current.is_empty() {
                    out.push(Step::Key(std::mem::take(&mut current)));
                }
            }
            '[' => {
                if !current.is_empty() {
                    out.push(Step::Key(std::mem::take(&mut current)));
                }
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                match inner.parse::<usize>() {
                    Ok(i) => out.push(Step::Index(i)),
                    Err(_) => out.push(Step::Key(inner)),
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(Step::Key(current));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(schema: Value, obj: Value) -> Vec<String> {
        openapi(&Node::parse(&schema), &obj, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn go_floats_print_as_go() {
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(2.5), "2.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
    }

    #[test]
    fn integral_floats_are_integers() {
        let s = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        assert!(errs(s, json!({"a": 1.0})).is_empty());
    }

    #[test]
    fn null_needs_nullable() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string", "nullable": true}}});
        assert_eq!(
            errs(s, json!({"a": null, "b": null})),
            ["a: Invalid value: \"null\": a in body must be of type string: \"null\""]
        );
    }

    #[test]
    fn split_paths() {
        let steps = split_path("spec.l[2].x").unwrap();
        assert_eq!(steps.len(), 4);
        let steps = split_path("spec.labels[app.kubernetes.io/name].x").unwrap();
        assert!(matches!(&steps[2], Step::Key(k) if k == "app.kubernetes.io/name"));
        assert_eq!(steps.len(), 4);
    }
}
