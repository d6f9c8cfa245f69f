//! `GET /api/v2/openapi.yaml`: the OpenAPI document of `/api/v2`, public like `/api/v1`'s so
//! tools can read it before they hold a token.

use axum::Router;
use axum::http::header;
use axum::routing::get;

/// The OpenAPI description of `/api/v2`, kept beside the handlers it describes.
pub(crate) const OPENAPI_YAML: &str = include_str!("openapi.yaml");

/// The document's route, outside the auth layer.
pub(crate) fn docs_router() -> Router {
    Router::new().route(
        "/api/v2/openapi.yaml",
        get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML) }),
    )
}
