//! The crate's errors and their one mapping to the wire: RFC 7807 `application/problem+json`
//! for REST and a `tonic::Status` code for gRPC. Only this file decides status codes.

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
            other => {
                tracing::error!(error = %other, "{context}");
                Self::Internal(format!("{context}: internal error"))
            }
        }
    }
}

/// The RFC 7807 body Headscale's Huma-based API answers with.
#[derive(Serialize)]
struct Problem<'a> {
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = self.to_string();
        let body = Problem {
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &detail,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status, bytes).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let msg = e.to_string();
        match e {
            ApiError::BadRequest(_) => Self::invalid_argument(msg),
            ApiError::Unauthorized(_) => Self::unauthenticated(msg),
            ApiError::NotFound(_) => Self::not_found(msg),
            ApiError::MethodNotAllowed(_) => Self::unimplemented(msg),
            ApiError::Conflict(_) => Self::already_exists(msg),
            ApiError::Internal(_) => Self::internal(msg),
        }
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
