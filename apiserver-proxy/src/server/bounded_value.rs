//! Request bodies decoded within a size budget: a `serde_json::Value` built
//! from a self-describing format (YAML) that stops with an error once it
//! would hold more values, or more string bytes, than a budget linear in the
//! body's size, or nest deeper than the JSON reader the store uses accepts
//! ([`nestkube_patch::MAX_DOCUMENT_DEPTH`]; serde_yaml alone accepts one
//! level more, which would be stored and never read back).
//!
//! Why: YAML aliases repeat a subtree wherever they are named, so a few
//! kilobytes can stand for gigabytes (the "billion laughs", upstream's
//! CVE-2019-11253). serde_yaml caps alias jumps at 100 per event, which still
//! lets a 3 MiB body expand a 100 000-element anchor thousands of times.
//! Every body decoded here costs at most about what an alias-free body of the
//! same size could, whatever it aliases.
//!
//! Must never: allocate a value before charging it to the budget, or change
//! what an alias-free document decodes to (it decodes exactly as
//! `serde_yaml::from_slice::<serde_json::Value>` does).

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Values (nodes) any body may decode to besides one per body byte.
const BASE_VALUES: usize = 100_000;
/// String bytes any body may decode to besides one per body byte.
const BASE_STRING_BYTES: usize = 1 << 20;

/// What a body of `len` bytes may decode to.
#[derive(Debug)]
pub struct Budget {
    values: Cell<usize>,
    string_bytes: Cell<usize>,
}

impl Budget {
    /// The budget of a body of `len` bytes: [`BASE_VALUES`] + `len` values and
    /// [`BASE_STRING_BYTES`] + `len` bytes of strings and keys (an alias-free
    /// document needs at least a byte per value and per string byte).
    pub fn for_body(len: usize) -> Self {
        Self {
            values: Cell::new(BASE_VALUES.saturating_add(len)),
            string_bytes: Cell::new(BASE_STRING_BYTES.saturating_add(len)),
        }
    }

    fn take<E: de::Error>(&self, values: usize, string_bytes: usize) -> Result<(), E> {
        let (v, s) = (self.values.get(), self.string_bytes.get());
        if values > v || string_bytes > s {
            return Err(E::custom(
                "the document expands to more values than its size allows (excessive aliasing)",
            ));
        }
        self.values.set(v - values);
        self.string_bytes.set(s - string_bytes);
        Ok(())
    }
}

/// Decodes YAML `body` into a JSON value within [`Budget::for_body`].
pub fn yaml_to_value(body: &[u8]) -> Result<Value, serde_yaml::Error> {
    let budget = Budget::for_body(body.len());
    BoundedValue::new(&budget).deserialize(serde_yaml::Deserializer::from_slice(body))
}

/// A [`DeserializeSeed`] of a `serde_json::Value` charged to a [`Budget`].
#[derive(Clone, Copy)]
pub struct BoundedValue<'b> {
    budget: &'b Budget,
    /// Containers enclosing the value.
    depth: usize,
}

impl<'b> BoundedValue<'b> {
    /// A whole document charged to `budget`.
    pub fn new(budget: &'b Budget) -> Self {
        Self { budget, depth: 0 }
    }

    /// The seed of a container's members, refused past the depth limit.
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= nestkube_patch::MAX_DOCUMENT_DEPTH {
            return Err(E::custom(format!(
                "the document nests deeper than {} levels",
                nestkube_patch::MAX_DOCUMENT_DEPTH
            )));
        }
        self.budget.take(1, 0)?;
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for BoundedValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A map key, charged to the budget by its length.
struct BoundedKey<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for BoundedKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let key = String::deserialize(d)?;
        self.0.take(0, key.len())?;
        Ok(key)
    }
}

impl<'de> Visitor<'de> for BoundedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.take(1, 0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.take(1, 0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.take(1, 0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.take(1, 0)?;
        // As serde_json: NaN and infinities have no JSON form.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.take(1, v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.take(1, v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.budget.take(1, 0)?;
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.take(1, 0)?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut members = Map::new();
        while let Some(key) = map.next_key_seed(BoundedKey(self.budget))? {
            let value = map.next_value_seed(inner)?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // A YAML tag (`!custom {a: 1}`): serde_json::Value refuses it too.
        let _ = data;
        Err(de::Error::custom(
            "invalid type: enum, expected any valid JSON value",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_free_documents_decode_as_serde_yaml_does() {
        for doc in [
            "a: 1\nb: [x, 2, 3.5, true, null, ~]\nc: {d: e}\n",
            "- 1\n- -2\n- 18446744073709551615\n- .nan\n- .inf\n",
            "'1': a\n2: b\ntrue: c\n",
            "a: 1\na: 2\n",
            "",
            "x",
            "!!binary aGVsbG8=",
            "? [a]\n: 1\n",
            "base: &b {a: 1}\nspec: *b\n",
        ] {
            let want = serde_yaml::from_slice::<Value>(doc.as_bytes()).map_err(|e| e.to_string());
            let got = yaml_to_value(doc.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(got.is_ok(), want.is_ok(), "{doc:?}: {got:?} vs {want:?}");
            if want.is_ok() {
                assert_eq!(got, want, "{doc:?}");
            }
        }
    }

    #[test]
    fn alias_amplification_is_refused() {
        // A 100 000-element anchor named 60 times: 6 million values from
        // 200 KB (5 000 times: 500 million). serde_yaml alone builds them all.
        let mut doc = String::from("a: &a [");
        doc.push_str(&"0,".repeat(100_000));
        doc.push_str("]\nb: [");
        doc.push_str(&"*a,".repeat(60));
        doc.push_str("]\n");
        let err = yaml_to_value(doc.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("excessive aliasing"), "{err}");
    }

    #[test]
    fn string_amplification_is_refused() {
        let mut doc = format!("a: &a {}\nb: [", "x".repeat(1 << 20));
        doc.push_str(&"*a,".repeat(20));
        doc.push_str("]\n");
        let err = yaml_to_value(doc.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("excessive aliasing"), "{err}");
    }

    #[test]
    fn nesting_stops_where_the_json_reader_does() {
        let max = nestkube_patch::MAX_DOCUMENT_DEPTH;
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(yaml_to_value(nested(max).as_bytes()).is_ok());
        assert!(serde_json::from_str::<Value>(&nested(max)).is_ok());
        let err = yaml_to_value(nested(max + 1).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nests deeper"), "{err}");
    }

    #[test]
    fn modest_aliasing_is_accepted() {
        let doc = "x: &x {a: [1, 2, 3]}\ny: *x\nz: [*x, *x]\n";
        let v = yaml_to_value(doc.as_bytes()).unwrap();
        assert_eq!(v["z"][1]["a"][2], 3);
    }
}
