//! Authentication and authorization.
//!
//! Who is calling: a request's bearer token if it has one, a
//! service-account token signed by one cluster's key (see [`tokens`]);
//! otherwise the connection's client certificate, whose key the TLS
//! handshake proved, issued by one cluster's client CA (CN = user, O =
//! groups, as kube-apiserver reads them); see [`x509`]. Where they may go:
//! only the cluster that issued their credential; see [`access`]. What they
//! may do there: RBAC over that cluster's Roles and bindings, with
//! impersonation (see [`rbac`], [`impersonation`]). Anonymous
//! callers reach only the public health and version endpoints, as upstream's
//! default `system:public-info-viewer` binding allows.
//!
//! This module must never let one cluster's credential act in another
//! cluster, nor answer differently for a foreign cluster that exists and one
//! that does not.

pub mod access;
pub mod impersonation;
pub mod pki;
pub mod rbac;
pub mod rbac_coverage;
pub mod rbac_defaults;
pub mod rbac_escalation;
pub mod rbac_review;
pub mod rbac_served;
pub mod tokens;
pub mod tokens_api;
pub mod x509;

use std::sync::Arc;

use crate::{Cluster, Clusters};

/// Who a connection is, computed once after its TLS handshake.
#[derive(Clone, Debug)]
pub enum Identity {
    /// No client certificate.
    Anonymous,
    /// A certificate issued by `cluster`'s client CA.
    Cluster {
        /// The issuing cluster (the instance current at the handshake).
        cluster: Arc<Cluster>,
        /// The user the certificate names.
        user: UserInfo,
    },
    /// A certificate no served cluster issued: every request is refused.
    Invalid,
}

impl Identity {
    /// The credential as the access decision sees it.
    pub fn credential(&self) -> access::Credential<'_> {
        match self {
            Self::Anonymous => access::Credential::Anonymous,
            Self::Cluster { cluster, .. } => access::Credential::Cluster(&cluster.path),
            Self::Invalid => access::Credential::Invalid,
        }
    }

    /// The user (anonymous unless a cluster issued the certificate).
    pub fn user(&self) -> UserInfo {
        match self {
            Self::Cluster { user, .. } => user.clone(),
            Self::Anonymous | Self::Invalid => UserInfo::anonymous(),
        }
    }

    /// Whether the credential still stands: anonymous always; a certificate
    /// only while its issuing cluster is served by the same instance (not
    /// removed, nor removed and re-created with a new CA, since the
    /// connection was opened).
    pub fn is_current(&self, clusters: &Clusters) -> bool {
        match self {
            Self::Anonymous => true,
            Self::Cluster { cluster, .. } => clusters
                .get(&cluster.path)
                .is_some_and(|c| Arc::ptr_eq(&c, cluster)),
            Self::Invalid => false,
        }
    }
}

/// User name of in-process clients (in group `system:masters`), the
/// syncer's and controllers' identity ([`crate::auth`] never issues it to
/// anything outside the process).
pub const SYSTEM_USER: &str = "system:nestkube:in-process";

/// An authenticated caller (`user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
    /// Unique id of the user, when known (`Impersonate-Uid`); empty otherwise.
    pub uid: String,
    /// Extra attributes by key (`Impersonate-Extra-<key>`); empty when none.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The anonymous user.
    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }

    /// Reads CN and O from a verified client certificate (DER).
    pub fn from_client_cert(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect();
        groups.push("system:authenticated".into());
        Some(Self {
            name,
            groups,
            ..Default::default()
        })
    }
}

/// Non-resource paths anonymous callers may read (`system:public-info-viewer`).
pub fn is_public_path(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}
