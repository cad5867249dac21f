//! The process-wide cache of compiled schemas: an identical schema (equal
//! JSON, object key order aside) compiles once and is shared by every CRD version and
//! virtual cluster that declares it.
//!
//! Entries are weak, so a schema no CRD uses any more is freed; the cache never
//! keeps a schema alive by itself, and never caches compile errors.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nestkube_api::error::FieldError;
use serde_json::Value;

use crate::Schema;

/// One cached schema: the JSON it was compiled from (to tell hash collisions
/// apart) and the compiled form, alive while some CRD version holds it.
struct Entry {
    raw: Value,
    schema: Weak<Schema>,
}

/// Compiled schemas by a hash of their JSON that ignores object key order.
#[derive(Default)]
pub struct SchemaCache {
    entries: Mutex<HashMap<u64, Vec<Entry>>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("entries", &self.len())
            .finish()
    }
}

/// A hash of `v` in which object keys are unordered (so are they in
/// `Value`'s equality), computed without copying or serializing.
fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            if let Some(i) = n.as_i64() {
                i.hash(h);
            } else if let Some(u) = n.as_u64() {
                u.hash(h);
            } else {
                n.as_f64().unwrap_or_default().to_bits().hash(h);
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for item in a {
                hash_value(item, h);
            }
        }
        Value::Object(m) => {
            (5u8, m.len()).hash(h);
            let mut sum = 0u64;
            for (k, val) in m {
                let mut entry = DefaultHasher::new();
                k.hash(&mut entry);
                hash_value(val, &mut entry);
                sum = sum.wrapping_add(entry.finish());
            }
            sum.hash(h);
        }
    }
}

fn key_of(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    hash_value(v, &mut h);
    h.finish()
}

impl SchemaCache {
    /// An empty cache (tests; the server uses [`SchemaCache::global`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cache.
    pub fn global() -> &'static SchemaCache {
        static GLOBAL: OnceLock<SchemaCache> = OnceLock::new();
        GLOBAL.get_or_init(SchemaCache::new)
    }

    fn find(&self, key: u64, raw: &Value) -> Option<Arc<Schema>> {
        self.lock()
            .get(&key)?
            .iter()
            .find(|e| &e.raw == raw)
            .and_then(|e| e.schema.upgrade())
    }

    /// The compiled schema for `openapi_v3_schema`, compiling it (errors below
    /// `path`) unless a live identical one exists. Errors are not cached: their
    /// paths depend on `path`.
    pub fn get_or_compile(
        &self,
        openapi_v3_schema: &Value,
        path: &str,
    ) -> Result<Arc<Schema>, Vec<FieldError>> {
        let key = key_of(openapi_v3_schema);
        if let Some(s) = self.find(key, openapi_v3_schema) {
            return Ok(s);
        }
        // Compile outside the lock: compiling CEL is slow, lookups must not wait.
        let compiled = Arc::new(Schema::compile(openapi_v3_schema, path)?);
        let mut entries = self.lock();
        let bucket = entries.entry(key).or_default();
        bucket.retain(|e| e.schema.strong_count() > 0);
        if let Some(s) = bucket
            .iter()
            .find(|e| &e.raw == openapi_v3_schema)
            .and_then(|e| e.schema.upgrade())
        {
            return Ok(s);
        }
        bucket.push(Entry {
            raw: openapi_v3_schema.clone(),
            schema: Arc::downgrade(&compiled),
        });
        // Drop buckets whose schemas are all gone, so the map stays as small
        // as the set of schemas in use.
        entries.retain(|_, b| b.iter().any(|e| e.schema.strong_count() > 0));
        Ok(compiled)
    }

    /// How many live schemas the cache holds.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .flatten()
            .filter(|e| e.schema.strong_count() > 0)
            .count()
    }

    /// Whether no live schema is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Entry>>> {
        // A panic while holding the lock leaves only weak pointers behind.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identical_schemas_share_and_unused_ones_go() {
        let cache = SchemaCache::new();
        let a = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let b = json!({"properties": {"spec": {"type": "object"}}, "type": "object"});
        let s1 = cache.get_or_compile(&a, "x").unwrap();
        let s2 = cache.get_or_compile(&b, "y").unwrap();
        assert!(Arc::ptr_eq(&s1, &s2));
        assert_eq!(cache.len(), 1);
        drop((s1, s2));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn key_order_does_not_change_the_hash_but_values_do() {
        let a = json!({"a": 1, "b": [1, {"c": "x", "d": null}]});
        let b = json!({"b": [1, {"d": null, "c": "x"}], "a": 1});
        let c = json!({"b": [{"d": null, "c": "x"}, 1], "a": 1});
        assert_eq!(key_of(&a), key_of(&b));
        assert_ne!(key_of(&a), key_of(&c));
        assert_eq!(a, b);
    }
}
