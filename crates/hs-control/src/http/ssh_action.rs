//! `GET /machine/ssh/action/{src}/to/{dst}` inside the Noise session: what the destination
//! node asks when an SSH rule with action `check` matches a connection (the policy's
//! `HoldAndDelegate` URL). Within the rule's `checkPeriod` of the pair's last approval the
//! answer is accept; otherwise the server files a check, answers with a message telling the
//! user where to approve (`/auth/{auth_id}`) and a `HoldAndDelegate` URL carrying the auth
//! ID, and the node's follow-up request waits for the verdict. Only the destination node may
//! ask (its machine key is the session's), and a follow-up must name the pair its check was
//! filed for. Go Headscale 0.29.3's behaviour.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use hs_noise::NoiseSession;
use hs_types::NodeId;
use hs_types::tailcfg::SSHAction;
use http::{StatusCode, header};

use crate::clock::now;
use crate::state::ControlState;
use crate::state::pending::well_formed;

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

/// The handler.
pub(crate) async fn handle(
    State(st): State<ControlState>,
    Extension(session): Extension<NoiseSession>,
    Path((src, dst)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Ok(src) = src.parse::<u64>().map(NodeId) else {
        return refuse(StatusCode::BAD_REQUEST, "Invalid src_node_id");
    };
    let Ok(dst) = dst.parse::<u64>().map(NodeId) else {
        return refuse(StatusCode::BAD_REQUEST, "Invalid dst_node_id");
    };
    let snap = st.store().load_full();
    let Some(dst_node) = snap.node(dst).map(|e| e.node.clone()) else {
        return refuse(StatusCode::NOT_FOUND, "dst node not found");
    };
    if dst_node.machine_key != session.machine_key {
        tracing::warn!(
            dst = dst.get(),
            "SSH action asked by a machine that is not the destination"
        );
        return refuse(
            StatusCode::UNAUTHORIZED,
            "machine key does not match dst node",
        );
    }
    let period = snap
        .node(src)
        .and_then(|s| snap.policy().ssh_check_period(&s.node, &dst_node));
    drop(snap);
    let mut action = SSHAction {
        allow_agent_forwarding: true,
        allow_local_port_forwarding: true,
        allow_remote_port_forwarding: true,
        ..SSHAction::default()
    };
    match q.get("auth_id").filter(|a| !a.is_empty()) {
        Some(auth_id) => {
            if !well_formed(auth_id) {
                return refuse(StatusCode::BAD_REQUEST, "Invalid auth_id");
            }
            let Some(check) = st.ssh_check(auth_id) else {
                // Expired or lost (a restart): ask again while the policy still checks.
                if period.is_some() {
                    delegate(&st, &mut action, src, dst);
                    return answer(&action);
                }
                return refuse(StatusCode::BAD_REQUEST, "Invalid auth_id");
            };
            if check.src != src || check.dst != dst {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "src/dst pair does not match auth session",
                );
            }
            // The follow-up waits until the check lapses (`tuning.register_cache_expiration`);
            // a lapsed check is refused, as Go's cache eviction answers it.
            let lapse = st.lapses_in(check.created);
            let mut rx = check.verdict.subscribe();
            let verdict = tokio::time::timeout(lapse, rx.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|v| *v);
            if verdict == Some(true) {
                action.accept = true;
            } else {
                action.reject = true;
            }
        }
        None => {
            let fresh = period.filter(|p| !p.is_zero()).is_some_and(|p| {
                st.ssh_last_approval(src, dst)
                    .is_some_and(|at| chrono::TimeDelta::from_std(p).is_ok_and(|p| now() - at < p))
            });
            if fresh {
                action.accept = true;
            } else {
                delegate(&st, &mut action, src, dst);
            }
        }
    }
    answer(&action)
}

/// Files a check and fills in the message and the follow-up URL.
fn delegate(st: &ControlState, action: &mut SSHAction, src: NodeId, dst: NodeId) {
    let id = st.ssh_check_begin(src, dst);
    let base = st.config().server_url.trim_end_matches('/').to_owned();
    action.hold_and_delegate = format!(
        "{base}/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?auth_id={id}&local_user=$LOCAL_USER"
    );
    action.message = format!(
        "# Headscale SSH requires an additional check.\n\
         # To authenticate, visit: {base}/auth/{id}\n\
         # Authentication checked with Headscale SSH.\n"
    );
    tracing::info!(
        src = src.get(),
        dst = dst.get(),
        "SSH check pending, waiting for approval"
    );
}

fn answer(action: &SSHAction) -> Response {
    match serde_json::to_vec(action) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
    }
}
