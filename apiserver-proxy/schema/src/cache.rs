//! The process-wide cache of compiled schemas: an identical schema (same
//! canonical JSON) compiles once and is shared by every CRD version and
//! virtual cluster that declares it.
//!
//! Entries are weak, so a schema no CRD uses any more is freed; the cache never
//! keeps a schema alive by itself, and never caches compile errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nestkube_api::error::FieldError;
use serde_json::Value;

use crate::Schema;

/// Compiled schemas by canonical JSON.
#[derive(Default)]
pub struct SchemaCache {
    entries: Mutex<HashMap<String, Weak<Schema>>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("entries", &self.len())
            .finish()
    }
}

/// The canonical form of a schema: JSON with object keys sorted, so that two
/// schemas differing only in key order share one entry.
fn canonical(v: &Value) -> String {
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

    /// The compiled schema for `openapi_v3_schema`, compiling it (errors below
    /// `path`) unless a live identical one exists. Errors are not cached: their
    /// paths depend on `path`.
    pub fn get_or_compile(
        &self,
        openapi_v3_schema: &Value,
        path: &str,
    ) -> Result<Arc<Schema>, Vec<FieldError>> {
        let key = canonical(openapi_v3_schema);
        if let Some(s) = self.lock().get(&key).and_then(Weak::upgrade) {
            return Ok(s);
        }
        // Compile outside the lock: compiling CEL is slow, lookups must not wait.
        let compiled = Arc::new(Schema::compile(openapi_v3_schema, path)?);
        let mut entries = self.lock();
        if let Some(s) = entries.get(&key).and_then(Weak::upgrade) {
            return Ok(s);
        }
        entries.retain(|_, w| w.strong_count() > 0);
        entries.insert(key, Arc::downgrade(&compiled));
        Ok(compiled)
    }

    /// How many live schemas the cache holds.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Whether no live schema is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Schema>>> {
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
}
