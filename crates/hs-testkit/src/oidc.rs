//! A real OpenID Connect provider on loopback for tests: [`Provider`] runs
//! [`oidc-provider`](https://github.com/panva/node-oidc-provider) (npm, pinned to
//! [`OIDC_PROVIDER_VERSION`]) under Node.js, one process and one kernel-chosen port per
//! [`Provider`], issuer `http://127.0.0.1:<port>`. The package is installed once per machine
//! into `~/.cache/headscale-rs/oidc-provider/<version>`; the launcher script is
//! `crates/hs-testkit/oidc/provider.mjs`.
//!
//! Why oidc-provider and not a mock such as `mockoidc` (what Go headscale's integration tests
//! use): oidc-provider is an OpenID Certified implementation, so what our relying party meets
//! here is what it meets in production: discovery, a JWKS with a fresh RSA key per process and
//! real RS256 signatures, the `nonce` echoed in the ID token, PKCE S256 checked at the token
//! endpoint, client authentication (`client_secret_basic` / `client_secret_post`) enforced,
//! single-use codes that expire, redirect URIs matched exactly, and an ID token `exp` the test
//! chooses. A mock that accepts whatever it is sent would let the relying party pass against
//! behaviour no real provider has.
//!
//! The test plays the browser with [`Provider::login`]: it follows the provider's redirects
//! with a cookie jar, logs in the account it names (consent is implied for the test clients),
//! and returns the redirect back to the relying party without requesting it. Everything stays
//! on loopback: the HTTP client here refuses any other address.

mod http;
mod install;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use url::Url;

pub use http::{HttpResponse, http_request};
pub use install::OIDC_PROVIDER_VERSION;

use http::CookieJar;

/// The launcher, compiled in so that a test binary does not depend on where the repository is.
const LAUNCHER: &str = include_str!("../oidc/provider.mjs");

/// From spawning Node.js to the discovery document answering; it takes well under a second
/// (a 2048-bit RSA key and the package's import), so this only bounds a broken start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Redirects one login may take: authorization → interaction → resume → relying party is 3.
const MAX_REDIRECTS: usize = 10;

/// Installs the pinned oidc-provider when it is missing (what [`Provider::start`] does first)
/// and returns the package directory. Blocking. For callers that start the provider where the
/// npm registry cannot be reached: the integration harness installs it here, then starts the
/// provider inside a loopback-only network namespace.
///
/// # Errors
/// When npm fails or takes longer than 5 minutes; the message quotes npm's log.
pub fn install() -> Result<PathBuf, String> {
    install::ensure_installed()
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenAuthMethod {
    /// HTTP Basic with the client id and secret (what `openidconnect` and Go's oauth2 try
    /// first).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl TokenAuthMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A registered (confidential, authorization-code) client.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
    /// The redirect URIs, matched exactly by the provider.
    pub redirect_uris: Vec<String>,
    /// The one authentication method the token endpoint accepts from this client.
    pub auth_method: TokenAuthMethod,
}

impl Client {
    /// A client with one redirect URI, authenticating with `client_secret_basic`.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            auth_method: TokenAuthMethod::default(),
        }
    }
}

/// A user the provider can log in. `None` claims are left out of the tokens; `groups` is
/// always sent (under scope `groups`).
#[derive(Debug, Clone, Default)]
pub struct Account {
    /// `sub`, also what [`Provider::login`] names.
    pub sub: String,
    /// `email` (scope `email`).
    pub email: Option<String>,
    /// `email_verified` (scope `email`).
    pub email_verified: Option<bool>,
    /// `name` (scope `profile`).
    pub name: Option<String>,
    /// `preferred_username` (scope `profile`).
    pub preferred_username: Option<String>,
    /// `picture` (scope `profile`).
    pub picture: Option<String>,
    /// `groups` (scope `groups`).
    pub groups: Vec<String>,
}

/// What the provider serves.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// The registered clients; the first is what [`Provider::client_id`] returns.
    pub clients: Vec<Client>,
    /// The accounts [`Provider::login`] can log in.
    pub accounts: Vec<Account>,
    /// ID token lifetime (`exp - iat`), whole seconds, at least 1.
    pub id_token_ttl: Duration,
    /// Whether authorization requests without a PKCE `code_challenge` are refused.
    pub pkce_required: bool,
}

impl ProviderOptions {
    /// One client, no accounts, hour-long ID tokens, PKCE optional.
    pub fn new(client: Client) -> Self {
        Self {
            clients: vec![client],
            accounts: Vec::new(),
            id_token_ttl: Duration::from_secs(3600),
            pkce_required: false,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let clients: Vec<_> = self
            .clients
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "redirect_uris": c.redirect_uris,
                    "token_endpoint_auth_method": c.auth_method.as_str(),
                })
            })
            .collect();
        let accounts: Vec<_> = self
            .accounts
            .iter()
            .map(|a| {
                json!({
                    "sub": a.sub,
                    "email": a.email,
                    "email_verified": a.email_verified,
                    "name": a.name,
                    "preferred_username": a.preferred_username,
                    "picture": a.picture,
                    "groups": a.groups,
                })
            })
            .collect();
        json!({
            "clients": clients,
            "accounts": accounts,
            "id_token_ttl": self.id_token_ttl.as_secs().max(1),
            "pkce_required": self.pkce_required,
        })
    }
}

/// A running oidc-provider; the process is killed when this is dropped (and exits by itself
/// when the test process dies, as its standard input closes).
pub struct Provider {
    child: Child,
    issuer: String,
    client_id: String,
    client_secret: String,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Installs oidc-provider if needed, starts it and waits until its discovery document
    /// answers.
    ///
    /// # Panics
    /// When it cannot start (a test set-up error); the message says which step failed and
    /// quotes the provider's output.
    pub async fn start(opts: ProviderOptions) -> Self {
        match Self::try_start(opts).await {
            Ok(p) => p,
            Err(e) => panic!("starting the test OpenID provider: {e}"),
        }
    }

    /// [`Provider::start`], returning the failure instead of panicking.
    ///
    /// # Errors
    /// When there is no client, npm or Node.js fails, or the provider does not answer within
    /// 20 s.
    pub async fn try_start(opts: ProviderOptions) -> Result<Self, String> {
        let first = opts
            .clients
            .first()
            .ok_or("ProviderOptions has no client")?;
        let (client_id, client_secret) = (first.client_id.clone(), first.client_secret.clone());
        let pkg = tokio::task::spawn_blocking(install::ensure_installed)
            .await
            .map_err(|e| format!("installing oidc-provider: {e}"))??;
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let script = dir.path().join("provider.mjs");
        std::fs::write(&script, LAUNCHER).map_err(|e| format!("writing the launcher: {e}"))?;
        let ready = dir.path().join("ready.json");
        let log = std::fs::File::create(dir.path().join("provider.log"))
            .map_err(|e| format!("creating the log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("node")
            .arg(&script)
            .env("OIDC_PROVIDER_DIR", &pkg)
            .env("OIDC_OPTIONS", opts.to_json().to_string())
            .env("OIDC_READY_FILE", &ready)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("running node (Node.js 20.19+ must be installed): {e}"))?;
        let mut p = Self {
            child,
            issuer: String::new(),
            client_id,
            client_secret,
            dir,
        };
        tokio::time::timeout(START_TIMEOUT, p.wait_ready(ready))
            .await
            .map_err(|_| {
                format!(
                    "oidc-provider did not answer within {START_TIMEOUT:?}; its output: {}",
                    p.log()
                )
            })??;
        Ok(p)
    }

    /// Waits for the ready file, then for the discovery document naming our issuer.
    async fn wait_ready(&mut self, ready: PathBuf) -> Result<(), String> {
        let port = loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("oidc-provider exited ({st}): {}", self.log()));
            }
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("ready file {text:?}: {e}"))?;
                break v["port"].as_u64().ok_or("ready file without a port")?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.issuer = format!("http://127.0.0.1:{port}");
        let doc = http_request("GET", &self.discovery_url(), &[], None).await?;
        let json = doc.json()?;
        if doc.status != 200 || json["issuer"] != self.issuer.as_str() {
            return Err(format!(
                "discovery answered HTTP {} {}, not issuer {}",
                doc.status, doc.body, self.issuer
            ));
        }
        Ok(())
    }

    /// The issuer, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn issuer(&self) -> String {
        self.issuer.clone()
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The first client's id.
    pub fn client_id(&self) -> String {
        self.client_id.clone()
    }

    /// The first client's secret.
    pub fn client_secret(&self) -> String {
        self.client_secret.clone()
    }

    /// What the provider printed so far (warnings, errors), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    /// Plays the browser: requests `authorize_url` (the provider's authorization endpoint
    /// with the relying party's parameters), follows the provider's redirects with a cookie
    /// jar, logs in the account `sub` at the interaction step, and returns the first redirect
    /// that leaves the provider, unrequested: the relying party's `redirect_uri` with `code`,
    /// `state` and `iss` (or `error` when the provider refused the request that way).
    ///
    /// # Errors
    /// When `authorize_url` is not this provider's, the provider answers something other than
    /// a redirect (its JSON error or the interaction's message, e.g. for an unknown `sub`), a
    /// request fails or times out (10 s each), or there are more than 10 redirects.
    pub async fn login(&self, authorize_url: &str, sub: &str) -> Result<String, String> {
        let issuer = Url::parse(&self.issuer).map_err(|e| e.to_string())?;
        let mut url = Url::parse(authorize_url)
            .map_err(|e| format!("authorization URL {authorize_url:?}: {e}"))?;
        if url.origin() != issuer.origin() {
            return Err(format!(
                "authorization URL {authorize_url} is not on this provider ({})",
                self.issuer
            ));
        }
        let mut jar = CookieJar::default();
        for _ in 0..MAX_REDIRECTS {
            if url.path().starts_with("/interaction/") {
                url.query_pairs_mut().append_pair("login", sub);
            }
            let cookie = jar.header();
            let headers: Vec<(&str, &str)> =
                cookie.iter().map(|c| ("cookie", c.as_str())).collect();
            let resp = http_request("GET", url.as_str(), &headers, None).await?;
            jar.store(&resp);
            let location = match (resp.status, resp.header("location")) {
                (300..=399, Some(l)) => l.to_owned(),
                _ => {
                    return Err(format!(
                        "GET {url}: HTTP {} instead of a redirect: {}",
                        resp.status, resp.body
                    ));
                }
            };
            match Url::parse(&location) {
                Ok(next) if next.origin() != issuer.origin() => return Ok(location),
                Ok(next) => url = next,
                Err(url::ParseError::RelativeUrlWithoutBase) => {
                    url = url
                        .join(&location)
                        .map_err(|e| format!("GET {url}: Location {location:?}: {e}"))?;
                }
                Err(e) => return Err(format!("GET {url}: Location {location:?}: {e}")),
            }
        }
        Err(format!(
            "no redirect to the relying party after {MAX_REDIRECTS} redirects (last: {url})"
        ))
    }
}
