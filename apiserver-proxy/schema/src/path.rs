//! Field paths in upstream's `field.Path` notation (`spec.versions[0].schema`,
//! `properties[spec]`).
//!
//! Only string building lives here; no module outside this one spells the
//! separators. It never inspects schemas or values.

/// `path.Child(name)`: `a.b`, or `b` at the root.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `path.Key(key)`: `a[key]`.
pub(crate) fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// `path.Index(i)`: `a[3]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_upstream() {
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(child("spec", "x"), "spec.x");
        assert_eq!(key(&child("s", "properties"), "a"), "s.properties[a]");
        assert_eq!(index("spec.items", 2), "spec.items[2]");
    }
}
