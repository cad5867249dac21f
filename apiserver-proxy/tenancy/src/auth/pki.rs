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
    /// Its subject and public key (DER), taken from `cert_der` once, so
    /// [`Ca::verifies`] (every connection, against every cluster's CA)
    /// parses no CA certificate.
    subject_der: Vec<u8>,
    spki_der: Vec<u8>,
}

/// The subject and the subject public key info (DER) of certificate `der`.
fn subject_and_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
    Ok((
        cert.subject().as_raw().to_vec(),
        cert.public_key().raw.to_vec(),
    ))
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
        let cert_der = cert.der().to_vec();
        let (subject_der, spki_der) = subject_and_key(&cert_der)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_der,
            subject_der,
            spki_der,
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
        let (subject_der, spki_der) = subject_and_key(&cert_der)?;
        Ok(Self {
            pair,
            issuer,
            cert_der,
            subject_der,
            spki_der,
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
        use x509_parser::prelude::FromDer;
        // A byte comparison first: only the CA named as issuer is parsed
        // and checked, so the cost of a connection does not grow with the
        // number of clusters beyond one comparison each.
        if cert.issuer().as_raw() != self.subject_der.as_slice() {
            return false;
        }
        let Ok((_, key)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&self.spki_der) else {
            return false;
        };
        cert.verify_signature(Some(&key)).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(pem: &str) -> Vec<u8> {
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn only_the_issuing_ca_verifies() {
        let a = Ca::generate("a").unwrap();
        let b = Ca::generate("b").unwrap();
        // Same subject, other key: the issuer name alone is not enough.
        let a2 = Ca::generate("a").unwrap();
        let der = parsed(&a.issue_client("u", &[]).unwrap().cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(a.verifies(&cert));
        assert!(!b.verifies(&cert));
        assert!(!a2.verifies(&cert));
        let reloaded = Ca::from_pem(a.pair.clone()).unwrap();
        assert!(reloaded.verifies(&cert));
    }

    /// What identifying one client certificate costs against 1,000 CAs,
    /// the way every connection did before (each CA parsed) and now
    /// (`cargo test -p nestkube-apiserver --release pki::tests::cost -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_of_identifying_against_1000_cas() {
        let cas: Vec<Ca> = (0..1000)
            .map(|i| Ca::generate(&format!("nestkube-client-ca:team-{i}")).unwrap())
            .collect();
        let der = parsed(&cas[999].issue_client("u", &[]).unwrap().cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let rounds = 200;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            let found = cas.iter().position(|ca| {
                let (_, c) = x509_parser::parse_x509_certificate(&ca.cert_der).unwrap();
                cert.issuer() == c.subject() && cert.verify_signature(Some(c.public_key())).is_ok()
            });
            assert_eq!(found, Some(999));
        }
        let before = t.elapsed() / rounds;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            assert_eq!(cas.iter().position(|ca| ca.verifies(&cert)), Some(999));
        }
        let after = t.elapsed() / rounds;
        println!("identify against 1000 CAs: each CA parsed {before:?}, cached {after:?}");
    }
}
