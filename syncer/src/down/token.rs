//! The service-account token a pod's copy runs with: issued by the
//! *virtual* cluster (its TokenRequest API, bound to the virtual pod),
//! never by the parent, and kept in a Secret next to the copy
//! (`<copy>.sa-token`, a name no other copy can have: copies of Secrets end
//! in a cluster segment or a hash, never in `.sa-token`).
//!
//! The Secret holds one key per projected `serviceAccountToken` source
//! (`token`, `token-1`, ...), `ca.crt` (nestkube's serving CA, from the
//! namespace's `kube-root-ca.crt`) and `namespace` (the virtual one). It is
//! owned by the copy (ownerReference), so the parent's garbage collector
//! removes it with the copy, and it is refreshed at 80% of the shortest
//! token lifetime, as the kubelet does.
//!
//! What the syncer last wrote or read of each token Secret is remembered
//! ([`Tokens`]), so a reconcile of a pod whose token is current reads
//! nothing from the parent; a new copy's Secret is created without looking
//! first (none can be owned by a copy that did not exist).
//!
//! This module never asks the parent for a token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::{Kind, annotation, api, create, get, is_ours, meta};
use crate::{Ctx, SyncError};

/// Annotation on a token Secret: unix time after which it is reissued.
pub const REFRESH_ANNOTATION: &str = "tenancy.nestkube.io/token-refresh";
/// Shortest token lifetime the virtual cluster issues (upstream: 10 minutes).
const MIN_EXPIRATION: i64 = 600;
/// Token lifetime when the source does not say (upstream's projected default).
const DEFAULT_EXPIRATION: i64 = 3607;

/// The token Secrets known current: by `(parent, host namespace, Secret
/// name)`, what the syncer last wrote or read of it ([`Known`]).
/// Forgotten when the copy goes ([`Tokens::forget`]) or when someone else
/// changes the Secret in the parent ([`Tokens::changed_below`]); a
/// restarted syncer reads each Secret once.
#[derive(Default)]
pub(crate) struct Tokens(Mutex<HashMap<TokenKey, Known>>);

/// What is known of one token Secret.
struct Known {
    /// The uid of the copy owning it.
    owner_uid: String,
    /// Unix time it is reissued at.
    refresh_at: i64,
    /// Its resourceVersion as last written or read.
    resource_version: String,
}

/// `(parent, host namespace, Secret name)` of a token Secret.
type TokenKey = (crate::ParentKey, String, String);

impl Tokens {
    /// When the Secret `key` owned by copy `owner_uid` is reissued, if it
    /// is known current.
    fn current(&self, key: &TokenKey, owner_uid: &str, now: i64) -> Option<i64> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|k| k.owner_uid == owner_uid && k.refresh_at > now)
            .map(|k| k.refresh_at)
    }

    /// Records Secret `key` (JSON, as written or read) as current.
    fn remember(&self, key: TokenKey, owner_uid: &str, refresh_at: i64, secret: &Value) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key,
            Known {
                owner_uid: owner_uid.to_string(),
                refresh_at,
                resource_version: meta(secret, "resourceVersion").to_string(),
            },
        );
    }

    /// The parent's watch saw token Secret `namespace/name` of `parent` at
    /// `resource_version` (`None`: deleted). Whether that is someone else's
    /// change to a Secret known current (then it is forgotten, and its pod
    /// must be reconciled to write it again). One not known is not: its
    /// copy is gone (the parent's garbage collector deletes it with the
    /// copy), or the syncer's own write is not recorded yet, or it was
    /// never read since a restart (then it is read at the pod's next
    /// reconcile).
    pub(crate) fn changed_below(
        &self,
        parent: &crate::ParentKey,
        namespace: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> bool {
        let key = (parent.clone(), namespace.to_string(), name.to_string());
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let changed = map
            .get(&key)
            .is_some_and(|k| Some(k.resource_version.as_str()) != resource_version);
        if changed {
            map.remove(&key);
        }
        changed
    }

    /// Forgets the token Secret of copy `host_pod` of `ctx`'s cluster (the
    /// copy is gone or going).
    pub(crate) fn forget(&self, ctx: &Ctx, host_pod: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key_of(ctx, host_pod));
    }
}

/// The [`TokenKey`] of copy `host_pod`'s Secret.
fn key_of(ctx: &Ctx, host_pod: &str) -> TokenKey {
    (
        crate::ParentKey::of(&ctx.placement),
        ctx.placement.host_namespace.clone(),
        secret_name(host_pod),
    )
}

/// Name of the token Secret of copy `host_pod`.
pub fn secret_name(host_pod: &str) -> String {
    format!("{host_pod}.sa-token")
}

/// Whether parent Secret `obj` is a token Secret (its owner is a pod).
pub fn is_token_secret(obj: &Value) -> bool {
    !annotation(obj, REFRESH_ANNOTATION).is_empty()
}

/// The Secret key of the `i`-th token source.
pub fn key(i: usize) -> String {
    if i == 0 {
        "token".into()
    } else {
        format!("token-{i}")
    }
}

/// `(audience, expirationSeconds)` of each projected token source.
fn sources(pod: &Value) -> Vec<(Option<String>, i64)> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
        .filter_map(|s| s.get("serviceAccountToken"))
        .map(|t| {
            (
                t["audience"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
                t["expirationSeconds"]
                    .as_i64()
                    .unwrap_or(DEFAULT_EXPIRATION)
                    .max(MIN_EXPIRATION),
            )
        })
        .collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Makes sure copy `hpod` of virtual pod `vpod` has a current token
/// Secret; returns when to look again (the refresh time). `new_copy`: the
/// copy was just created, so no current Secret can exist.
pub(crate) async fn ensure(
    ctx: &Ctx,
    tokens: &Tokens,
    vpod: &Value,
    hpod: &Value,
    new_copy: bool,
) -> Result<Option<Duration>, SyncError> {
    let sources = sources(vpod);
    if sources.is_empty() {
        return Ok(None);
    }
    let now = unix_now();
    let known = key_of(ctx, meta(hpod, "name"));
    let owner_uid = meta(hpod, "uid");
    if let Some(at) = tokens.current(&known, owner_uid, now) {
        return Ok(Some(Duration::from_secs((at - now) as u64)));
    }
    let hapi = api(&ctx.parent, Kind::Secret, &ctx.placement.host_namespace);
    let name = known.2.clone();
    let mut existing = if new_copy {
        None
    } else {
        get(&hapi, &name).await?
    };
    if let Some(s) = &existing {
        if !is_ours(ctx, s) {
            tracing::warn!(secret = %name, "a parent Secret of that name belongs to someone else");
            return Ok(None);
        }
        let refresh_at: i64 = annotation(s, REFRESH_ANNOTATION).parse().unwrap_or(0);
        let secret_owner = s["metadata"]["ownerReferences"][0]["uid"]
            .as_str()
            .unwrap_or("");
        if refresh_at > now && secret_owner == owner_uid {
            tokens.remember(known, owner_uid, refresh_at, s);
            return Ok(Some(Duration::from_secs((refresh_at - now) as u64)));
        }
    }
    let ns = meta(vpod, "namespace");
    let sa = vpod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.virt.clone(), ns);
    let mut data = std::collections::BTreeMap::new();
    let mut shortest = i64::MAX;
    for (i, (audience, expiration)) in sources.iter().enumerate() {
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": audience.iter().collect::<Vec<_>>(),
                "expirationSeconds": expiration,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                    "name": meta(vpod, "name"), "uid": meta(vpod, "uid")},
            },
        });
        let answer: Value = sas
            .create_subresource("token", sa, &PostParams::default(), &body)
            .await?;
        let token = answer["status"]["token"].as_str().unwrap_or("").to_string();
        data.insert(key(i), ByteString(token.into_bytes()));
        shortest = shortest.min(*expiration);
    }
    let ca = get(&api(&ctx.virt, Kind::ConfigMap, ns), "kube-root-ca.crt")
        .await?
        .and_then(|cm| cm["data"]["ca.crt"].as_str().map(str::to_string))
        .unwrap_or_default();
    data.insert("ca.crt".into(), ByteString(ca.into_bytes()));
    data.insert("namespace".into(), ByteString(ns.as_bytes().to_vec()));
    let refresh_at = now + shortest * 8 / 10;

    let mut metadata = super::host_meta(ctx, vpod, &name);
    metadata["annotations"][REFRESH_ANNOTATION] = json!(refresh_at.to_string());
    metadata["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "Pod",
        "name": meta(hpod, "name"), "uid": meta(hpod, "uid"),
    }]);
    let mut secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": metadata,
        "data": serde_json::to_value(&data)?,
    });
    let mut written = None;
    if existing.is_none() {
        written = create(&hapi, &secret).await?;
        if written.is_none() {
            // One of an earlier copy of the same name (not yet collected).
            existing = get(&hapi, &name).await?;
        }
    }
    if let Some(s) = existing {
        if !is_ours(ctx, &s) {
            return Ok(None);
        }
        secret["metadata"]["resourceVersion"] = s["metadata"]["resourceVersion"].clone();
        let obj: kube::api::DynamicObject = serde_json::from_value(secret)?;
        match hapi.replace(&name, &PostParams::default(), &obj).await {
            Ok(o) => written = Some(serde_json::to_value(o)?),
            // Changed meanwhile: look again soon.
            Err(e) if super::is_conflict(&e) || super::is_not_found(&e) => {
                return Ok(Some(Duration::from_secs(1)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(w) = &written {
        tokens.remember(known, owner_uid, refresh_at, w);
    }
    Ok(Some(Duration::from_secs((refresh_at - now).max(1) as u64)))
}
