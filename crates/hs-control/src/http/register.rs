//! `POST /machine/register` inside the Noise session: pre-auth keys, re-registration and
//! node-key rotation, restarts, logout, and the start of interactive login.
//!
//! Identity: the node key a request names must belong to the Noise session's machine key;
//! a node key registered under another machine key is refused with 401 and nothing changes.
//! Refusals the client should show (bad or spent keys) are sent, as Headscale does, with
//! HTTP 200 and `Error` set; requests that are not a `RegisterRequest` at all get 400.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hs_mapper::TAGGED_DEVICES_USER_ID;
use hs_noise::NoiseSession;
use hs_types::model::{Node, PreAuthKey, RegisterMethod, User};
use hs_types::tailcfg::{self, RegisterRequest, RegisterResponse};
use hs_types::{MachinePublic, NodePublic};
use http::StatusCode;

use crate::clock::now;
use crate::error::Error;
use crate::metrics::{RegMethod, RegStatus};
use crate::state::ControlState;
use crate::state::registration::Registration;

/// A refusal: the HTTP status (200 when the text goes in `RegisterResponse.Error`) and text.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn http(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A refusal the client reads from `RegisterResponse.Error` (HTTP 200).
    pub(crate) fn in_body(message: impl Into<String>) -> Self {
        Self::http(StatusCode::OK, message)
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        tracing::error!(error = %e, "registration failed");
        Self::http(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.status == StatusCode::OK {
            json(&RegisterResponse {
                error: self.message,
                ..RegisterResponse::default()
            })
        } else {
            (self.status, self.message).into_response()
        }
    }
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => (
            [(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )],
            b,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The handler.
pub(crate) async fn handle(
    State(st): State<ControlState>,
    Extension(session): Extension<NoiseSession>,
    body: Bytes,
) -> Response {
    let req: RegisterRequest = match tailcfg::godecode::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return Refusal::http(
                StatusCode::BAD_REQUEST,
                format!("invalid RegisterRequest body: {e}"),
            )
            .into_response();
        }
    };
    let method = method_of(&st, session.machine_key, &req);
    match register(&st, session.machine_key, req).await {
        Ok(r) => {
            let status = if r.error.is_empty() {
                RegStatus::Ok
            } else {
                RegStatus::Refused
            };
            st.metrics().registration(method, status);
            json(&r)
        }
        Err(r) => {
            let status = if r.status.is_server_error() {
                RegStatus::Error
            } else {
                RegStatus::Refused
            };
            st.metrics().registration(method, status);
            tracing::info!(machine = %session.machine_key.short_string(), status = %r.status, reason = %r.message, "registration refused");
            r.into_response()
        }
    }
}

/// The `method` label of a registration request: what the plan says it is.
fn method_of(st: &ControlState, machine: MachinePublic, req: &RegisterRequest) -> RegMethod {
    match plan(&st.store().load(), machine, req, now()) {
        Plan::Logout(_) => RegMethod::Logout,
        Plan::AuthKey { .. } => RegMethod::AuthKey,
        Plan::Followup | Plan::Interactive => RegMethod::Interactive,
        Plan::Refused(_) | Plan::Known(_) | Plan::Expired(_) => RegMethod::Refresh,
    }
}

/// What a register request asks for, decided from the snapshot, the request and the time
/// alone (no I/O): the handler then carries it out.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Refused before anything happens.
    Refused(Refusal),
    /// A past expiry: log this node out.
    Logout(Node),
    /// Register with a pre-auth key; `existing` is the node the request names, if any.
    AuthKey { key: String, existing: Option<Node> },
    /// The follow-up long poll of an interactive login.
    Followup,
    /// A restart (or a re-registration without credentials) of a known node.
    Known(Node),
    /// A known node whose key expired, asking without credentials: told so (not
    /// authorized), the client rotates its node key and logs in again (Go's `handleLogout`).
    Expired(Node),
    /// An unknown node without credentials, or a new node key without credentials (the
    /// client rotates its key for `tailscale up --force-reauth`, or after its old key
    /// expired): start an interactive login, as Go Headscale does; approving it updates the
    /// machine's node.
    Interactive,
}

/// Decides a register request. Identity first: a node key that belongs to another machine
/// is refused whatever else the request says.
pub(crate) fn plan(
    snap: &hs_nodestore::Snapshot,
    machine: MachinePublic,
    req: &RegisterRequest,
    t: DateTime<Utc>,
) -> Plan {
    if req.node_key.is_zero() {
        return Plan::Refused(Refusal::http(
            StatusCode::BAD_REQUEST,
            "RegisterRequest.NodeKey is missing",
        ));
    }
    let by_key = |k: &NodePublic| {
        (!k.is_zero())
            .then(|| snap.node_by_node_key(k))
            .flatten()
            .map(|e| e.node.clone())
    };
    let current = by_key(&req.node_key);
    let previous = by_key(&req.old_node_key);
    if current
        .iter()
        .chain(previous.iter())
        .any(|n| n.machine_key != machine)
    {
        return Plan::Refused(Refusal::http(
            StatusCode::UNAUTHORIZED,
            "node key belongs to another machine",
        ));
    }
    // A past expiry is a logout, whatever else the request carries.
    if req.expiry.is_some_and(|e| e <= t) {
        return match current.or(previous) {
            Some(node) => Plan::Logout(node),
            None => Plan::Refused(Refusal::http(StatusCode::UNAUTHORIZED, "node not found")),
        };
    }
    if let Some(key) = req
        .auth
        .as_ref()
        .map(|a| a.auth_key.as_str())
        .filter(|k| !k.is_empty())
    {
        return Plan::AuthKey {
            key: key.to_owned(),
            existing: current.or(previous),
        };
    }
    if !req.followup.is_empty() {
        return Plan::Followup;
    }
    match (current, previous) {
        (Some(node), _) if node.is_expired(t) => Plan::Expired(node),
        (Some(node), _) => Plan::Known(node),
        (None, _) => Plan::Interactive,
    }
}

/// Registration: the plan, carried out.
pub(crate) async fn register(
    st: &ControlState,
    machine: MachinePublic,
    req: RegisterRequest,
) -> Result<RegisterResponse, Refusal> {
    let t = now();
    match plan(&st.store().load(), machine, &req, t) {
        Plan::Refused(r) => Err(r),
        Plan::Logout(node) => logout(st, node).await,
        Plan::AuthKey { key, existing } => with_auth_key(st, machine, &req, key, existing, t).await,
        Plan::Followup => crate::http::interactive::followup(st, machine, &req).await,
        Plan::Known(node) => Ok(response_for(st, &node, t)),
        Plan::Expired(node) => Ok(RegisterResponse {
            node_key_expired: true,
            machine_authorized: false,
            ..response_for(st, &node, t)
        }),
        Plan::Interactive => crate::http::interactive::start(st, machine, &req, t),
    }
}

/// Logout: an ephemeral node is deleted; a tagged node is left as it is (tagged nodes never
/// expire); any other node is expired now (the client's past expiry is clamped to now, as
/// Headscale does) and hidden from its peers until it logs in again.
async fn logout(st: &ControlState, node: Node) -> Result<RegisterResponse, Refusal> {
    let t = now();
    if st.is_ephemeral(&node) {
        st.delete_node(node.id).await?;
    } else if node.is_tagged() {
        // Tagged nodes never expire (Go Headscale 0.29): a logout stamps no expiry, which
        // would lock the node out of re-registering; the client forgets its login anyway.
        tracing::info!(
            node = node.id.get(),
            "tagged node logged out; no expiry stamped"
        );
        return Ok(response_for(st, &node, t));
    } else {
        st.logout_node(node.id, t).await?;
    }
    tracing::info!(node = node.id.get(), "node logged out");
    Ok(RegisterResponse {
        node_key_expired: true,
        machine_authorized: false,
        ..response_for(st, &node, t)
    })
}

/// What the client is told about a registered node.
pub(crate) fn response_for(st: &ControlState, n: &Node, t: DateTime<Utc>) -> RegisterResponse {
    let owner = n
        .user_id
        .filter(|_| n.tags.is_empty())
        .and_then(|u| st.store().load().user(u).cloned());
    let (user, login) = match owner {
        Some(u) => wire_user(&u),
        None => {
            let p = hs_mapper::tagged_devices_profile();
            (
                tailcfg::User {
                    id: TAGGED_DEVICES_USER_ID,
                    display_name: p.display_name.clone(),
                    ..tailcfg::User::default()
                },
                tailcfg::Login {
                    id: i64::try_from(TAGGED_DEVICES_USER_ID.get()).unwrap_or(0),
                    login_name: p.login_name,
                    display_name: p.display_name,
                    ..tailcfg::Login::default()
                },
            )
        }
    };
    RegisterResponse {
        user,
        login,
        node_key_expired: n.is_expired(t),
        machine_authorized: true,
        ..RegisterResponse::default()
    }
}

fn wire_user(u: &User) -> (tailcfg::User, tailcfg::Login) {
    let login_name = if u.email.is_empty() {
        u.name.clone()
    } else {
        u.email.clone()
    };
    (
        tailcfg::User {
            id: u.id,
            display_name: u.display().to_owned(),
            profile_pic_url: u.profile_pic_url.clone(),
            created: Some(u.created_at),
        },
        tailcfg::Login {
            id: i64::try_from(u.id.get()).unwrap_or(0),
            provider: u.provider.clone(),
            login_name,
            display_name: u.display().to_owned(),
            profile_pic_url: u.profile_pic_url.clone(),
        },
    )
}

/// The key expiry a newly (re-)registered node gets.
pub(crate) fn new_expiry(
    st: &ControlState,
    req: &RegisterRequest,
    tagged: bool,
    ephemeral: bool,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if tagged || ephemeral {
        return None;
    }
    if let Some(e) = req.expiry.filter(|e| *e > t) {
        return Some(e);
    }
    st.config()
        .node_expiry
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| t.checked_add_signed(d))
}

fn key_refusal(k: &PreAuthKey, t: DateTime<Utc>) -> Option<&'static str> {
    if k.is_expired(t) {
        Some("authkey expired")
    } else if !k.reusable && k.used {
        Some("authkey already used")
    } else {
        None
    }
}

/// Go Headscale's prefix for failures of a pre-auth-key registration that are not about the
/// key itself; the client shows the whole text.
const AUTH_KEY_FAILURE: &str = "handling register with auth key";

/// The machine's node a pre-auth key registers again (Go Headscale's rule): for a key with a
/// user, that user's node, else the machine's tagged node (an operator may have tagged it
/// since); for a key with tags only, the machine's tagged node, else its only user-owned node
/// (which the key converts to tagged). Several user-owned nodes for a tags-only key are
/// ambiguous and refused.
fn node_for_key(
    on_machine: &[Node],
    key: &PreAuthKey,
    by_key: Option<&Node>,
) -> Result<Option<Node>, Refusal> {
    // Of equal candidates, the node the request names.
    let pick = |found: Vec<&Node>| {
        found
            .iter()
            .find(|n| by_key.is_some_and(|b| b.id == n.id))
            .or_else(|| found.first())
            .map(|n| (*n).clone())
    };
    let tagged = || pick(on_machine.iter().filter(|n| n.is_tagged()).collect());
    if let Some(u) = key.user_id {
        let own = pick(
            on_machine
                .iter()
                .filter(|n| !n.is_tagged() && n.user_id == Some(u))
                .collect(),
        );
        return Ok(own.or_else(tagged));
    }
    if let Some(n) = tagged() {
        return Ok(Some(n));
    }
    let users: Vec<&Node> = on_machine.iter().filter(|n| !n.is_tagged()).collect();
    match users.len() {
        0 => Ok(None),
        1 => Ok(Some(users[0].clone())),
        _ => Err(Refusal::in_body(format!(
            "{AUTH_KEY_FAILURE}: machine key maps to ambiguous node ownership"
        ))),
    }
}

async fn with_auth_key(
    st: &ControlState,
    machine: MachinePublic,
    req: &RegisterRequest,
    presented: String,
    existing: Option<Node>,
    t: DateTime<Utc>,
) -> Result<RegisterResponse, Refusal> {
    let key = st.find_pre_auth_key(presented).await?;
    let Some(key) = key else {
        return Err(Refusal::in_body("invalid pre auth key"));
    };
    let tagged = key.is_tagged();
    let user_id = if tagged { None } else { key.user_id };
    if !tagged && user_id.is_none() {
        return Err(Refusal::in_body("pre auth key has neither a user nor tags"));
    }
    let on_machine: Vec<Node> = st
        .store()
        .load()
        .nodes_by_machine_key(&machine)
        .map(|e| e.node.clone())
        .collect();
    let known = node_for_key(&on_machine, &key, existing.as_ref())?;
    // A live node re-registering with the same node key (a container restarting with the key
    // it was given) needs no valid key: the machine key proves who it is. A new node key, an
    // expired user node, a user node a tagged key converts and a tagged node a different
    // tagged key retags all need a valid key.
    let key_not_needed = known.as_ref().is_some_and(|n| {
        let rotation = n.node_key != req.node_key;
        let expired_user_node = !n.is_tagged() && n.is_expired(t);
        let conversion = tagged && !n.is_tagged();
        let retag = tagged && n.is_tagged() && n.auth_key_id != Some(key.id);
        ![rotation, expired_user_node, conversion, retag].contains(&true)
    });
    if !key_not_needed && let Some(why) = key_refusal(&key, t) {
        if !key.prefix.is_empty() {
            st.forget_pre_auth_key(&key.prefix);
        }
        return Err(Refusal::in_body(why));
    }
    if let Some(u) = user_id
        && known.is_none()
        && !st.ensure_user(u).await?
    {
        return Err(Refusal::in_body("the pre auth key's user no longer exists"));
    }
    if key.ephemeral {
        st.note_ephemeral_key(key.id);
    }
    let (key_id, reusable, used) = (key.id, key.reusable, key.used);
    // Durable first: the node row and the spent key in one transaction; a key already spent
    // (re-registration with it) stays as it is.
    let spend: crate::state::registration::Also = Box::new(move |c| {
        if reusable || used {
            Ok(())
        } else {
            c.mark_pre_auth_key_used(key_id)
        }
    });
    let reg = Registration {
        user_id,
        tags: Some(key.tags.clone()),
        auth_key_id: Some(key.id),
        expiry: new_expiry(st, req, tagged, key.ephemeral, t),
        ..Registration::from_request(machine, req, RegisterMethod::AuthKey, t)
    };
    let n = match known {
        Some(old) => {
            // The key's tags only when the key is tagged and either the node is not, or the
            // key is not the one it last registered with: the same key again keeps the
            // node's tags, an operator's included.
            let user_expiry = new_expiry(st, req, false, false, t);
            let key_tags = key.tags.clone();
            st.store_registration(
                old,
                Box::new(move |row| rekeyed(row, reg, tagged, key_tags, user_expiry)),
                spend,
            )
            .await?
        }
        None => {
            // A new node's tags come from its key; asking for tags is refused outright.
            let requested = req
                .hostinfo
                .as_ref()
                .map(|h| h.request_tags.as_slice())
                .unwrap_or_default();
            if !requested.is_empty() {
                return Err(Refusal::in_body(format!(
                    "{AUTH_KEY_FAILURE}: {}",
                    crate::state::tags::refusal(requested)
                )));
            }
            crate::state::registration::store(st, reg, None, spend).await?
        }
    };
    let n = match st.auto_approve_routes(n.id).await {
        Ok(a) if !a.is_empty() => st.store().load().node(n.id).map_or(n, |e| e.node.clone()),
        _ => n,
    };
    tracing::info!(node = n.id.get(), name = %n.given_name, tagged = n.is_tagged(), tags = ?n.tags, ephemeral = key.ephemeral, "node registered with a pre-auth key");
    Ok(response_for(st, &n, t))
}

/// A pre-auth-key registration applied to the machine's node as the row holds it now. A
/// tagged key (`key_tagged`) sets its tags when the node is not tagged (dropping the user and
/// the key expiry) or was registered with another key; otherwise the node keeps its tags and
/// owner. A user node's expiry becomes `user_expiry`; a tagged node's stale past expiry is
/// cleared, a future one an operator set stays.
fn rekeyed(
    row: Node,
    reg: Registration,
    key_tagged: bool,
    key_tags: Vec<String>,
    user_expiry: Option<DateTime<Utc>>,
) -> Node {
    let key_changed = row.auth_key_id != reg.auth_key_id;
    let mut n = Node {
        node_key: reg.node_key,
        hostinfo: reg.hostinfo.or(row.hostinfo),
        hostname: if reg.hostname.is_empty() {
            row.hostname
        } else {
            reg.hostname
        },
        register_method: RegisterMethod::AuthKey,
        auth_key_id: reg.auth_key_id,
        last_seen: Some(reg.at),
        updated_at: reg.at,
        ..row
    };
    if key_tagged && (!n.is_tagged() || key_changed) {
        let was_user_node = !n.is_tagged();
        n.tags = key_tags;
        n.user_id = None;
        if was_user_node || n.is_expired(reg.at) {
            n.expiry = None;
        }
    }
    if !n.is_tagged() {
        n.expiry = user_expiry;
    } else if n.is_expired(reg.at) {
        n.expiry = None;
    }
    n
}

#[cfg(test)]
#[path = "register_plan_tests.rs"]
mod plan_tests;
