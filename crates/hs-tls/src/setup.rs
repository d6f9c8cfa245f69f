//! [`Tls::start`]: from the `tls_*` keys to a certificate source and an acceptor for the main
//! listener, checking what Go Headscale checks (and warning where Go warns).

use std::net::SocketAddr;
use std::sync::Arc;

use hs_config::{AcmeChallenge, TlsConfig};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::Error;
use crate::acme::{self, Manager, Settings};
use crate::cache::DirCache;
use crate::files::{self, FileSource};
use crate::http01::{self, Tokens};
use crate::resolver::Resolver;

/// TLS on the main listener, running.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    files: Option<Arc<FileSource>>,
    challenge_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files.is_some())
            .field("challenge_addr", &self.challenge_addr)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Starts the configured source: `Ok(None)` when no TLS is configured (TLS terminated by
    /// a reverse proxy, or plain HTTP). Unreadable or mismatched files, an unusable cache
    /// directory and a challenge port that cannot be bound fail here, naming the key. An ACME
    /// certificate that is not cached yet is obtained in the background (handshakes fail until
    /// it arrives, as with Go's autocert); the background tasks end when `stop` turns true.
    pub async fn start(
        tls: &TlsConfig,
        server_url: &str,
        listen_addr: &str,
        stop: watch::Receiver<bool>,
    ) -> Result<Option<Self>, Error> {
        let https = server_url.starts_with("https://");
        if tls.letsencrypt_hostname.is_empty() && tls.cert_path.is_none() {
            if https {
                tracing::warn!(
                    server_url,
                    "listening without TLS while server_url is https://: this is right only behind a reverse proxy that terminates TLS (see docs/tls.md)"
                );
            }
            return Ok(None);
        }
        if !https {
            tracing::warn!(
                server_url,
                "listening with TLS but server_url does not start with https://"
            );
        }
        let resolver = Resolver::new();
        let mut files_src = None;
        let mut challenge_addr = None;
        if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
            let src = FileSource::load(cert, key, Arc::clone(&resolver))?;
            src.spawn_watch(files::WATCH_INTERVAL, stop);
            files_src = Some(src);
        } else {
            let host = tls
                .letsencrypt_hostname
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if tls.letsencrypt_challenge_type == AcmeChallenge::TlsAlpn01
                && !listen_addr.ends_with(":443")
            {
                tracing::warn!(
                    listen_addr,
                    "tls_letsencrypt_challenge_type TLS-ALPN-01 validates on port 443: listen_addr should probably end in :443"
                );
            }
            let cache = DirCache::open(&tls.letsencrypt_cache_dir)?;
            let tokens = Tokens::default();
            let settings = Settings {
                directory_url: if tls.acme_url.is_empty() {
                    acme::LETS_ENCRYPT.to_owned()
                } else {
                    tls.acme_url.clone()
                },
                email: tls.acme_email.clone(),
                hostname: host.clone(),
                challenge: tls.letsencrypt_challenge_type,
            };
            if tls.letsencrypt_challenge_type == AcmeChallenge::Http01 {
                let addr = http01::serve(
                    &tls.letsencrypt_listen,
                    server_url,
                    tokens.clone(),
                    stop.clone(),
                )
                .await?;
                challenge_addr = Some(addr);
            }
            let manager = Arc::new(Manager::new(settings, cache, Arc::clone(&resolver), tokens));
            let cached = manager.cached();
            match &cached {
                Some(l) => {
                    acme::log_installed(&host, l);
                    resolver.set(Arc::clone(&l.key));
                }
                None => tracing::info!(%host, "no cached certificate: one will be requested now"),
            }
            manager.spawn(cached, stop);
        }
        let config = resolver.server_config()?;
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            files: files_src,
            challenge_addr,
        }))
    }

    /// What the listener hands each accepted connection to.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// An acceptor over the same certificate for the gRPC listener (HTTP/2 and HTTP/1.1), so
    /// it follows reloads and renewals too, as Go serves gRPC with its TLS config.
    pub fn grpc_acceptor(&self) -> Result<TlsAcceptor, Error> {
        let cfg = self
            .resolver
            .server_config_with_alpn(&[b"h2", b"http/1.1"])?;
        Ok(TlsAcceptor::from(Arc::new(cfg)))
    }

    /// The certificate slot (for embedders and tests).
    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// The HTTP-01 listener's bound address, when there is one.
    pub fn challenge_addr(&self) -> Option<SocketAddr> {
        self.challenge_addr
    }

    /// SIGHUP: re-reads manual certificate files now (ACME certificates renew on their own).
    pub fn reload(&self) {
        if let Some(Err(e)) = self.files.as_ref().map(|f| f.reload()) {
            tracing::error!(error = %e, "reloading the certificate failed; still serving the previous one");
        }
    }
}
