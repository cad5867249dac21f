//! ServiceAccount admission, as upstream's
//! `plugin/pkg/admission/serviceaccount`: on pod create, the pod's
//! `spec.serviceAccountName` defaults to `default`; the ServiceAccount must
//! exist (the `default` one is waited for briefly, as its controller may not
//! have created it yet), else 403 `error looking up service account ...`;
//! unless the pod or its ServiceAccount says `automountServiceAccountToken:
//! false`, the projected `kube-api-access-<random>` volume (token, the root
//! CA ConfigMap, the namespace) is added and mounted read-only at
//! [`TOKEN_MOUNT_PATH`] in every init container and container that does not
//! mount something there already; the ServiceAccount's imagePullSecrets are
//! copied to a pod that has none. Everything is JSON-identical to what
//! kube-apiserver adds.
//!
//! Mirror pods, updates and subresources are left alone. This module must
//! never create a ServiceAccount (that is the ServiceAccount controller's
//! job) and never read outside the pod's cluster and namespace.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};
use crate::error::ApiError;
use crate::registry::admission_hook::ReadOnlyStore;
use crate::registry::catalog::{Catalog, ResourceInfo};
use crate::registry::meta;

/// The ServiceAccount a pod gets when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Prefix of the projected token volume's name.
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// Where containers find the token, CA and namespace.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Upstream's `WarnOnlyBoundTokenExpirationSeconds`.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// Annotation of mirror pods (static pods of a kubelet), left alone.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Lookups of the `default` ServiceAccount before giving up (upstream: 10).
const DEFAULT_SA_ATTEMPTS: u32 = 10;

/// The projected volume kube-apiserver adds (`TokenVolumeSource`), named `name`.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        },
    })
}

/// Mounts the token volume in every init container and container of `spec`
/// (upstream's `mountServiceAccountToken`), adding the volume if one needs it.
pub fn mount_token(spec: &mut Value) {
    let existing = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| n.starts_with(TOKEN_VOLUME_PREFIX))
        .map(str::to_string);
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("{TOKEN_VOLUME_PREFIX}{}", meta::random_suffix()));
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needs_volume = false;
    for kind in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(kind).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let mounted = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == TOKEN_MOUNT_PATH);
            if mounted {
                continue;
            }
            match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                Some(mounts) => mounts.push(mount.clone()),
                None => c["volumeMounts"] = json!([mount.clone()]),
            }
            needs_volume = true;
        }
    }
    if existing.is_none() && needs_volume {
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(volumes) => volumes.push(token_volume(&name)),
            None => spec["volumes"] = json!([token_volume(&name)]),
        }
    }
}

/// The ServiceAccount admission plugin.
pub struct ServiceAccount {
    service_accounts: Option<Arc<ResourceInfo>>,
}

impl ServiceAccount {
    /// The plugin, resolving the serviceaccounts resource from `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            service_accounts: catalog.get("", "v1", "serviceaccounts").cloned(),
        }
    }

    /// Upstream's `getServiceAccount`: one lookup, or up to
    /// [`DEFAULT_SA_ATTEMPTS`] 100-200 ms apart for the default one.
    async fn service_account(
        &self,
        attrs: &Attributes<'_>,
        store: &ReadOnlyStore<'_>,
        resource: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
            DEFAULT_SA_ATTEMPTS
        } else {
            1
        };
        let pause =
            Duration::from_millis(100 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100);
        for i in 0..attempts {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            match store.get(&attrs.target(resource, Some(ns)), name).await {
                Ok(sa) => return Ok(Some(sa)),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn mutate(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        _old: Option<&Value>,
        store: &ReadOnlyStore<'_>,
    ) -> Result<(), ApiError> {
        if !attrs.is_pod() || attrs.operation != Operation::Create {
            return Ok(());
        }
        if obj["metadata"]["annotations"]
            .get(MIRROR_POD_ANNOTATION)
            .is_some()
        {
            return Ok(());
        }
        let (Some(resource), Some(ns)) = (&self.service_accounts, attrs.namespace) else {
            return Ok(());
        };
        if !obj["spec"].is_object() {
            return Ok(());
        }
        let name = match obj["spec"]["serviceAccountName"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                obj["spec"]["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT.into();
                DEFAULT_SERVICE_ACCOUNT.to_string()
            }
        };
        let Some(sa) = self
            .service_account(attrs, store, resource, ns, &name)
            .await?
        else {
            return Err(attrs.forbidden(format!(
                "error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"
            )));
        };
        // The pod's preference wins, then the ServiceAccount's; default true.
        let automount = obj["spec"]["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| sa["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if automount {
            mount_token(&mut obj["spec"]);
        }
        let has_pull_secrets = obj["spec"]["imagePullSecrets"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if !has_pull_secrets
            && let Some(secrets) = sa["imagePullSecrets"].as_array().filter(|a| !a.is_empty())
        {
            obj["spec"]["imagePullSecrets"] =
                secrets.iter().map(|s| json!({"name": s["name"]})).collect();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_volume_and_mounts_match_upstream() {
        let mut spec = json!({
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}],
        });
        mount_token(&mut spec);
        let volume = &spec["volumes"][1];
        let name = volume["name"].as_str().unwrap();
        assert!(
            name.starts_with(TOKEN_VOLUME_PREFIX) && name.len() == TOKEN_VOLUME_PREFIX.len() + 5
        );
        assert_eq!(
            *volume,
            serde_json::from_str::<Value>(&format!(
                r#"{{"name":"{name}","projected":{{"defaultMode":420,"sources":[{{"serviceAccountToken":{{"expirationSeconds":3607,"path":"token"}}}},{{"configMap":{{"items":[{{"key":"ca.crt","path":"ca.crt"}}],"name":"kube-root-ca.crt"}}}},{{"downwardAPI":{{"items":[{{"fieldRef":{{"apiVersion":"v1","fieldPath":"metadata.namespace"}},"path":"namespace"}}]}}}}]}}}}"#
            ))
            .unwrap()
        );
        let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][0]["volumeMounts"][1], mount);
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "an existing mount at the path wins"
        );
        // Idempotent: the existing volume is reused, nothing is added twice.
        let before = spec.clone();
        mount_token(&mut spec);
        assert_eq!(spec, before);
    }
}
