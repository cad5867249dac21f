//! The schema table generated from the Kubernetes Go types
//! (`apiserver-proxy/data/protobuf-schema.json`, see `e2e/gen-protodata`):
//! for every Go struct its fields in declaration order with protobuf number,
//! JSON name, type and `omitempty`/`omitzero`/inline flags, and for every
//! group/version/kind its root type.
//!
//! Owns parsing the table once (lazily) into resolved, index-based form.
//! Never hand-edits or guesses field shapes: if the table lacks something, the
//! decoder reports it.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

static TABLE: &[u8] = include_bytes!("../../data/protobuf-schema.json");

/// The process-wide schema, parsed on first use.
pub static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(|| Schema::parse(TABLE));

/// A Go scalar kind as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// Go `string` (and named string types), wire type 2.
    String,
    /// Go `bool`, varint.
    Bool,
    /// Go `int32`, varint (truncated to 32 bits like Go).
    Int32,
    /// Go `int64`/`int`, varint.
    Int64,
    /// Go `uint32`, varint.
    Uint32,
    /// Go `uint64`, varint.
    Uint64,
    /// Go `float32`, fixed32.
    Float32,
    /// Go `float64`, fixed64.
    Float64,
    /// Go `[]byte`, wire type 2, JSON base64.
    Bytes,
}

/// Types with hand-written protobuf or JSON encodings in Go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `metav1.Time`: Timestamp{seconds=1, nanos=2}, JSON RFC3339 seconds, null when zero.
    Time,
    /// `metav1.MicroTime`: like Time with 6 fractional digits.
    MicroTime,
    /// `metav1.Duration`: {duration=1 (ns)}, JSON Go duration string.
    Duration,
    /// `metav1.FieldsV1`: {Raw=1}, JSON the raw JSON.
    FieldsV1,
    /// `intstr.IntOrString`: {type=1, intVal=2, strVal=3}, JSON number or string.
    IntOrString,
    /// `resource.Quantity`: {string=1}, JSON string.
    Quantity,
    /// `runtime.RawExtension`: {raw=1}, JSON the raw JSON.
    RawExtension,
    /// apiextensions `JSON`: {raw=1}, JSON the raw JSON or null.
    Json,
    /// apiextensions `JSONSchemaPropsOrArray`: {schema=1, jSONSchemas=2}.
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: {allows=1, schema=2}.
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: {schema=1, property=2}.
    SchemaOrStringArray,
}

/// A resolved field or element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRef {
    /// A scalar.
    Scalar(Scalar),
    /// A special type.
    Special(Special),
    /// A Go struct (index into [`Schema::types`]).
    Struct(usize),
    /// A named slice that go-to-protobuf wraps as `message { repeated items = 1 }`
    /// (e.g. `authentication/v1.ExtraValue`); JSON is the plain array.
    Wrapper(usize),
    /// `*T`.
    Pointer(Box<TypeRef>),
    /// `[]T` (repeated).
    Slice(Box<TypeRef>),
    /// `map[K]V` (repeated entries key=1, value=2).
    Map(Box<TypeRef>, Box<TypeRef>),
}

/// One struct field.
#[derive(Debug, Clone)]
pub struct Field {
    /// Protobuf field number; 0 when the field is not in the protobuf message.
    pub number: u32,
    /// JSON name (empty for inline fields).
    pub json: String,
    /// The Go type.
    pub ty: TypeRef,
    /// `json:",omitempty"`.
    pub omitempty: bool,
    /// `json:",omitzero"`.
    pub omitzero: bool,
    /// An embedded struct whose fields encoding/json flattens into the parent.
    pub inline: bool,
}

/// A Go type with a protobuf message.
#[derive(Debug, Clone)]
pub enum TypeDef {
    /// A struct: fields in Go declaration order.
    Struct {
        /// Go name, e.g. `k8s.io/api/core/v1.PodSpec`.
        name: String,
        /// Fields in declaration order.
        fields: Vec<Field>,
        /// Protobuf number -> index into `fields`.
        by_number: HashMap<u32, usize>,
    },
    /// A wrapped named slice (`items = 1`).
    Wrapper {
        /// Go name.
        name: String,
        /// Element type.
        items: TypeRef,
    },
}

impl TypeDef {
    /// The Go type name.
    pub fn name(&self) -> &str {
        match self {
            TypeDef::Struct { name, .. } | TypeDef::Wrapper { name, .. } => name,
        }
    }
}

/// The parsed table.
#[derive(Debug)]
pub struct Schema {
    /// All types, referenced by index from [`TypeRef`].
    pub types: Vec<TypeDef>,
    /// `group/version/Kind` (core: `v1/Kind`) -> root type.
    pub kinds: HashMap<String, TypeRef>,
    /// Go name -> index, for special types that refer to messages by name.
    pub by_name: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct RawSchema {
    kinds: HashMap<String, String>,
    types: HashMap<String, RawType>,
}

#[derive(Deserialize)]
struct RawType {
    #[serde(default)]
    fields: Option<Vec<Vec<serde_json::Value>>>,
    #[serde(default)]
    items: Option<String>,
}

/// The Go name of apiextensions' JSONSchemaProps, used by the schema-or-X specials.
pub const JSON_SCHEMA_PROPS: &str =
    "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaProps";

impl Schema {
    /// Parses and resolves a table.
    pub fn parse(bytes: &[u8]) -> Result<Schema, String> {
        let raw: RawSchema = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut names: Vec<&String> = raw.types.keys().collect();
        names.sort();
        let by_name: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).clone(), i))
            .collect();
        let mut types = Vec::with_capacity(names.len());
        for name in &names {
            let rt = &raw.types[*name];
            let no_fields = Vec::new();
            let def = match (&rt.fields, &rt.items) {
                // An empty struct (e.g. StorageVersionSpec) has no "fields" key.
                (fields, None) => {
                    let fields = fields.as_ref().unwrap_or(&no_fields);
                    let mut out = Vec::with_capacity(fields.len());
                    let mut by_number = HashMap::new();
                    for field in fields {
                        let (number, json, ty, flags) = match field.as_slice() {
                            [n, j, t, rest @ ..] if rest.len() <= 1 => (
                                n.as_u64().and_then(|n| u32::try_from(n).ok()),
                                j.as_str(),
                                t.as_str(),
                                rest.first().map_or(Some(""), |f| f.as_str()),
                            ),
                            _ => (None, None, None, None),
                        };
                        let (Some(number), Some(json), Some(ty), Some(flags)) =
                            (number, json, ty, flags)
                        else {
                            return Err(format!("{name}: malformed field {field:?}"));
                        };
                        let number = &number;
                        if *number != 0 && by_number.insert(*number, out.len()).is_some() {
                            return Err(format!("{name}: duplicate field number {number}"));
                        }
                        out.push(Field {
                            number: *number,
                            json: json.to_string(),
                            ty: parse_type(ty, &by_name, &raw.types)
                                .map_err(|e| format!("{name}.{json}: {e}"))?,
                            omitempty: flags.contains('o'),
                            omitzero: flags.contains('z'),
                            inline: flags.contains('i'),
                        });
                    }
                    TypeDef::Struct {
                        name: (*name).clone(),
                        fields: out,
                        by_number,
                    }
                }
                (None, Some(items)) => TypeDef::Wrapper {
                    name: (*name).clone(),
                    items: parse_type(items, &by_name, &raw.types)
                        .map_err(|e| format!("{name}: {e}"))?,
                },
                (Some(_), Some(_)) => return Err(format!("{name}: has both fields and items")),
            };
            types.push(def);
        }
        let mut kinds = HashMap::with_capacity(raw.kinds.len());
        for (k, t) in &raw.kinds {
            kinds.insert(k.clone(), parse_type(t, &by_name, &raw.types)?);
        }
        if !by_name.contains_key(JSON_SCHEMA_PROPS) {
            return Err(format!("missing {JSON_SCHEMA_PROPS}"));
        }
        Ok(Schema {
            types,
            kinds,
            by_name,
        })
    }

    /// The root type for an envelope's apiVersion and kind.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<&TypeRef> {
        self.kinds.get(&format!("{api_version}/{kind}"))
    }
}

fn parse_type(
    s: &str,
    by_name: &HashMap<String, usize>,
    raw: &HashMap<String, RawType>,
) -> Result<TypeRef, String> {
    if let Some(rest) = s.strip_prefix('*') {
        return Ok(TypeRef::Pointer(Box::new(parse_type(rest, by_name, raw)?)));
    }
    if let Some(rest) = s.strip_prefix("[]") {
        return Ok(TypeRef::Slice(Box::new(parse_type(rest, by_name, raw)?)));
    }
    if let Some(rest) = s.strip_prefix("map[") {
        let (k, v) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad map type {s}"))?;
        return Ok(TypeRef::Map(
            Box::new(parse_type(k, by_name, raw)?),
            Box::new(parse_type(v, by_name, raw)?),
        ));
    }
    let scalar = |s: Scalar| Ok(TypeRef::Scalar(s));
    let special = |s: Special| Ok(TypeRef::Special(s));
    match s {
        "string" => scalar(Scalar::String),
        "bool" => scalar(Scalar::Bool),
        "int32" => scalar(Scalar::Int32),
        "int64" => scalar(Scalar::Int64),
        "uint32" => scalar(Scalar::Uint32),
        "uint64" => scalar(Scalar::Uint64),
        "float32" => scalar(Scalar::Float32),
        "float64" => scalar(Scalar::Float64),
        "bytes" => scalar(Scalar::Bytes),
        "@time" => special(Special::Time),
        "@microtime" => special(Special::MicroTime),
        "@duration" => special(Special::Duration),
        "@fieldsv1" => special(Special::FieldsV1),
        "@intorstring" => special(Special::IntOrString),
        "@quantity" => special(Special::Quantity),
        "@rawextension" => special(Special::RawExtension),
        "@json" => special(Special::Json),
        "@schemaorarray" => special(Special::SchemaOrArray),
        "@schemaorbool" => special(Special::SchemaOrBool),
        "@schemaorstringarray" => special(Special::SchemaOrStringArray),
        name => {
            let idx = *by_name
                .get(name)
                .ok_or_else(|| format!("unknown type {name}"))?;
            Ok(if raw[name].items.is_some() {
                TypeRef::Wrapper(idx)
            } else {
                TypeRef::Struct(idx)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_loads() {
        let schema = SCHEMA.as_ref().unwrap();
        assert!(matches!(
            schema.kind("v1", "Namespace"),
            Some(TypeRef::Struct(_))
        ));
        assert!(matches!(
            schema.kind("apps/v1", "Deployment"),
            Some(TypeRef::Struct(_))
        ));
        assert!(schema.kind("v1", "NoSuchKind").is_none());
    }
}
