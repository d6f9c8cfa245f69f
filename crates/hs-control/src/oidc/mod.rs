//! OIDC login, as Go Headscale 0.29.3 does it: `/register/{auth_id}` sends the browser to
//! the provider (state and nonce bound to the browser by cookies, PKCE when configured,
//! `extra_params` added), `/oidc/callback` exchanges the code, verifies the ID token
//! (signature against the provider's keys, issuer, audience, nonce, expiry; `openidconnect`
//! does the checking), lays the userinfo answer over its claims, applies the allow-lists,
//! creates or updates the user by issuer and subject, and shows a confirmation page whose
//! form (`POST /register/confirm/{auth_id}`, a CSRF cookie) registers the node.
//!
//! - `claims`: the pure rules (identity, allow-lists, profile fields).
//! - `http`: the client the provider is reached with.
//! - `routes`: the three handlers and their pages.

mod claims;
mod http;
mod routes;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use openidconnect::core::{CoreClient, CoreIdTokenVerifier, CoreProviderMetadata};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};

pub use claims::{Claims, Policy, Profile, Refused};
pub(crate) use routes::{OidcState, callback, confirm, start, start_auth};

/// How long a login may take from the redirect to the confirmation (Go's 15 minutes).
const FLOW_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// At most this many logins in flight; the oldest are dropped first (Go keeps 1024).
const MAX_FLOWS: usize = 1024;

/// `oidc.pkce.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceMethod {
    /// `S256`: the challenge is the verifier's SHA-256.
    S256,
    /// `plain`: the challenge is the verifier.
    Plain,
}

/// The `oidc.*` settings the login uses, with the client secret already read.
#[derive(Debug, Clone, Default)]
pub struct OidcSettings {
    /// `oidc.issuer`.
    pub issuer: String,
    /// `oidc.client_id`.
    pub client_id: String,
    /// `oidc.client_secret` or the contents of `oidc.client_secret_path`.
    pub client_secret: String,
    /// `oidc.scope`.
    pub scope: Vec<String>,
    /// `oidc.extra_params`, added to the authorization URL.
    pub extra_params: BTreeMap<String, String>,
    /// Allow-lists and `email_verified_required`.
    pub policy: Policy,
    /// `oidc.use_expiry_from_token`: the node expires when the ID token does.
    pub use_expiry_from_token: bool,
    /// `oidc.pkce`: `None` when disabled.
    pub pkce: Option<PkceMethod>,
}

/// Why the provider could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// A configured URL is not one.
    #[error("oidc.issuer {0:?} is not a URL: {1}")]
    Issuer(String, String),
    /// Discovery failed.
    #[error("OIDC discovery at {0} failed: {1}")]
    Discovery(String, String),
}

/// What a login is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Registering the machine waiting under the auth ID.
    Register,
    /// Approving the SSH check filed under the auth ID.
    SshCheck,
}

/// A login in flight, keyed by its `state`.
#[derive(Debug, Clone)]
struct Flow {
    auth_id: String,
    purpose: Purpose,
    nonce: String,
    verifier: Option<String>,
    started: DateTime<Utc>,
}

/// A login that passed the provider's checks and the allow-lists, waiting for the user to
/// confirm the node on the confirmation page.
#[derive(Debug, Clone)]
struct Confirmable {
    user: hs_types::UserId,
    user_display: String,
    expiry: Option<DateTime<Utc>>,
    csrf: String,
    at: DateTime<Utc>,
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The configured provider and the logins in flight.
pub struct Oidc {
    client: Client,
    issuer: String,
    userinfo: Option<String>,
    settings: OidcSettings,
    flows: Mutex<HashMap<String, Flow>>,
    confirmations: Mutex<HashMap<String, Confirmable>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What a finished provider round trip established.
#[derive(Debug, Clone)]
pub(crate) struct LoggedIn {
    pub(crate) auth_id: String,
    pub(crate) purpose: Purpose,
    pub(crate) claims: Claims,
    pub(crate) token_expiry: DateTime<Utc>,
}

/// A login that failed: the status and the reason the browser is shown; details are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) status: ::http::StatusCode,
    pub(crate) reason: String,
}

impl Failure {
    pub(crate) fn new(status: ::http::StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Oidc {
    /// Reads the provider's discovery document and keys; `server_url` makes the redirect URI
    /// (`<server_url>/oidc/callback`, as Go).
    pub async fn discover(settings: OidcSettings, server_url: &str) -> Result<Self, OidcError> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| OidcError::Issuer(settings.issuer.clone(), e.to_string()))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &http::send)
            .await
            .map_err(|e| OidcError::Discovery(settings.issuer.clone(), error_chain(&e)))?;
        let userinfo = meta.userinfo_endpoint().map(|u| u.url().to_string());
        let redirect = format!("{}/oidc/callback", server_url.trim_end_matches('/'));
        let redirect = RedirectUrl::new(redirect.clone())
            .map_err(|e| OidcError::Issuer(redirect, e.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(settings.client_id.clone()),
            Some(ClientSecret::new(settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        tracing::info!(issuer = %settings.issuer, "OIDC provider discovered");
        Ok(Self {
            client,
            issuer: settings.issuer.clone(),
            userinfo,
            settings,
            flows: Mutex::new(HashMap::new()),
            confirmations: Mutex::new(HashMap::new()),
        })
    }

    /// `oidc.email_verified_required`.
    pub(crate) fn email_verified_required(&self) -> bool {
        self.settings.policy.email_verified_required
    }

    /// Starts a login for `auth_id`: the provider's authorization URL, the state and the
    /// nonce (which the caller binds to the browser with cookies).
    pub(crate) fn begin(
        &self,
        auth_id: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> (String, String, String) {
        let state = random_token(48);
        let nonce = random_token(48);
        let (state_c, nonce_c) = (state.clone(), nonce.clone());
        let mut req = self.client.authorize_url(
            AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
            move || CsrfToken::new(state_c),
            move || Nonce::new(nonce_c),
        );
        for s in &self.settings.scope {
            if s != "openid" {
                req = req.add_scope(Scope::new(s.clone()));
            }
        }
        for (k, v) in &self.settings.extra_params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        let verifier = match self.settings.pkce {
            None => None,
            Some(PkceMethod::S256) => {
                let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
                req = req.set_pkce_challenge(challenge);
                Some(verifier.secret().clone())
            }
            Some(PkceMethod::Plain) => {
                let verifier = random_token(48);
                req = req
                    .add_extra_param("code_challenge", verifier.clone())
                    .add_extra_param("code_challenge_method", "plain");
                Some(verifier)
            }
        };
        let (url, _, _) = req.url();
        let mut flows = self
            .flows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        flows.retain(|_, f| now - f.started < FLOW_TTL);
        if flows.len() >= MAX_FLOWS
            && let Some(oldest) = flows
                .iter()
                .min_by_key(|(_, f)| f.started)
                .map(|(k, _)| k.clone())
        {
            flows.remove(&oldest);
        }
        flows.insert(
            state.clone(),
            Flow {
                auth_id: auth_id.to_owned(),
                purpose,
                nonce: nonce.clone(),
                verifier,
                started: now,
            },
        );
        (url.to_string(), state, nonce)
    }

    /// Finishes the provider round trip for `state`: code exchange, ID token verification
    /// against the nonce stored for it (and `nonce_cookie`, which must be that nonce), the
    /// userinfo answer, the allow-lists.
    pub(crate) async fn finish(
        &self,
        state: &str,
        code: &str,
        nonce_cookie: impl Fn(&str) -> Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LoggedIn, Failure> {
        use ::http::StatusCode as S;
        let flow = {
            let mut flows = self
                .flows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flows.remove(state)
        };
        let Some(flow) = flow.filter(|f| now - f.started < FLOW_TTL) else {
            return Err(Failure::new(S::GONE, "login session expired, try again"));
        };
        let mut exchange = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| {
                tracing::error!(error = %e, "OIDC provider has no token endpoint");
                Failure::new(
                    S::INTERNAL_SERVER_ERROR,
                    "the identity provider has no token endpoint",
                )
            })?;
        if let Some(v) = &flow.verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(v.clone()));
        }
        let token = exchange.request_async(&http::send).await.map_err(|e| {
            tracing::warn!(error = %error_chain(&e), "OIDC code exchange refused");
            Failure::new(S::FORBIDDEN, "invalid code")
        })?;
        let Some(id_token) = token.id_token() else {
            return Err(Failure::new(S::BAD_REQUEST, "no id_token"));
        };
        let verifier: CoreIdTokenVerifier<'_> = self.client.id_token_verifier();
        let verified = id_token
            .claims(&verifier, &Nonce::new(flow.nonce.clone()))
            .map_err(|e| {
                tracing::warn!(error = %e, "OIDC ID token refused");
                Failure::new(S::FORBIDDEN, "failed to verify id_token")
            })?;
        let token_nonce = verified
            .nonce()
            .map(|n| n.secret().clone())
            .unwrap_or_default();
        if nonce_cookie(&token_nonce).as_deref() != Some(token_nonce.as_str()) {
            return Err(Failure::new(S::FORBIDDEN, "nonce did not match"));
        }
        let token_expiry = verified.expiration();
        // The verified token's payload, read again for the claims openidconnect's standard
        // set does not carry (groups) and with Go's lenient types.
        let mut claims = payload(&id_token.to_string()).ok_or_else(|| {
            Failure::new(S::BAD_REQUEST, "the ID token's claims could not be read")
        })?;
        if let Some(info) = self.userinfo(token.access_token().secret()).await {
            claims.merge_userinfo(&info);
        }
        self.settings.policy.authorize(&claims).map_err(|r| {
            tracing::info!(identifier = %claims.identifier(), reason = r.message(), "OIDC login refused by the allow-lists");
            Failure::new(S::UNAUTHORIZED, r.message())
        })?;
        Ok(LoggedIn {
            auth_id: flow.auth_id,
            purpose: flow.purpose,
            claims,
            token_expiry,
        })
    }

    /// The userinfo answer, or `None` (logged) when there is no endpoint or it fails: Go
    /// then uses the ID token's claims alone.
    async fn userinfo(&self, access_token: &str) -> Option<serde_json::Value> {
        let url = self.userinfo.as_ref()?;
        let req = ::http::Request::get(url)
            .header(
                ::http::header::AUTHORIZATION,
                format!("Bearer {access_token}"),
            )
            .header(::http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .ok()?;
        match http::send(req).await {
            Ok(r) if r.status().is_success() => serde_json::from_slice(r.body()).ok(),
            Ok(r) => {
                tracing::warn!(status = %r.status(), "OIDC userinfo refused; using the ID token's claims");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "OIDC userinfo failed; using the ID token's claims");
                None
            }
        }
    }

    /// Remembers a login waiting for the user's confirmation of the node; the CSRF token
    /// the confirmation form and cookie must carry.
    pub(crate) fn await_confirmation(
        &self,
        auth_id: &str,
        user: &hs_types::model::User,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> String {
        let csrf = random_token(32);
        let mut c = self
            .confirmations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.retain(|_, x| now - x.at < FLOW_TTL);
        if c.len() >= MAX_FLOWS
            && let Some(oldest) = c.iter().min_by_key(|(_, x)| x.at).map(|(k, _)| k.clone())
        {
            c.remove(&oldest);
        }
        c.insert(
            auth_id.to_owned(),
            Confirmable {
                user: user.id,
                user_display: user.display().to_owned(),
                expiry,
                csrf: csrf.clone(),
                at: now,
            },
        );
        csrf
    }

    /// Takes the confirmation waiting for `auth_id` if `csrf` is its token.
    fn take_confirmation(
        &self,
        auth_id: &str,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<Confirmable, Failure> {
        use ::http::StatusCode as S;
        let mut c = self
            .confirmations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match c.get(auth_id) {
            None => Err(Failure::new(
                S::FORBIDDEN,
                "registration not OIDC-authorized",
            )),
            Some(x) if now - x.at >= FLOW_TTL => {
                c.remove(auth_id);
                Err(Failure::new(S::GONE, "registration session expired"))
            }
            Some(x) if x.csrf != csrf => Err(Failure::new(
                S::FORBIDDEN,
                "csrf token does not match cached registration",
            )),
            Some(_) => c
                .remove(auth_id)
                .ok_or_else(|| Failure::new(S::GONE, "registration session expired")),
        }
    }
}

/// The claims in a JWT's payload (its second part), read without checking anything: only
/// for a token `openidconnect` has verified.
fn payload(jwt: &str) -> Option<Claims> {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An error with its sources, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
