//! The browser's side of an OIDC login: `GET /register/{auth_id}` (to the provider),
//! `GET /oidc/callback` (back from it: verify, check, then the confirmation page) and
//! `POST /register/confirm/{auth_id}` (the user confirms; the node is registered). Cookies
//! bind each step to the browser that started it, as Go Headscale's do.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{Failure, Oidc, Profile, Purpose};
use crate::clock::now;
use crate::http::page::{escape, html};
use crate::state::ControlState;
use crate::state::pending::well_formed;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct OidcState {
    pub(crate) st: ControlState,
    pub(crate) oidc: Arc<Oidc>,
}

/// The CSRF cookie (and form field) of the confirmation step, Go's name.
const CONFIRM_COOKIE: &str = "headscale_register_confirm";
/// Cookie names carry this many characters of their value (Go's `getCookieName`), so two
/// logins in one browser do not overwrite each other's.
const COOKIE_PREFIX_LEN: usize = 6;
/// The confirmation form is tiny; anything larger is not ours.
const MAX_FORM: usize = 4 * 1024;

fn cookie_name(base: &str, value: &str) -> String {
    let n = value
        .char_indices()
        .nth(COOKIE_PREFIX_LEN)
        .map_or(value.len(), |(i, _)| i);
    format!("{base}_{}", &value[..n])
}

fn secure(st: &ControlState) -> &'static str {
    if st.config().server_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The page a failed step shows: the status, what it means for the user, and the reason.
fn failure_page(f: &Failure) -> Response {
    let meaning = match f.status.as_u16() {
        401 | 403 => "You are not authorized. Please contact your administrator.",
        410 => "Your session has expired. Please try again.",
        400..=499 => "The request could not be processed. Please try again.",
        _ => "Something went wrong. Please try again later.",
    };
    let title = f.status.canonical_reason().unwrap_or("Error");
    (
        f.status,
        Html(html(
            title,
            &format!(
                "<p class=\"bad\">{}</p>\n<p>Reason: {}.</p>",
                escape(meaning),
                escape(&f.reason)
            ),
        )),
    )
        .into_response()
}

/// `GET /register/{auth_id}` with OIDC: a pending registration sends the browser to the
/// provider; a decided or unknown one gets the same page as without OIDC.
pub(crate) async fn start(State(os): State<OidcState>, Path(auth_id): Path<String>) -> Response {
    if !well_formed(&auth_id) || !os.st.is_undecided(&auth_id) {
        return crate::http::interactive::page(State(os.st), Path(auth_id)).await;
    }
    redirect(&os, &auth_id, Purpose::Register)
}

/// `GET /auth/{auth_id}` with OIDC: a pending SSH check sends the browser to the provider;
/// the source node's owner approves it by logging in. Anything else gets the same page as
/// without OIDC.
pub(crate) async fn start_auth(
    State(os): State<OidcState>,
    Path(auth_id): Path<String>,
) -> Response {
    if !well_formed(&auth_id) || !os.st.is_ssh_check_pending(&auth_id) {
        return crate::http::interactive::auth_page(State(os.st), Path(auth_id)).await;
    }
    redirect(&os, &auth_id, Purpose::SshCheck)
}

/// The redirect to the provider, with the cookies that bind the login to this browser.
fn redirect(os: &OidcState, auth_id: &str, purpose: Purpose) -> Response {
    let (url, state, nonce) = os.oidc.begin(auth_id, purpose, now());
    let mut resp = (StatusCode::FOUND, [(header::LOCATION, url)]).into_response();
    let sec = secure(&os.st);
    for (base, value) in [("state", &state), ("nonce", &nonce)] {
        set_cookie(
            &mut resp,
            &format!(
                "{}={value}; Path=/oidc/callback; Max-Age=3600; HttpOnly; SameSite=Lax{sec}",
                cookie_name(base, value)
            ),
        );
    }
    resp
}

/// `GET /oidc/callback?code=…&state=…`.
pub(crate) async fn callback(
    State(os): State<OidcState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match finish(&os, &q, &headers).await {
        Ok(resp) => resp,
        Err(f) => failure_page(&f),
    }
}

async fn finish(
    os: &OidcState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, Failure> {
    let (code, state) = match (q.get("code"), q.get("state")) {
        (Some(c), Some(s)) if !c.is_empty() && !s.is_empty() => (c, s),
        _ => {
            if let Some(e) = q.get("error") {
                tracing::info!(error = %e, "the identity provider returned an error");
            }
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "missing code or state parameter",
            ));
        }
    };
    if state.len() < COOKIE_PREFIX_LEN {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid state parameter",
        ));
    }
    match cookie(headers, &cookie_name("state", state)) {
        None => return Err(Failure::new(StatusCode::BAD_REQUEST, "state not found")),
        Some(c) if c != *state => {
            return Err(Failure::new(StatusCode::FORBIDDEN, "state did not match"));
        }
        Some(_) => {}
    }
    let t = now();
    let done = os
        .oidc
        .finish(
            state,
            code,
            |nonce| cookie(headers, &cookie_name("nonce", nonce)),
            t,
        )
        .await?;
    let profile = Profile::of(&done.claims, os.oidc.email_verified_required());
    let user = os.st.oidc_login_user(profile).await.map_err(|e| {
        tracing::warn!(error = %e, "OIDC login: creating or updating the user failed");
        match e {
            crate::Error::Invalid(m) => Failure::new(StatusCode::BAD_REQUEST, m),
            _ => Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not create or update user",
            ),
        }
    })?;
    if done.purpose == Purpose::SshCheck {
        return approve_ssh_check(os, &done.auth_id, &user);
    }
    let Some(pending) = os
        .st
        .pending()
        .get(&done.auth_id)
        .filter(|_| os.st.is_undecided(&done.auth_id))
    else {
        return Err(Failure::new(
            StatusCode::GONE,
            "login session expired, try again",
        ));
    };
    let expiry = os
        .oidc
        .settings
        .use_expiry_from_token
        .then_some(done.token_expiry);
    let csrf = os.oidc.await_confirmation(&done.auth_id, &user, expiry, t);
    let req = &pending.req;
    let hostname = req
        .hostinfo
        .as_ref()
        .map(|h| h.hostname.clone())
        .unwrap_or_default();
    let os_name = req
        .hostinfo
        .as_ref()
        .map(|h| h.os.clone())
        .unwrap_or_default();
    let action = format!("/register/confirm/{}", done.auth_id);
    let body = format!(
        "<p>Add this machine to the network as <strong>{user}</strong>?</p>\n\
         <table>\n<tr><th>Machine</th><td>{host}</td></tr>\n<tr><th>OS</th><td>{os}</td></tr>\n\
         <tr><th>Machine key</th><td><code>{mkey}</code></td></tr>\n</table>\n\
         <p>Only confirm if you just ran <code>tailscale up</code> (or logged in) on this machine \
         yourself.</p>\n\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"{CONFIRM_COOKIE}\" value=\"{csrf}\">\
         <button type=\"submit\">Add this machine</button></form>",
        user = escape(user.display()),
        host = escape(&hostname),
        os = escape(&os_name),
        mkey = escape(&pending.machine.short_string()),
        action = escape(&action),
        csrf = escape(&csrf),
    );
    let mut resp = Html(html("Confirm the machine", &body)).into_response();
    set_cookie(
        &mut resp,
        &format!(
            "{CONFIRM_COOKIE}={csrf}; Path={action}; Max-Age=900; HttpOnly; SameSite=Strict{}",
            secure(&os.st)
        ),
    );
    Ok(resp)
}

/// An SSH check approved by the source node's owner (Go's rules: a tagged source, or one
/// without an owner, cannot use check mode; another user is refused).
fn approve_ssh_check(
    os: &OidcState,
    auth_id: &str,
    user: &hs_types::model::User,
) -> Result<Response, Failure> {
    let Some(check) = os
        .st
        .ssh_check(auth_id)
        .filter(|c| c.verdict.borrow().is_none())
    else {
        return Err(Failure::new(
            StatusCode::GONE,
            "login session expired, try again",
        ));
    };
    let snap = os.st.store().load();
    let Some(src) = snap.node(check.src) else {
        return Err(Failure::new(StatusCode::GONE, "src node no longer exists"));
    };
    if !src.node.tags.is_empty() || src.node.user_id.is_none() {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "src node has no user owner",
        ));
    }
    if src.node.user_id != Some(user.id) {
        tracing::warn!(
            src = check.src.get(),
            user = user.id.get(),
            "SSH check refused: the OIDC user does not own the source node"
        );
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "OIDC user is not the owner of the SSH source node",
        ));
    }
    os.st
        .decide_ssh_check(auth_id, true)
        .map_err(|_| Failure::new(StatusCode::GONE, "login session expired, try again"))?;
    Ok(Html(html(
        "SSH session authorized",
        &format!(
            "<p class=\"ok\">Authorized as <strong>{}</strong>.</p>\n<p>You may return to your terminal.</p>",
            escape(user.display())
        ),
    ))
    .into_response())
}

/// `POST /register/confirm/{auth_id}`: the form of the confirmation page.
pub(crate) async fn confirm(
    State(os): State<OidcState>,
    Path(auth_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match register(&os, &auth_id, &headers, &body).await {
        Ok(resp) => resp,
        Err(f) => failure_page(&f),
    }
}

async fn register(
    os: &OidcState,
    auth_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Failure> {
    if !well_formed(auth_id) {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "invalid auth ID"));
    }
    if body.len() > MAX_FORM {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "invalid form"));
    }
    let form = form_value(body, CONFIRM_COOKIE)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Failure::new(StatusCode::BAD_REQUEST, "missing csrf token"))?;
    let cookie = cookie(headers, CONFIRM_COOKIE)
        .ok_or_else(|| Failure::new(StatusCode::FORBIDDEN, "missing csrf cookie"))?;
    if cookie != form {
        return Err(Failure::new(StatusCode::FORBIDDEN, "csrf token mismatch"));
    }
    let c = os.oidc.take_confirmation(auth_id, &cookie, now())?;
    let node = os
        .st
        .approve_oidc_registration(auth_id, c.user, c.expiry)
        .await
        .map_err(|e| match e {
            crate::Error::NotFound(_) => {
                Failure::new(StatusCode::GONE, "registration session expired")
            }
            e => {
                tracing::error!(error = %e, "OIDC registration failed");
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "registering the node failed",
                )
            }
        })?;
    let mut resp = Html(html(
        "Machine registered",
        &format!(
            "<p class=\"ok\">{} has been added to the network as <strong>{}</strong>.</p>\n\
             <p>You can close this window; Tailscale on the machine connects by itself.</p>",
            escape(&node.given_name),
            escape(&c.user_display)
        ),
    ))
    .into_response();
    set_cookie(
        &mut resp,
        &format!(
            "{CONFIRM_COOKIE}=; Path=/register/confirm/{auth_id}; Max-Age=0; HttpOnly; SameSite=Strict{}",
            secure(&os.st)
        ),
    );
    Ok(resp)
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| decode(k).as_deref() == Some(name))
        .and_then(|(_, v)| decode(v))
}

/// Percent-decoding with `+` as space.
fn decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_carry_six_characters_of_their_value() {
        assert_eq!(cookie_name("state", "abcdefghij"), "state_abcdef");
        assert_eq!(cookie_name("nonce", "abc"), "nonce_abc");
    }

    #[test]
    fn form_values_are_percent_decoded() {
        assert_eq!(
            form_value(b"a=1&headscale_register_confirm=x%2By+z", CONFIRM_COOKIE).as_deref(),
            Some("x+y z")
        );
        assert_eq!(form_value(b"a=1", CONFIRM_COOKIE), None);
        assert_eq!(
            form_value(b"headscale_register_confirm=%zz", CONFIRM_COOKIE),
            None
        );
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; state_abcdef=abcdefgh"),
        );
        assert_eq!(cookie(&h, "state_abcdef").as_deref(), Some("abcdefgh"));
        assert_eq!(cookie(&h, "nonce_abcdef"), None);
    }
}
