//! Certificates as the listener uses them: PEM in, a rustls [`CertifiedKey`] and the
//! certificate's validity out, and the rule for when to renew.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::Error;

/// A certificate chain with its key, ready to serve.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What the resolver hands to rustls.
    pub key: Arc<CertifiedKey>,
    /// The leaf's `notBefore`.
    pub not_before: SystemTime,
    /// The leaf's `notAfter`.
    pub not_after: SystemTime,
    /// The leaf's DNS names (subjectAltName), for checking it covers the configured host.
    pub dns_names: Vec<String>,
}

/// Which config keys to name when the chain or the key is wrong.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    /// Names the certificate chain (for example `tls_cert_path`).
    pub cert: &'static str,
    /// Names the private key (for example `tls_key_path`).
    pub key: &'static str,
}

/// Parses a PEM chain (leaf first) and a PEM private key (PKCS#8, SEC1 or PKCS#1), and
/// checks that the key belongs to the leaf.
pub fn from_pem(chain_pem: &[u8], key_pem: &[u8], keys: Keys) -> Result<Loaded, Error> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(keys.cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(Error::invalid(keys.cert, "no CERTIFICATE block found"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::invalid(keys.key, format!("no usable PEM private key: {e}")))?;
    let (not_before, not_after, dns_names) = validity(&chain[0])
        .map_err(|m| Error::invalid(keys.cert, format!("the first certificate: {m}")))?;
    let certified = CertifiedKey::from_der(chain, key, &default_provider()).map_err(|e| {
        Error::invalid(
            keys.key,
            format!("the key does not fit the certificate: {e}"),
        )
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        not_before,
        not_after,
        dns_names,
    })
}

/// The leaf's validity window and DNS names.
pub fn validity(der: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime, Vec<String>), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    let v = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push((*d).to_owned());
            }
        }
    }
    Ok((at(v.not_before), at(v.not_after), names))
}

/// Renew with a third of the lifetime left, and never later than 30 days before expiry
/// (autocert's margin, which is a third of Let's Encrypt's 90 days): a short-lived
/// certificate is renewed in proportion rather than immediately.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    const MAX_MARGIN: Duration = Duration::from_secs(30 * 24 * 3600);
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let margin = (lifetime / 3).min(MAX_MARGIN);
    not_after.checked_sub(margin).unwrap_or(not_before)
}

/// Whether `host` is covered by one of `names` (exact, or a `*.` wildcard one label deep).
pub fn covers(names: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        match n.strip_prefix("*.") {
            Some(suffix) => host.split_once('.').is_some_and(|(_, rest)| rest == suffix),
            None => n == host,
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEYS: Keys = Keys {
        cert: "tls_cert_path",
        key: "tls_key_path",
    };

    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads_with_its_names_and_validity() {
        let (cert, key) = self_signed("hs.example.com");
        let l = from_pem(cert.as_bytes(), key.as_bytes(), KEYS).unwrap();
        assert_eq!(l.dns_names, ["hs.example.com"]);
        assert!(l.not_after > l.not_before);
        assert!(covers(&l.dns_names, "HS.example.com"));
        assert!(!covers(&l.dns_names, "other.example.com"));
    }

    #[test]
    fn a_key_from_another_certificate_is_refused_naming_the_key_file() {
        let (cert, _) = self_signed("a.example");
        let (_, other_key) = self_signed("b.example");
        let e = from_pem(cert.as_bytes(), other_key.as_bytes(), KEYS).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tls_key_path: the key does not fit"),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_refused_naming_the_right_key() {
        let (cert, key) = self_signed("a.example");
        let e = from_pem(b"hello", key.as_bytes(), KEYS).unwrap_err();
        assert!(
            e.to_string().starts_with("tls_cert_path: no CERTIFICATE"),
            "{e}"
        );
        let e = from_pem(cert.as_bytes(), b"", KEYS).unwrap_err();
        assert!(
            e.to_string().starts_with("tls_key_path: no usable PEM"),
            "{e}"
        );
    }

    #[test]
    fn renewal_leaves_a_third_of_the_lifetime_capped_at_30_days() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(renew_at(t0, t0 + 90 * day), t0 + 60 * day);
        assert_eq!(renew_at(t0, t0 + 365 * day), t0 + 335 * day);
        assert_eq!(
            renew_at(t0, t0 + Duration::from_secs(300)),
            t0 + Duration::from_secs(200)
        );
        assert_eq!(renew_at(t0, t0), t0);
    }

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec!["*.example.com".to_owned()];
        assert!(covers(&names, "hs.example.com"));
        assert!(!covers(&names, "a.hs.example.com"));
        assert!(!covers(&names, "example.com"));
    }
}
