//! Field paths and sets of them, after structured-merge-diff's `fieldpath`
//! package: [`PathElement`] (a field name, the keys of a list-map item, the
//! value of a set item, or a list index), [`Set`] (a tree of members and
//! children), and the `FieldsV1` JSON encoding stored in
//! `metadata.managedFields`.
//!
//! It must never look at a schema or an object: sets are pure data.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

/// One step of a path into an object.
///
/// Values (list-map keys, set elements) are held as their canonical JSON
/// text, so elements compare, sort and hash without a value type. The
/// variant order is upstream's: field names sort before keys, keys before
/// values, values before indexes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a struct or a key of a map (`f:<name>`).
    Field(String),
    /// An item of an associative list by its key fields, sorted by name
    /// (`k:{"name":"c"}`); each value is canonical JSON.
    Key(Vec<(String, String)>),
    /// An item of a set by its value, as canonical JSON (`v:"a"`).
    Value(String),
    /// An item of a list by its position (`i:0`).
    Index(usize),
}

impl PathElement {
    /// A field element.
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    /// A key element from `(field, value)` pairs (sorted here).
    pub fn key(mut fields: Vec<(String, Value)>) -> PathElement {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(
            fields
                .into_iter()
                .map(|(k, v)| (k, canonical(&v)))
                .collect(),
        )
    }

    /// A set-value element.
    pub fn value(v: &Value) -> PathElement {
        PathElement::Value(canonical(v))
    }

    /// The `FieldsV1` key of this element (`f:name`, `k:{..}`, `v:..`, `i:0`).
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(fields) => {
                let mut s = String::from("k:{");
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&Value::String(k.clone()).to_string());
                    s.push(':');
                    s.push_str(v);
                }
                s.push('}');
                s
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub fn from_fields_v1_key(s: &str) -> Result<PathElement, FieldsV1Error> {
        let bad = || FieldsV1Error::InvalidKey(s.to_string());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "i" => rest.parse().map(PathElement::Index).map_err(|_| bad()),
            "v" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                Ok(PathElement::value(&v))
            }
            "k" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                let Value::Object(m) = v else {
                    return Err(bad());
                };
                Ok(PathElement::key(m.into_iter().collect()))
            }
            _ => Err(bad()),
        }
    }
}

/// Canonical JSON text of a value (object keys sorted).
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

impl fmt::Display for PathElement {
    /// Upstream's `PathElement.String()`: `.name`, `[k=v,...]`, `[=v]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path: a sequence of elements from the root of an object.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(pub Vec<PathElement>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

/// Why a `FieldsV1` document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldsV1Error {
    /// Not a JSON object where one was expected.
    #[error("expected an object in fieldsV1")]
    NotAnObject,
    /// A key that is not `f:`, `k:`, `v:`, `i:` or `.`.
    #[error("invalid fieldsV1 key {0:?}")]
    InvalidKey(String),
}

/// A set of field paths, as a tree: `members` are paths ending here,
/// `children` continue. Upstream's `fieldpath.Set`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    /// The empty set.
    pub fn new() -> Set {
        Set::default()
    }

    /// A set of the given paths.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a [PathElement]>) -> Set {
        let mut s = Set::new();
        for p in paths {
            s.insert(p);
        }
        s
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Adds a path (the empty path is ignored, as upstream).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the set holds exactly this path.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether `pe` is a member (a path ending at this level).
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths continuing under `pe` (empty if none).
    pub fn with_prefix(&self, pe: &PathElement) -> &Set {
        static EMPTY: Set = Set {
            members: BTreeSet::new(),
            children: BTreeMap::new(),
        };
        self.children.get(pe).unwrap_or(&EMPTY)
    }

    /// Members at this level.
    pub fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// Children at this level.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    /// The paths in either set.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            if let Some(oc) = other.children.get(pe) {
                let i = c.intersection(oc);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    /// The paths of `self` not in `other` (exact paths: a member of `other`
    /// does not remove the paths below it).
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(oc) => c.difference(oc),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// The paths of `self` neither in `other` nor below a member of `other`.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let d = match other.children.get(pe) {
                Some(oc) => c.recursive_difference(oc),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// Every path of the set, in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        // Upstream's Iterate: members, then children (each in order).
        for m in &self.members {
            prefix.push(m.clone());
            out.push(Path(prefix.clone()));
            prefix.pop();
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Adds `pe` as a member (used by schema walks).
    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    /// The child set under `pe`, created if missing.
    pub(crate) fn child_mut(&mut self, pe: &PathElement) -> &mut Set {
        self.children.entry(pe.clone()).or_default()
    }

    /// Removes empty children (after in-place edits).
    pub(crate) fn prune_empty(&mut self) {
        self.children.retain(|_, c| {
            c.prune_empty();
            !c.is_empty()
        });
    }

    /// The `FieldsV1` JSON of this set: `{"f:a":{},"f:b":{".":{},"f:c":{}}}`.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        // Members and children interleaved in element order, as upstream's
        // serializer walks them.
        let mut keys: BTreeSet<&PathElement> = self.members.iter().collect();
        keys.extend(
            self.children
                .iter()
                .filter(|(_, c)| !c.is_empty())
                .map(|(k, _)| k),
        );
        for pe in keys {
            let child = self.children.get(pe).filter(|c| !c.is_empty());
            let v = match child {
                Some(c) => {
                    let mut inner = c.to_fields_v1();
                    if self.members.contains(pe) {
                        let mut with_dot = Map::new();
                        with_dot.insert(".".into(), Value::Object(Map::new()));
                        if let Value::Object(m) = inner {
                            with_dot.extend(m);
                        }
                        inner = Value::Object(with_dot);
                    }
                    inner
                }
                None => Value::Object(Map::new()),
            };
            map.insert(pe.to_fields_v1_key(), v);
        }
        Value::Object(map)
    }

    /// Reads a `FieldsV1` document.
    pub fn from_fields_v1(v: &Value) -> Result<Set, FieldsV1Error> {
        let m = v.as_object().ok_or(FieldsV1Error::NotAnObject)?;
        let mut set = Set::new();
        for (k, child) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::from_fields_v1_key(k)?;
            let cm = child.as_object().ok_or(FieldsV1Error::NotAnObject)?;
            if cm.is_empty() || cm.contains_key(".") {
                set.members.insert(pe.clone());
            }
            if cm.keys().any(|k| k != ".") {
                let c = Set::from_fields_v1(child)?;
                set.children.insert(pe, c);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(doc: Value) {
        let s = Set::from_fields_v1(&doc).unwrap();
        assert_eq!(s.to_fields_v1(), doc, "round trip of {doc}");
    }

    /// Serialization cases from structured-merge-diff's
    /// `fieldpath/serialize_test.go` (`TestSerializeV1`, the ones that
    /// stay valid with canonical key order).
    #[test]
    fn fields_v1_round_trips() {
        round_trip(json!({}));
        round_trip(json!({"f:aaa":{},"f:aab":{},"f:aac":{},"f:aad":{},"f:aae":{},"f:aaf":{}}));
        round_trip(json!({"f:aaa":{".":{},"f:bbb":{}}}));
        round_trip(
            json!({"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{}}}}}),
        );
        round_trip(json!({"f:a":{"i:1":{},"i:3":{}}}));
        round_trip(json!({"f:a":{"v:\"x\"":{},"v:123":{},"v:true":{}}}));
        round_trip(
            json!({"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}}}),
        );
        round_trip(json!({"f:a":{".":{},"f:b":{".":{},"f:c":{}}}}));
    }

    #[test]
    fn keys_are_sorted_and_canonical() {
        let pe = PathElement::key(vec![
            ("protocol".into(), json!("TCP")),
            ("port".into(), json!(80)),
        ]);
        assert_eq!(pe.to_fields_v1_key(), r#"k:{"port":80,"protocol":"TCP"}"#);
        assert_eq!(pe.to_string(), r#"[port=80,protocol="TCP"]"#);
        assert_eq!(
            PathElement::from_fields_v1_key(r#"k:{"protocol":"TCP","port":80}"#).unwrap(),
            pe
        );
        assert!(PathElement::from_fields_v1_key("x:1").is_err());
        assert!(PathElement::from_fields_v1_key("k:[1]").is_err());
    }

    fn p(s: &[&str]) -> Vec<PathElement> {
        s.iter().map(|f| PathElement::field(f)).collect()
    }

    /// Set algebra as `fieldpath/set_test.go`.
    #[test]
    fn set_operations() {
        let a = Set::from_paths([
            p(&["a", "b"]).as_slice(),
            p(&["a", "c"]).as_slice(),
            p(&["d"]).as_slice(),
        ]);
        let b = Set::from_paths([p(&["a", "b"]).as_slice(), p(&["e"]).as_slice()]);
        assert_eq!(
            a.union(&b),
            Set::from_paths([
                p(&["a", "b"]).as_slice(),
                p(&["a", "c"]).as_slice(),
                p(&["d"]).as_slice(),
                p(&["e"]).as_slice()
            ])
        );
        assert_eq!(
            a.intersection(&b),
            Set::from_paths([p(&["a", "b"]).as_slice()])
        );
        assert_eq!(
            a.difference(&b),
            Set::from_paths([p(&["a", "c"]).as_slice(), p(&["d"]).as_slice()])
        );
        // A member removes its whole subtree only recursively.
        let top = Set::from_paths([p(&["a"]).as_slice()]);
        assert_eq!(a.difference(&top), a);
        assert_eq!(
            a.recursive_difference(&top),
            Set::from_paths([p(&["d"]).as_slice()])
        );
        assert!(a.has(&p(&["a", "c"])));
        assert!(!a.has(&p(&["a"])));
        assert_eq!(
            a.paths().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            vec![".d", ".a.b", ".a.c"]
        );
    }
}
