//! Interactive login: a register request without credentials gets an `AuthURL`
//! (`<server_url>/register/<auth_id>`, the auth ID being `hskey-authreq-` and 24 random
//! lowercase hex digits, as Go Headscale 0.29 issues them); the client long-polls with `Followup` set to it while
//! the operator runs `headscale auth register --auth-id <id> --user <name>`, which calls
//! [`ControlState::approve_registration`] (or [`ControlState::reject_registration`]).
//!
//! A leaked auth ID is worth nothing: the follow-up must come from the machine key that
//! started the registration, the page shows only the command, and approval needs an operator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use hs_types::model::{Node, RegisterMethod};
use hs_types::tailcfg::{RegisterRequest, RegisterResponse};
use hs_types::{MachinePublic, UserId};
use http::StatusCode;
use rand::RngCore as _;
use tokio::sync::watch;

use crate::clock::now;
use crate::error::Error;
use crate::register::{Refusal, new_expiry, response_for};
use crate::registration::Registration;
use crate::state::ControlState;

/// How long a pending registration waits for an operator (Headscale's register cache).
const PENDING_TTL: Duration = Duration::from_secs(15 * 60);
/// How long one follow-up long poll waits before answering "still pending".
const FOLLOWUP_WAIT: Duration = Duration::from_secs(120);
/// What every auth ID starts with (Go Headscale 0.29).
pub(crate) const AUTH_ID_PREFIX: &str = "hskey-authreq-";
/// Random characters after the prefix (Headscale's length).
const AUTH_ID_RANDOM_LEN: usize = 24;

/// A new auth ID: the prefix and 24 hex digits (96 random bits).
fn new_auth_id() -> String {
    let mut b = [0u8; AUTH_ID_RANDOM_LEN / 2];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let mut id = String::with_capacity(AUTH_ID_PREFIX.len() + AUTH_ID_RANDOM_LEN);
    id.push_str(AUTH_ID_PREFIX);
    for x in b {
        id.push_str(&format!("{x:02x}"));
    }
    id
}

/// The form an auth ID is filed under: operators may type the 24 random characters alone
/// (the form of Headscale 0.25-0.28, which the admin API still accepts).
fn canonical(id: &str) -> std::borrow::Cow<'_, str> {
    if id.starts_with(AUTH_ID_PREFIX) {
        std::borrow::Cow::Borrowed(id)
    } else {
        std::borrow::Cow::Owned(format!("{AUTH_ID_PREFIX}{id}"))
    }
}

/// Whether `id` looks like an auth ID (either form) at all.
fn well_formed(id: &str) -> bool {
    let random = id.strip_prefix(AUTH_ID_PREFIX).unwrap_or(id);
    random.len() == AUTH_ID_RANDOM_LEN
        && random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

type Outcome = Option<Result<RegisterResponse, String>>;

struct Pending {
    machine: MachinePublic,
    req: RegisterRequest,
    created: DateTime<Utc>,
    done: watch::Sender<Outcome>,
}

/// Registrations waiting for an operator, by auth ID.
#[derive(Default)]
pub(crate) struct PendingAuths {
    map: Mutex<HashMap<String, Arc<Pending>>>,
}

impl PendingAuths {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pending>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Option<Arc<Pending>> {
        self.lock().get(canonical(id).as_ref()).cloned()
    }
}

fn ttl() -> chrono::Duration {
    chrono::Duration::from_std(PENDING_TTL).unwrap_or(chrono::Duration::MAX)
}

/// Starts (or repeats) an interactive registration.
pub(crate) fn start(
    st: &ControlState,
    machine: MachinePublic,
    req: &RegisterRequest,
    t: DateTime<Utc>,
) -> Result<RegisterResponse, Refusal> {
    let mut map = st.pending().lock();
    map.retain(|_, p| t - p.created < ttl());
    let existing = map
        .iter()
        .find(|(_, p)| p.machine == machine && p.req.node_key == req.node_key)
        .map(|(id, _)| id.clone());
    let id = existing.unwrap_or_else(|| {
        let id = new_auth_id();
        let (done, _) = watch::channel(None);
        map.insert(
            id.clone(),
            Arc::new(Pending {
                machine,
                req: req.clone(),
                created: t,
                done,
            }),
        );
        id
    });
    Ok(RegisterResponse {
        auth_url: format!("{}/register/{id}", st.config().server_url),
        ..RegisterResponse::default()
    })
}

/// The auth ID in a follow-up URL (its last path segment after `/register/`).
fn auth_id_of(url: &str) -> Option<&str> {
    let (_, id) = url.rsplit_once("/register/")?;
    let id = id.split(['?', '#', '/']).next()?;
    (!id.is_empty()).then_some(id)
}

/// The follow-up long poll: waits for the operator's decision.
pub(crate) async fn followup(
    st: &ControlState,
    machine: MachinePublic,
    req: &RegisterRequest,
) -> Result<RegisterResponse, Refusal> {
    let Some(id) = auth_id_of(&req.followup) else {
        return Err(Refusal::in_body("invalid followup URL"));
    };
    let Some(p) = st.pending().get(id).filter(|p| p.machine == machine) else {
        // Unknown, expired, or another machine's ID: say nothing about which.
        return Err(Refusal::in_body("registration not found or expired"));
    };
    let mut rx = p.done.subscribe();
    let wait = rx.wait_for(Option::is_some);
    match tokio::time::timeout(FOLLOWUP_WAIT, wait).await {
        Ok(Ok(v)) => match v.clone() {
            Some(Ok(r)) => Ok(r),
            Some(Err(why)) => Err(Refusal::in_body(why)),
            None => Err(Refusal::in_body("registration not found or expired")),
        },
        Ok(Err(_)) => Err(Refusal::in_body("registration not found or expired")),
        Err(_) => Ok(RegisterResponse {
            auth_url: req.followup.clone(),
            ..RegisterResponse::default()
        }),
    }
}

impl ControlState {
    /// Approves a pending interactive registration for `user` (`headscale auth register`):
    /// the node is created (or the machine's node for that user updated) and the waiting
    /// client is answered.
    pub async fn approve_registration(&self, auth_id: &str, user: UserId) -> Result<Node, Error> {
        let Some(p) = self
            .pending()
            .get(auth_id)
            .filter(|p| p.done.borrow().is_none())
        else {
            return Err(Error::Config(format!(
                "no pending registration with auth ID {auth_id:?} (it may have expired or been decided)"
            )));
        };
        if !self.ensure_user(user).await? {
            return Err(Error::Config(format!("user {} does not exist", user.get())));
        }
        let t = now();
        let req = &p.req;
        let reg = Registration {
            user_id: Some(user),
            expiry: new_expiry(self, req, false, false, t),
            ..Registration::from_request(p.machine, req, RegisterMethod::Cli, t)
        };
        let existing = self
            .store()
            .load()
            .nodes_by_machine_key(&p.machine)
            .find(|e| e.node.user_id == Some(user) && e.node.tags.is_empty())
            .map(|e| e.node.id);
        let n =
            crate::registration::store(self, reg, existing, crate::registration::nothing()).await?;
        // The entry stays (until its TTL) so a follow-up that arrives after the decision still
        // gets it; `send_replace` stores the answer even when nobody is waiting yet.
        p.done.send_replace(Some(Ok(response_for(self, &n, t))));
        tracing::info!(
            node = n.id.get(),
            user = user.get(),
            "interactive registration approved"
        );
        Ok(n)
    }

    /// Debug (`headscale debug create-node`): files a pending registration under `auth_id`
    /// as if a client with `machine` had sent `req`; an operator then decides it like any
    /// other. Refused when that auth ID is already pending.
    pub fn debug_pending_registration(
        &self,
        auth_id: &str,
        machine: MachinePublic,
        req: RegisterRequest,
    ) -> Result<(), Error> {
        let t = now();
        let auth_id = canonical(auth_id).into_owned();
        let mut map = self.pending().lock();
        map.retain(|_, p| t - p.created < ttl());
        if map.contains_key(&auth_id) {
            return Err(Error::Config(format!(
                "a registration with auth ID {auth_id:?} is already pending"
            )));
        }
        let (done, _) = watch::channel(None);
        map.insert(
            auth_id,
            Arc::new(Pending {
                machine,
                req,
                created: t,
                done,
            }),
        );
        Ok(())
    }

    /// Rejects a pending registration; the waiting client is told so.
    pub fn reject_registration(&self, auth_id: &str) -> Result<(), Error> {
        let Some(p) = self
            .pending()
            .get(auth_id)
            .filter(|p| p.done.borrow().is_none())
        else {
            return Err(Error::Config(format!(
                "no pending registration with auth ID {auth_id:?}"
            )));
        };
        p.done
            .send_replace(Some(Err("registration rejected".to_owned())));
        Ok(())
    }
}

/// `GET /register/{auth_id}`: tells the operator the command to run.
pub(crate) async fn page(State(st): State<ControlState>, Path(id): Path<String>) -> Response {
    if !well_formed(&id)
        || st
            .pending()
            .get(&id)
            .is_none_or(|p| p.done.borrow().is_some())
    {
        return (
            StatusCode::NOT_FOUND,
            "unknown or expired registration; run `tailscale up` again",
        )
            .into_response();
    }
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Registration - Headscale</title></head>\n\
         <body><h1>headscale</h1><h2>Machine registration</h2>\n\
         <p>Run the command below on the headscale server to add this machine to your network:</p>\n\
         <pre><code>headscale auth register --auth-id {id} --user USERNAME</code></pre>\n</body></html>\n"
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_auth_ids_have_headscales_shape() {
        let a = new_auth_id();
        assert_eq!(a.len(), 38);
        let random = a.strip_prefix("hskey-authreq-").unwrap_or_default();
        assert_eq!(random.len(), 24);
        assert!(
            random
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(well_formed(&a));
        assert_ne!(a, new_auth_id());
    }

    #[test]
    fn both_auth_id_forms_name_the_same_registration() {
        let full = "hskey-authreq-0123456789abcdef01234567";
        assert_eq!(canonical(full), full);
        assert_eq!(canonical("0123456789abcdef01234567"), full);
        assert!(well_formed("0123456789abcdef01234567"));
        assert!(!well_formed("hskey-authreq-0123"));
        assert!(!well_formed("hskey-authreq-0123456789abcdef0123456!"));
    }

    #[test]
    fn auth_id_comes_from_the_followup_path() {
        assert_eq!(
            auth_id_of("http://h:8080/register/abcDEF123"),
            Some("abcDEF123")
        );
        assert_eq!(auth_id_of("http://h/register/x?y=1"), Some("x"));
        assert_eq!(auth_id_of("http://h/register/"), None);
        assert_eq!(auth_id_of("http://h/other/x"), None);
    }
}
