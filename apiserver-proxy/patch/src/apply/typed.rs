//! Walks of a JSON value over its type, after structured-merge-diff's
//! `typed` package: the field set of a value ([`to_field_set`]), the merge of
//! an applied configuration into a live object ([`merge`]), the removal of a
//! set of fields ([`remove_items`]), the comparison of two values
//! ([`compare`]) and the named-field completion of a set
//! ([`ensure_named_fields_are_members`]).
//!
//! Everything type-specific comes from the [`TypeResolver`]; this module
//! never names a Kubernetes field.

use serde_json::{Map, Value};

use super::ApplyError;
use super::fieldpath::{Path, PathElement, Set};
use super::schema::{Kind, ListKind, TypeResolver};

/// A type resolved against a value.
#[derive(Debug, Clone)]
enum Shape<'a> {
    Leaf,
    Map { atomic: bool, is_struct: bool },
    List(ListKind<'a>),
}

/// What `v` is under type `ty` ("deduced" when untyped or when the value
/// does not have the type's shape).
fn shape<'r, R: TypeResolver>(r: &'r R, ty: Option<R::Ty>, v: Option<&Value>) -> Shape<'r> {
    let kind = ty.map(|t| r.kind(t)).unwrap_or(Kind::Untyped);
    let deduced = || match v {
        Some(Value::Object(_)) => Shape::Map {
            atomic: false,
            is_struct: false,
        },
        Some(Value::Array(_)) => Shape::List(ListKind::Atomic),
        _ => Shape::Leaf,
    };
    match (kind, v) {
        (Kind::Untyped, _) => deduced(),
        (Kind::Scalar, _) => Shape::Leaf,
        (Kind::Struct { atomic }, Some(Value::Object(_)) | None) => Shape::Map {
            atomic,
            is_struct: true,
        },
        (Kind::Map { atomic }, Some(Value::Object(_)) | None) => Shape::Map {
            atomic,
            is_struct: false,
        },
        (Kind::List(l), Some(Value::Array(_)) | None) => Shape::List(l),
        // null, or a value of another shape: one leaf.
        _ => Shape::Leaf,
    }
}

fn err(path: &[PathElement], msg: impl std::fmt::Display) -> ApplyError {
    let p = Path(path.to_vec()).to_string();
    if p.is_empty() {
        ApplyError::Invalid(msg.to_string())
    } else {
        ApplyError::Invalid(format!("{p}: {msg}"))
    }
}

/// The path element of item `index` of a list (upstream's
/// `listItemToPathElement`).
fn item_pe<R: TypeResolver>(
    r: &R,
    kind: &ListKind<'_>,
    item_ty: Option<R::Ty>,
    item: &Value,
    index: usize,
    path: &[PathElement],
) -> Result<PathElement, ApplyError> {
    match kind {
        ListKind::Atomic => Ok(PathElement::Index(index)),
        ListKind::Set => match item {
            Value::Object(_) => Err(err(
                path,
                format!(
                    "element {index}: associative list without keys has an element that's a map type"
                ),
            )),
            v => Ok(PathElement::value(v)),
        },
        ListKind::Map(keys) => {
            let m = match item {
                Value::Null => {
                    return Err(err(
                        path,
                        format!(
                            "element {index}: associative list with keys may not have a null element"
                        ),
                    ));
                }
                Value::Object(m) => m,
                _ => {
                    return Err(err(
                        path,
                        format!(
                            "element {index}: associative list with keys may not have non-map elements"
                        ),
                    ));
                }
            };
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys.iter() {
                match m.get(k) {
                    Some(v) => fields.push((k.clone(), v.clone())),
                    None => match item_ty.and_then(|t| r.default_of(t, k)) {
                        Some(d) => fields.push((k.clone(), d)),
                        None => {
                            return Err(err(
                                path,
                                format!(
                                    "element {index}: associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                                ),
                            ));
                        }
                    },
                }
            }
            Ok(PathElement::key(fields))
        }
    }
}

/// The type of a map entry or struct field.
fn entry_ty<R: TypeResolver>(r: &R, ty: Option<R::Ty>, name: &str) -> Option<R::Ty> {
    ty.and_then(|t| r.field(t, name))
}

/// The set of fields `v` sets (upstream's `ToFieldSet`): leaves, items of
/// granular lists, and entries of maps (struct fields only when they are
/// leaves, null or empty).
pub fn to_field_set<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    v: &Value,
) -> Result<Set, ApplyError> {
    let mut set = Set::new();
    let mut path = Vec::new();
    field_set_into(r, ty, v, &mut path, &mut set)?;
    Ok(set)
}

fn field_set_into<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    v: &Value,
    path: &mut Vec<PathElement>,
    out: &mut Set,
) -> Result<(), ApplyError> {
    match shape(r, ty, Some(v)) {
        Shape::Leaf | Shape::Map { atomic: true, .. } | Shape::List(ListKind::Atomic) => {
            out.insert(path);
        }
        Shape::List(kind) => {
            let items_ty = ty.and_then(|t| r.items(t));
            for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                let pe = item_pe(r, &kind, items_ty, item, i, path)?;
                path.push(pe);
                field_set_into(r, items_ty, item, path, out)?;
                out.insert(path);
                path.pop();
            }
        }
        Shape::Map { is_struct, .. } => {
            for (k, val) in v.as_object().into_iter().flatten() {
                let declared = is_struct && ty.is_some_and(|t| r.declares(t, k));
                path.push(PathElement::field(k));
                field_set_into(r, entry_ty(r, ty, k), val, path, out)?;
                let empty_map = val.as_object().is_some_and(Map::is_empty);
                if val.is_null() || empty_map || !declared {
                    out.insert(path);
                }
                path.pop();
            }
        }
    }
    Ok(())
}

/// Merges `rhs` (an applied configuration) into `lhs` (the live object) as
/// upstream's `TypedValue.Merge`: leaves and atomic values are replaced,
/// maps merged by key, granular lists merged by item identity in
/// upstream's order. `None`: neither side has a value.
pub fn merge<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
) -> Result<Option<Value>, ApplyError> {
    merge_at(r, ty, lhs, rhs, &mut Vec::new())
}

fn merge_at<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
) -> Result<Option<Value>, ApplyError> {
    let Some(rv) = rhs else {
        return Ok(lhs.cloned());
    };
    match shape(r, ty, Some(rv)) {
        Shape::Leaf | Shape::Map { atomic: true, .. } | Shape::List(ListKind::Atomic) => {
            Ok(Some(rv.clone()))
        }
        Shape::Map { .. } => {
            let rm = rv.as_object().expect("shape says object");
            let lm = lhs.and_then(Value::as_object);
            let mut out = Map::new();
            if let Some(lm) = lm {
                for (k, lval) in lm {
                    path.push(PathElement::field(k));
                    let merged = merge_at(r, entry_ty(r, ty, k), Some(lval), rm.get(k), path)?;
                    path.pop();
                    if let Some(m) = merged {
                        out.insert(k.clone(), m);
                    }
                }
            }
            for (k, rval) in rm {
                if lm.is_some_and(|l| l.contains_key(k)) {
                    continue;
                }
                path.push(PathElement::field(k));
                let merged = merge_at(r, entry_ty(r, ty, k), None, Some(rval), path)?;
                path.pop();
                if let Some(m) = merged {
                    out.insert(k.clone(), m);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Shape::List(kind) => {
            let items_ty = ty.and_then(|t| r.items(t));
            let rl = rv.as_array().expect("shape says array");
            let ll: &[Value] = match lhs {
                Some(Value::Array(a)) => a,
                _ => &[],
            };
            merge_lists(r, &kind, items_ty, ll, rl, path).map(|v| Some(Value::Array(v)))
        }
    }
}

/// Upstream's `visitListItems` of the merging walker: items of `rhs` keep
/// their relative order, items only in `lhs` stay where they were.
fn merge_lists<R: TypeResolver>(
    r: &R,
    kind: &ListKind<'_>,
    items_ty: Option<R::Ty>,
    lhs: &[Value],
    rhs: &[Value],
    path: &mut Vec<PathElement>,
) -> Result<Vec<Value>, ApplyError> {
    use std::collections::HashMap;
    let mut rhs_pes = Vec::with_capacity(rhs.len());
    let mut observed_rhs: HashMap<PathElement, &Value> = HashMap::new();
    for (i, item) in rhs.iter().enumerate() {
        let pe = item_pe(r, kind, items_ty, item, i, path)?;
        if observed_rhs.insert(pe.clone(), item).is_some() {
            return Err(err(path, format!("duplicate entries for key {pe}")));
        }
        rhs_pes.push(pe);
    }
    let mut lhs_pes = Vec::with_capacity(lhs.len());
    // Duplicates in the live object are allowed; they merge as nothing.
    let mut observed_lhs: HashMap<PathElement, Option<&Value>> = HashMap::new();
    for (i, item) in lhs.iter().enumerate() {
        let pe = item_pe(r, kind, items_ty, item, i, path)?;
        observed_lhs
            .entry(pe.clone())
            .and_modify(|v| *v = None)
            .or_insert(Some(item));
        lhs_pes.push(pe);
    }
    let mut shared: std::collections::VecDeque<&PathElement> = rhs_pes
        .iter()
        .filter(|pe| observed_lhs.contains_key(*pe))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: std::collections::HashSet<PathElement> = Default::default();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let merge_item = |pe: &PathElement,
                      l: Option<&Value>,
                      rr: Option<&Value>,
                      path: &mut Vec<PathElement>,
                      out: &mut Vec<Value>|
     -> Result<(), ApplyError> {
        path.push(pe.clone());
        let m = merge_at(r, items_ty, l, rr, path)?;
        path.pop();
        if let Some(m) = m {
            out.push(m);
        }
        Ok(())
    };
    let (l_len, r_len) = (lhs_pes.len(), rhs_pes.len());
    let (mut li, mut ri) = (0, 0);
    while li < l_len || ri < r_len {
        if li < l_len && ri < r_len {
            let pe = &lhs_pes[li];
            if *pe == rhs_pes[ri] {
                merged_rhs.insert(pe.clone());
                let l = observed_lhs.get(pe).copied().flatten();
                let rr = observed_rhs.get(pe).copied();
                merge_item(pe, l, rr, path, &mut out)?;
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < l_len {
            let pe = &lhs_pes[li];
            if !observed_rhs.contains_key(pe) {
                merge_item(pe, Some(&lhs[li]), None, path, &mut out)?;
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < r_len {
            let pe = &rhs_pes[ri];
            merged_rhs.insert(pe.clone());
            let l = observed_lhs.get(pe).copied().flatten();
            let rr = observed_rhs.get(pe).copied();
            merge_item(pe, l, rr, path, &mut out)?;
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    Ok(out)
}

/// Removes the fields and items of `to_remove` from `v` (upstream's
/// `RemoveItems`). A member removes its whole value; maps and lists left
/// empty are dropped (`None`).
pub fn remove_items<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    v: &Value,
    to_remove: &Set,
) -> Option<Value> {
    match shape(r, ty, Some(v)) {
        Shape::Leaf | Shape::Map { atomic: true, .. } | Shape::List(ListKind::Atomic) => {
            Some(v.clone())
        }
        Shape::Map { .. } => {
            let m = v.as_object().expect("object");
            if m.is_empty() {
                return Some(v.clone());
            }
            let mut out = Map::new();
            for (k, val) in m {
                let pe = PathElement::field(k);
                if to_remove.has_member(&pe) {
                    continue;
                }
                let sub = to_remove.with_prefix(&pe);
                if sub.is_empty() {
                    out.insert(k.clone(), val.clone());
                } else if let Some(kept) = remove_items(r, entry_ty(r, ty, k), val, sub) {
                    out.insert(k.clone(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Shape::List(kind) => {
            let items_ty = ty.and_then(|t| r.items(t));
            let l = v.as_array().expect("array");
            if l.is_empty() {
                return Some(v.clone());
            }
            let mut out = Vec::new();
            for (i, item) in l.iter().enumerate() {
                let Ok(pe) = item_pe(r, &kind, items_ty, item, i, &[]) else {
                    out.push(item.clone());
                    continue;
                };
                if to_remove.has_member(&pe) {
                    continue;
                }
                let sub = to_remove.with_prefix(&pe);
                if sub.is_empty() {
                    out.push(item.clone());
                } else if let Some(kept) = remove_items(r, items_ty, item, sub) {
                    out.push(kept);
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

/// The paths added, modified and removed from one value to another.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Paths only in the new value.
    pub added: Set,
    /// Leaves whose value changed.
    pub modified: Set,
    /// Paths only in the old value.
    pub removed: Set,
}

impl Comparison {
    /// Whether nothing changed.
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// This comparison without the paths of `fields` and below them.
    pub fn exclude_fields(self, fields: &Set) -> Comparison {
        Comparison {
            added: self.added.recursive_difference(fields),
            modified: self.modified.recursive_difference(fields),
            removed: self.removed.recursive_difference(fields),
        }
    }
}

/// Compares `lhs` (old) with `rhs` (new) as upstream's `TypedValue.Compare`.
///
/// Upstream compares Go objects, where a non-pointer struct is never absent
/// (`{}`) and a list without `omitempty` is null: where the resolver knows
/// such zero values, a field missing on one side compares as its zero value,
/// so `f:spec` carries no `.` while `f:rollingUpdate` (a pointer) does.
pub fn compare<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    lhs: &Value,
    rhs: &Value,
) -> Result<Comparison, ApplyError> {
    let mut c = Comparison::default();
    compare_at(r, ty, Some(lhs), Some(rhs), &mut Vec::new(), &mut c)?;
    Ok(c)
}

fn compare_at<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) -> Result<(), ApplyError> {
    let leaf = |c: &mut Comparison, path: &[PathElement]| match (lhs, rhs) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(l), Some(r)) if l != r => c.modified.insert(path),
        _ => {}
    };
    let ls = lhs.map(|l| shape(r, ty, Some(l)));
    let rs = rhs.map(|v| shape(r, ty, Some(v)));
    let same_shape = match (&ls, &rs) {
        (Some(a), Some(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
        _ => true,
    };
    let s = rs.or(ls).unwrap_or(Shape::Leaf);
    if !same_shape {
        leaf(c, path);
        return Ok(());
    }
    match s {
        Shape::Leaf | Shape::Map { atomic: true, .. } | Shape::List(ListKind::Atomic) => {
            leaf(c, path);
        }
        Shape::Map { .. } => {
            let lm = lhs.and_then(Value::as_object);
            let rm = rhs.and_then(Value::as_object);
            let empty = |m: Option<&Map<String, Value>>| m.is_none_or(Map::is_empty);
            if empty(lm) && empty(rm) {
                leaf(c, path);
                return Ok(());
            }
            // Where both sides hold this object, a field one side lacks
            // has its Go zero value there (see `TypeResolver::zero_value`).
            let both = lm.is_some() && rm.is_some();
            let zero = |k: &str| {
                if both {
                    ty.and_then(|t| r.zero_value(t, k))
                } else {
                    None
                }
            };
            for (k, lv) in lm.into_iter().flatten() {
                path.push(PathElement::field(k));
                let z;
                let rv = match rm.and_then(|m| m.get(k)) {
                    Some(v) => Some(v),
                    None => {
                        z = zero(k);
                        z.as_ref()
                    }
                };
                compare_at(r, entry_ty(r, ty, k), Some(lv), rv, path, c)?;
                path.pop();
            }
            for (k, rv) in rm.into_iter().flatten() {
                if lm.is_some_and(|m| m.contains_key(k)) {
                    continue;
                }
                path.push(PathElement::field(k));
                let z = zero(k);
                compare_at(r, entry_ty(r, ty, k), z.as_ref(), Some(rv), path, c)?;
                path.pop();
            }
            if lhs.is_none() || rhs.is_none() {
                leaf(c, path);
            }
        }
        Shape::List(kind) => {
            let items_ty = ty.and_then(|t| r.items(t));
            let ll = lhs
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let rl = rhs
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if ll.is_empty() && rl.is_empty() {
                leaf(c, path);
                return Ok(());
            }
            compare_lists(r, &kind, items_ty, ll, rl, path, c)?;
            if lhs.is_none() || rhs.is_none() {
                leaf(c, path);
            }
        }
    }
    Ok(())
}

/// Upstream's `visitListItems` of the comparing walker (duplicated items
/// compare as one leaf).
fn compare_lists<R: TypeResolver>(
    r: &R,
    kind: &ListKind<'_>,
    items_ty: Option<R::Ty>,
    lhs: &[Value],
    rhs: &[Value],
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) -> Result<(), ApplyError> {
    let mut order: Vec<PathElement> = Vec::new();
    let mut lvals: std::collections::HashMap<PathElement, Vec<&Value>> = Default::default();
    for (i, item) in lhs.iter().enumerate() {
        let pe = item_pe(r, kind, items_ty, item, i, path)?;
        let e = lvals.entry(pe.clone()).or_default();
        if e.is_empty() {
            order.push(pe);
        }
        e.push(item);
    }
    let mut rvals: std::collections::HashMap<PathElement, Vec<&Value>> = Default::default();
    for (i, item) in rhs.iter().enumerate() {
        let pe = item_pe(r, kind, items_ty, item, i, path)?;
        let e = rvals.entry(pe.clone()).or_default();
        if e.is_empty() && !lvals.contains_key(&pe) {
            order.push(pe.clone());
        }
        e.push(item);
    }
    for pe in order {
        let l = lvals.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        let rr = rvals.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        path.push(pe);
        match (l.len(), rr.len()) {
            (0, 0) => {}
            (a, b) if a <= 1 && b <= 1 => {
                compare_at(
                    r,
                    items_ty,
                    l.first().copied(),
                    rr.first().copied(),
                    path,
                    c,
                )?;
            }
            (a, b) if a >= 2 && b >= 2 => {
                if l != rr {
                    c.modified.insert(path);
                }
            }
            (a, _) if a >= 2 => {
                if let Some(first) = rr.first() {
                    compare_at(r, items_ty, None, Some(first), path, c)?;
                }
                c.removed.insert(path);
            }
            _ => {
                if let Some(first) = l.first() {
                    compare_at(r, items_ty, Some(first), None, path, c)?;
                }
                c.added.insert(path);
            }
        }
        path.pop();
    }
    Ok(())
}

/// `set` plus, as members, every named struct field that has paths below
/// it (upstream's `EnsureNamedFieldsAreMembers`), so that pruning a
/// manager's fields also removes the structs it alone populated.
pub fn ensure_named_fields_are_members<R: TypeResolver>(
    r: &R,
    ty: Option<R::Ty>,
    set: &Set,
) -> Set {
    let mut out = set.clone();
    ensure_into(r, ty, set, &mut out);
    out
}

fn ensure_into<R: TypeResolver>(r: &R, ty: Option<R::Ty>, set: &Set, out: &mut Set) {
    let kind = ty.map(|t| r.kind(t)).unwrap_or(Kind::Untyped);
    for (pe, child) in set.children() {
        let (child_ty, named) = match (pe, &kind) {
            (PathElement::Field(name), Kind::Struct { .. }) => (
                entry_ty(r, ty, name),
                ty.is_some_and(|t| r.declares(t, name)),
            ),
            (PathElement::Field(name), _) => (entry_ty(r, ty, name), false),
            (_, Kind::List(_)) => (ty.and_then(|t| r.items(t)), false),
            _ => (None, false),
        };
        if named && !child.is_empty() {
            out.insert_member(pe.clone());
        }
        let sub = out.child_mut(pe);
        ensure_into(r, child_ty, child, sub);
    }
    out.prune_empty();
}
