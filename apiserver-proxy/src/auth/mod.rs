//! Authentication and authorization.
//!
//! Who is calling: a client certificate verified by TLS against the cluster's
//! client CA (CN = user, O = groups, as kube-apiserver reads them). What they
//! may do: for now every authenticated user of a cluster is its admin;
//! per-cluster RBAC comes with tenants. Anonymous callers reach only the
//! public health and version endpoints, as upstream's default
//! `system:public-info-viewer` binding allows.

pub mod pki;

/// An authenticated caller (`user.Info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The anonymous user.
    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
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
        Some(Self { name, groups })
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
