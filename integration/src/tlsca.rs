//! A throwaway certificate authority for the TLS scenarios: one root, one server certificate
//! for the control IP. Clients trust the root through `SSL_CERT_FILE`.

use anyhow::Context as _;

/// A root that signs server certificates.
pub(crate) struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hs-integration CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate()?;
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, key).context("signing the test root")?;
        Ok(Self { issuer })
    }

    pub(crate) fn root_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `name` (an IP or a DNS name): (certificate PEM, key PEM).
    pub(crate) fn issue(&self, name: &str) -> anyhow::Result<(String, String)> {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the server certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}
