//! Interactive login over HTTP: a register request without credentials gets an `AuthURL`
//! (`<server_url>/register/<auth_id>`); the client long-polls with `Followup` set to it while
//! the operator runs `headscale auth register --auth-id <id> --user <name>` (a command in
//! `crate::state::pending`); `GET /register/{auth_id}` shows the operator that command.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use hs_types::MachinePublic;
use hs_types::tailcfg::{RegisterRequest, RegisterResponse};
use http::StatusCode;
use tokio::sync::watch;

use super::register::Refusal;
use crate::clock::now;
use crate::state::ControlState;
use crate::state::pending::{Pending, new_auth_id, well_formed};

/// How long one follow-up long poll waits before answering "still pending".
const FOLLOWUP_WAIT: Duration = Duration::from_secs(120);

/// Starts (or repeats) an interactive registration.
pub(crate) fn start(
    st: &ControlState,
    machine: MachinePublic,
    req: &RegisterRequest,
    t: DateTime<Utc>,
) -> Result<RegisterResponse, Refusal> {
    let ttl = st.register_ttl();
    let mut map = st.pending().lock();
    map.retain(|_, p| t - p.created < ttl);
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

/// The follow-up long poll: waits for the operator's decision, at most until the
/// registration lapses (`tuning.register_cache_expiration`). As in Go Headscale, a follow-up
/// for a registration that has lapsed or is unknown starts a new one: the client gets a new
/// `AuthURL` to show instead of polling a dead one until it gives up.
pub(crate) async fn followup(
    st: &ControlState,
    machine: MachinePublic,
    req: &RegisterRequest,
) -> Result<RegisterResponse, Refusal> {
    let Some(id) = auth_id_of(&req.followup) else {
        return Err(Refusal::in_body("invalid followup URL"));
    };
    // Another machine's ID is answered like an unknown one, so a leaked URL tells its holder
    // nothing; the new registration is bound to the asking machine and registers nothing
    // without an operator.
    let Some(p) = st.live_registration(id).filter(|p| p.machine == machine) else {
        return start(st, machine, req, now());
    };
    let lapse = st.lapses_in(p.created);
    let mut rx = p.done.subscribe();
    let wait = rx.wait_for(Option::is_some);
    match tokio::time::timeout(FOLLOWUP_WAIT.min(lapse), wait).await {
        Ok(Ok(v)) => decision(v.clone()),
        Ok(Err(_)) => Err(Refusal::in_body("registration not found or expired")),
        Err(_) if lapse <= FOLLOWUP_WAIT => {
            // A decision that landed as the wait ended still counts.
            let late = p.done.borrow().clone();
            if late.is_some() {
                return decision(late);
            }
            // Dropped here rather than left to the next prune, so `start` cannot hand the
            // lapsed ID out again for this machine and node key.
            st.pending().lock().retain(|_, q| !Arc::ptr_eq(q, &p));
            start(st, machine, req, now())
        }
        Err(_) => Ok(RegisterResponse {
            auth_url: req.followup.clone(),
            ..RegisterResponse::default()
        }),
    }
}

/// The answer for a decided registration.
fn decision(o: crate::state::pending::Outcome) -> Result<RegisterResponse, Refusal> {
    match o {
        Some(Ok(r)) => Ok(r),
        Some(Err(why)) => Err(Refusal::in_body(why)),
        None => Err(Refusal::in_body("registration not found or expired")),
    }
}

/// `GET /register/{auth_id}`: tells the operator the command to run; once the machine is
/// registered, says so (a second visit is not an error); an unknown or expired ID gets 404
/// with what to do.
pub(crate) async fn page(State(st): State<ControlState>, Path(id): Path<String>) -> Response {
    use super::page::{escape, html};
    // None: unknown; Some(None): waiting; Some(Some(true)): approved; Some(Some(false)): refused.
    let state = well_formed(&id)
        .then(|| st.live_registration(&id))
        .flatten()
        .map(|p| p.done.borrow().as_ref().map(Result::is_ok));
    match state {
        None => (
            StatusCode::NOT_FOUND,
            Html(html(
                "Registration not found",
                "<p class=\"bad\">This registration link is unknown or has expired.</p>\n\
                 <p>Run <code>tailscale up</code> again on the machine to get a new link.</p>",
            )),
        )
            .into_response(),
        Some(Some(false)) => Html(html(
            "Registration refused",
            "<p class=\"bad\">The server's operator did not add this machine.</p>\n\
             <p>Ask them, then run <code>tailscale up</code> again.</p>",
        ))
        .into_response(),
        Some(Some(true)) => Html(html(
            "Machine registered",
            "<p class=\"ok\">This machine has been added to the network.</p>\n\
             <p>You can close this page; Tailscale on the machine connects by itself.</p>",
        ))
        .into_response(),
        Some(None) => Html(html(
            "Machine registration",
            &format!(
                "<p>Run this command on the headscale server to add the machine to your network, \
                 with the user who should own it:</p>\n\
                 <pre><code>headscale auth register --auth-id {} --user USERNAME</code></pre>\n\
                 <p>This page shows when it is done once reloaded.</p>",
                escape(&id)
            ),
        ))
        .into_response(),
    }
}

/// `GET /auth/{auth_id}` without OIDC: an SSH check waiting for approval shows the operator
/// the commands that decide it; a decided one says how; an unknown or expired one gets 404.
pub(crate) async fn auth_page(State(st): State<ControlState>, Path(id): Path<String>) -> Response {
    use super::page::{escape, html};
    let verdict = well_formed(&id)
        .then(|| st.ssh_check(&id))
        .flatten()
        .map(|c| *c.verdict.borrow());
    match verdict {
        None => (
            StatusCode::NOT_FOUND,
            Html(html(
                "Authentication not found",
                "<p class=\"bad\">This authentication link is unknown or has expired.</p>\n\
                 <p>Connect again to get a new link.</p>",
            )),
        )
            .into_response(),
        Some(Some(true)) => Html(html(
            "SSH session authorized",
            "<p class=\"ok\">The SSH session was approved.</p>\n<p>You may return to your terminal.</p>",
        ))
        .into_response(),
        Some(Some(false)) => Html(html(
            "SSH session refused",
            "<p class=\"bad\">The SSH session was refused.</p>",
        ))
        .into_response(),
        Some(None) => Html(html(
            "SSH session check",
            &format!(
                "<p>An SSH connection is waiting for approval. The server's operator approves it \
                 with:</p>\n<pre><code>headscale auth approve --auth-id {id}</code></pre>\n\
                 <p>or refuses it with <code>headscale auth reject --auth-id {id}</code>.</p>",
                id = escape(&id)
            ),
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
