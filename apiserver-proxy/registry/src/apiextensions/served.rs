//! The custom resources each virtual cluster serves: for every cluster, its
//! established CRDs (shared [`Definition`]s), indexed by URL path and
//! grouped for discovery.
//!
//! Readers take a snapshot ([`CustomResources::cluster`]) and never block a
//! writer for long: an install or removal rebuilds that one cluster's small
//! index and swaps it in. One cluster's CRDs are never visible through
//! another's snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use super::definition::Definition;
use crate::catalog::{GroupVersion, ResourceInfo};

/// An installed CRD of one cluster.
#[derive(Clone, Debug)]
pub struct Installed {
    /// What it serves.
    pub definition: Arc<Definition>,
    /// Being deleted: existing objects are served, new ones refused.
    pub terminating: bool,
    /// Set once this definition stops being served (replaced or removed).
    retired: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Installed {
    /// `definition`, served (terminating when its CRD is being deleted).
    pub fn new(definition: Arc<Definition>, terminating: bool) -> Self {
        Self {
            definition,
            terminating,
            retired: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Resolves once this definition is no longer what the cluster serves
    /// (its CRD changed or went away): open watches end then, as upstream
    /// ends them when it rebuilds a CRD's storage.
    pub fn retired(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.retired.subscribe();
        async move {
            let _ = rx.wait_for(|retired| *retired).await;
        }
    }

    fn retire(&self) {
        self.retired.send_replace(true);
    }
}

/// One cluster's custom resources (an immutable snapshot).
#[derive(Debug, Default)]
pub struct ClusterCustomResources {
    /// Installed CRDs by name (`<plural>.<group>`).
    pub installed: BTreeMap<String, Installed>,
    by_path: HashMap<(String, String, String), Arc<ResourceInfo>>,
    /// Group versions for discovery: groups by name, versions by upstream's
    /// version priority (preferred first).
    pub group_versions: Vec<GroupVersion>,
}

impl ClusterCustomResources {
    fn build(installed: BTreeMap<String, Installed>) -> Self {
        let mut by_path = HashMap::new();
        let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<Arc<ResourceInfo>>>> = BTreeMap::new();
        for i in installed.values() {
            for r in &i.definition.versions {
                by_path.insert(
                    (r.group.clone(), r.version.clone(), r.resource.clone()),
                    r.clone(),
                );
                groups
                    .entry(&i.definition.group)
                    .or_default()
                    .entry(&r.version)
                    .or_default()
                    .push(r.clone());
            }
        }
        let mut group_versions = Vec::new();
        for (group, versions) in groups {
            let mut versions: Vec<_> = versions.into_iter().collect();
            versions.sort_by_key(|(v, _)| version_priority(v));
            for (version, mut resources) in versions {
                resources.sort_by(|a, b| a.resource.cmp(&b.resource));
                group_versions.push(GroupVersion {
                    group: group.to_string(),
                    version: version.to_string(),
                    resources,
                    create_only: Vec::new(),
                });
            }
        }
        Self {
            installed,
            by_path,
            group_versions,
        }
    }

    /// The resource served at `/apis/<group>/<version>/<resource>`.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<&Arc<ResourceInfo>> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
    }

    /// The installed CRD serving `resource` in `group`.
    pub fn installed_for(&self, group: &str, resource: &str) -> Option<&Installed> {
        self.installed.get(&format!("{resource}.{group}"))
    }

    /// Every served resource at every version.
    pub fn resources(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.group_versions
            .iter()
            .flat_map(|gv| gv.resources.iter())
    }
}

/// Upstream's `version.CompareKubeAwareVersionStrings` order as a sort key:
/// GA before beta before alpha, higher numbers first, then anything else
/// alphabetically.
pub fn version_priority(v: &str) -> (u8, i64, i64, String) {
    let parsed = v.strip_prefix('v').and_then(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (stage, rank) in [("beta", 1u8), ("alpha", 2u8)] {
            if let Some(n) = tail.strip_prefix(stage) {
                let minor: i64 = n.parse().ok()?;
                return Some((rank, -major, -minor));
            }
        }
        None
    });
    match parsed {
        Some((rank, major, minor)) => (rank, major, minor, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

/// Every cluster's custom resources.
#[derive(Debug, Default)]
pub struct CustomResources {
    clusters: RwLock<HashMap<String, Arc<ClusterCustomResources>>>,
}

impl CustomResources {
    /// `cluster`'s custom resources now (`None`: it has none).
    pub fn cluster(&self, cluster: &str) -> Option<Arc<ClusterCustomResources>> {
        self.clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(cluster)
            .cloned()
    }

    fn change(&self, cluster: &str, f: impl FnOnce(&mut BTreeMap<String, Installed>)) {
        let mut clusters = self.clusters.write().unwrap_or_else(|e| e.into_inner());
        let mut installed = clusters
            .get(cluster)
            .map(|c| c.installed.clone())
            .unwrap_or_default();
        f(&mut installed);
        if installed.is_empty() {
            clusters.remove(cluster);
        } else {
            clusters.insert(
                cluster.to_string(),
                Arc::new(ClusterCustomResources::build(installed)),
            );
        }
    }

    /// Serves CRD `name` of `cluster` as `installed` (replacing what it
    /// served; watches of a replaced definition end).
    pub fn install(&self, cluster: &str, name: &str, mut installed: Installed) {
        let current = self
            .cluster(cluster)
            .and_then(|c| c.installed.get(name).cloned());
        if let Some(i) = &current
            && Arc::ptr_eq(&i.definition, &installed.definition)
        {
            if i.terminating == installed.terminating {
                return;
            }
            // The same definition: its open watches carry on.
            installed.retired = i.retired.clone();
        }
        self.change(cluster, |m| {
            m.insert(name.to_string(), installed.clone());
        });
        if let Some(old) = current
            && !Arc::ptr_eq(&old.retired, &installed.retired)
        {
            old.retire();
        }
    }

    /// Stops serving CRD `name` of `cluster`.
    pub fn remove(&self, cluster: &str, name: &str) {
        if self
            .cluster(cluster)
            .is_some_and(|c| c.installed.contains_key(name))
        {
            let mut removed = None;
            self.change(cluster, |m| removed = m.remove(name));
            if let Some(old) = removed {
                old.retire();
            }
        }
    }

    /// Forgets every CRD of `cluster` (the cluster is gone).
    pub fn remove_cluster(&self, cluster: &str) {
        let removed = self
            .clusters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cluster);
        for i in removed.iter().flat_map(|c| c.installed.values()) {
            i.retire();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn widgets(group: &str) -> Installed {
        let spec = json!({
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true},
                {"name": "v2alpha1", "served": true, "storage": false},
            ],
        });
        Installed::new(Definition::shared(&spec).unwrap(), false)
    }

    #[test]
    fn clusters_see_only_their_own_definitions() {
        let c = CustomResources::default();
        c.install("a", "widgets.example.com", widgets("example.com"));
        assert!(
            c.cluster("a")
                .unwrap()
                .get("example.com", "v1", "widgets")
                .is_some()
        );
        assert!(c.cluster("b").is_none());
        let versions: Vec<String> = c
            .cluster("a")
            .unwrap()
            .group_versions
            .iter()
            .map(|gv| gv.version.clone())
            .collect();
        assert_eq!(versions, ["v1", "v1beta1", "v2alpha1"]);
        c.remove("a", "widgets.example.com");
        assert!(c.cluster("a").is_none());
    }

    #[test]
    fn version_priority_is_kube_aware() {
        let mut v = vec![
            "v1alpha1",
            "foo",
            "v2",
            "v1beta2",
            "v1",
            "v1beta1",
            "v10",
            "v11alpha2",
        ];
        v.sort_by_key(|s| version_priority(s));
        assert_eq!(
            v,
            [
                "v10",
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "foo"
            ]
        );
    }
}
