//! The OpenID provider and the browser of the OIDC scenarios. `hs-integration oidc` runs
//! inside the scenario's namespace (so everything it touches is that namespace's loopback): it
//! starts oidc-provider through `hs_testkit::oidc` (the provider the in-process OIDC tests
//! use), prints its issuer, then plays the user's browser for each URL the harness sends it on
//! standard input: the server's `/register/<id>` or `/auth/<id>` page, the redirect to the
//! provider, the provider's login (the account the harness names), the redirect back to
//! `/oidc/callback` and, for a registration, the confirmation form. Cookies are kept per path,
//! as a browser keeps them, so a cookie the server scopes wrongly is not sent.
//!
//! The harness side is [`OidcProvider`]: it installs the npm package on the host first (the
//! namespace cannot reach the registry), starts the subcommand in the namespace and talks to it
//! one JSON line per request and answer.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hs_testkit::oidc::{Account, Client, HttpResponse, Provider, ProviderOptions, http_request};
use serde_json::{Value, json};

use crate::netns::Netns;

/// The environment variable carrying the subcommand's options (JSON).
const OPTIONS_ENV: &str = "HSIT_OIDC_OPTIONS";
/// The OAuth client the server is configured with.
const CLIENT_ID: &str = "headscale";
/// Its secret (a test value; the server reads it from a file, as Go's tests do).
const CLIENT_SECRET: &str = "hsit-oidc-client-secret";
/// From spawning the subcommand to its issuer line (the provider starts in about a second).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// One browser visit: a handful of loopback requests, each bounded at 10 s by hs-testkit.
const VISIT_TIMEOUT: Duration = Duration::from_secs(60);

/// An account for the provider, as Go's `oidcMockUser` makes them: subject and preferred
/// username `name`, email `<name>@headscale.net`, verified or not.
pub(crate) fn mock_user(name: &str, email_verified: bool) -> Account {
    Account {
        sub: name.to_owned(),
        email: Some(format!("{name}@headscale.net")),
        email_verified: Some(email_verified),
        preferred_username: Some(name.to_owned()),
        ..Account::default()
    }
}

/// How the provider is run beyond its accounts (defaults: hour-long ID tokens, PKCE optional).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderTuning {
    /// The ID token lifetime, when not the default hour.
    pub(crate) id_token_ttl: Option<Duration>,
    /// Refuse authorization requests without a PKCE `code_challenge`.
    pub(crate) pkce_required: bool,
}

/// What one browser visit ended with.
#[derive(Debug, Clone)]
pub(crate) struct Visit {
    /// The last step (`start`, `provider`, `callback`, `confirm`).
    pub(crate) step: String,
    /// Its HTTP status (0 when the step failed before an answer).
    pub(crate) status: u16,
    /// Its body (HTML page) or the error.
    pub(crate) body: String,
}

impl std::fmt::Display for Visit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = page_text(&self.body);
        write!(f, "{} answered HTTP {}: {text}", self.step, self.status)
    }
}

/// The visible text of a page, for messages: tags dropped, whitespace collapsed, the
/// stylesheet left out.
fn page_text(html: &str) -> String {
    let body = html.split_once("<body").map_or(html, |(_, b)| b);
    let mut out = String::new();
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    let text = words.join(" ");
    match text.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// The provider and browser running in a scenario's namespace; stopped on drop.
pub(crate) struct OidcProvider {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    issuer: String,
    log: PathBuf,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Installs oidc-provider if needed (on the host, which can reach npm), then starts the
    /// provider in `ns` with `accounts` and one client whose redirect URI is
    /// `<server_url>/oidc/callback`. Logs go to `<dir>/oidc.{stderr,provider.log}`.
    pub(crate) fn start(
        self_bin: &Path,
        ns: &Netns,
        dir: &Path,
        server_url: &str,
        accounts: &[Account],
    ) -> anyhow::Result<Self> {
        Self::start_with(
            self_bin,
            ns,
            dir,
            server_url,
            accounts,
            &ProviderTuning::default(),
        )
    }

    /// [`OidcProvider::start`] with the provider tuned: ID token lifetime, PKCE required.
    pub(crate) fn start_with(
        self_bin: &Path,
        ns: &Netns,
        dir: &Path,
        server_url: &str,
        accounts: &[Account],
        tuning: &ProviderTuning,
    ) -> anyhow::Result<Self> {
        hs_testkit::oidc::install()
            .map_err(anyhow::Error::msg)
            .context("installing oidc-provider (npm)")?;
        let provider_log = dir.join("oidc.provider.log");
        let accounts: Vec<Value> = accounts
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
        let opts = json!({
            "redirect_uri": format!("{}/oidc/callback", server_url.trim_end_matches('/')),
            "accounts": accounts,
            "provider_log": provider_log,
            "id_token_ttl": tuning.id_token_ttl.map(|d| d.as_secs()),
            "pkce_required": tuning.pkce_required,
        });
        let stderr_path = dir.join("oidc.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .with_context(|| format!("creating {}", stderr_path.display()))?;
        let mut cmd = ns.command(&self_bin.display().to_string());
        cmd.arg("oidc")
            .env(OPTIONS_ENV, opts.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd
            .spawn()
            .context("starting `hs-integration oidc` in the namespace")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Self {
            child,
            stdin,
            lines,
            issuer: String::new(),
            log: stderr_path,
        };
        let first = p
            .answer(START_TIMEOUT)
            .context("the OIDC provider did not start")?;
        p.issuer = first["issuer"]
            .as_str()
            .with_context(|| format!("no issuer in the provider's first line: {first}"))?
            .to_owned();
        Ok(p)
    }

    /// The issuer, `http://127.0.0.1:<port>` in the namespace.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The server environment that configures OIDC against this provider the way Go's
    /// integration tests do: issuer and client id, and the secret in a file named through
    /// `${CREDENTIALS_DIRECTORY_TEST}` (the server expands it). The file is written to `dir`.
    pub(crate) fn server_env(&self, dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
        let secret = dir.join("hs_client_oidc_secret");
        std::fs::write(&secret, CLIENT_SECRET).context("writing the OIDC client secret")?;
        Ok(vec![
            ("HEADSCALE_OIDC_ISSUER".to_owned(), self.issuer.clone()),
            ("HEADSCALE_OIDC_CLIENT_ID".to_owned(), CLIENT_ID.to_owned()),
            (
                "CREDENTIALS_DIRECTORY_TEST".to_owned(),
                dir.display().to_string(),
            ),
            (
                "HEADSCALE_OIDC_CLIENT_SECRET_PATH".to_owned(),
                "${CREDENTIALS_DIRECTORY_TEST}/hs_client_oidc_secret".to_owned(),
            ),
        ])
    }

    /// Plays the browser from `url` (the server's `/register/<id>` or `/auth/<id>`) through
    /// the provider's login as `sub` back to the server, confirming a registration; what the
    /// last step answered.
    pub(crate) fn visit(&mut self, url: &str, sub: &str) -> anyhow::Result<Visit> {
        self.visit_in(url, sub, "", false)
    }

    /// [`OidcProvider::visit`] in the browser session `jar` (its cookies kept across visits;
    /// `""` is a fresh session each time). With `stop_at_provider` the visit ends at the
    /// server's redirect to the provider: step `redirect`, the provider URL as the body. A
    /// provider URL as `url` continues such a visit: the login, callback and confirmation.
    pub(crate) fn visit_in(
        &mut self,
        url: &str,
        sub: &str,
        jar: &str,
        stop_at_provider: bool,
    ) -> anyhow::Result<Visit> {
        let req = json!({"url": url, "sub": sub, "jar": jar, "stop": stop_at_provider});
        let stdin = self.stdin.as_mut().context("the provider was stopped")?;
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .context("sending a visit to `hs-integration oidc`")?;
        let a = self
            .answer(VISIT_TIMEOUT)
            .with_context(|| format!("visiting {url} as {sub}"))?;
        Ok(Visit {
            step: a["step"].as_str().unwrap_or_default().to_owned(),
            status: a["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0),
            body: a["body"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// The next JSON line from the subcommand.
    fn answer(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line)
                .with_context(|| format!("`hs-integration oidc` answered {line:?}")),
            Err(RecvTimeoutError::Timeout) => bail!(
                "no answer from `hs-integration oidc` within {timeout:?}; its stderr: {}",
                crate::server::tail(&self.log, 20)
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let st = self.child.try_wait().ok().flatten();
                bail!(
                    "`hs-integration oidc` exited ({st:?}); its stderr: {}",
                    crate::server::tail(&self.log, 20)
                )
            }
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // End of input stops the subcommand, which stops the provider and saves its log.
        drop(self.stdin.take());
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hs-integration oidc`: the subcommand (inside the namespace).
pub(crate) fn serve() -> anyhow::Result<()> {
    let opts: Value = serde_json::from_str(
        &std::env::var(OPTIONS_ENV).with_context(|| format!("{OPTIONS_ENV} is not set"))?,
    )
    .with_context(|| format!("{OPTIONS_ENV} is not JSON"))?;
    let redirect = opts["redirect_uri"]
        .as_str()
        .context("no redirect_uri")?
        .to_owned();
    let mut po = ProviderOptions::new(Client::new(CLIENT_ID, CLIENT_SECRET, &redirect));
    po.accounts = opts["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(account_of)
        .collect();
    if let Some(ttl) = opts["id_token_ttl"].as_u64() {
        po.id_token_ttl = Duration::from_secs(ttl);
    }
    po.pkce_required = opts["pkce_required"].as_bool().unwrap_or(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    let provider = rt
        .block_on(Provider::try_start(po))
        .map_err(anyhow::Error::msg)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", json!({"issuer": provider.issuer()}))?;
    out.flush()?;
    let server = url::Url::parse(&redirect).context("redirect_uri is not a URL")?;
    let mut jars: std::collections::HashMap<String, Jar> = std::collections::HashMap::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading a request")?;
        let req: Value = serde_json::from_str(&line).context("a request that is not JSON")?;
        let (url, sub) = (
            req["url"].as_str().unwrap_or_default(),
            req["sub"].as_str().unwrap_or_default(),
        );
        let session = req["jar"].as_str().unwrap_or_default();
        let mut fresh = Jar::default();
        let jar = if session.is_empty() {
            &mut fresh
        } else {
            jars.entry(session.to_owned()).or_default()
        };
        let stop = req["stop"].as_bool().unwrap_or(false);
        let v = rt.block_on(visit(&provider, jar, &server, url, sub, stop));
        eprintln!(
            "hs-integration oidc: {url} as {sub}: {} HTTP {}",
            v.step, v.status
        );
        writeln!(
            out,
            "{}",
            json!({"step": v.step, "status": v.status, "body": v.body})
        )?;
        out.flush()?;
    }
    if let Some(p) = opts["provider_log"].as_str() {
        let _ = std::fs::write(p, provider.log());
    }
    Ok(())
}

fn account_of(v: &Value) -> Account {
    let s = |k: &str| v[k].as_str().map(str::to_owned);
    Account {
        sub: s("sub").unwrap_or_default(),
        email: s("email"),
        email_verified: v["email_verified"].as_bool(),
        name: s("name"),
        preferred_username: s("preferred_username"),
        picture: s("picture"),
        groups: v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect(),
    }
}

/// A cookie as a browser keeps it: name, value and the path it is sent to.
#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    path: String,
}

/// The browser's cookie jar for the server (the provider keeps its own in hs-testkit).
#[derive(Debug, Default)]
struct Jar {
    cookies: Vec<Cookie>,
}

impl Jar {
    fn store(&mut self, r: &HttpResponse, request_path: &str) {
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            // RFC 6265's default path: the request path up to its last '/'.
            let mut path = match request_path.rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => request_path[..i].to_owned(),
            };
            let mut expired = value.is_empty();
            for attr in parts {
                let (k, v) = attr.trim().split_once('=').unwrap_or((attr.trim(), ""));
                if k.eq_ignore_ascii_case("path") && v.starts_with('/') {
                    path = v.to_owned();
                } else if k.eq_ignore_ascii_case("max-age") && v.trim() == "0" {
                    expired = true;
                }
            }
            self.cookies.retain(|c| !(c.name == name && c.path == path));
            if !expired {
                self.cookies.push(Cookie {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    path,
                });
            }
        }
    }

    /// The `Cookie` header for a request to `path` (RFC 6265 path matching).
    fn header_for(&self, path: &str) -> String {
        self.cookies
            .iter()
            .filter(|c| path_matches(path, &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, method: &str, url: &str, form: Option<&str>) -> HttpResponse {
        let path = url::Url::parse(url).map_or_else(|_| "/".to_owned(), |u| u.path().to_owned());
        let cookie = self.header_for(&path);
        let mut headers = Vec::new();
        if !cookie.is_empty() {
            headers.push(("Cookie", cookie.as_str()));
        }
        if form.is_some() {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        match http_request(method, url, &headers, form).await {
            Ok(r) => {
                self.store(&r, &path);
                r
            }
            Err(e) => HttpResponse {
                status: 0,
                headers: Vec::new(),
                body: e,
            },
        }
    }
}

fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

/// One browser visit (see the module docs).
async fn visit(
    p: &Provider,
    jar: &mut Jar,
    server: &url::Url,
    url: &str,
    sub: &str,
    stop_at_provider: bool,
) -> Visit {
    let done = |step: &str, r: &HttpResponse| Visit {
        step: step.to_owned(),
        status: r.status,
        body: r.body.clone(),
    };
    let fail = |step: &str, e: String| Visit {
        step: step.to_owned(),
        status: 0,
        body: e,
    };
    let Ok(start) = url::Url::parse(url) else {
        return fail("start", format!("not a URL: {url:?}"));
    };
    let to = if url.starts_with(&p.issuer()) {
        url.to_owned()
    } else {
        let r = jar.send("GET", url, None).await;
        match (r.status, r.header("location")) {
            (302 | 303, Some(l)) if l.starts_with(&p.issuer()) => {
                if stop_at_provider {
                    return Visit {
                        step: "redirect".to_owned(),
                        status: r.status,
                        body: l.to_owned(),
                    };
                }
                l.to_owned()
            }
            _ => return done("start", &r),
        }
    };
    let start = if url.starts_with(&p.issuer()) {
        server.clone()
    } else {
        start
    };
    let back = match p.login(&to, sub).await {
        Ok(b) => b,
        Err(e) => return fail("provider", e),
    };
    match url::Url::parse(&back) {
        Ok(b) if b.origin() == start.origin() && b.path() == "/oidc/callback" => {}
        _ => {
            return fail(
                "provider",
                format!("the provider sent the browser to {back}, not the server's callback"),
            );
        }
    }
    let page = jar.send("GET", &back, None).await;
    let Some((action, csrf)) = confirm_form(&page.body) else {
        return done("callback", &page);
    };
    let Ok(target) = start.join(&action) else {
        return fail("callback", format!("form action {action:?}"));
    };
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("headscale_register_confirm", &csrf)
        .finish();
    let r = jar.send("POST", target.as_str(), Some(&form)).await;
    done("confirm", &r)
}

/// The confirmation page's form: its action and CSRF value, when the page has one.
fn confirm_form(page: &str) -> Option<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let at = tag.find(&key)? + key.len();
        let v = &tag[at..];
        Some(v[..v.find('"')?].replace("&amp;", "&"))
    };
    let form_at = page.find("<form")?;
    let form_tag = &page[form_at..form_at + page[form_at..].find('>')?];
    let action = attr(form_tag, "action")?;
    let input_at = page.find("name=\"headscale_register_confirm\"")?;
    let tag_start = page[..input_at].rfind('<')?;
    let tag = &page[tag_start..input_at + page[input_at..].find('>')?];
    Some((action, attr(tag, "value")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_sent_only_to_their_path() {
        let mut jar = Jar::default();
        let r = HttpResponse {
            status: 302,
            headers: vec![
                (
                    "set-cookie".into(),
                    "state_abcdef=abcdefgh; Path=/oidc/callback; HttpOnly".into(),
                ),
                ("set-cookie".into(), "other=1".into()),
            ],
            body: String::new(),
        };
        jar.store(&r, "/register/xyz");
        assert_eq!(jar.header_for("/oidc/callback"), "state_abcdef=abcdefgh");
        // Without a Path attribute: the request's directory.
        assert_eq!(jar.header_for("/register/xyz"), "other=1");
        assert_eq!(jar.header_for("/oidc/callbackx"), "");
        let gone = HttpResponse {
            status: 200,
            headers: vec![(
                "set-cookie".into(),
                "state_abcdef=; Path=/oidc/callback; Max-Age=0".into(),
            )],
            body: String::new(),
        };
        jar.store(&gone, "/oidc/callback");
        assert_eq!(jar.header_for("/oidc/callback"), "");
    }

    #[test]
    fn the_confirmation_form_is_found() {
        let page = "<p>x</p><form method=\"post\" action=\"/register/confirm/AbC\">\
                    <input type=\"hidden\" name=\"headscale_register_confirm\" value=\"tok-1\">\
                    <button>Add</button></form>";
        assert_eq!(
            confirm_form(page),
            Some(("/register/confirm/AbC".to_owned(), "tok-1".to_owned()))
        );
        assert_eq!(confirm_form("<p>Authorized</p>"), None);
    }

    #[test]
    fn page_text_drops_markup() {
        let t = page_text(
            "<html><head><style>p{}</style></head><body><p class=\"bad\">No.</p>\n<p>Reason: x.</p></body></html>",
        );
        assert_eq!(t, "No. Reason: x.");
    }
}
