//! CustomResourceDefinitions: what upstream's apiextensions-apiserver runs
//! beside its CRD handler, for every virtual cluster.
//!
//! - [`serve`] (every server, also etcd replicas without the controllers'
//!   lease): keeps the catalog's per-cluster overlay equal to the stored
//!   CRDs that are `Established`, as upstream's CRD handler follows its
//!   informer. A terminating CRD stays served for reads and deletes.
//! - [`spawn`] (the controllers): the naming controller (`NamesAccepted`,
//!   `status.acceptedNames`), the establishing controller (`Established`)
//!   and the finalizer controller (a deleted CRD's custom resources are
//!   deleted, then its `customresourcecleanup` finalizer is removed).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::runtime::{self, Backoff, Change, ControllerContext, Outcome, watch};
use crate::error::ApiError;
use crate::registry::apiextensions::conditions::{
    self, Condition, ESTABLISHED, NAMES_ACCEPTED, TERMINATING,
};
use crate::registry::apiextensions::definition::Definition;
use crate::registry::apiextensions::served::Installed;
use crate::registry::apiextensions::{CLEANUP_FINALIZER, GROUP};
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::meta;
use crate::registry::store::{
    DeleteOptions, ListOptions, Store, Target, WriteOptions, decode_stored,
};

/// The storage segment of CRDs.
const SEGMENT: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// A CRD of a cluster: (cluster, name).
type CrdKey = (String, String);

/// The CRD a storage key names, if it names one.
fn crd_key(key: &str) -> Option<CrdKey> {
    let k = watch::ObjectKey::parse(key)?;
    (k.segment == SEGMENT && k.namespace.is_empty())
        .then(|| (k.cluster.to_string(), k.name.to_string()))
}

/// What the overlay should hold for a stored CRD: its definition when it is
/// established (terminating when being deleted), else nothing. `current` is
/// what the cluster serves for it now: when its spec is unchanged (status
/// writes, finalizers, labels) it is reused as is, without serializing the
/// spec to look up the shared definition.
fn installable(crd: &Value, current: Option<&Installed>) -> Option<Installed> {
    if !conditions::is_true(crd, ESTABLISHED) {
        return None;
    }
    let terminating = meta::is_deleting(crd);
    if let Some(i) = current
        && i.definition.spec == crd["spec"]
    {
        return Some(Installed::new(i.definition.clone(), terminating));
    }
    match Definition::shared(&crd["spec"]) {
        Ok(definition) => Some(Installed::new(definition, terminating)),
        Err(e) => {
            tracing::warn!(crd = %meta::name(crd), error = %e, "cannot serve CRD");
            None
        }
    }
}

/// Keeps `catalog`'s overlay of custom resources in line with the stored
/// CRDs of every cluster, until the process ends.
pub fn serve(store: &Store, catalog: Arc<Catalog>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(watch::run(store.clone(), "crd-serving", move |change| {
        let Some((cluster, name)) = change.key().and_then(crd_key) else {
            return;
        };
        match change.current().map(|_| change.object()) {
            Some(Some(crd)) => {
                let served = catalog.custom.cluster(&cluster);
                let current = served.as_ref().and_then(|c| c.installed.get(&name));
                match installable(&crd, current) {
                    Some(i) => catalog.custom.install(&cluster, &name, i),
                    None => catalog.custom.remove(&cluster, &name),
                }
            }
            _ => catalog.custom.remove(&cluster, &name),
        }
    }))
}

struct Controller {
    store: Store,
    crds: Arc<ResourceInfo>,
    /// Polls a deleted CRD until its custom resources are gone.
    backoff: Backoff<CrdKey>,
}

/// Starts the naming, establishing and finalizer controllers for every cluster.
pub fn spawn(ctx: &ControllerContext) -> Option<tokio::task::JoinHandle<()>> {
    let crds = ctx
        .catalog
        .get(GROUP, "v1", "customresourcedefinitions")?
        .clone();
    let controller = Arc::new(Controller {
        store: ctx.store.clone(),
        crds,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
    });
    Some(runtime::spawn_controller(
        &ctx.store,
        "customresourcedefinition",
        controller,
        |change: &Change<'_>| change.key().and_then(crd_key),
    ))
}

#[async_trait::async_trait]
impl runtime::Reconciler<CrdKey> for Controller {
    async fn reconcile(&self, key: CrdKey) -> Outcome<ApiError> {
        let (cluster, name) = (&key.0, &key.1);
        let t = self.target(cluster);
        let crd = match self.store.get(&t, name).await {
            Ok(crd) => crd,
            Err(ApiError::NotFound(_)) => {
                // Names it held may now be free for a CRD that conflicted.
                self.recheck_conflicts(cluster, name).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if meta::is_deleting(&crd) {
            if self.finalize(cluster, &crd).await? {
                self.backoff.reset(&key);
                return Ok(None);
            }
            return Ok(Some(self.backoff.next(&key)));
        }
        self.accept_names(cluster, &crd).await?;
        Ok(None)
    }
}

impl Controller {
    fn target<'a>(&'a self, cluster: &'a str) -> Target<'a> {
        Target {
            cluster,
            resource: &self.crds,
            namespace: None,
        }
    }

    /// The CRDs of `group` in `cluster`. Only their keys are read for the
    /// others: a CRD's name ends with its group, and CRDs are large (a
    /// Gateway API CRD is hundreds of KiB), so nothing else is decoded.
    async fn in_group(&self, cluster: &str, group: &str) -> Result<Vec<Value>, ApiError> {
        let suffix = format!(".{group}");
        let listed = self
            .store
            .storage()
            .list(&self.target(cluster).prefix(), Default::default())
            .await?;
        listed
            .items
            .iter()
            .filter(|kv| kv.key.ends_with(&suffix))
            .map(decode_stored)
            .filter(|o| o.as_ref().map_or(true, |o| o["spec"]["group"] == group))
            .collect()
    }

    /// Re-runs the naming of the CRDs of `crd_name`'s group whose names
    /// were refused (names it held may be free now).
    async fn recheck_conflicts(&self, cluster: &str, crd_name: &str) -> Result<(), ApiError> {
        let Some((_, group)) = crd_name.split_once('.') else {
            return Ok(());
        };
        for crd in self.in_group(cluster, group).await? {
            if !meta::is_deleting(&crd) && !conditions::is_true(&crd, NAMES_ACCEPTED) {
                self.accept_names(cluster, &crd).await?;
            }
        }
        Ok(())
    }

    /// The naming and establishing controllers: accepted names and the
    /// `NamesAccepted` and `Established` conditions.
    async fn accept_names(&self, cluster: &str, crd: &Value) -> Result<(), ApiError> {
        let group = crd["spec"]["group"].as_str().unwrap_or("");
        let others: Vec<Value> = self
            .in_group(cluster, group)
            .await?
            .into_iter()
            .filter(|o| meta::name(o) != meta::name(crd))
            .collect();
        let (names, accepted, established) = names_and_conditions(crd, &others);
        let mut desired = crd.clone();
        desired["status"]["acceptedNames"] = names;
        conditions::set(&mut desired, &accepted);
        conditions::set(&mut desired, &established);
        if desired["status"] == crd["status"] {
            return Ok(());
        }
        let status = desired["status"].clone();
        self.update_status(cluster, meta::name(crd), |next| {
            next["status"] = status.clone()
        })
        .await
    }

    /// Writes the CRD's status through the `status` subresource: `change`
    /// edits the current object (retried on conflicts).
    async fn update_status(
        &self,
        cluster: &str,
        name: &str,
        change: impl Fn(&mut Value),
    ) -> Result<(), ApiError> {
        self.store
            .update_with(
                &self.target(cluster),
                name,
                Some("status"),
                WriteOptions::default(),
                |current| {
                    let mut next = current.clone();
                    change(&mut next);
                    Ok((next, Vec::new()))
                },
            )
            .await
            .map(|_| ())
    }

    /// The finalizer controller: deletes every custom resource of a CRD
    /// being deleted, then removes the cleanup finalizer. True when done.
    async fn finalize(&self, cluster: &str, crd: &Value) -> Result<bool, ApiError> {
        if !meta::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
            return Ok(true);
        }
        let name = meta::name(crd);
        let remaining = match Definition::build(&crd["spec"]) {
            // The storage version, as upstream's finalizer: objects stored
            // at it need no conversion webhook to be read and deleted.
            Ok(d) => match d
                .versions
                .iter()
                .find(|r| {
                    r.custom
                        .as_ref()
                        .is_some_and(|c| c.storage_version == r.version)
                })
                .or(d.versions.first())
            {
                Some(r) => self.delete_instances(cluster, r).await?,
                None => 0,
            },
            // Nothing could ever have been stored for a spec we cannot serve.
            Err(_) => 0,
        };
        if remaining > 0 {
            self.set_terminating(
                cluster,
                name,
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            )
            .await?;
            return Ok(false);
        }
        self.set_terminating(
            cluster,
            name,
            "InstanceDeletionCompleted",
            "removed all instances",
        )
        .await?;
        let t = self.target(cluster);
        self.store
            .update_with(&t, name, None, WriteOptions::default(), |current| {
                let mut next = current.clone();
                let finalizers: Vec<String> = meta::finalizers(current)
                    .into_iter()
                    .filter(|f| f != CLEANUP_FINALIZER)
                    .collect();
                meta::set(&mut next, "finalizers", Some(json!(finalizers)));
                Ok((next, Vec::new()))
            })
            .await?;
        Ok(true)
    }

    /// Deletes every stored custom resource of `r` in `cluster` (every
    /// version shares the storage); the number still present afterwards
    /// (held by finalizers).
    async fn delete_instances(
        &self,
        cluster: &str,
        r: &Arc<ResourceInfo>,
    ) -> Result<usize, ApiError> {
        let t = Target {
            cluster,
            resource: r,
            namespace: None,
        };
        self.store
            .delete_collection(&t, &ListOptions::default(), &DeleteOptions::default())
            .await?;
        Ok(self
            .store
            .list(&t, &ListOptions::default())
            .await?
            .items
            .len())
    }

    async fn set_terminating(
        &self,
        cluster: &str,
        name: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ApiError> {
        let condition = Condition::new(TERMINATING, "True", reason, message);
        self.update_status(cluster, name, |next| conditions::set(next, &condition))
            .await
    }
}

/// Upstream's `NamingConditionController.calculateNamesAndConditions` and
/// the establishing controller in one step: the accepted names, the
/// `NamesAccepted` condition and the `Established` condition of `crd`,
/// given the other CRDs of its group.
pub fn names_and_conditions(crd: &Value, others: &[Value]) -> (Value, Condition, Condition) {
    let mut resources: Vec<String> = Vec::new();
    let mut kinds: Vec<String> = Vec::new();
    for o in others {
        let n = &o["status"]["acceptedNames"];
        for key in ["plural", "singular"] {
            if let Some(s) = n[key].as_str() {
                resources.push(s.to_string());
            }
        }
        resources.extend(strings(&n["shortNames"]));
        for key in ["kind", "listKind"] {
            if let Some(s) = n[key].as_str() {
                kinds.push(s.to_string());
            }
        }
    }
    let requested = &crd["spec"]["names"];
    let accepted = &crd["status"]["acceptedNames"];
    let mut names = if accepted.is_object() {
        accepted.clone()
    } else {
        json!({})
    };
    let mut failure: Option<(&str, String)> = None;
    let fresh = |req: &str, acc: &str, used: &[String]| -> Result<(), String> {
        if req == acc || !used.iter().any(|u| u == req) {
            Ok(())
        } else {
            Err(format!("{req:?} is already in use"))
        }
    };
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    for (key, reason, used) in [
        ("plural", "PluralConflict", &resources),
        ("singular", "SingularConflict", &resources),
    ] {
        match fresh(&field(requested, key), &field(accepted, key), used) {
            Ok(()) => names[key] = requested[key].clone(),
            Err(e) => failure = Some((reason, e)),
        }
    }
    let requested_short = strings(&requested["shortNames"]);
    let accepted_short = strings(&accepted["shortNames"]);
    if requested_short != accepted_short {
        let errors: Vec<String> = requested_short
            .iter()
            .filter(|s| !accepted_short.contains(s))
            .filter_map(|s| fresh(s, "", &resources).err())
            .collect();
        if errors.is_empty() {
            names["shortNames"] = requested["shortNames"].clone();
        } else {
            let message = if errors.len() == 1 {
                errors[0].clone()
            } else {
                format!("[{}]", errors.join(", "))
            };
            failure = Some(("ShortNamesConflict", message));
        }
    }
    for (key, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        match fresh(&field(requested, key), &field(accepted, key), &kinds) {
            Ok(()) => names[key] = requested[key].clone(),
            Err(e) => failure = Some((reason, e)),
        }
    }
    names["categories"] = requested["categories"].clone();
    if let Some(map) = names.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let names_accepted = match failure {
        Some((reason, message)) => Condition::new(NAMES_ACCEPTED, "False", reason, message),
        None => Condition::new(NAMES_ACCEPTED, "True", "NoConflicts", "no conflicts found"),
    };
    let established = if names_accepted.status == "True" {
        Condition::new(
            ESTABLISHED,
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        )
    } else if conditions::is_true(crd, ESTABLISHED) {
        let old = conditions::find(crd, ESTABLISHED)
            .cloned()
            .unwrap_or_default();
        Condition::new(
            ESTABLISHED,
            "True",
            old["reason"]
                .as_str()
                .unwrap_or("InitialNamesAccepted")
                .to_string(),
            old["message"].as_str().unwrap_or("").to_string(),
        )
    } else {
        Condition::new(
            ESTABLISHED,
            "False",
            "NotAccepted",
            "not all names are accepted",
        )
    };
    (names, names_accepted, established)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(plural: &str, kind: &str, short: &[&str]) -> Value {
        json!({
            "metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "names": {
                "plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind,
                "listKind": format!("{kind}List"), "shortNames": short}},
        })
    }

    fn established(mut c: Value) -> Value {
        let (names, _, _) = names_and_conditions(&c, &[]);
        c["status"]["acceptedNames"] = names;
        c
    }

    #[test]
    fn fresh_names_are_accepted_and_established() {
        let (names, accepted, established) =
            names_and_conditions(&crd("widgets", "Widget", &["wd"]), &[]);
        assert_eq!(names["plural"], "widgets");
        assert_eq!(names["shortNames"], json!(["wd"]));
        assert_eq!(accepted.status, "True");
        assert_eq!(accepted.reason, "NoConflicts");
        assert_eq!(established.status, "True");
        assert_eq!(established.reason, "InitialNamesAccepted");
    }

    #[test]
    fn names_in_use_by_another_crd_of_the_group_conflict() {
        let other = established(crd("widgets", "Widget", &["wd"]));
        let mut second = crd("gadgets", "Widget", &["wd"]);
        second["metadata"]["name"] = json!("gadgets.example.com");
        let (names, accepted, established) = names_and_conditions(&second, &[other]);
        assert_eq!(accepted.status, "False");
        // Kind and list kind conflict: the last check's reason stands, as upstream.
        assert_eq!(accepted.reason, "ListKindConflict");
        assert_eq!(accepted.message, "\"WidgetList\" is already in use");
        assert_eq!(names["plural"], "gadgets");
        assert!(names.get("kind").is_none());
        assert_eq!(established.status, "False");
        assert_eq!(established.reason, "NotAccepted");
    }

    #[test]
    fn an_unchanged_spec_reuses_the_served_definition() {
        let mut stored = crd("widgets", "Widget", &[]);
        stored["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
        // Built, not shared: a look-up in the shared cache could not find it.
        let built = Arc::new(Definition::build(&stored["spec"]).unwrap());
        let current = Installed::new(built.clone(), false);
        let mut status_only = stored.clone();
        status_only["status"]["storedVersions"] = json!(["v1"]);
        let again = installable(&status_only, Some(&current)).unwrap();
        assert!(Arc::ptr_eq(&again.definition, &built));
        let mut deleting = stored.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        let terminating = installable(&deleting, Some(&current)).unwrap();
        assert!(Arc::ptr_eq(&terminating.definition, &built) && terminating.terminating);
        // A changed spec builds (or finds) another definition.
        let mut changed = stored.clone();
        changed["spec"]["names"]["shortNames"] = json!(["wd"]);
        let other = installable(&changed, Some(&current)).unwrap();
        assert!(!Arc::ptr_eq(&other.definition, &built));
        assert_eq!(other.definition.spec, changed["spec"]);
        // Not established: nothing to serve.
        assert!(installable(&crd("widgets", "Widget", &[]), Some(&current)).is_none());
    }

    #[test]
    fn keys_of_crds_are_recognised() {
        assert_eq!(
            crd_key("/team-a/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"),
            Some(("team-a".into(), "widgets.example.com".into()))
        );
        assert_eq!(crd_key("/team-a/core/pods/default/p"), None);
    }
}
