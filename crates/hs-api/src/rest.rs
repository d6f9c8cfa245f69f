//! REST `/api/v1`: Headscale 0.30's paths, bodies and status codes on an axum router.
//!
//! Inputs are parsed by hand rather than with axum's extractors so that every malformed id,
//! query or body gets a 400 (grpc-gateway's error JSON) naming the field, instead of axum's plain-text
//! rejections.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use hs_types::{NodeId, UserId};

use crate::error::ApiError;
use crate::json::{
    ApiKeyJson, AuthBody, CreateApiKeyBody, CreatePreAuthKeyBody, CreateUserBody, ExpireApiKeyBody,
    ExpireNodeBody, IdBody, NodeJson, PolicyBody, PreAuthKeyJson, RoutesBody, StringOrNumber,
    TagsBody, UserJson, rfc3339,
};
use crate::service::{Admin, ApiKeyRef, UserFilter};
use crate::store::NewUser;

/// The OpenAPI description served at `/api/v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("openapi.yaml");

type ApiResult = Result<Response, ApiError>;
type Q = Query<HashMap<String, String>>;

fn ok(v: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}

fn ok_json<T: serde::Serialize>(key: &str, v: T) -> ApiResult {
    let v = serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut m = serde_json::Map::new();
    m.insert(key.to_owned(), v);
    ok(Value::Object(m))
}

fn empty() -> ApiResult {
    ok(json!({}))
}

/// Parses a decimal uint64 id from `what` (a path segment, query or body field).
#[doc(hidden)]
pub fn parse_id(what: &str, text: &str) -> Result<u64, ApiError> {
    text.trim().parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid {what} {text:?}: expected a decimal number"
        ))
    })
}

/// Decodes a request body; blank is the type's default. Public for the fuzz target.
#[doc(hidden)]
pub fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let positioned = |e: serde_json::Error| {
        ApiError::bad_request(format!(
            "invalid request body at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    };
    // serde reads a struct from a JSON array too; protojson wants an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object",
        ));
    }
    if !bytes.windows(4).any(|w| w == b"null") {
        return serde_json::from_slice(bytes).map_err(positioned);
    }
    // grpc-gateway reads bodies with protojson, where a null field is a field left unset;
    // serde would refuse null for a field that is not an Option.
    let mut v: Value = serde_json::from_slice(bytes).map_err(positioned)?;
    drop_nulls(&mut v);
    serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// Removes object members whose value is null, at any depth.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn query_flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid query parameter {name}={other:?}: expected true or false"
        ))),
    }
}

fn node_id(text: &str) -> Result<NodeId, ApiError> {
    Ok(NodeId(parse_id("node id", text)?))
}

/// The `/api/v1` routes (without authentication; see [`crate::auth`]).
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/apikey", post(create_api_key).get(list_api_keys))
        .route("/api/v1/apikey", delete(delete_api_key_root))
        .route("/api/v1/apikey/", delete(delete_api_key_root))
        .route("/api/v1/apikey/expire", post(expire_api_key))
        .route("/api/v1/apikey/{prefix}", delete(delete_api_key))
        .route("/api/v1/user", post(create_user).get(list_users))
        .route("/api/v1/user/{id}", delete(delete_user))
        .route("/api/v1/user/{id}/rename/{name}", post(rename_user))
        .route(
            "/api/v1/preauthkey",
            post(create_preauth_key)
                .get(list_preauth_keys)
                .delete(delete_preauth_key),
        )
        .route("/api/v1/preauthkey/expire", post(expire_preauth_key))
        .route("/api/v1/node", get(list_nodes))
        .route("/api/v1/node/register", post(register_node))
        .route("/api/v1/node/backfillips", post(backfill_ips))
        .route("/api/v1/node/{id}", get(get_node).delete(delete_node))
        .route("/api/v1/node/{id}/expire", post(expire_node))
        .route("/api/v1/node/{id}/rename/{name}", post(rename_node))
        .route("/api/v1/node/{id}/tags", post(set_tags))
        .route("/api/v1/node/{id}/approve_routes", post(approve_routes))
        .route("/api/v1/debug/node", post(debug_create_node))
        .route("/api/v1/auth/register", post(auth_register))
        .route("/api/v1/auth/approve", post(auth_approve))
        .route("/api/v1/auth/reject", post(auth_reject))
        .route("/api/v1/policy", get(get_policy).put(set_policy))
        .route("/api/v1/policy/check", post(check_policy))
        .route(
            "/api/v1/oauth-client",
            post(crate::v2::clients::create).get(crate::v2::clients::list),
        )
        .route(
            "/api/v1/oauth-client/{id}",
            delete(crate::v2::clients::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(admin)
}

/// The public documents (no authentication).
pub fn docs_router() -> Router {
    Router::new().route(
        "/api/v1/openapi.yaml",
        get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML) }),
    )
}

/// grpc-gateway's words, as Go Headscale 0.29.3 answers an unknown path.
async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

async fn health(State(a): State<Admin>) -> ApiResult {
    ok(json!({ "databaseConnectivity": a.health().await }))
}

// ---- API keys

async fn create_api_key(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: CreateApiKeyBody = body(&b)?;
    let key = a.create_api_key(req.expiration).await?;
    ok(json!({ "apiKey": key }))
}

async fn list_api_keys(State(a): State<Admin>) -> ApiResult {
    let keys = a.list_api_keys().await?;
    ok_json(
        "apiKeys",
        keys.iter().map(ApiKeyJson::from).collect::<Vec<_>>(),
    )
}

/// Which API key a prefix or id names. Public for the fuzz target.
#[doc(hidden)]
pub fn api_key_ref(prefix: &str, id: Option<&str>) -> Result<ApiKeyRef, ApiError> {
    let id = id.filter(|s| !s.is_empty() && *s != "0");
    match (prefix.is_empty(), id) {
        (false, Some(_)) => Err(ApiError::bad_request(
            "give either an API key prefix or an id, not both",
        )),
        (true, None) => Err(ApiError::bad_request("an API key prefix or id is required")),
        (true, Some(id)) => Ok(ApiKeyRef::Id(parse_id("API key id", id)?)),
        (false, None) => Ok(ApiKeyRef::Prefix(prefix.to_owned())),
    }
}

async fn expire_api_key(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: ExpireApiKeyBody = body(&b)?;
    let id = req.id.as_ref().map(StringOrNumber::as_text);
    a.expire_api_key(api_key_ref(&req.prefix, id.as_deref())?)
        .await?;
    empty()
}

async fn delete_api_key(
    State(a): State<Admin>,
    Path(prefix): Path<String>,
    Query(q): Q,
) -> ApiResult {
    a.delete_api_key(api_key_ref(&prefix, q.get("id").map(String::as_str))?)
        .await?;
    empty()
}

async fn delete_api_key_root(State(a): State<Admin>, Query(q): Q) -> ApiResult {
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    a.delete_api_key(api_key_ref(&prefix, q.get("id").map(String::as_str))?)
        .await?;
    empty()
}

// ---- users

async fn create_user(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: CreateUserBody = body(&b)?;
    let user = a
        .create_user(NewUser {
            name: req.name,
            display_name: req.display_name,
            email: req.email,
            profile_pic_url: req.picture_url,
        })
        .await?;
    ok_json("user", UserJson::from(&user))
}

async fn list_users(State(a): State<Admin>, Query(q): Q) -> ApiResult {
    let nonempty = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let id = match nonempty("id") {
        Some(t) => match parse_id("user id", &t)? {
            0 => None,
            n => Some(UserId(n)),
        },
        None => None,
    };
    let users = a
        .list_users(UserFilter {
            id,
            name: nonempty("name"),
            email: nonempty("email"),
        })
        .await?;
    ok_json(
        "users",
        users.iter().map(UserJson::from).collect::<Vec<_>>(),
    )
}

async fn rename_user(
    State(a): State<Admin>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    let id = UserId(parse_id("user id", &id)?);
    let user = a.rename_user(id, name).await?;
    ok_json("user", UserJson::from(&user))
}

async fn delete_user(State(a): State<Admin>, Path(id): Path<String>) -> ApiResult {
    a.delete_user(UserId(parse_id("user id", &id)?)).await?;
    empty()
}

// ---- pre-auth keys

async fn create_preauth_key(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: CreatePreAuthKeyBody = body(&b)?;
    let user = preauth_user(req.user.as_ref())?;
    let key = a
        .create_preauth_key(
            user,
            req.reusable,
            req.ephemeral,
            req.expiration,
            req.acl_tags,
        )
        .await?;
    ok_json("preAuthKey", PreAuthKeyJson::from(&key))
}

/// The owner a pre-auth key request names: none for absent, empty or 0. Public for the fuzz
/// target.
#[doc(hidden)]
pub fn preauth_user(user: Option<&StringOrNumber>) -> Result<Option<UserId>, ApiError> {
    Ok(match user.map(StringOrNumber::as_text) {
        None => None,
        Some(t) if t.is_empty() => None,
        Some(t) => match parse_id("user id", &t)? {
            0 => None,
            n => Some(UserId(n)),
        },
    })
}

/// An id that must be present and not 0. Public for the fuzz target.
#[doc(hidden)]
pub fn required_id(what: &str, v: Option<String>) -> Result<u64, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Err(ApiError::bad_request(format!("{what} is required"))),
        Some(t) => match parse_id(what, &t)? {
            0 => Err(ApiError::bad_request(format!("{what} must not be 0"))),
            n => Ok(n),
        },
    }
}

async fn expire_preauth_key(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: IdBody = body(&b)?;
    let id = required_id("pre-auth key id", req.id.map(|i| i.as_text()))?;
    a.expire_preauth_key(id).await?;
    empty()
}

async fn delete_preauth_key(State(a): State<Admin>, Query(q): Q) -> ApiResult {
    let id = required_id("pre-auth key id", q.get("id").cloned())?;
    a.delete_preauth_key(id).await?;
    empty()
}

async fn list_preauth_keys(State(a): State<Admin>) -> ApiResult {
    let keys = a.list_preauth_keys().await?;
    ok_json(
        "preAuthKeys",
        keys.iter().map(PreAuthKeyJson::from).collect::<Vec<_>>(),
    )
}

// ---- nodes

async fn get_node(State(a): State<Admin>, Path(id): Path<String>) -> ApiResult {
    let n = a.get_node(node_id(&id)?).await?;
    ok_json("node", NodeJson::from(&n))
}

async fn list_nodes(State(a): State<Admin>, Query(q): Q) -> ApiResult {
    let nodes = a.list_nodes(q.get("user").map(String::as_str)).await?;
    ok_json(
        "nodes",
        nodes.iter().map(NodeJson::from).collect::<Vec<_>>(),
    )
}

async fn delete_node(State(a): State<Admin>, Path(id): Path<String>) -> ApiResult {
    a.delete_node(node_id(&id)?).await?;
    empty()
}

async fn expire_node(
    State(a): State<Admin>,
    Path(id): Path<String>,
    Query(q): Q,
    b: Bytes,
) -> ApiResult {
    let id = node_id(&id)?;
    let mut req: ExpireNodeBody = body(&b)?;
    if let Some(t) = q.get("expiry").filter(|t| !t.is_empty()) {
        req.expiry = Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    ApiError::bad_request(format!("invalid expiry {t:?}: not RFC 3339: {e}"))
                })?
                .to_utc(),
        );
    }
    req.disable_expiry |= query_flag(&q, "disableExpiry")?;
    let n = a.expire_node(id, req.expiry, req.disable_expiry).await?;
    ok_json("node", NodeJson::from(&n))
}

async fn rename_node(
    State(a): State<Admin>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    let n = a.rename_node(node_id(&id)?, name).await?;
    ok_json("node", NodeJson::from(&n))
}

async fn set_tags(State(a): State<Admin>, Path(id): Path<String>, b: Bytes) -> ApiResult {
    let id = node_id(&id)?;
    let req: TagsBody = body(&b)?;
    let n = a.set_tags(id, req.tags).await?;
    ok_json("node", NodeJson::from(&n))
}

async fn approve_routes(State(a): State<Admin>, Path(id): Path<String>, b: Bytes) -> ApiResult {
    let id = node_id(&id)?;
    let req: RoutesBody = body(&b)?;
    let n = a.set_approved_routes(id, req.routes).await?;
    ok_json("node", NodeJson::from(&n))
}

async fn register_node(State(a): State<Admin>, Query(q): Q) -> ApiResult {
    let user = q.get("user").cloned().unwrap_or_default();
    let key = q.get("key").cloned().unwrap_or_default();
    let n = a.auth_register(&user, &key).await?;
    ok_json("node", NodeJson::from(&n))
}

async fn backfill_ips(State(a): State<Admin>, Query(q): Q) -> ApiResult {
    let changes = a.backfill_ips(query_flag(&q, "confirmed")?).await?;
    ok(json!({ "changes": changes }))
}

/// `POST /api/v1/debug/node`. Public for the fuzz target.
#[doc(hidden)]
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct DebugNodeBody {
    user: String,
    key: String,
    name: String,
    routes: Vec<String>,
}

async fn debug_create_node(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: DebugNodeBody = body(&b)?;
    let n = a
        .debug_create_node(&req.user, &req.key, &req.name, &req.routes)
        .await?;
    ok_json("node", NodeJson::from(&n))
}

// ---- auth

async fn auth_register(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: AuthBody = body(&b)?;
    let n = a.auth_register(&req.user, &req.auth_id).await?;
    ok_json("node", NodeJson::from(&n))
}

async fn auth_approve(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: AuthBody = body(&b)?;
    a.auth_approve(&req.auth_id)?;
    empty()
}

async fn auth_reject(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: AuthBody = body(&b)?;
    a.auth_reject(&req.auth_id)?;
    empty()
}

// ---- policy

async fn get_policy(State(a): State<Admin>) -> ApiResult {
    let p = a.get_policy().await?;
    ok(json!({ "policy": p.data, "updatedAt": rfc3339(p.updated_at) }))
}

async fn set_policy(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: PolicyBody = body(&b)?;
    let p = a.set_policy(req.policy).await?;
    ok(json!({ "policy": p.data, "updatedAt": rfc3339(p.updated_at) }))
}

async fn check_policy(State(a): State<Admin>, b: Bytes) -> ApiResult {
    let req: PolicyBody = body(&b)?;
    a.check_policy(&req.policy).await?;
    empty()
}
