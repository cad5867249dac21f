//! Certificate authorities and certificates: the server's serving
//! certificate and client certificates issued by a cluster's client CA.
//!
//! Keys and certificates are PEM files under `<data-dir>/pki/`, created on
//! first start and reused after, so kubeconfigs stay valid across restarts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;

/// PKI errors.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Key or certificate generation or parsing.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertPair {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PEM, PKCS#8).
    pub key_pem: String,
}

/// A certificate authority that can issue serving and client certificates.
pub struct Ca {
    /// The CA certificate and key.
    pub pair: CertPair,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, DER.
    cert_der: Vec<u8>,
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

impl Ca {
    /// A new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params.self_signed(&key)?;
        let pair = CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_der: cert.der().to_vec(),
            pair,
        })
    }

    /// Loads a CA from PEM.
    pub fn from_pem(pair: CertPair) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(&pair.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&pair.cert_pem, key)?;
        let cert_der = rustls::pki_types::CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .map(|c| c.to_vec())
            .ok_or(rcgen::Error::CouldNotParseCertificate)?;
        Ok(Self {
            pair,
            issuer,
            cert_der,
        })
    }

    /// Loads `<dir>/<name>.crt|.key`, creating the CA on first use.
    pub fn load_or_create(dir: &Path, name: &str, common_name: &str) -> Result<Self, PkiError> {
        let (crt, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        if let (Some(cert_pem), Some(key_pem)) = (read(&crt)?, read(&key)?) {
            return Self::from_pem(CertPair { cert_pem, key_pem });
        }
        let ca = Self::generate(common_name)?;
        write_private(&key, &ca.pair.key_pem)?;
        write_private(&crt, &ca.pair.cert_pem)?;
        Ok(ca)
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Whether `cert` was issued by this CA: its issuer is our subject and its
    /// signature verifies with our public key.
    pub fn verifies(&self, cert: &x509_parser::certificate::X509Certificate<'_>) -> bool {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&self.cert_der) else {
            return false;
        };
        cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub fn issue_serving(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<CertPair, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params
            .distinguished_name
            .push(DnType::CommonName, "nestkube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A client certificate: CN = user, O = groups (as kube-apiserver reads them).
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<CertPair, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads `<dir>/<name>.crt|.key` or issues and stores a client certificate.
    pub fn load_or_issue_client(
        &self,
        dir: &Path,
        name: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<CertPair, PkiError> {
        let (crt, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        if let (Some(cert_pem), Some(key_pem)) = (read(&crt)?, read(&key)?) {
            return Ok(CertPair { cert_pem, key_pem });
        }
        let pair = self.issue_client(user, groups)?;
        write_private(&key, &pair.key_pem)?;
        write_private(&crt, &pair.cert_pem)?;
        Ok(pair)
    }
}
