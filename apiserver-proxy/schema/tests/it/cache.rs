//! The shared schema cache and the memory it saves.

use std::sync::Arc;

use nestkube_schema::SchemaCache;
use serde_json::json;

#[test]
fn one_compiled_schema_serves_every_cluster() {
    let cache = SchemaCache::new();
    let raw = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "has(self.a)"}],
        "properties": {"a": {"type": "string"}}}}});
    let held: Vec<_> = (0..1000)
        .map(|i| {
            cache
                .get_or_compile(
                    &raw,
                    &format!("spec.versions[{}].schema.openAPIV3Schema", i % 3),
                )
                .unwrap()
        })
        .collect();
    assert!(held.iter().all(|s| Arc::ptr_eq(s, &held[0])));
    assert_eq!(cache.len(), 1);
    drop(held);
    assert!(cache.is_empty());
}

#[test]
fn errors_are_not_cached() {
    let cache = SchemaCache::new();
    let bad = json!({"type": "object", "properties": {"a": {}}});
    let e1 = cache.get_or_compile(&bad, "x").unwrap_err();
    let e2 = cache.get_or_compile(&bad, "y").unwrap_err();
    assert_eq!(e1[0].field, "x.properties[a].type");
    assert_eq!(e2[0].field, "y.properties[a].type");
    assert!(cache.is_empty());
}

#[test]
fn global_cache_is_one() {
    assert!(std::ptr::eq(SchemaCache::global(), SchemaCache::global()));
}
