//! How server-side apply sees a type: the [`TypeResolver`] trait (what a
//! value of a type is, the types of its fields and items) and its
//! implementation over the OpenAPI index of built-in types
//! ([`OpenApiTypes`], from [`PatchSchema`]).
//!
//! The rules are kube-openapi's `schemaconv` (what kube-apiserver feeds
//! structured-merge-diff): `x-kubernetes-list-type` `atomic`/`set`/`map`
//! with `x-kubernetes-list-map-keys`; for lists without it, the patch
//! strategy `merge` with a merge key makes a list-map, otherwise lists are
//! atomic; `x-kubernetes-map-type: atomic` makes a map or struct one leaf;
//! anything without structure is "deduced" from its value (objects are
//! granular maps, lists atomic, the rest scalars).
//!
//! This module never holds per-type rules: everything comes from the schema.
//! A custom resource's schema plugs in as another [`TypeResolver`].

use std::borrow::Cow;

use serde_json::Value;

use crate::schema::{FieldMeta, PatchSchema, TypeRef};

/// The relationship of a list's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind<'a> {
    /// The list is one value.
    Atomic,
    /// Items are scalars, identified by value.
    Set,
    /// Items are objects identified by these key fields.
    Map(Cow<'a, [String]>),
}

/// What a value of a type is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A leaf.
    Scalar,
    /// An object with named fields (`properties`).
    Struct {
        /// `x-kubernetes-map-type: atomic`.
        atomic: bool,
    },
    /// An object with arbitrary keys (`additionalProperties`).
    Map {
        /// `x-kubernetes-map-type: atomic`.
        atomic: bool,
    },
    /// An array.
    List(ListKind<'a>),
    /// No structure: deduced from the value.
    Untyped,
}

/// The types of an object, as server-side apply needs them.
///
/// `Ty` is a cheap handle to one type; `None` wherever a type is expected
/// means "untyped" (deduced from the value).
pub trait TypeResolver {
    /// A handle to one type.
    type Ty: Copy;

    /// What a value of type `ty` is.
    fn kind(&self, ty: Self::Ty) -> Kind<'_>;

    /// The type of field `name` of a struct, or of the values of a map.
    /// `None`: untyped (an undeclared field).
    fn field(&self, ty: Self::Ty, name: &str) -> Option<Self::Ty>;

    /// Whether `name` is a declared field of the struct `ty`.
    fn declares(&self, ty: Self::Ty, name: &str) -> bool;

    /// The type of the items of list `ty`.
    fn items(&self, ty: Self::Ty) -> Option<Self::Ty>;

    /// The default of field `name` of struct `ty` (for list-map keys an
    /// item omits).
    fn default_of(&self, ty: Self::Ty, name: &str) -> Option<Value>;

    /// The value field `name` of struct `ty` has when unset, for types
    /// whose objects always carry it (upstream compares Go objects, where a
    /// non-pointer struct is `{}` and a list without `omitempty` is null).
    /// `None`: an unset field is absent (pointers, custom resources).
    fn zero_value(&self, _ty: Self::Ty, _name: &str) -> Option<Value> {
        None
    }
}

/// A resolver that knows no type: every value is deduced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Untyped;

impl TypeResolver for Untyped {
    type Ty = ();
    fn kind(&self, _: ()) -> Kind<'_> {
        Kind::Untyped
    }
    fn field(&self, _: (), _: &str) -> Option<()> {
        None
    }
    fn declares(&self, _: (), _: &str) -> bool {
        false
    }
    fn items(&self, _: ()) -> Option<()> {
        None
    }
    fn default_of(&self, _: (), _: &str) -> Option<Value> {
        None
    }
}

/// Built-in types from the OpenAPI index ([`PatchSchema`]).
#[derive(Debug, Clone, Copy)]
pub struct OpenApiTypes<'a> {
    schema: &'a PatchSchema,
}

impl<'a> OpenApiTypes<'a> {
    /// A resolver over `schema`.
    pub fn new(schema: &'a PatchSchema) -> Self {
        Self { schema }
    }

    /// The type of the object `group/version, Kind=kind`.
    pub fn root(&self, group: &str, version: &str, kind: &str) -> Option<OpenApiTy<'a>> {
        self.schema
            .root(group, version, kind)
            .map(|t| OpenApiTy { ty: t, meta: None })
    }
}

/// A type of [`OpenApiTypes`]: a node and, for a field, the field's
/// extensions (which decide list and map types).
#[derive(Debug, Clone, Copy)]
pub struct OpenApiTy<'a> {
    ty: TypeRef<'a>,
    meta: Option<&'a FieldMeta>,
}

impl<'a> TypeResolver for OpenApiTypes<'a> {
    type Ty = OpenApiTy<'a>;

    fn kind(&self, t: OpenApiTy<'a>) -> Kind<'_> {
        let field_atomic = t.meta.and_then(|m| m.map_type.as_deref()) == Some("atomic");
        match t.ty.shape() {
            crate::schema::Shape::Struct { atomic } => Kind::Struct {
                atomic: atomic || field_atomic,
            },
            crate::schema::Shape::Map { atomic } => Kind::Map {
                atomic: atomic || field_atomic,
            },
            crate::schema::Shape::List => Kind::List(list_kind(t.meta)),
            crate::schema::Shape::Opaque => Kind::Untyped,
        }
    }

    fn field(&self, t: OpenApiTy<'a>, name: &str) -> Option<OpenApiTy<'a>> {
        let (ty, meta) = t.ty.lookup_struct(name);
        ty.map(|ty| OpenApiTy {
            ty,
            meta: Some(meta),
        })
    }

    fn declares(&self, t: OpenApiTy<'a>, name: &str) -> bool {
        t.ty.declares(name)
    }

    fn items(&self, t: OpenApiTy<'a>) -> Option<OpenApiTy<'a>> {
        t.ty.items().map(|ty| OpenApiTy { ty, meta: None })
    }

    fn default_of(&self, t: OpenApiTy<'a>, name: &str) -> Option<Value> {
        t.ty.default_of(name).cloned()
    }

    fn zero_value(&self, t: OpenApiTy<'a>, name: &str) -> Option<Value> {
        t.ty.zero_value(name).cloned()
    }
}

/// kube-openapi's `getListElementRelationship`.
fn list_kind(meta: Option<&FieldMeta>) -> ListKind<'_> {
    let Some(m) = meta else {
        return ListKind::Atomic;
    };
    match m.list_type.as_deref() {
        Some("set") => return ListKind::Set,
        Some("map") => return ListKind::Map(Cow::Borrowed(&m.list_map_keys)),
        Some(_) => return ListKind::Atomic,
        None => {}
    }
    if m.patch_strategies.iter().any(|s| s == "merge")
        && let Some(key) = &m.patch_merge_key
    {
        return ListKind::Map(Cow::Borrowed(std::slice::from_ref(key)));
    }
    ListKind::Atomic
}

/// Types from an OpenAPI v3 (structural) schema as a CustomResourceDefinition
/// holds it (`openAPIV3Schema`): `properties`, `additionalProperties`,
/// `items`, `x-kubernetes-list-type` and `x-kubernetes-list-map-keys` on the
/// array itself, `x-kubernetes-map-type`, `x-kubernetes-preserve-unknown-fields`,
/// `x-kubernetes-int-or-string`, `x-kubernetes-embedded-resource`, `default`.
/// `$ref`s are not followed (structural schemas have none).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSchemaTypes<'a>(std::marker::PhantomData<&'a Value>);

impl JsonSchemaTypes<'_> {
    /// The resolver (types are the schema nodes themselves).
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'a> TypeResolver for JsonSchemaTypes<'a> {
    type Ty = &'a Value;

    fn kind(&self, s: &'a Value) -> Kind<'_> {
        let atomic = s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
        if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            return Kind::Scalar;
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => {
                if s.get("properties").is_some_and(Value::is_object) {
                    Kind::Struct { atomic }
                } else if s.get("additionalProperties").is_some_and(Value::is_object) {
                    Kind::Map { atomic }
                } else {
                    Kind::Untyped
                }
            }
            Some("array") => Kind::List(
                match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListKind::Set,
                    Some("map") => ListKind::Map(Cow::Owned(
                        s.get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect(),
                    )),
                    _ => ListKind::Atomic,
                },
            ),
            Some(_) => Kind::Scalar,
            None => Kind::Untyped,
        }
    }

    fn field(&self, s: &'a Value, name: &str) -> Option<&'a Value> {
        s.get("properties")
            .and_then(|p| p.get(name))
            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
    }

    fn declares(&self, s: &'a Value, name: &str) -> bool {
        s.get("properties").and_then(|p| p.get(name)).is_some()
    }

    fn items(&self, s: &'a Value) -> Option<&'a Value> {
        s.get("items")
    }

    fn default_of(&self, s: &'a Value, name: &str) -> Option<Value> {
        s.get("properties")?.get(name)?.get("default").cloned()
    }
}
