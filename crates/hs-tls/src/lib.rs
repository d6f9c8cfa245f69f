//! TLS for the main listener (`listen_addr`), as Go Headscale serves it: a certificate from
//! files (`tls_cert_path`/`tls_key_path`, reloaded when the files change or on
//! [`Tls::reload`], so a certbot renewal needs no restart), or one obtained and renewed from
//! an ACME CA (`tls_letsencrypt_hostname`, HTTP-01 or TLS-ALPN-01), cached in Go's autocert
//! layout so either server can use the other's cache.
//!
//! - [`certs`]: PEM → a rustls [`CertifiedKey`](tokio_rustls::rustls::sign::CertifiedKey) and
//!   its validity; the renewal rule.
//! - [`resolver`]: the one certificate slot every handshake reads, plus TLS-ALPN-01 challenge
//!   certificates.
//! - [`files`]: manual certificates and their watcher.
//! - [`cache`]: the autocert-compatible cache directory.
//! - [`acme`]: obtaining and renewing; [`http01`]: the challenge listener.
//! - [`setup`]: [`Tls::start`], from the config to a running source and an acceptor.

pub mod acme;
pub mod cache;
pub mod certs;
mod clock;
mod error;
pub mod files;
pub mod http01;
pub mod resolver;
pub mod setup;

pub use error::Error;
pub use setup::Tls;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737): a connection that negotiates it is a CA's
/// validation, which ends after the handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
