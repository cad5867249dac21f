//! Client certificates: the TLS verifier and the per-connection identity.
//!
//! As kube-apiserver (`tls.RequestClientCert` + its x509 authenticator), the
//! handshake asks for a certificate but does not judge its issuer: it only
//! proves the client holds the certificate's private key. After the handshake
//! [`authenticate`] finds the cluster whose client CA issued it, so a
//! certificate from an unknown CA gets `401 Unauthorized` rather than a TLS
//! alert, and clusters created after start are recognised without a restart.
//!
//! This module must never let a certificate that no served cluster issued
//! authenticate, nor fall back to anonymous for one; and it must never send
//! CA names in the handshake (they would list every tenant).

use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::time::ASN1Time;

use super::Identity;
use crate::Clusters;

/// Requests an optional client certificate and verifies the handshake
/// signature made with its key; the issuer is judged by [`authenticate`].
#[derive(Debug)]
pub struct ClientCertRequest {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertRequest {
    /// A verifier using `provider`'s signature algorithms.
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for ClientCertRequest {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Anonymous callers may read health and version.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints would name every cluster's CA to anyone who connects.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Only well-formedness here; which cluster (if any) issued it is
        // decided per connection by `authenticate`.
        x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The identity of a connection from its peer certificate (the leaf, DER,
/// whose key the handshake proved): the issuing cluster and the user it
/// names, [`Identity::Anonymous`] without a certificate, or
/// [`Identity::Invalid`] when no served cluster issued a currently valid
/// client certificate.
pub fn authenticate(clusters: &Clusters, leaf: Option<&[u8]>, now: SystemTime) -> Identity {
    let Some(der) = leaf else {
        return Identity::Anonymous;
    };
    if !usable_for_client_auth(der, now) {
        return Identity::Invalid;
    }
    match clusters.identify(der) {
        Some((cluster, user)) => Identity::Cluster { cluster, user },
        None => Identity::Invalid,
    }
}

/// Within its validity period, not a CA, and (if it says) meant for client
/// authentication: the server CA also signs the serving certificate, which
/// must not pass as a root user.
fn usable_for_client_auth(der: &[u8], now: SystemTime) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let in_validity = ASN1Time::from_timestamp(secs).is_ok_and(|t| cert.validity().is_valid_at(t));
    let not_ca = match cert.basic_constraints() {
        Ok(bc) => !bc.is_some_and(|bc| bc.value.ca),
        Err(_) => false,
    };
    let client_auth = match cert.extended_key_usage() {
        Ok(None) => true,
        Ok(Some(eku)) => eku.value.client_auth || eku.value.any,
        Err(_) => false,
    };
    in_validity && not_ca && client_auth
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::pki::Ca;
    use rustls::pki_types::pem::PemObject;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn only_current_client_certificates_are_usable() {
        let ca = Ca::generate("test-ca").unwrap();
        let now = SystemTime::now();
        let client = ca.issue_client("alice", &["dev"]).unwrap();
        assert!(usable_for_client_auth(&der(&client.cert_pem), now));
        let serving = ca.issue_serving(&["localhost".into()], &[]).unwrap();
        assert!(!usable_for_client_auth(&der(&serving.cert_pem), now));
        assert!(!usable_for_client_auth(&der(&ca.pair.cert_pem), now));
        // Issued 2024..2124.
        let long_ago = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        assert!(!usable_for_client_auth(&der(&client.cert_pem), long_ago));
        assert!(!usable_for_client_auth(b"not a certificate", now));
    }
}
