//! `/api/v2/tailnet/{tailnet}/keys`: auth keys, which here are Headscale's pre-auth keys, in
//! Tailscale's `Key` shape; and [`check_tag_limit`], the rule every tag an OAuth client
//! assigns must pass (on the keys it mints and on the devices it tags).
//!
//! Only auth keys exist (`keyType` `"auth"` or absent): OAuth clients are made with
//! `headscale oauth-clients`. Every key made here carries tags, because an untagged
//! pre-auth key belongs to a user and this API has no way to name one (an API key or an
//! OAuth client is nobody's). Headscale 0.29.3's schema has no column for a key's
//! description, so it is echoed in the answer to create and not kept. Keys are always
//! pre-authorized (Headscale has no device approval), whatever the request says.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use hs_policy::Policy;
use serde_json::{Value, json};

use super::input::{Body, check_tag_forms, parse_id, path};
use super::scope::{Area, need};
use super::{Grant, V2, V2Error, V2Result, require};
use crate::error::ApiError;
use crate::json::rfc3339;
use crate::service::{PreAuthKeyView, zero_instant};

/// Tailscale's default lifetime of an auth key: 90 days.
const DEFAULT_EXPIRY_SECS: i64 = 90 * 24 * 3600;

const TAGS_FIELD: &str = "capabilities.devices.create.tags";

pub(super) fn routes() -> Router<V2> {
    Router::new()
        .route("/api/v2/tailnet/{tailnet}/keys", get(list).post(create))
        .route(
            "/api/v2/tailnet/{tailnet}/keys/{id}",
            get(get_one).delete(delete),
        )
}

/// Whether a client whose own tags are `own` may assign `tag`: one of its own, or one that
/// the policy's `tagOwners` gives to one of its own.
fn may_assign(own: &[String], policy: Option<&Policy>, tag: &str) -> bool {
    own.iter().any(|o| o == tag)
        || policy
            .and_then(|p| p.tag_owners.get(tag))
            .and_then(Option::as_ref)
            .is_some_and(|owners| owners.iter().any(|o| own.contains(o)))
}

/// Refuses (403, naming the tag) a tag an OAuth client may not assign; an admin API key may
/// assign any. Shared by key creation and device tags.
pub(super) async fn check_tag_limit(
    v2: &V2,
    grant: &Grant,
    tags: &[String],
) -> Result<(), V2Error> {
    let Grant::Client {
        client_id,
        tags: own,
        ..
    } = grant
    else {
        return Ok(());
    };
    // The policy is only needed for a tag the client does not hold itself.
    let policy = if tags.iter().all(|t| own.contains(t)) {
        None
    } else {
        v2.admin
            .control()
            .policy()
            .await
            .map_err(|e| V2Error::from(ApiError::from_control("reading the policy", e)))?
    };
    if let Some(t) = tags.iter().find(|t| !may_assign(own, policy.as_deref(), t)) {
        return Err(V2Error::forbidden(format!(
            "OAuth client {client_id} may not assign {t}: it may assign its own tags ({}) and \
             the tags they own in the policy's tagOwners",
            own.join(", ")
        )));
    }
    Ok(())
}

/// A key in Tailscale's shape; the secret only when just created, the description only when
/// the caller just sent it.
fn key_json(v: &PreAuthKeyView, now: DateTime<Utc>, description: &str) -> Value {
    let k = &v.key;
    let mut j = json!({
        "id": k.id.to_string(),
        "keyType": "auth",
        "description": description,
        "created": rfc3339(k.created_at),
        "expires": rfc3339(k.expiration.unwrap_or_else(zero_instant)),
        "invalid": !k.is_usable(now),
        "capabilities": {
            "devices": {
                "create": {
                    "reusable": k.reusable,
                    "ephemeral": k.ephemeral,
                    "tags": k.tags,
                    "preauthorized": true,
                },
            },
        },
        "userId": k.user_id.map(|u| u.get().to_string()).unwrap_or_default(),
    });
    if let Some(full) = &v.full {
        j["key"] = json!(full);
    }
    j
}

fn key_id(p: Result<Path<(String, String)>, PathRejection>) -> Result<u64, V2Error> {
    let (_, text) = path(p)?;
    parse_id("key", &text)
}

fn unknown_key(id: u64) -> V2Error {
    V2Error::new(StatusCode::NOT_FOUND, format!("key {id} not found"))
}

async fn create(State(v2): State<V2>, Extension(grant): Extension<Grant>, body: Bytes) -> V2Result {
    require(&grant, need(Area::AuthKeys, true))?;
    let body = Body::parse(&body)?;
    let root = body.fields();
    match root.string("keyType")?.as_deref() {
        None | Some("" | "auth") => {}
        Some(other) => {
            return Err(V2Error::bad_request(format!(
                "keyType {other:?} is not supported: this server creates auth keys only \
                 (keyType \"auth\"); OAuth clients are made with `headscale oauth-clients create`"
            )));
        }
    }
    let create = root
        .object("capabilities")?
        .object("devices")?
        .object("create")?;
    let reusable = create.bool("reusable")?.unwrap_or(false);
    let ephemeral = create.bool("ephemeral")?.unwrap_or(false);
    create.bool("preauthorized")?;
    let mut tags = create.strings("tags")?.unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    let description = root.string("description")?.unwrap_or_default();
    let secs = match root.integer("expirySeconds")? {
        None | Some(0) => DEFAULT_EXPIRY_SECS,
        Some(s) if s < 0 => {
            return Err(V2Error::bad_request(format!(
                "expirySeconds: {s} is negative: give the key's lifetime in seconds (0 or absent: 90 days)"
            )));
        }
        Some(s) => s,
    };
    check_tag_forms(TAGS_FIELD, &tags)?;
    if tags.is_empty() {
        return Err(V2Error::bad_request(format!(
            "{TAGS_FIELD}: required: keys made through /api/v2 register tagged devices (a key \
             without tags belongs to a user: make one with `headscale preauthkeys create --user`)"
        )));
    }
    check_tag_limit(&v2, &grant, &tags).await?;
    let now = v2.admin.now();
    let expires = chrono::Duration::try_seconds(secs)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| V2Error::bad_request(format!("expirySeconds: {secs} is too large")))?;
    let view = v2
        .admin
        .create_preauth_key(None, reusable, ephemeral, Some(expires), tags)
        .await?;
    tracing::info!(
        caller = %grant.caller(),
        key = view.key.id,
        tags = ?view.key.tags,
        reusable,
        ephemeral,
        "auth key created through /api/v2"
    );
    Ok(Json(key_json(&view, now, &description)).into_response())
}

async fn list(State(v2): State<V2>, Extension(grant): Extension<Grant>) -> V2Result {
    require(&grant, need(Area::AuthKeys, false))?;
    let now = v2.admin.now();
    let keys: Vec<Value> = v2
        .admin
        .list_preauth_keys()
        .await?
        .iter()
        .map(|k| key_json(k, now, ""))
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

async fn get_one(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<(String, String)>, PathRejection>,
) -> V2Result {
    require(&grant, need(Area::AuthKeys, false))?;
    let id = key_id(id)?;
    let now = v2.admin.now();
    let keys = v2.admin.list_preauth_keys().await?;
    let k = keys
        .iter()
        .find(|k| k.key.id == id)
        .ok_or_else(|| unknown_key(id))?;
    Ok(Json(key_json(k, now, "")).into_response())
}

async fn delete(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<(String, String)>, PathRejection>,
) -> V2Result {
    require(&grant, need(Area::AuthKeys, true))?;
    let id = key_id(id)?;
    v2.admin.delete_preauth_key(id).await.map_err(|e| match e {
        ApiError::NotFound(_) => unknown_key(id),
        e => V2Error::from(e),
    })?;
    tracing::info!(caller = %grant.caller(), key = id, "auth key deleted through /api/v2");
    Ok(Json(json!({})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_assign_their_tags_and_the_tags_those_own() {
        let policy: Policy = serde_json::from_str(
            r#"{"tagOwners": {"tag:ci": [], "tag:build": ["tag:ci"], "tag:prod": ["group:ops"], "tag:deep": ["tag:build"]}}"#,
        )
        .unwrap();
        let own = vec!["tag:ci".to_owned()];
        assert!(may_assign(&own, Some(&policy), "tag:ci"));
        assert!(may_assign(&own, Some(&policy), "tag:build"));
        assert!(!may_assign(&own, Some(&policy), "tag:prod"));
        // Only direct ownership counts: a tag owned by an owned tag is not assignable.
        assert!(!may_assign(&own, Some(&policy), "tag:deep"));
        assert!(!may_assign(&own, None, "tag:build"));
        assert!(may_assign(&own, None, "tag:ci"));
    }
}
