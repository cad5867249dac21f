//! Throw-away TLS material for test servers run as processes (webhooks):
//! a CA and a serving certificate it signed, as PEM.

use std::net::IpAddr;

/// A serving certificate, its key and the CA that signed it (PEM).
pub struct ServingCert {
    /// The CA's certificate: what a client (a `caBundle`) trusts.
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key (PKCS#8).
    pub key_pem: String,
    /// The serving certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl ServingCert {
    /// A fresh CA and a certificate it signed for `dns_names` and `ips`.
    pub fn issue(dns_names: &[&str], ips: &[IpAddr]) -> anyhow::Result<Self> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-serving-ca");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(
            dns_names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }
}

/// A PKCS#10 certificate signing request for `common_name` (PEM), as a
/// `CertificateRequest`'s `spec.request` carries.
pub fn csr_pem(common_name: &str) -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![common_name.to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    Ok(params.serialize_request(&key)?.pem()?)
}
