//! Service-account tokens: each cluster's signing key, the claims a token
//! carries, minting, and bearer-token authentication.
//!
//! A token is an ES256 JWT signed with the key of the cluster that minted it.
//! It names that cluster twice: in the private claim [`CLUSTER_CLAIM`] (read
//! unverified, only to route the access decision) and implicitly through the
//! key that must verify it. A token authenticates only when the request is
//! served from the cluster it names, its signature verifies with *that*
//! cluster's key, it is current, it is meant for the API's audience, and the
//! service account (and the pod or secret it is bound to) still exists with
//! the uid recorded in the token.
//!
//! This module must never let a token act in a cluster other than the one
//! that signed it, never fall back to anonymous for a token that does not
//! verify, and never expose a signing key through the API.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::UserInfo;
use crate::registry::catalog::Catalog;
use crate::registry::meta;
use crate::registry::store::{Store, Target};
use crate::{Cluster, Clusters};

/// The issuer of every token (as kube-apiserver's default), and the API's
/// default audience: a token must list it to authenticate to the API.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The audience the API accepts bearer tokens for.
pub const API_AUDIENCE: &str = ISSUER;

/// Private claim naming the cluster whose key signed the token.
pub const CLUSTER_CLAIM: &str = "nestkube.io/cluster";

/// Why a key could not be made or a token could not be minted or verified.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Generating or parsing the key.
    #[error("signing key: {0}")]
    Key(#[from] rcgen::Error),
    /// Signing or verifying.
    #[error("jwt: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// Reading or writing the key file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a JWT naming a cluster.
    #[error("malformed token")]
    Malformed,
    /// The token names another cluster than the one serving the request, or
    /// one that is not served.
    #[error("token is not valid for this cluster")]
    WrongCluster,
    /// The service account or the bound object is gone (or was re-created).
    #[error("{0}")]
    Revoked(String),
}

/// A cluster's service-account signing key (ECDSA P-256, PKCS#8 PEM).
pub struct SigningKey {
    pem: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<Self, TokenError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Self::from_pem(&key.serialize_pem())
    }

    /// A key from its PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self, TokenError> {
        let key = rcgen::KeyPair::from_pem(pem)?;
        if !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(TokenError::Key(rcgen::Error::UnsupportedSignatureAlgorithm));
        }
        Ok(Self {
            pem: pem.to_string(),
            encoding: EncodingKey::from_ec_pem(pem.as_bytes())?,
            decoding: DecodingKey::from_ec_pem(key.public_key_pem().as_bytes())?,
        })
    }

    /// Loads `<dir>/<name>.key`, creating it (owner-only) on first use.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Self, TokenError> {
        let path = dir.join(format!("{name}.key"));
        match std::fs::read_to_string(&path) {
            Ok(pem) => return Self::from_pem(&pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let key = Self::generate()?;
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &key.pem)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(&tmp, &path)?;
        Ok(key)
    }

    /// The private key, PKCS#8 PEM (for the cluster record).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Signs `claims` (ES256).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            claims,
            &self.encoding,
        )?)
    }

    /// The claims of `token` if this key signed it, it is current (one
    /// minute of leeway, as upstream), it was issued by [`ISSUER`], and it
    /// lists at least one of `audiences`.
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

/// A name and uid, as recorded in the `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
    /// Object uid at minting.
    pub uid: String,
}

/// The `kubernetes.io` claim (upstream's private claims).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
}

/// The claims of a service-account token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer ([`ISSUER`]).
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id (upstream's credential id).
    pub jti: String,
    /// Service account and bound object.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    /// The cluster whose key signed the token ([`CLUSTER_CLAIM`]).
    #[serde(rename = "nestkube.io/cluster")]
    pub cluster: String,
}

impl Claims {
    /// Claims for a token of service account `sa` (namespace, name, uid) in
    /// `cluster`, valid from `now` for `expiration_seconds`.
    pub fn new(
        cluster: &str,
        namespace: &str,
        sa: ObjectRef,
        audiences: Vec<String>,
        now: i64,
        expiration_seconds: i64,
    ) -> Self {
        Self {
            iss: ISSUER.into(),
            sub: service_account_user(namespace, &sa.name),
            aud: audiences,
            exp: now + expiration_seconds,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaims {
                namespace: namespace.into(),
                serviceaccount: sa,
                pod: None,
                secret: None,
            },
            cluster: cluster.into(),
        }
    }

    /// The user a token with these claims authenticates as: uid the
    /// service account's, extras naming the bound pod and the credential
    /// (upstream's `ServiceAccountInfo.UserInfo`).
    pub fn user(&self) -> UserInfo {
        let ns = &self.kubernetes.namespace;
        let mut extra = std::collections::BTreeMap::new();
        if let Some(pod) = &self.kubernetes.pod {
            extra.insert(
                "authentication.kubernetes.io/pod-name".to_string(),
                vec![pod.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".to_string(),
                vec![pod.uid.clone()],
            );
        }
        if !self.jti.is_empty() {
            extra.insert(
                "authentication.kubernetes.io/credential-id".to_string(),
                vec![format!("JTI={}", self.jti)],
            );
        }
        UserInfo {
            name: service_account_user(ns, &self.kubernetes.serviceaccount.name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            uid: self.kubernetes.serviceaccount.uid.clone(),
            extra,
        }
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The cluster a token *claims* to belong to, read without verifying it:
/// only for the access decision, which must not look anything up. `None`
/// for anything that is not a JWT with a string [`CLUSTER_CLAIM`].
pub fn claimed_cluster(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims[CLUSTER_CLAIM]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// A verified token.
#[derive(Debug)]
pub struct Authenticated {
    /// The cluster that signed it (the instance current now).
    pub cluster: Arc<Cluster>,
    /// Its claims.
    pub claims: Claims,
    /// The audiences it was accepted for (its audiences among the wanted ones).
    pub audiences: Vec<String>,
}

/// Verifies `token` for a request served from cluster `cluster`, accepting
/// any of `audiences`: the claimed cluster must be `cluster`, the signature
/// must verify with `cluster`'s key, and the service account and bound
/// object must still exist with the recorded uids.
pub async fn authenticate(
    clusters: &Clusters,
    store: &Store,
    catalog: &Catalog,
    cluster: &str,
    token: &str,
    audiences: &[String],
) -> Result<Authenticated, TokenError> {
    let claimed = claimed_cluster(token).ok_or(TokenError::Malformed)?;
    if claimed != cluster {
        return Err(TokenError::WrongCluster);
    }
    let served = clusters.get(cluster).ok_or(TokenError::WrongCluster)?;
    let claims = served.sa_key.verify(token, audiences)?;
    if claims.cluster != cluster {
        return Err(TokenError::WrongCluster);
    }
    let k = &claims.kubernetes;
    if claims.sub != service_account_user(&k.namespace, &k.serviceaccount.name) {
        return Err(TokenError::Malformed);
    }
    let live = |resource: &'static str, r: &ObjectRef| {
        live_uid(
            store,
            catalog,
            cluster,
            resource,
            &k.namespace,
            r.name.clone(),
        )
    };
    let check = |what: &str, r: &ObjectRef, uid: Option<String>| match uid {
        Some(uid) if uid == r.uid => Ok(()),
        _ => Err(TokenError::Revoked(format!(
            "{what} {}/{} has been deleted",
            k.namespace, r.name
        ))),
    };
    check(
        "service account",
        &k.serviceaccount,
        live("serviceaccounts", &k.serviceaccount).await,
    )?;
    if let Some(pod) = &k.pod {
        check("pod", pod, live("pods", pod).await)?;
    }
    if let Some(secret) = &k.secret {
        check("secret", secret, live("secrets", secret).await)?;
    }
    let audiences = claims
        .aud
        .iter()
        .filter(|a| audiences.contains(a))
        .cloned()
        .collect();
    Ok(Authenticated {
        cluster: served,
        claims,
        audiences,
    })
}

/// The uid of a core/v1 object that exists and is not being deleted (past
/// its deletion timestamp).
async fn live_uid(
    store: &Store,
    catalog: &Catalog,
    cluster: &str,
    resource: &str,
    namespace: &str,
    name: String,
) -> Option<String> {
    let r = catalog.get("", "v1", resource)?;
    let target = Target {
        cluster,
        resource: r,
        namespace: Some(namespace),
    };
    let obj = store.get(&target, &name).await.ok()?;
    if let Some(ts) = obj["metadata"]["deletionTimestamp"].as_str()
        && chrono::DateTime::parse_from_rfc3339(ts).is_ok_and(|t| t.timestamp() <= unix_now())
    {
        return None;
    }
    Some(meta::uid(&obj).to_string()).filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(cluster: &str, exp_in: i64) -> Claims {
        let sa = ObjectRef {
            name: "default".into(),
            uid: "u1".into(),
        };
        Claims::new(
            cluster,
            "default",
            sa,
            vec![API_AUDIENCE.into()],
            unix_now(),
            exp_in,
        )
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let key = SigningKey::generate().unwrap();
        let token = key.sign(&claims("team-a", 3600)).unwrap();
        assert_eq!(claimed_cluster(&token).as_deref(), Some("team-a"));
        let got = key.verify(&token, &[API_AUDIENCE.into()]).unwrap();
        assert_eq!(got.sub, "system:serviceaccount:default:default");
        assert_eq!(got.cluster, "team-a");
        let reloaded = SigningKey::from_pem(key.pem()).unwrap();
        assert!(reloaded.verify(&token, &[API_AUDIENCE.into()]).is_ok());
    }

    #[test]
    fn foreign_key_expired_and_wrong_audience_fail() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let aud = [API_AUDIENCE.to_string()];
        let token = key.sign(&claims("root", 3600)).unwrap();
        assert!(other.verify(&token, &aud).is_err());
        assert!(key.verify(&token, &["vault".into()]).is_err());
        let expired = key.sign(&claims("root", -3600)).unwrap();
        assert!(key.verify(&expired, &aud).is_err());
    }

    #[test]
    fn claimed_cluster_needs_a_jwt_with_the_claim() {
        assert_eq!(claimed_cluster("abc"), None);
        assert_eq!(claimed_cluster("a.b.c"), None);
        assert_eq!(claimed_cluster(""), None);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        assert_eq!(claimed_cluster(&format!("e30.{payload}.sig")), None);
    }
}
