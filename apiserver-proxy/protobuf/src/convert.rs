//! Protobuf message -> JSON, following the Go types in the schema table: what
//! kube-apiserver gets by unmarshalling into the Go struct (gogo-generated
//! `Unmarshal`) and marshalling that struct with encoding/json.
//!
//! The Go rules reproduced here:
//! - fields are emitted in Go declaration order; embedded (`json:",inline"`)
//!   structs are flattened; fields absent from the protobuf get Go zero values;
//! - `omitempty` drops false, 0, "", nil pointers and empty slices/maps (never
//!   structs); `omitzero` drops Go zero values (`Time.IsZero()` for times);
//!   a pointer present on the wire is emitted even when it points at a zero;
//! - nil slices/maps/`[]byte` marshal as `null`, maps are sorted by key,
//!   `[]byte` is base64;
//! - repeated scalars may be packed or not; for a non-repeated field the last
//!   scalar wins and message occurrences merge (their bytes concatenate);
//! - unknown field numbers are skipped; a known field with the wrong wire
//!   type is an error (as in generated Go code).
//!
//! Never panics on input: every failure is a [`ProtobufError`], recursion is
//! bounded by [`crate::MAX_DEPTH`] and output size by a value budget.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::ProtobufError;
use crate::gofmt;
use crate::schema::{JSON_SCHEMA_PROPS, Scalar, Schema, Special, TypeDef, TypeRef};
use crate::wire::{self, Reader, WireValue};

/// A decoded Go value: its JSON, and whether Go considers it empty (for
/// `omitempty`) or zero (for `omitzero`).
struct GoVal {
    json: Value,
    empty: bool,
    zero: bool,
}

impl GoVal {
    fn nil() -> GoVal {
        GoVal {
            json: Value::Null,
            empty: true,
            zero: true,
        }
    }
    fn structish(json: Value, zero: bool) -> GoVal {
        GoVal {
            json,
            empty: false,
            zero,
        }
    }
}

/// Decoding state for one body.
pub(crate) struct Converter<'s> {
    schema: &'s Schema,
    budget: usize,
    limit: usize,
    path: Vec<String>,
    type_name: String,
}

type Res<T> = Result<T, ProtobufError>;

impl<'s> Converter<'s> {
    /// A converter that may produce at most `limit` JSON values.
    pub(crate) fn new(schema: &'s Schema, limit: usize) -> Self {
        Converter {
            schema,
            budget: limit,
            limit,
            path: Vec::new(),
            type_name: String::new(),
        }
    }

    fn err(&self, message: impl Into<String>) -> ProtobufError {
        let path = if self.path.is_empty() {
            ".".to_string()
        } else {
            self.path.concat()
        };
        let path = path.trim_start_matches('.').to_string();
        let short = self
            .type_name
            .rsplit('/')
            .next()
            .unwrap_or(&self.type_name)
            .to_string();
        ProtobufError::Invalid {
            type_name: short,
            path: if path.is_empty() { ".".into() } else { path },
            message: message.into(),
        }
    }

    fn spend(&mut self) -> Res<()> {
        if self.budget == 0 {
            return Err(ProtobufError::TooLarge(self.limit));
        }
        self.budget -= 1;
        Ok(())
    }

    fn wire_err(&self, e: wire::WireError) -> ProtobufError {
        self.err(e.0)
    }

    /// Decodes a struct from the concatenation of `chunks` (an absent message is
    /// no chunks). Returns the JSON object and whether the Go value is zero.
    pub(crate) fn decode_struct(
        &mut self,
        idx: usize,
        chunks: &[&[u8]],
        depth: usize,
    ) -> Res<(Map<String, Value>, bool)> {
        if depth > crate::MAX_DEPTH {
            return Err(ProtobufError::TooDeep(crate::MAX_DEPTH));
        }
        let schema = self.schema;
        let TypeDef::Struct {
            name,
            fields,
            by_number,
        } = &schema.types[idx]
        else {
            return Err(self.err("schema: expected a struct"));
        };
        let saved = std::mem::replace(&mut self.type_name, name.clone());
        let mut occs: Vec<Vec<WireValue<'_>>> = vec![Vec::new(); fields.len()];
        for chunk in chunks {
            let mut r = Reader::new(chunk);
            while let Some((num, v)) = r.next_field().map_err(|e| self.wire_err(e))? {
                if let Some(&i) = by_number.get(&num) {
                    occs[i].push(v);
                }
            }
        }
        let mut out = Map::new();
        let mut zero = true;
        for (f, occ) in fields.iter().zip(&occs) {
            if f.inline {
                let TypeRef::Struct(sub) = f.ty else {
                    return Err(self.err("schema: inline field is not a struct"));
                };
                let sub_chunks = self.chunks(occ)?;
                let (m, z) = self.decode_struct(sub, &sub_chunks, depth + 1)?;
                self.type_name = name.clone();
                zero &= z;
                for (k, v) in m {
                    out.entry(k).or_insert(v);
                }
                continue;
            }
            self.path.push(format!(".{}", f.json));
            let gv = self.field_value(&f.ty, occ, depth)?;
            self.type_name = name.clone();
            self.path.pop();
            zero &= gv.zero;
            if (f.omitempty && gv.empty) || (f.omitzero && gv.zero) {
                continue;
            }
            self.spend()?;
            out.insert(f.json.clone(), gv.json);
        }
        self.type_name = saved;
        Ok((out, zero))
    }

    /// The length-delimited payloads of a message-typed field's occurrences.
    fn chunks<'a>(&self, occs: &[WireValue<'a>]) -> Res<Vec<&'a [u8]>> {
        occs.iter()
            .map(|o| match o {
                WireValue::Bytes(b) => Ok(*b),
                o => Err(self.err(format!("wrong wire type {} for a message", o.wire_type()))),
            })
            .collect()
    }

    /// A field of any type from all its occurrences.
    fn field_value(&mut self, ty: &TypeRef, occs: &[WireValue<'_>], depth: usize) -> Res<GoVal> {
        match ty {
            TypeRef::Pointer(inner) => {
                if occs.is_empty() {
                    return Ok(GoVal::nil());
                }
                let v = self.single(inner, occs, depth)?;
                Ok(GoVal {
                    json: v.json,
                    empty: false,
                    zero: false,
                })
            }
            TypeRef::Slice(elem) => {
                let items = self.repeated(elem, occs, depth)?;
                if items.is_empty() {
                    return Ok(GoVal::nil());
                }
                Ok(GoVal {
                    json: Value::Array(items),
                    empty: false,
                    zero: false,
                })
            }
            TypeRef::Map(k, v) => self.map(k, v, occs, depth),
            other => self.single(other, occs, depth),
        }
    }

    /// The elements of a repeated field (packed or not).
    fn repeated(
        &mut self,
        elem: &TypeRef,
        occs: &[WireValue<'_>],
        depth: usize,
    ) -> Res<Vec<Value>> {
        let elem = match elem {
            TypeRef::Pointer(inner) => inner.as_ref(),
            e => e,
        };
        let mut items = Vec::new();
        for occ in occs {
            if let (TypeRef::Scalar(s), WireValue::Bytes(b)) = (elem, occ)
                && !matches!(s, Scalar::String | Scalar::Bytes)
            {
                let words: Vec<WireValue<'_>> = match s {
                    Scalar::Float64 => wire::packed_fixed::<8>(b)
                        .map_err(|e| self.wire_err(e))?
                        .into_iter()
                        .map(|w| WireValue::Fixed64(u64::from_le_bytes(w)))
                        .collect(),
                    Scalar::Float32 => wire::packed_fixed::<4>(b)
                        .map_err(|e| self.wire_err(e))?
                        .into_iter()
                        .map(|w| WireValue::Fixed32(u32::from_le_bytes(w)))
                        .collect(),
                    _ => wire::packed_varints(b)
                        .map_err(|e| self.wire_err(e))?
                        .into_iter()
                        .map(WireValue::Varint)
                        .collect(),
                };
                for w in words {
                    self.spend()?;
                    items.push(self.scalar(*s, Some(w))?.json);
                }
                continue;
            }
            self.path.push(format!("[{}]", items.len()));
            self.spend()?;
            let v = self.single(elem, std::slice::from_ref(occ), depth)?;
            self.path.pop();
            items.push(v.json);
        }
        Ok(items)
    }

    /// A map field: each occurrence is an entry message {key=1, value=2}.
    fn map(
        &mut self,
        k: &TypeRef,
        v: &TypeRef,
        occs: &[WireValue<'_>],
        depth: usize,
    ) -> Res<GoVal> {
        if occs.is_empty() {
            return Ok(GoVal::nil());
        }
        let mut entries: BTreeMap<String, Value> = BTreeMap::new();
        for occ in occs {
            let WireValue::Bytes(entry) = occ else {
                return Err(self.err(format!(
                    "wrong wire type {} for a map entry",
                    occ.wire_type()
                )));
            };
            let mut key = None;
            let mut vals = Vec::new();
            let mut r = Reader::new(entry);
            while let Some((num, val)) = r.next_field().map_err(|e| self.wire_err(e))? {
                match num {
                    1 => key = Some(val),
                    2 => vals.push(val),
                    _ => {}
                }
            }
            let key = match k {
                TypeRef::Scalar(Scalar::String) => match key {
                    None => String::new(),
                    Some(WireValue::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(o) => {
                        return Err(
                            self.err(format!("wrong wire type {} for a map key", o.wire_type()))
                        );
                    }
                },
                TypeRef::Scalar(
                    s @ (Scalar::Int32 | Scalar::Int64 | Scalar::Uint32 | Scalar::Uint64),
                ) => self.scalar(*s, key)?.json.to_string(),
                _ => return Err(self.err("schema: unsupported map key type")),
            };
            self.path.push(format!("[{key:?}]"));
            self.spend()?;
            let value = match (v, vals.is_empty()) {
                // Go's generated code starts a []byte map value as []byte{}.
                (TypeRef::Scalar(Scalar::Bytes), true) => Value::String(String::new()),
                _ => self.single(v, &vals, depth)?.json,
            };
            self.path.pop();
            entries.insert(key, value);
        }
        Ok(GoVal {
            json: Value::Object(entries.into_iter().collect()),
            empty: false,
            zero: false,
        })
    }

    /// A non-repeated value of type `ty` from its occurrences (none = Go zero value).
    fn single(&mut self, ty: &TypeRef, occs: &[WireValue<'_>], depth: usize) -> Res<GoVal> {
        match ty {
            TypeRef::Scalar(s) => self.scalar(*s, occs.last().copied()),
            TypeRef::Pointer(inner) => {
                if occs.is_empty() {
                    return Ok(GoVal::nil());
                }
                let v = self.single(inner, occs, depth)?;
                Ok(GoVal {
                    json: v.json,
                    empty: false,
                    zero: false,
                })
            }
            TypeRef::Struct(idx) => {
                let chunks = self.chunks(occs)?;
                let (m, zero) = self.decode_struct(*idx, &chunks, depth + 1)?;
                Ok(GoVal::structish(Value::Object(m), zero))
            }
            TypeRef::Wrapper(idx) => {
                let TypeDef::Wrapper { items, .. } = &self.schema.types[*idx] else {
                    return Err(self.err("schema: expected a wrapper"));
                };
                let mut inner = Vec::new();
                for chunk in self.chunks(occs)? {
                    let mut r = Reader::new(chunk);
                    while let Some((num, v)) = r.next_field().map_err(|e| self.wire_err(e))? {
                        if num == 1 {
                            inner.push(v);
                        }
                    }
                }
                let vals = self.repeated(items, &inner, depth + 1)?;
                // Go's generated map code starts from `&ExtraValue{}`: a non-nil
                // empty slice, so an empty wrapper is `[]`, never null.
                let empty = vals.is_empty();
                Ok(GoVal {
                    json: Value::Array(vals),
                    empty,
                    zero: false,
                })
            }
            TypeRef::Special(sp) => {
                let chunks = self.chunks(occs)?;
                self.special(*sp, &chunks, depth + 1)
            }
            TypeRef::Slice(_) | TypeRef::Map(..) => Err(self.err("schema: nested repeated type")),
        }
    }

    fn scalar(&self, s: Scalar, occ: Option<WireValue<'_>>) -> Res<GoVal> {
        let Some(occ) = occ else {
            let json = match s {
                Scalar::String => Value::String(String::new()),
                Scalar::Bool => Value::Bool(false),
                Scalar::Bytes => Value::Null,
                _ => Value::from(0),
            };
            return Ok(GoVal {
                json,
                empty: true,
                zero: true,
            });
        };
        let wrong = || self.err(format!("wrong wire type {} for {s:?}", occ.wire_type()));
        let (json, empty) = match (s, occ) {
            (Scalar::String, WireValue::Bytes(b)) => (
                Value::String(String::from_utf8_lossy(b).into_owned()),
                b.is_empty(),
            ),
            (Scalar::Bytes, WireValue::Bytes(b)) => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                b.is_empty(),
            ),
            (Scalar::Bool, WireValue::Varint(v)) => (Value::Bool(v != 0), v == 0),
            (Scalar::Int32, WireValue::Varint(v)) => (Value::from(v as i32), v as i32 == 0),
            (Scalar::Int64, WireValue::Varint(v)) => (Value::from(v as i64), v == 0),
            (Scalar::Uint32, WireValue::Varint(v)) => (Value::from(v as u32), v as u32 == 0),
            (Scalar::Uint64, WireValue::Varint(v)) => (Value::from(v), v == 0),
            (Scalar::Float64, WireValue::Fixed64(v)) => {
                let f = f64::from_bits(v);
                (
                    gofmt::float(f)
                        .ok_or_else(|| self.err(format!("unsupported float value {f}")))?,
                    f == 0.0,
                )
            }
            (Scalar::Float32, WireValue::Fixed32(v)) => {
                let f = f32::from_bits(v);
                (
                    gofmt::float32(f)
                        .ok_or_else(|| self.err(format!("unsupported float value {f}")))?,
                    f == 0.0,
                )
            }
            _ => return Err(wrong()),
        };
        let zero = empty && s != Scalar::Bytes;
        Ok(GoVal { json, empty, zero })
    }

    /// Fields of a small fixed message (specials), by number.
    fn fields_of<'a>(&self, chunks: &[&'a [u8]]) -> Res<Vec<(u32, WireValue<'a>)>> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut r = Reader::new(chunk);
            while let Some(f) = r.next_field().map_err(|e| self.wire_err(e))? {
                out.push(f);
            }
        }
        Ok(out)
    }

    fn last<'a>(fields: &[(u32, WireValue<'a>)], n: u32) -> Option<WireValue<'a>> {
        fields
            .iter()
            .rev()
            .find(|(num, _)| *num == n)
            .map(|(_, v)| *v)
    }

    fn all<'a>(fields: &[(u32, WireValue<'a>)], n: u32) -> Vec<WireValue<'a>> {
        fields
            .iter()
            .filter(|(num, _)| *num == n)
            .map(|(_, v)| *v)
            .collect()
    }

    fn int_field(&self, fields: &[(u32, WireValue<'_>)], n: u32) -> Res<u64> {
        match Self::last(fields, n) {
            None => Ok(0),
            Some(WireValue::Varint(v)) => Ok(v),
            Some(o) => Err(self.err(format!("wrong wire type {} for field {n}", o.wire_type()))),
        }
    }

    fn bytes_field<'a>(&self, fields: &[(u32, WireValue<'a>)], n: u32) -> Res<Option<&'a [u8]>> {
        match Self::last(fields, n) {
            None => Ok(None),
            Some(WireValue::Bytes(b)) => Ok(Some(b)),
            Some(o) => Err(self.err(format!("wrong wire type {} for field {n}", o.wire_type()))),
        }
    }

    /// Embedded raw JSON (RawExtension, FieldsV1, apiextensions JSON).
    fn raw_json(&self, raw: &[u8], what: &str) -> Res<Value> {
        serde_json::from_slice(raw).map_err(|e| self.err(format!("{what} is not valid JSON: {e}")))
    }

    fn schema_props(&mut self, occs: &[WireValue<'_>], depth: usize) -> Res<Value> {
        let idx = self.schema.by_name[JSON_SCHEMA_PROPS];
        Ok(self.single(&TypeRef::Struct(idx), occs, depth)?.json)
    }

    fn special(&mut self, sp: Special, chunks: &[&[u8]], depth: usize) -> Res<GoVal> {
        if depth > crate::MAX_DEPTH {
            return Err(ProtobufError::TooDeep(crate::MAX_DEPTH));
        }
        let fields = self.fields_of(chunks)?;
        let absent = chunks.iter().all(|c| c.is_empty());
        let json = match sp {
            Special::Time | Special::MicroTime => {
                if absent {
                    // Go: empty data -> time.Time{} -> JSON null.
                    return Ok(GoVal::structish(Value::Null, true));
                }
                let secs = self.int_field(&fields, 1)? as i64;
                let nanos = self.int_field(&fields, 2)? as i32 as i64;
                // metav1.Time keeps seconds only; MicroTime truncates to microseconds.
                let (secs, micros) = if sp == Special::Time {
                    (secs, None)
                } else {
                    let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
                    let s = total.div_euclid(1_000_000_000);
                    let us = (total.rem_euclid(1_000_000_000) / 1_000) as u32;
                    (
                        i64::try_from(s).map_err(|_| self.err("timestamp out of range"))?,
                        Some(us),
                    )
                };
                if secs == gofmt::ZERO_TIME_UNIX && micros.unwrap_or(0) == 0 {
                    return Ok(GoVal::structish(Value::Null, true));
                }
                let s = gofmt::rfc3339(secs, micros)
                    .ok_or_else(|| self.err(format!("timestamp {secs} is outside years 0-9999")))?;
                Value::String(s)
            }
            Special::Duration => Value::String(gofmt::duration(self.int_field(&fields, 1)? as i64)),
            Special::IntOrString => {
                let t = self.int_field(&fields, 1)? as i64;
                match t {
                    0 => Value::from(self.int_field(&fields, 2)? as i32),
                    1 => Value::String(
                        self.bytes_field(&fields, 3)?
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .unwrap_or_default(),
                    ),
                    _ => return Err(self.err("impossible IntOrString.Type")),
                }
            }
            Special::Quantity => match self.bytes_field(&fields, 1)? {
                None => Value::String("0".into()),
                Some(b) => {
                    let s = String::from_utf8_lossy(b);
                    let canonical = crate::quantity::canonical(&s).ok_or_else(|| {
                        self.err(format!(
                            "quantity {s:?} must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                        ))
                    })?;
                    Value::String(canonical)
                }
            },
            Special::RawExtension => match self.bytes_field(&fields, 1)? {
                None => Value::Null,
                Some(raw) => self.raw_json(raw, "RawExtension")?,
            },
            Special::Json => match self.bytes_field(&fields, 1)? {
                Some(raw) if !raw.is_empty() => self.raw_json(raw, "JSON")?,
                _ => Value::Null,
            },
            Special::FieldsV1 => match self.bytes_field(&fields, 1)? {
                Some(raw) if !raw.is_empty() => {
                    let first = raw[0];
                    if !matches!(first, b'\t' | b'\n' | b'\r' | b' ' | b'n' | b'{') {
                        return Err(
                            self.err("FieldsV1 holds non-JSON (CBOR) data, which is not supported")
                        );
                    }
                    self.raw_json(raw, "FieldsV1")?
                }
                _ => Value::Null,
            },
            Special::SchemaOrArray => {
                let many = Self::all(&fields, 2);
                if !many.is_empty() {
                    let mut arr = Vec::new();
                    for occ in many {
                        self.spend()?;
                        arr.push(self.schema_props(&[occ], depth)?);
                    }
                    Value::Array(arr)
                } else {
                    let one = Self::all(&fields, 1);
                    if one.is_empty() {
                        Value::Null
                    } else {
                        self.schema_props(&one, depth)?
                    }
                }
            }
            Special::SchemaOrBool => {
                let one = Self::all(&fields, 2);
                if !one.is_empty() {
                    self.schema_props(&one, depth)?
                } else {
                    Value::Bool(self.int_field(&fields, 1)? != 0)
                }
            }
            Special::SchemaOrStringArray => {
                let props = Self::all(&fields, 2);
                if !props.is_empty() {
                    Value::Array(self.repeated(&TypeRef::Scalar(Scalar::String), &props, depth)?)
                } else {
                    let one = Self::all(&fields, 1);
                    if one.is_empty() {
                        Value::Null
                    } else {
                        self.schema_props(&one, depth)?
                    }
                }
            }
        };
        Ok(GoVal::structish(json, absent))
    }
}
