//! Storage keys: the one place that spells them.
//!
//! Every object of every cluster lives at
//! `/<cluster>/<segment>/[<namespace>/]<name>`, where `<segment>` is the
//! resource's storage segment (`core/pods`, `apps/deployments`), so a
//! cluster's key space is the prefix `/<cluster>/` and nothing of one
//! cluster is under another's (cluster paths never contain `/`). Cluster
//! records live outside every cluster's key space (`tenancy`).

/// The key of object `name` of `segment` in `cluster` (`namespace` for
/// namespaced resources).
pub fn object_key(cluster: &str, segment: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("/{cluster}/{segment}/{ns}/{name}"),
        None => format!("/{cluster}/{segment}/{name}"),
    }
}

/// The prefix of every object of `segment` in `cluster` (in `namespace`
/// only, when given).
pub fn collection_prefix(cluster: &str, segment: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("/{cluster}/{segment}/{ns}/"),
        None => format!("/{cluster}/{segment}/"),
    }
}

/// The prefix of everything `cluster` stores.
pub fn cluster_prefix(cluster: &str) -> String {
    format!("/{cluster}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_nest_under_their_prefixes() {
        let key = object_key("a:b", "core/pods", Some("ns"), "p");
        assert_eq!(key, "/a:b/core/pods/ns/p");
        assert!(key.starts_with(&collection_prefix("a:b", "core/pods", Some("ns"))));
        assert!(key.starts_with(&collection_prefix("a:b", "core/pods", None)));
        assert!(key.starts_with(&cluster_prefix("a:b")));
        assert!(!key.starts_with(&cluster_prefix("a")));
        assert_eq!(
            object_key("a", "core/namespaces", None, "x"),
            "/a/core/namespaces/x"
        );
    }
}
