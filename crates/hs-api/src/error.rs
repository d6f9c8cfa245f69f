//! The crate's errors and their one mapping to the wire: grpc-gateway's
//! `{"code","message","details"}` JSON for REST (as Go Headscale 0.29.3 answers) and a
//! `tonic::Status` for gRPC, with the same code. Only this file decides status codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Why an admin operation was refused or failed. Messages name what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or breaks a rule (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid API key was presented (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The thing the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this HTTP method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with existing state (409).
    #[error("{0}")]
    Conflict(String),
    /// Something failed on our side (500); details are logged, not returned.
    #[error("{0}")]
    Internal(String),
    /// The database cannot be reached (503, gRPC `UNAVAILABLE`): the operator learns the
    /// cause and that a retry can succeed; connection details stay in the log.
    #[error("{0}")]
    Unavailable(String),
}

/// What an operator is told when the database cannot take writes: why, and what it means.
fn unavailable(context: &str, why: &str) -> ApiError {
    ApiError::Unavailable(format!(
        "{context}: {why}; nothing was changed, retry once it is resolved (details in the server log)"
    ))
}

impl ApiError {
    /// A 400 with `msg`.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    /// A 404 with `msg`.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Wraps a store error with `context` ("creating user", ...). Backend details are logged
    /// here and replaced by a generic message so database internals do not leak.
    pub fn from_store(context: &str, e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(format!("{context}: not found: {m}")),
            StoreError::Conflict(m) => Self::Conflict(format!("{context}: already exists: {m}")),
            StoreError::Invalid(m) => Self::BadRequest(format!("{context}: {m}")),
            StoreError::Backend(m) => {
                tracing::error!(error = %m, "{context}");
                Self::Internal(format!("{context}: internal database error"))
            }
            StoreError::Unavailable(why, m) => {
                tracing::error!(error = %m, "{context}");
                unavailable(context, why)
            }
        }
    }
}

impl ApiError {
    /// Maps a control-plane command's failure; `context` says what was being done.
    pub fn from_control(context: &str, e: hs_control::Error) -> Self {
        use hs_control::Error as C;
        match e {
            C::NotFound(m) | C::Db(hs_db::Error::NotFound(m)) => Self::NotFound(m),
            C::Conflict(m) | C::Db(hs_db::Error::Conflict(m)) => Self::Conflict(m),
            C::Invalid(m) | C::Config(m) => Self::BadRequest(format!("{context}: {m}")),
            C::NodeStore(e) => Self::BadRequest(format!("{context}: {e}")),
            C::Db(e) if e.unavailable_reason().is_some() => {
                tracing::error!(error = %e, "{context}");
                unavailable(context, e.unavailable_reason().unwrap_or_default())
            }
            other => {
                tracing::error!(error = %other, "{context}");
                Self::Internal(format!("{context}: internal error"))
            }
        }
    }
}

/// The body grpc-gateway answers errors with in Go Headscale 0.29.3: the gRPC code's number,
/// the message, and an empty details list.
#[derive(Serialize)]
struct GatewayError<'a> {
    code: i32,
    message: &'a str,
    details: [(); 0],
}

impl ApiError {
    /// The gRPC code this error carries on both surfaces.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Self::BadRequest(_) => tonic::Code::InvalidArgument,
            Self::Unauthorized(_) => tonic::Code::Unauthenticated,
            Self::NotFound(_) => tonic::Code::NotFound,
            Self::MethodNotAllowed(_) => tonic::Code::Unimplemented,
            Self::Conflict(_) => tonic::Code::AlreadyExists,
            Self::Internal(_) => tonic::Code::Internal,
            Self::Unavailable(_) => tonic::Code::Unavailable,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::UNAUTHORIZED {
            // Go's API-key check answers before grpc-gateway, in plain text; the reason
            // stays in our log, not in the answer.
            tracing::debug!(reason = %self, "admin API request refused");
            let mut resp = (status, "Unauthorized").into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        let message = self.to_string();
        let body = GatewayError {
            code: self.grpc_code() as i32,
            message: &message,
            details: [],
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status, bytes).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        Self::new(e.grpc_code(), e.to_string())
    }
}

/// Errors from serving the API or from the CLI client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or preparing a listener failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address or socket path.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS configuration is missing or unusable.
    #[error("gRPC TLS: {0}")]
    Tls(String),
    /// Serving stopped with an error.
    #[error("serving the admin API: {0}")]
    Serve(String),
    /// The client could not reach the server.
    #[error("connecting to headscale at {addr}: {message}")]
    Connect {
        /// The address or socket path.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// The server refused or failed a call.
    #[error("{0}")]
    Call(String),
    /// Rendering output failed.
    #[error("formatting output: {0}")]
    Output(String),
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Self::Call(format!("{:?}: {}", s.code(), s.message()))
    }
}
