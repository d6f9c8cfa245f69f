//! `/api/v1/oauth-client`: how an operator (the `headscale oauth-clients` CLI) creates,
//! lists and deletes the OAuth clients that `/api/v2` accepts. Behind the v1 API key like
//! the rest of `/api/v1`, in its error shape.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::OAuthClient;
use crate::error::ApiError;
use crate::service::Admin;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    scopes: Vec<String>,
    tags: Vec<String>,
    description: String,
}

/// A client as `/api/v1` shows it; the secret only when just created.
fn client_json(c: &OAuthClient, secret: Option<&str>) -> Value {
    let mut v = json!({
        "id": c.id,
        "scopes": c.scopes,
        "tags": c.tags,
        "description": c.description,
        "createdAt": crate::json::rfc3339(c.created_at),
    });
    if let Some(s) = secret {
        v["secret"] = json!(s);
    }
    v
}

/// `POST /api/v1/oauth-client`.
pub(crate) async fn create(State(a): State<Admin>, body: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = crate::rest::body(&body)?;
    let store = a.oauth().clone();
    let now = a.now();
    let (client, secret) = tokio::task::spawn_blocking(move || {
        store.create_client(&b.scopes, &b.tags, &b.description, now)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("creating OAuth client: {e}")))??;
    tracing::info!(client = %client.id, scopes = ?client.scopes, tags = ?client.tags, "OAuth client created");
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "oauthClient": client_json(&client, Some(&secret)) })),
    )
        .into_response())
}

/// `GET /api/v1/oauth-client`.
pub(crate) async fn list(State(a): State<Admin>) -> Result<Response, ApiError> {
    let list: Vec<Value> = a
        .oauth()
        .list_clients()
        .iter()
        .map(|c| client_json(c, None))
        .collect();
    Ok(axum::Json(json!({ "oauthClients": list })).into_response())
}

/// `DELETE /api/v1/oauth-client/{id}`.
pub(crate) async fn delete(
    State(a): State<Admin>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = a.oauth().clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || store.delete_client(&id2))
        .await
        .map_err(|e| ApiError::Internal(format!("deleting OAuth client: {e}")))??;
    tracing::info!(client = %id, "OAuth client deleted; its tokens no longer work");
    Ok(axum::Json(json!({})).into_response())
}
