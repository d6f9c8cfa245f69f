//! The certificate every handshake on the listener reads. Swapping it (a renewal, a file
//! change) is one atomic store; open connections keep the certificate they started with.
//! TLS-ALPN-01 validations (RFC 8737) get the challenge certificate for their name instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::ACME_TLS_ALPN;

/// The listener's certificate slot and the pending TLS-ALPN-01 challenges.
#[derive(Debug, Default)]
pub struct Resolver {
    current: ArcSwapOption<CertifiedKey>,
    // Held only to insert, remove or clone one entry; never across an await.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Resolver {
    /// An empty slot: handshakes fail until [`Resolver::set`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Serves `key` to every new handshake.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        self.current.store(Some(key));
    }

    /// Whether a certificate is being served.
    pub fn has_certificate(&self) -> bool {
        self.current.load().is_some()
    }

    /// The certificate being served.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }

    /// Answers TLS-ALPN-01 validations for `host` with `key` until [`Resolver::clear_challenge`].
    pub fn set_challenge(&self, host: &str, key: Arc<CertifiedKey>) {
        self.challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_ascii_lowercase(), key);
    }

    /// Stops answering TLS-ALPN-01 validations for `host`.
    pub fn clear_challenge(&self, host: &str) {
        self.challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&host.to_ascii_lowercase());
    }

    /// A rustls server config over this resolver, offering HTTP/1.1 (the Tailscale clients'
    /// upgrades to /ts2021 and /derp need it, and Go Headscale offers only it) and the
    /// TLS-ALPN-01 protocol.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, crate::Error> {
        self.server_config_with_alpn(&[b"http/1.1", ACME_TLS_ALPN])
    }

    /// A rustls server config over this resolver offering `alpn` (the gRPC listener offers
    /// `h2` and `http/1.1`).
    pub fn server_config_with_alpn(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> Result<ServerConfig, crate::Error> {
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::invalid("tls", e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(cfg)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validating = hello
            .alpn()
            .is_some_and(|mut protos| protos.any(|p| p == ACME_TLS_ALPN));
        if validating {
            let host = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&host)
                .cloned();
        }
        self.current.load_full()
    }
}
