//! The ACME cache directory (`tls_letsencrypt_cache_dir`) in the layout of Go's
//! `autocert.DirCache`, which Go Headscale uses: `<hostname>` holds the certificate's private
//! key as PEM followed by the chain, `acme_account+key` the account's ECDSA P-256 key. Either
//! server reads what the other wrote, so switching (or rolling back) does not ask the CA for
//! a new certificate. Files are written whole (temporary file, then rename) with mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;
use crate::certs::{self, Keys, Loaded};

/// autocert's name for the account key.
pub const ACCOUNT_KEY_FILE: &str = "acme_account+key";

const KEYS: Keys = Keys {
    cert: "tls_letsencrypt_cache_dir",
    key: "tls_letsencrypt_cache_dir",
};

/// The cache directory.
#[derive(Debug, Clone)]
pub struct DirCache {
    dir: PathBuf,
}

impl DirCache {
    /// Creates the directory (mode 0700) if needed and checks it is writable.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let err = |source| Error::CacheDir {
            path: dir.to_owned(),
            source,
        };
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(err)?;
        let probe = dir.join(".headscale-write-test");
        std::fs::write(&probe, b"").map_err(err)?;
        let _ = std::fs::remove_file(&probe);
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The cached certificate for `host`, if there is one that loads.
    pub fn certificate(&self, host: &str) -> Option<Loaded> {
        let path = self.dir.join(host.to_ascii_lowercase());
        let pem = std::fs::read(&path).ok()?;
        match certs::from_pem(&pem, &pem, KEYS) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable cached certificate");
                None
            }
        }
    }

    /// Stores a new certificate for `host`: its key, then its chain.
    pub fn store_certificate(
        &self,
        host: &str,
        key_pem: &str,
        chain_pem: &str,
    ) -> Result<(), Error> {
        let mut body = String::with_capacity(key_pem.len() + chain_pem.len() + 1);
        body.push_str(key_pem.trim_end());
        body.push('\n');
        body.push_str(chain_pem.trim_start());
        self.write(&host.to_ascii_lowercase(), body.as_bytes())
    }

    /// The account key as PKCS#8, converting the SEC1 form Go writes.
    pub fn account_key(&self) -> Option<PrivatePkcs8KeyDer<'static>> {
        let pem = std::fs::read(self.dir.join(ACCOUNT_KEY_FILE)).ok()?;
        match PrivateKeyDer::from_pem_slice(&pem).ok()? {
            PrivateKeyDer::Pkcs8(k) => Some(k),
            PrivateKeyDer::Sec1(k) => Some(sec1_p256_to_pkcs8(k.secret_sec1_der()).into()),
            _ => {
                tracing::warn!("the cached ACME account key is not an EC key; using a new account");
                None
            }
        }
    }

    /// Stores the account key (PKCS#8 PEM, which Go's autocert also reads).
    pub fn store_account_key(&self, key: &PrivatePkcs8KeyDer<'_>) -> Result<(), Error> {
        let pem = pem_encode("PRIVATE KEY", key.secret_pkcs8_der());
        self.write(ACCOUNT_KEY_FILE, pem.as_bytes())
    }

    fn write(&self, name: &str, body: &[u8]) -> Result<(), Error> {
        let err = |source| Error::CacheDir {
            path: self.dir.join(name),
            source,
        };
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(body).and_then(|()| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, self.dir.join(name)).map_err(err)
    }
}

/// Wraps a SEC1 `ECPrivateKey` on P-256 in a PKCS#8 `PrivateKeyInfo` (RFC 5915 in RFC 5208),
/// the form the ACME client's signer takes.
pub fn sec1_p256_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { id-ecPublicKey, prime256v1 }
    const ALG: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(ALG);
    body.extend(der_tlv(0x04, sec1));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // A throwaway P-256 key in the SEC1 form Go's x509.MarshalECPrivateKey writes (with the
    // curve parameters and the public key), as autocert stores `acme_account+key`.
    const GO_ACCOUNT_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIFJgpR53JcuenWZlh7D4aOwRS/1q32LRz02KEQseICjIoAoGCCqGSM49
AwEHoUQDQgAE6UNSCQkBlaeovXBZRH+muD0y2fwH3FXIb+vtSAI6hVVAc8k3LxJN
cLeXOp7YaJ6vrOsa45co6iT1zgqikBP59w==
-----END EC PRIVATE KEY-----
";

    #[test]
    fn a_go_account_key_becomes_a_key_the_acme_client_signs_with() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ACCOUNT_KEY_FILE), GO_ACCOUNT_KEY).unwrap();
        let cache = DirCache::open(dir.path()).unwrap();
        let key = cache.account_key().unwrap();
        instant_acme::Key::from_pkcs8_der(key.clone_key()).unwrap();
        // Stored back as PKCS#8, it reads as the same key.
        cache.store_account_key(&key).unwrap();
        assert_eq!(
            cache.account_key().unwrap().secret_pkcs8_der(),
            key.secret_pkcs8_der()
        );
    }

    #[test]
    fn a_certificate_round_trips_through_the_autocert_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DirCache::open(&dir.path().join("sub")).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["hs.example.com".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(cache.certificate("hs.example.com").is_none());
        cache
            .store_certificate("HS.example.com", &key.serialize_pem(), &cert.pem())
            .unwrap();
        let on_disk = std::fs::read_to_string(dir.path().join("sub/hs.example.com")).unwrap();
        assert!(on_disk.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(on_disk.contains("-----BEGIN CERTIFICATE-----"));
        let l = cache.certificate("hs.example.com").unwrap();
        assert_eq!(l.dns_names, ["hs.example.com"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("sub/hs.example.com"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_unwritable_cache_dir_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let e = DirCache::open(&file.join("cache")).unwrap_err();
        assert!(
            e.to_string().starts_with("tls_letsencrypt_cache_dir: "),
            "{e}"
        );
    }
}
