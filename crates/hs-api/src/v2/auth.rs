//! Who is calling `/api/v2`: the middleware that turns an admin API key or an OAuth access
//! token into a [`Grant`], and the OAuth 2.0 client-credentials token endpoint.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::oauth::{ACCESS_TOKEN_PREFIX, TOKEN_LIFETIME_SECS};
use super::{Grant, V2, V2Error};

/// What the `Authorization` header carries: a bearer token, or the user name of HTTP Basic
/// (Tailscale's Go client sends its API key that way).
fn presented(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(t) = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
    {
        return Some(t.trim().to_owned());
    }
    let b = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.as_str(), |(u, _)| u)
            .to_owned(),
    )
}

fn unauthorized(message: impl Into<String>) -> Response {
    V2Error::new(StatusCode::UNAUTHORIZED, message).into_response()
}

/// Middleware: resolves the caller's [`Grant`] and hands it to the handler as an extension;
/// 401 without valid credentials.
pub(super) async fn require_grant(State(v2): State<V2>, mut req: Request, next: Next) -> Response {
    let Some(token) = presented(req.headers()).filter(|t| !t.is_empty()) else {
        return unauthorized(
            "missing credentials: send Authorization: Bearer <API key or OAuth access token>",
        );
    };
    let grant = if token.starts_with(ACCESS_TOKEN_PREFIX) {
        v2.oauth.verify_token(&token, v2.admin.now())
    } else {
        v2.admin.authenticate(&token).await.map(|_| Grant::Admin)
    };
    match grant {
        Ok(g) => {
            req.extensions_mut().insert(g);
            next.run(req).await
        }
        Err(e) => {
            tracing::debug!(error = %e, "refused /api/v2 request");
            unauthorized(e.to_string())
        }
    }
}

/// The client credentials of a token request: HTTP Basic (RFC 6749 §2.3.1, form-encoded
/// inside) or the `client_id` / `client_secret` form fields.
fn credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(b) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim())
        && let Ok(text) = String::from_utf8(raw)
        && let Some((id, secret)) = text.split_once(':')
    {
        let dec = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Some((dec(id), dec(secret)));
    }
    Some((field("client_id")?, field("client_secret")?))
}

/// OAuth 2.0 token error (RFC 6749 §5.2), which OAuth client libraries read.
fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(
            json!({ "error": code, "error_description": description, "message": description }),
        ),
    )
        .into_response()
}

/// `POST /api/v2/oauth/token`: client credentials in, a one-hour access token out.
pub(super) async fn token(State(v2): State<V2>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other:?} is not supported: use client_credentials"),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing grant_type (form field; use client_credentials)",
            );
        }
    }
    let Some((id, secret)) = credentials(&headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "missing client credentials: HTTP Basic or client_id and client_secret",
        );
    };
    let requested: Vec<String> = field("scope")
        .unwrap_or("")
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let now = v2.admin.now();
    let store = v2.oauth.clone();
    let issued =
        tokio::task::spawn_blocking(move || store.issue_token(&id, &secret, &requested, now))
            .await
            .map_err(|e| crate::error::ApiError::Internal(e.to_string()))
            .and_then(|r| r);
    match issued {
        Ok((token, scopes)) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECS,
                "scope": scopes.join(" "),
            })),
        )
            .into_response(),
        Err(crate::error::ApiError::Unauthorized(m)) => {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &m)
        }
        Err(crate::error::ApiError::BadRequest(m)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &m)
        }
        Err(e) => V2Error::from(e).into_response(),
    }
}
