//! `/api/v2/tailnet/{tailnet}/users` and `/api/v2/users/{id}`: Headscale's users as
//! Tailscale's API shows them, read only (users come from logins and the admin CLI).
//!
//! Headscale has no user roles: what an operator may do comes from API keys and the CLI,
//! not from being a user. So every user is a `member` with role `member` (none is shown as
//! the `owner`, which would suggest rights no user has) and status `active`.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use hs_types::UserId;
use hs_types::model::User;
use serde_json::{Value, json};

use super::input::{parse_id, path, query};
use super::scope::{Area, need};
use super::{Grant, V2, V2Error, V2Result, require};
use crate::json::rfc3339;
use crate::service::{NodeView, UserFilter, zero_instant};

const TYPES: [&str; 2] = ["member", "shared"];
const ROLES: [&str; 7] = [
    "owner",
    "member",
    "admin",
    "it-admin",
    "network-admin",
    "billing-admin",
    "auditor",
];

pub(super) fn routes() -> Router<V2> {
    Router::new()
        .route("/api/v2/tailnet/{tailnet}/users", get(list))
        .route("/api/v2/users/{id}", get(get_one))
}

/// The login name peers see for `u` in their user profiles: the first non-empty of e-mail,
/// name, provider identifier, and the id. Devices name their owner with it too, so the two
/// resources agree.
pub(super) fn login_name(u: &User) -> String {
    [
        u.email.as_str(),
        u.name.as_str(),
        u.provider_identifier.as_deref().unwrap_or_default(),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .map_or_else(|| u.id.get().to_string(), str::to_owned)
}

/// What a user's untagged nodes say about them.
#[derive(Debug, Default)]
struct Activity {
    devices: usize,
    connected: bool,
    last_seen: Option<DateTime<Utc>>,
}

fn activity(nodes: &[NodeView]) -> HashMap<UserId, Activity> {
    let mut by_user: HashMap<UserId, Activity> = HashMap::new();
    for v in nodes {
        let n = &v.node;
        let Some(owner) = n.user_id.filter(|_| !n.is_tagged()) else {
            continue;
        };
        let a = by_user.entry(owner).or_default();
        a.devices += 1;
        a.connected |= v.online;
        a.last_seen = a.last_seen.max(n.last_seen);
    }
    by_user
}

fn user_json(u: &User, a: Option<&Activity>, now: DateTime<Utc>) -> Value {
    let login = login_name(u);
    let connected = a.is_some_and(|a| a.connected);
    // A connected user is being seen now; the stored times are from the last disconnect.
    let last_seen = if connected {
        now
    } else {
        a.and_then(|a| a.last_seen).unwrap_or_else(zero_instant)
    };
    json!({
        "id": u.id.get().to_string(),
        "displayName": if u.display_name.is_empty() { login.clone() } else { u.display_name.clone() },
        "loginName": login,
        "profilePicUrl": u.profile_pic_url,
        "created": rfc3339(u.created_at),
        "type": "member",
        "role": "member",
        "status": "active",
        "deviceCount": a.map_or(0, |a| a.devices),
        "currentlyConnected": connected,
        "lastSeen": rfc3339(last_seen),
    })
}

/// The `type` and `role` filters the Go client sends: a known value that no user here has
/// empties the list; an unknown one is a 400.
fn passes_filters(q: &[(String, String)]) -> Result<bool, V2Error> {
    let mut pass = true;
    for (k, v) in q {
        let known: &[&str] = match k.as_str() {
            "type" => &TYPES,
            "role" => &ROLES,
            _ => continue,
        };
        if v.is_empty() {
            continue;
        }
        if !known.contains(&v.as_str()) {
            return Err(V2Error::bad_request(format!(
                "{k}: {v:?} is not one of {}",
                known.join(", ")
            )));
        }
        pass &= v == "member";
    }
    Ok(pass)
}

async fn list(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    RawQuery(raw): RawQuery,
) -> V2Result {
    require(&grant, need(Area::Users, false))?;
    if !passes_filters(&query(raw))? {
        return Ok(Json(json!({ "users": [] })).into_response());
    }
    let users = v2.admin.list_users(UserFilter::default()).await?;
    let by_user = activity(&v2.admin.list_nodes(None).await?);
    let now = v2.admin.now();
    let users: Vec<Value> = users
        .iter()
        .map(|u| user_json(u, by_user.get(&u.id), now))
        .collect();
    Ok(Json(json!({ "users": users })).into_response())
}

async fn get_one(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
) -> V2Result {
    require(&grant, need(Area::Users, false))?;
    let id = UserId(parse_id("user", &path(id)?)?);
    let u = v2
        .admin
        .list_users(UserFilter {
            id: Some(id),
            ..UserFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| V2Error::new(StatusCode::NOT_FOUND, format!("user {id} not found")))?;
    let by_user = activity(&v2.admin.list_nodes(None).await?);
    Ok(Json(user_json(&u, by_user.get(&u.id), v2.admin.now())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_know_tailscale_values() {
        let q = |s: &str| query(Some(s.to_owned()));
        assert!(passes_filters(&q("type=member&role=member")).unwrap());
        assert!(!passes_filters(&q("role=owner")).unwrap());
        assert!(!passes_filters(&q("type=shared")).unwrap());
        assert!(passes_filters(&q("other=x")).unwrap());
        assert!(passes_filters(&q("role=boss")).is_err());
    }
}
