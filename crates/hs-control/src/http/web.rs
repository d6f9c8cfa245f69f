//! The plain-HTTP endpoints every Headscale serves on its main listener, outside the Noise
//! tunnel: `/health`, `/version` and `/robots.txt`, plus the security headers added to every
//! response. Other features mount their routes next to these through
//! [`crate::Server::with_routes`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::version::VersionInfo;

/// A health check: `Ok` when the server can do its work (the database answers), else why not.
pub type HealthProbe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A probe that always passes, for a server with nothing to check yet.
pub fn always_healthy() -> HealthProbe {
    Arc::new(|| Box::pin(async { Ok(()) }))
}

#[derive(Clone)]
struct WebState {
    health: HealthProbe,
    version: Arc<VersionInfo>,
}

/// The body Go Headscale answers on `/health` (the IETF health-check draft's shape).
#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

/// `/health`, `/version` and `/robots.txt`.
pub(crate) fn base_routes(health: HealthProbe, version: VersionInfo) -> Router {
    let state = WebState {
        health,
        version: Arc::new(version),
    };
    Router::new()
        .route("/health", get(health_handler))
        .route("/version", get(version_handler))
        .route("/robots.txt", get(robots_handler))
        .with_state(state)
}

async fn health_handler(State(state): State<WebState>) -> Response {
    let (code, body) = match (state.health)().await {
        Ok(()) => (
            StatusCode::OK,
            HealthBody {
                status: "pass",
                output: None,
            },
        ),
        Err(why) => {
            tracing::warn!(reason = %why, "health check failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                HealthBody {
                    status: "fail",
                    output: Some(why),
                },
            )
        }
    };
    json_response(code, "application/health+json", &body)
}

async fn version_handler(State(state): State<WebState>) -> Response {
    json_response(StatusCode::OK, "application/json", &*state.version)
}

async fn robots_handler() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "User-agent: *\nDisallow: /",
    )
}

fn json_response<T: Serialize>(code: StatusCode, content_type: &'static str, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (code, [(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Headers every response carries unless its handler set them: no MIME sniffing, no framing
/// by other sites, no referrer leaking registration URLs.
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
