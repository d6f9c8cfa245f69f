//! The HTTP-01 challenge listener (`tls_letsencrypt_listen`, port 80 by default): it answers
//! `/.well-known/acme-challenge/<token>` with the key authorization while an order is
//! pending and redirects every other request to `server_url`, as Go Headscale does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::Error;

/// Pending HTTP-01 tokens and their key authorizations.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Arc<Mutex<HashMap<String, String>>>);

impl Tokens {
    /// Answers `token` with `key_authorization` until [`Tokens::remove`].
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Go's listen syntax: an empty host is every interface, and the port may be a service name.
pub fn listen_target(addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
    let port = match port {
        "http" => "80",
        "https" => "443",
        p => p,
    };
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    format!("{host}:{port}")
}

#[derive(Clone)]
struct Ctx {
    tokens: Tokens,
    server_url: String,
}

/// Binds `listen` and serves the challenges until `stop` turns true.
pub async fn serve(
    listen: &str,
    server_url: &str,
    tokens: Tokens,
    mut stop: watch::Receiver<bool>,
) -> Result<SocketAddr, Error> {
    let bind_err = |source| Error::Bind {
        addr: listen.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen_target(listen))
        .await
        .map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let ctx = Ctx {
        tokens,
        server_url: server_url.trim_end_matches('/').to_owned(),
    };
    let app = Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(challenge),
        )
        .fallback(redirect)
        .with_state(ctx);
    tracing::info!(%addr, "listening for ACME HTTP-01 challenges");
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the ACME HTTP-01 listener stopped");
        }
    });
    Ok(addr)
}

async fn challenge(State(ctx): State<Ctx>, Path(token): Path<String>) -> Response {
    match ctx.tokens.get(&token) {
        Some(ka) => ([(header::CONTENT_TYPE, "text/plain")], ka).into_response(),
        None => (StatusCode::NOT_FOUND, "no such ACME challenge\n").into_response(),
    }
}

async fn redirect(State(ctx): State<Ctx>, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!("{}{path}", ctx.server_url);
    (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_listen_syntax() {
        assert_eq!(listen_target(":http"), "0.0.0.0:80");
        assert_eq!(listen_target(":https"), "0.0.0.0:443");
        assert_eq!(listen_target("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(listen_target("[::1]:80"), "[::1]:80");
    }
}
