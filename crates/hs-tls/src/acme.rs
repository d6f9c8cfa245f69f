//! Certificates from an ACME CA (RFC 8555; Let's Encrypt unless `acme_url` names another):
//! one order for `tls_letsencrypt_hostname`, validated by HTTP-01 (on the
//! [`http01`](crate::http01) listener) or TLS-ALPN-01 (RFC 8737, on the main listener through
//! the [`Resolver`]), renewed with a third of its lifetime left. A failed attempt is retried
//! with backoff while the current certificate keeps serving.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hs_config::AcmeChallenge;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, Key, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::Error;
use crate::cache::DirCache;
use crate::certs::{self, Keys, Loaded};
use crate::http01::Tokens;
use crate::resolver::Resolver;

/// Let's Encrypt's production directory, used when `acme_url` is empty (as Go's ACME client).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The first retry after a failed attempt; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait between failed attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

const KEYS: Keys = Keys {
    cert: "tls_letsencrypt_hostname",
    key: "tls_letsencrypt_hostname",
};

/// What to ask for and where.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The CA's directory URL.
    pub directory_url: String,
    /// `acme_email`; empty registers without a contact.
    pub email: String,
    /// The one DNS name on the certificate.
    pub hostname: String,
    /// How to prove control of it.
    pub challenge: AcmeChallenge,
}

/// Obtains and renews the listener's certificate.
#[derive(Debug)]
pub struct Manager {
    settings: Settings,
    cache: DirCache,
    resolver: Arc<Resolver>,
    tokens: Tokens,
}

impl Manager {
    /// A manager serving through `resolver`, answering HTTP-01 through `tokens`.
    pub fn new(
        settings: Settings,
        cache: DirCache,
        resolver: Arc<Resolver>,
        tokens: Tokens,
    ) -> Self {
        Self {
            settings,
            cache,
            resolver,
            tokens,
        }
    }

    /// The cached certificate, if it is for this host and not yet expired.
    pub fn cached(&self) -> Option<Loaded> {
        let l = self.cache.certificate(&self.settings.hostname)?;
        let fits = certs::covers(&l.dns_names, &self.settings.hostname);
        (fits && l.not_after > crate::clock::now()).then_some(l)
    }

    /// Runs one order to completion and stores the result in the cache (not in the resolver).
    pub async fn obtain(&self) -> Result<Loaded, Error> {
        let host = self.settings.hostname.as_str();
        let account = self.account().await?;
        let ids = [Identifier::Dns(host.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(|e| Error::acme("new order", e))?;
        let mut pending_tokens = Vec::new();
        let result = self.authorize(&mut order, &mut pending_tokens).await;
        let ready = match result {
            Ok(()) => order
                .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(120)))
                .await
                .map_err(|e| Error::acme("validation", e)),
            Err(e) => Err(e),
        };
        for t in &pending_tokens {
            self.tokens.remove(t);
        }
        self.resolver.clear_challenge(host);
        match ready? {
            OrderStatus::Ready => {}
            other => {
                return Err(Error::acme(
                    "validation",
                    format!("the order for {host} ended {other:?}"),
                ));
            }
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| Error::acme("finalize", e))?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(120)))
            .await
            .map_err(|e| Error::acme("download", e))?;
        let loaded = certs::from_pem(chain_pem.as_bytes(), key_pem.as_bytes(), KEYS)?;
        self.cache.store_certificate(host, &key_pem, &chain_pem)?;
        Ok(loaded)
    }

    /// Keeps a valid certificate in the resolver until `stop`: renews `current` when due
    /// (obtains one at once when there is none), retrying failures with backoff.
    pub fn spawn(self: Arc<Self>, mut current: Option<Loaded>, mut stop: watch::Receiver<bool>) {
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let due = current.as_ref().map_or(SystemTime::UNIX_EPOCH, |l| {
                    certs::renew_at(l.not_before, l.not_after)
                });
                if let Ok(wait) = due.duration_since(crate::clock::now()) {
                    // Re-check at least hourly: the wall clock may jump (suspend, NTP).
                    let wait = wait.min(Duration::from_secs(3600));
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
                let host = &self.settings.hostname;
                tracing::info!(%host, directory = %self.settings.directory_url, "requesting a certificate");
                let attempt = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    r = self.obtain() => r,
                };
                match attempt {
                    Ok(l) => {
                        log_installed(host, &l);
                        self.resolver.set(Arc::clone(&l.key));
                        current = Some(l);
                        backoff = FIRST_BACKOFF;
                    }
                    Err(e) => {
                        let serving = self.resolver.has_certificate();
                        tracing::error!(%host, error = %e, retry_in_secs = backoff.as_secs(), still_serving_previous = serving, "could not obtain a certificate");
                        tokio::select! {
                            _ = stop.wait_for(|s| *s) => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        });
    }

    async fn account(&self) -> Result<Account, Error> {
        let key_der = match self.cache.account_key() {
            Some(k) => k,
            None => {
                let (_, k) = Key::generate_pkcs8().map_err(|e| Error::acme("account key", e))?;
                self.cache.store_account_key(&k)?;
                k
            }
        };
        let key =
            Key::from_pkcs8_der(key_der.clone_key()).map_err(|e| Error::acme("account key", e))?;
        // The ACME client's HTTPS connector takes the process-wide rustls provider; more than
        // one provider is compiled into this binary, so name ring (what everything else uses).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let builder = Account::builder().map_err(|e| Error::acme("HTTP client", e))?;
        let (account, _) = builder
            .create_from_key(
                (key, PrivateKeyDer::Pkcs8(key_der)),
                self.settings.directory_url.clone(),
            )
            .await
            .map_err(|e| Error::acme("account", e))?;
        if !self.settings.email.is_empty() {
            let contact = format!("mailto:{}", self.settings.email);
            if let Err(e) = account.update_contacts(&[contact.as_str()]).await {
                tracing::warn!(error = %e, "acme_email: the CA did not take the contact address");
            }
        }
        Ok(account)
    }

    async fn authorize(
        &self,
        order: &mut instant_acme::Order,
        pending_tokens: &mut Vec<String>,
    ) -> Result<(), Error> {
        let host = self.settings.hostname.as_str();
        let kind = match self.settings.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz = authz.map_err(|e| Error::acme("authorization", e))?;
            match authz.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(Error::acme("authorization", format!("{host} is {other:?}")));
                }
            }
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                Error::acme(
                    "authorization",
                    format!("the CA offers no {kind:?} challenge for {host}"),
                )
            })?;
            let ka = challenge.key_authorization();
            match self.settings.challenge {
                AcmeChallenge::Http01 => {
                    self.tokens.insert(&challenge.token, ka.as_str());
                    pending_tokens.push(challenge.token.clone());
                }
                AcmeChallenge::TlsAlpn01 => {
                    let cert = alpn_challenge_cert(host, ka.digest().as_ref())?;
                    self.resolver.set_challenge(host, cert);
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| Error::acme("challenge", e))?;
        }
        Ok(())
    }
}

/// The self-signed certificate a TLS-ALPN-01 validation expects: the name, and the SHA-256
/// of the key authorization in the critical `acmeIdentifier` extension.
fn alpn_challenge_cert(host: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, Error> {
    let err = |e: rcgen::Error| Error::acme("challenge certificate", e);
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(err)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(err)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its consistency check parses the certificate, and the
    // parser rejects the critical acmeIdentifier extension this certificate exists for.
    let signer = tokio_rustls::rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| Error::acme("challenge certificate", e))?;
    let ck = CertifiedKey::new(vec![cert.der().clone()], signer);
    Ok(Arc::new(ck))
}

pub(crate) fn log_installed(host: &str, l: &Loaded) {
    let expires = l
        .not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tracing::info!(%host, expires_unix = expires, "serving the ACME certificate");
}
