//! Patch metadata extracted from the Kubernetes OpenAPI v2 document.
//!
//! Owns [`PatchSchema`]: a compact, immutable index built once per process
//! from `definitions`, keeping only what patching needs: the shape of each
//! type (struct fields, map values, list items) and, per field,
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`,
//! `x-kubernetes-list-type` and `x-kubernetes-list-map-keys`. Roots are found
//! by `x-kubernetes-group-version-kind`. `$ref`s are resolved into node ids, so
//! recursive types (e.g. `JSONSchemaProps`) cost nothing extra.
//!
//! It must never keep descriptions, validation or anything else of the
//! document, and never be rebuilt per request or per virtual cluster.
//! Fields with no structure and no patch metadata are dropped: an unknown
//! field and a scalar field patch the same way (like JSON merge patch).

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;

/// Why an OpenAPI document could not be indexed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// The document has no `definitions` object.
    #[error("OpenAPI v2 document has no \"definitions\" object")]
    NoDefinitions,
}

type NodeId = u32;

/// `(group, version, kind)`.
type GvkKey = (Box<str>, Box<str>, Box<str>);

#[derive(Debug)]
enum Node {
    /// An object with named properties (`atomic`: `x-kubernetes-map-type: atomic`).
    Struct(HashMap<Box<str>, Field>, bool),
    /// An object with arbitrary keys (`additionalProperties`).
    Map(Option<NodeId>, bool),
    /// An array.
    List(Option<NodeId>),
    /// Same as another node (a definition that is only a `$ref`).
    Alias(NodeId),
    /// No structure (scalar, untyped object, unknown `$ref`).
    Opaque,
}

#[derive(Debug, Default)]
struct Field {
    ty: Option<NodeId>,
    meta: FieldMeta,
}

/// Patch metadata of one field, as declared by the vendor extensions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldMeta {
    /// `x-kubernetes-patch-strategy`, split on commas (e.g. `["merge", "retainKeys"]`).
    pub patch_strategies: Vec<String>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<String>,
    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`); strategic merge patch
    /// ignores it, exactly as upstream does (it only reads the patch tags).
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type` (`atomic`, `granular`), read by server-side apply.
    pub map_type: Option<String>,
}

impl FieldMeta {
    /// Metadata of a field without any patch extensions.
    pub fn empty() -> &'static FieldMeta {
        &EMPTY_META
    }

    fn is_empty(&self) -> bool {
        self.patch_strategies.is_empty()
            && self.patch_merge_key.is_none()
            && self.list_type.is_none()
            && self.list_map_keys.is_empty()
            && self.map_type.is_none()
    }
}

static EMPTY_META: FieldMeta = FieldMeta {
    patch_strategies: Vec::new(),
    patch_merge_key: None,
    list_type: None,
    list_map_keys: Vec::new(),
    map_type: None,
};

/// Index of patch metadata for every definition of an OpenAPI v2 document.
/// Build it once with [`PatchSchema::from_openapi_v2`] and share it.
#[derive(Debug)]
pub struct PatchSchema {
    nodes: Vec<Node>,
    definitions: HashMap<Box<str>, NodeId>,
    roots: HashMap<GvkKey, NodeId>,
    /// Defaults of scalar properties (`(struct, field)`), from OpenAPI v3
    /// ([`PatchSchema::add_v3_defaults`]); server-side apply reads them for
    /// list-map keys an item omits.
    defaults: HashMap<(NodeId, Box<str>), Value>,
    /// What Go serializes for an unset property (`(struct, field)`), from
    /// OpenAPI v3: `{}` for a non-pointer struct (`default: {}`), `[]` for
    /// a required list; server-side apply compares as upstream's Go objects.
    zero_values: HashMap<(NodeId, Box<str>), Value>,
}

/// The shape of a type, as server-side apply sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Named properties.
    Struct {
        /// `x-kubernetes-map-type: atomic` on the type.
        atomic: bool,
    },
    /// Arbitrary keys.
    Map {
        /// `x-kubernetes-map-type: atomic` on the type.
        atomic: bool,
    },
    /// An array.
    List,
    /// No structure.
    Opaque,
}

/// A type inside a [`PatchSchema`]: the schema of an object, or of a list
/// element, being patched.
#[derive(Clone, Copy)]
pub struct TypeRef<'a> {
    schema: &'a PatchSchema,
    id: NodeId,
}

impl std::fmt::Debug for TypeRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeRef").field("id", &self.id).finish()
    }
}

const DEF_PREFIX: &str = "#/definitions/";

impl PatchSchema {
    /// Indexes an OpenAPI v2 document (`/openapi/v2` of a kube-apiserver).
    pub fn from_openapi_v2(doc: &Value) -> Result<PatchSchema, SchemaError> {
        let defs = doc
            .get("definitions")
            .and_then(Value::as_object)
            .ok_or(SchemaError::NoDefinitions)?;
        let mut schema = PatchSchema {
            nodes: Vec::with_capacity(defs.len() * 2),
            definitions: HashMap::with_capacity(defs.len()),
            roots: HashMap::new(),
            defaults: HashMap::new(),
            zero_values: HashMap::new(),
        };
        // First pass: one slot per definition, so `$ref`s (even cyclic ones)
        // resolve to ids before the definitions are converted.
        for name in defs.keys() {
            let id = schema.push(Node::Opaque);
            schema.definitions.insert(name.as_str().into(), id);
        }
        for (name, def) in defs {
            let id = schema.definitions[name.as_str()];
            let node = schema.convert_node(def).unwrap_or(Node::Opaque);
            schema.nodes[id as usize] = node;
            if let Some(gvks) = def
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array)
            {
                for gvk in gvks {
                    let part = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("");
                    schema.roots.insert(
                        (
                            part("group").into(),
                            part("version").into(),
                            part("kind").into(),
                        ),
                        id,
                    );
                }
            }
        }
        schema.nodes.shrink_to_fit();
        Ok(schema)
    }

    /// The schema of the object `group/version, Kind=kind` (group `""` for the
    /// core group), as declared by `x-kubernetes-group-version-kind`.
    pub fn root(&self, group: &str, version: &str, kind: &str) -> Option<TypeRef<'_>> {
        let key: GvkKey = (group.into(), version.into(), kind.into());
        self.roots.get(&key).map(|&id| TypeRef { schema: self, id })
    }

    /// The schema of a definition by its OpenAPI name
    /// (e.g. `io.k8s.api.core.v1.PodSpec`).
    pub fn definition(&self, name: &str) -> Option<TypeRef<'_>> {
        self.definitions
            .get(name)
            .map(|&id| TypeRef { schema: self, id })
    }

    /// Number of indexed definitions.
    pub fn definition_count(&self) -> usize {
        self.definitions.len()
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    /// Converts a schema to a type id; `None` means "no structure we care about".
    fn convert(&mut self, s: &Value) -> Option<NodeId> {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.strip_prefix(DEF_PREFIX)?;
            return self.definitions.get(name).copied();
        }
        let node = self.convert_node(s)?;
        Some(self.push(node))
    }

    fn convert_node(&mut self, s: &Value) -> Option<Node> {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            // A definition (or inline schema) that only points at another.
            let id = self.definitions.get(r.strip_prefix(DEF_PREFIX)?).copied()?;
            return Some(Node::Alias(id));
        }
        if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            return self.convert_node(only);
        }
        let ty = s.get("type").and_then(Value::as_str);
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            let mut fields = HashMap::with_capacity(props.len());
            for (name, prop) in props {
                let field = Field {
                    ty: self.convert(prop),
                    meta: field_meta(prop),
                };
                if field.ty.is_some() || !field.meta.is_empty() {
                    fields.insert(name.as_str().into(), field);
                }
            }
            return Some(Node::Struct(fields, map_type_atomic(s)));
        }
        match ty {
            Some("array") => {
                let items = s.get("items").and_then(|i| self.convert(i));
                Some(Node::List(items))
            }
            Some("object") | None => match s.get("additionalProperties") {
                Some(ap @ Value::Object(_)) => {
                    let values = self.convert(ap);
                    Some(Node::Map(values, map_type_atomic(s)))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Adds the defaults of scalar properties from an OpenAPI v3 document
    /// (`components.schemas`, named as the v2 definitions). The v2 document
    /// has none; server-side apply needs them for list-map keys that an
    /// item may omit (a port's `protocol`).
    pub fn add_v3_defaults(&mut self, doc: &Value) {
        let Some(schemas) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        else {
            return;
        };
        for (name, def) in schemas {
            let Some(&id) = self.definitions.get(name.as_str()) else {
                continue;
            };
            let id = self.resolve(id);
            let Some(props) = def.get("properties").and_then(Value::as_object) else {
                continue;
            };
            let required: Vec<&str> = def
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (field, prop) in props {
                let key = (id, Box::<str>::from(field.as_str()));
                match prop.get("default") {
                    Some(Value::Object(_)) => {
                        self.zero_values
                            .insert(key, Value::Object(Default::default()));
                    }
                    Some(Value::Array(_)) | None => {
                        if prop.get("type").and_then(Value::as_str) == Some("array")
                            && required.contains(&field.as_str())
                        {
                            self.zero_values.insert(key, Value::Array(Vec::new()));
                        }
                    }
                    Some(d) => {
                        self.defaults.insert(key, d.clone());
                    }
                }
            }
        }
    }

    /// The id behind aliases.
    fn resolve(&self, id: NodeId) -> NodeId {
        let mut id = id;
        for _ in 0..16 {
            match self.nodes.get(id as usize) {
                Some(Node::Alias(next)) => id = *next,
                _ => return id,
            }
        }
        id
    }

    fn node(&self, id: NodeId) -> &Node {
        let mut id = id;
        // Follow aliases (bounded, in case of alias cycles).
        for _ in 0..16 {
            match self.nodes.get(id as usize) {
                Some(Node::Alias(next)) => id = *next,
                Some(n) => return n,
                None => return &Node::Opaque,
            }
        }
        &Node::Opaque
    }
}

/// `x-kubernetes-map-type: atomic` on a schema.
fn map_type_atomic(s: &Value) -> bool {
    s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
}

fn field_meta(prop: &Value) -> FieldMeta {
    let str_ext = |k: &str| prop.get(k).and_then(Value::as_str);
    FieldMeta {
        patch_strategies: str_ext("x-kubernetes-patch-strategy")
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        patch_merge_key: str_ext("x-kubernetes-patch-merge-key").map(String::from),
        list_type: str_ext("x-kubernetes-list-type").map(String::from),
        map_type: str_ext("x-kubernetes-map-type").map(String::from),
        list_map_keys: prop
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl<'a> TypeRef<'a> {
    /// Looks up a field of this type as upstream's
    /// `LookupPatchMetadataForStruct`: for a struct, the field's type and
    /// patch metadata; for a map, the value type and no metadata; otherwise
    /// (unknown field, scalar, untyped) no type and no metadata.
    pub fn lookup_struct(&self, key: &str) -> (Option<TypeRef<'a>>, &'a FieldMeta) {
        match self.schema.node(self.id) {
            Node::Struct(fields, _) => match fields.get(key) {
                Some(f) => (self.wrap(f.ty), &f.meta),
                None => (None, &EMPTY_META),
            },
            Node::Map(values, _) => (self.wrap(*values), &EMPTY_META),
            _ => (None, &EMPTY_META),
        }
    }

    /// Looks up a list field as upstream's `LookupPatchMetadataForSlice`:
    /// the list's element type and the field's patch metadata.
    pub fn lookup_slice(&self, key: &str) -> (Option<TypeRef<'a>>, &'a FieldMeta) {
        let (ty, meta) = self.lookup_struct(key);
        let elem = ty.and_then(|t| match t.schema.node(t.id) {
            Node::List(items) => t.wrap(*items),
            _ => None,
        });
        (elem, meta)
    }

    /// The type of field `key`, if known.
    pub fn field(&self, key: &str) -> Option<TypeRef<'a>> {
        self.lookup_struct(key).0
    }

    /// The patch metadata of field `key` (empty if unknown).
    pub fn field_meta(&self, key: &str) -> &'a FieldMeta {
        self.lookup_struct(key).1
    }

    /// The element type if this type is a list.
    pub fn items(&self) -> Option<TypeRef<'a>> {
        match self.schema.node(self.id) {
            Node::List(items) => self.wrap(*items),
            _ => None,
        }
    }

    /// The shape of this type (server-side apply).
    pub fn shape(&self) -> Shape {
        match self.schema.node(self.id) {
            Node::Struct(_, atomic) => Shape::Struct { atomic: *atomic },
            Node::Map(_, atomic) => Shape::Map { atomic: *atomic },
            Node::List(_) => Shape::List,
            Node::Alias(_) | Node::Opaque => Shape::Opaque,
        }
    }

    /// Whether `key` is a declared property of this struct (kept in the
    /// index: it has structure, patch metadata or a default).
    pub fn declares(&self, key: &str) -> bool {
        matches!(self.schema.node(self.id), Node::Struct(fields, _) if fields.contains_key(key))
            || self.default_of(key).is_some()
    }

    /// The OpenAPI v3 default of property `key` of this struct, if any.
    pub fn default_of(&self, key: &str) -> Option<&'a Value> {
        let id = self.schema.resolve(self.id);
        self.schema.defaults.get(&(id, key.into()))
    }

    /// What Go serializes for property `key` of this struct when it is
    /// unset (`{}` for a non-pointer struct, `[]` for a required list), if
    /// known from OpenAPI v3.
    pub fn zero_value(&self, key: &str) -> Option<&'a Value> {
        let id = self.schema.resolve(self.id);
        self.schema.zero_values.get(&(id, key.into()))
    }

    fn wrap(&self, id: Option<NodeId>) -> Option<TypeRef<'a>> {
        id.map(|id| TypeRef {
            schema: self.schema,
            id,
        })
    }
}
