//! The server's own PKI when replicas share one store (`--storage-backend
//! etcd`): the server CA (which issues every replica's serving certificate
//! and the root cluster's client certificates, and which tenants'
//! kubeconfigs pin) and the root cluster's service-account signing key live
//! in the store under [`PKI_PREFIX`], so every replica uses the same ones
//! and a restarted replica keeps them.
//!
//! [`PKI_PREFIX`] is outside every cluster's key space, like the cluster
//! records under [`crate::tenancy::RECORD_PREFIX`]: a cluster's keys live
//! under `/<path>/` and cluster paths are DNS labels joined by `:`, never
//! starting with `_`, so no API request reaches these keys.
//!
//! The first replica creates each key with a create-if-absent; a replica
//! that loses that race reads and uses the winner's. When the store holds no
//! PKI yet but the data directory does (`DIR/pki/ca.crt|.key`, `sa.key`,
//! from a single server or an operator-copied secret), that one is stored,
//! so certificates and tokens it issued stay valid.
//!
//! Embedded backends keep their PKI in the data directory
//! ([`Ca::load_or_create`]); this module is not used for them.

use std::path::Path;

use bytes::Bytes;
use nestkube_storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};

use crate::auth::pki::{Ca, CertPair, PkiError};
use crate::auth::tokens::{SigningKey, TokenError};

/// Storage prefix of the server's PKI (not reachable through the API).
pub const PKI_PREFIX: &str = "/_pki/";
/// The server CA (certificate and key).
pub const CA_KEY: &str = "/_pki/ca";
/// The root cluster's service-account signing key.
pub const SA_KEY: &str = "/_pki/sa";

/// Errors loading or creating the shared PKI.
#[derive(Debug, thiserror::Error)]
pub enum SharedPkiError {
    /// Generating or parsing the CA.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Generating or parsing the signing key.
    #[error("service-account key: {0}")]
    Tokens(#[from] TokenError),
    /// The store failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A stored record cannot be decoded.
    #[error("{key}: malformed record: {reason}")]
    Malformed {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A key in the data directory cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The record was deleted between a failed create and the read.
    #[error("{0} vanished while being created")]
    Vanished(String),
}

/// What is stored under [`CA_KEY`].
#[derive(Serialize, Deserialize)]
struct CaRecord {
    cert_pem: String,
    key_pem: String,
}

/// What is stored under [`SA_KEY`].
#[derive(Serialize, Deserialize)]
struct SaRecord {
    key_pem: String,
}

/// The server CA and the root cluster's signing key.
pub struct SharedPki {
    /// The server CA.
    pub ca: Ca,
    /// The root cluster's service-account signing key.
    pub sa_key: SigningKey,
}

/// Loads the PKI from `storage`, creating it on first use (seeded from
/// `pki_dir` when that holds one). Every replica gets the same CA and key.
pub async fn load_or_create(
    storage: &dyn Storage,
    pki_dir: &Path,
) -> Result<SharedPki, SharedPkiError> {
    let ca: CaRecord = load_or_create_record(storage, CA_KEY, || {
        let pair = match (
            read_local(&pki_dir.join("ca.crt"))?,
            read_local(&pki_dir.join("ca.key"))?,
        ) {
            (Some(cert_pem), Some(key_pem)) => CertPair { cert_pem, key_pem },
            _ => Ca::generate("nestkube-ca")?.pair,
        };
        Ok(CaRecord {
            cert_pem: pair.cert_pem,
            key_pem: pair.key_pem,
        })
    })
    .await?;
    let sa: SaRecord = load_or_create_record(storage, SA_KEY, || {
        let key_pem = match read_local(&pki_dir.join("sa.key"))? {
            Some(pem) => pem,
            None => SigningKey::generate()?.pem().to_string(),
        };
        Ok(SaRecord { key_pem })
    })
    .await?;
    Ok(SharedPki {
        ca: Ca::from_pem(CertPair {
            cert_pem: ca.cert_pem,
            key_pem: ca.key_pem,
        })?,
        sa_key: SigningKey::from_pem(&sa.key_pem)?,
    })
}

/// The record at `key`, or a new one from `make` stored with a
/// create-if-absent; when another replica created it first, its record.
async fn load_or_create_record<T, F>(
    storage: &dyn Storage,
    key: &str,
    make: F,
) -> Result<T, SharedPkiError>
where
    T: Serialize + for<'de> Deserialize<'de>,
    F: FnOnce() -> Result<T, SharedPkiError>,
{
    if let Some(kv) = storage.get(key).await? {
        return decode(key, &kv.value);
    }
    let record = make()?;
    let bytes = serde_json::to_vec(&record).map_err(|e| malformed(key, e))?;
    match storage.create(key, Bytes::from(bytes)).await {
        Ok(_) => Ok(record),
        Err(StorageError::AlreadyExists { .. }) => match storage.get(key).await? {
            Some(kv) => decode(key, &kv.value),
            None => Err(SharedPkiError::Vanished(key.to_string())),
        },
        Err(e) => Err(e.into()),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, SharedPkiError> {
    serde_json::from_slice(value).map_err(|e| malformed(key, e))
}

fn malformed(key: &str, e: impl std::fmt::Display) -> SharedPkiError {
    SharedPkiError::Malformed {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

fn read_local(path: &Path) -> Result<Option<String>, SharedPkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SharedPkiError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replicas_share_the_first_ones_pki() {
        let dir = tempfile::tempdir().unwrap();
        let storage = nestkube_storage::Backend::default()
            .open(dir.path().join("storage"))
            .unwrap();
        let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
        let (a, b) = tokio::join!(
            load_or_create(storage.as_ref(), &a_dir),
            load_or_create(storage.as_ref(), &b_dir)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.ca.pair.cert_pem, b.ca.pair.cert_pem);
        assert_eq!(a.sa_key.pem(), b.sa_key.pem());
        // Nothing secret is written to the data directory.
        assert!(!a_dir.exists() && !b_dir.exists());
        let again = load_or_create(storage.as_ref(), &a_dir).await.unwrap();
        assert_eq!(again.ca.pair.key_pem, a.ca.pair.key_pem);
    }

    #[tokio::test]
    async fn an_existing_data_dir_pki_seeds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let local = Ca::load_or_create(&pki, "ca", "nestkube-ca").unwrap();
        let local_sa = SigningKey::load_or_create(&pki, "sa").unwrap();
        let storage = nestkube_storage::Backend::default()
            .open(dir.path().join("storage"))
            .unwrap();
        let shared = load_or_create(storage.as_ref(), &pki).await.unwrap();
        assert_eq!(shared.ca.pair.cert_pem, local.pair.cert_pem);
        assert_eq!(shared.sa_key.pem(), local_sa.pem());
        let other = load_or_create(storage.as_ref(), &dir.path().join("none"))
            .await
            .unwrap();
        assert_eq!(other.ca.pair.cert_pem, local.pair.cert_pem);
    }
}
