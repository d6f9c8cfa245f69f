//! `/api/v2`: the part of Tailscale's public API that Headscale has an equivalent for, so
//! tools written for Tailscale (its Go API client, the Terraform provider, the Kubernetes
//! operator) can manage this server.
//!
//! Callers authenticate with an admin API key (every scope) or with an OAuth access token
//! from `POST /api/v2/oauth/token` (client credentials; [`oauth`]), whose scopes and tags
//! limit what it may do ([`scope`]). Every change goes through the same [`Admin`] operations
//! as `/api/v1` and the CLI, so connected clients see it at once. Errors are Tailscale's
//! shape, `{"message": "..."}` with the HTTP status.

mod auth;
pub(crate) mod clients;
mod devices;
mod dns;
mod docs;
mod input;
mod keys;
pub mod oauth;
mod policy;
pub mod scope;
mod settings;
mod users;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::error::ApiError;
use crate::service::Admin;
pub use oauth::{OAuthClient, OAuthStore, StoredDns};
pub use scope::{Area, Grant, Scope};

/// What the `/api/v2` handlers share.
#[derive(Debug, Clone)]
pub struct V2 {
    admin: Admin,
    oauth: OAuthStore,
}

impl V2 {
    /// The v2 API over `admin`, with the OAuth clients and DNS edits of its store.
    pub fn new(admin: Admin) -> Self {
        let oauth = admin.oauth().clone();
        Self { admin, oauth }
    }

    /// Puts the stored DNS edits in force: once at start, before clients connect.
    pub async fn apply_stored_dns(&self) -> Result<(), hs_control::Error> {
        let stored = self.oauth.dns();
        if stored == StoredDns::default() {
            return Ok(());
        }
        tracing::info!(
            path = ?self.oauth.path(),
            "DNS settings edited through /api/v2 are laid over the config file's dns section"
        );
        self.admin
            .control()
            .set_dns_overrides(dns::to_overrides(&stored))
            .await
    }
}

/// An `/api/v2` failure: Tailscale's `{"message"}` body with the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Error {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong, for the caller.
    pub message: String,
}

impl V2Error {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

impl From<ApiError> for V2Error {
    fn from(e: ApiError) -> Self {
        Self::new(e.status(), e.to_string())
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "message": self.message }))).into_response()
    }
}

/// The result of a v2 handler.
pub type V2Result = Result<Response, V2Error>;

/// Refuses the request unless `grant` carries `scope`.
pub fn require(grant: &Grant, scope: Scope) -> Result<(), V2Error> {
    if grant.allows(scope) {
        Ok(())
    } else {
        Err(V2Error::forbidden(format!(
            "this access token does not have the {scope} scope"
        )))
    }
}

/// Decodes a JSON request body, naming where it is malformed.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, V2Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        V2Error::bad_request(format!(
            "invalid request body at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// The `/api/v2` routes: the token endpoint, and everything else behind [`auth`].
pub fn router(v2: V2) -> Router {
    let api = Router::new()
        .merge(devices::routes())
        .merge(keys::routes())
        .merge(policy::routes())
        .merge(dns::routes())
        .merge(users::routes())
        .merge(settings::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            v2.clone(),
            auth::require_grant,
        ));
    Router::new()
        .route("/api/v2/oauth/token", post(auth::token))
        .merge(api)
        .with_state(v2)
        .merge(docs::docs_router())
}
