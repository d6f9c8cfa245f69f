//! Bearer API-key authentication for the TCP listeners. The unix socket skips it: whoever
//! can open the socket is trusted, as with Go Headscale.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::service::Admin;

/// Middleware: lets the request through when it carries `Authorization: Bearer <valid key>`,
/// otherwise answers 401 (plain `Unauthorized`, as Go does, or `UNAUTHENTICATED` for gRPC calls).
pub async fn require_api_key(State(admin): State<Admin>, req: Request, next: Next) -> Response {
    let is_grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let result = match token {
        None | Some("") => Err(ApiError::Unauthorized(
            "missing API key: send Authorization: Bearer <key>".to_owned(),
        )),
        Some(t) => admin.authenticate(t).await.map(|_| ()),
    };
    match result {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::debug!(error = %e, "refused admin API request");
            if is_grpc {
                tonic::Status::from(e)
                    .into_http::<axum::body::Body>()
                    .into_response()
            } else {
                e.into_response()
            }
        }
    }
}
