//! `/debug/…` on the metrics listener, as Go Headscale serves it: what the control plane
//! holds right now, for an operator who is looking into a problem. Read-only, from one
//! NodeStore snapshot per request; no secret appears (auth IDs, keys' private halves and
//! tokens are never shown). Answered only to loopback, private (RFC 1918 / RFC 4193) and
//! tailnet (CGNAT, Tailscale ULA) addresses; anyone else gets 403, as in Go.
//!
//! Endpoints: `overview` (text, or JSON with `Accept: application/json`), `config` (the
//! configuration in force, secrets masked), `policy` (the policy in force, as parsed), `derp`
//! (the DERP map, as nodes get it), `nodestore`, `filter` and `ssh` (per node, as the
//! node is sent them), `routes` (Go's `DebugRoutes` in JSON: available, primary and
//! unhealthy; text `prefix: id` lines otherwise), `registration-cache` (registrations
//! waiting for an operator), `mapresponses` (the full map a node would get now, built as
//! for a one-shot poll; Go serves dumps written under `HEADSCALE_DEBUG_DUMP_MAPRESPONSE_PATH`
//! instead), `batcher` (open map streams: per node, its stream, the snapshot version it is
//! at and the bytes queued for it), `policy-manager` (per node: how many peers it sees,
//! its packet filter rules, whether it has an SSH policy). `/debug/` lists them.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::clock::now;
use crate::state::ControlState;

const ENDPOINTS: &[(&str, &str)] = &[
    ("overview", "State overview"),
    ("config", "Current configuration (secrets masked)"),
    ("policy", "Policy in force (as parsed)"),
    ("derp", "DERP map as nodes are sent it"),
    ("nodestore", "NodeStore information"),
    ("filter", "Packet filter of each node"),
    ("ssh", "SSH policy of each node"),
    ("routes", "Primary routes"),
    ("mapresponses", "The map each node would get now (?node=ID)"),
    ("batcher", "Open map streams and what is queued for them"),
    (
        "policy-manager",
        "Per node: peers it sees, filter rules, SSH policy",
    ),
    (
        "registration-cache",
        "Registrations waiting for an operator",
    ),
];

/// The `/debug` routes over `st` and the configuration in force, behind the address check.
/// Serve them with `into_make_service_with_connect_info::<SocketAddr>()` so the check sees
/// the peer.
pub fn routes(st: ControlState, config: &hs_config::Config) -> Router {
    // The config's Debug form masks every secret (keys, client secrets, passwords).
    let config_text: std::sync::Arc<str> = format!("{config:#?}\n").into();
    Router::new()
        .route(
            "/debug/config",
            get(move || {
                let text = config_text.clone();
                async move { ([(header::CONTENT_TYPE, "text/plain")], text.to_string()) }
            }),
        )
        .route("/debug", get(index))
        .route("/debug/", get(index))
        .route("/debug/overview", get(overview))
        .route("/debug/policy", get(policy))
        .route("/debug/derp", get(derp))
        .route("/debug/nodestore", get(nodestore))
        .route("/debug/filter", get(filter))
        .route("/debug/ssh", get(ssh))
        .route("/debug/routes", get(primary_routes))
        .route("/debug/registration-cache", get(registration_cache))
        .route("/debug/mapresponses", get(mapresponses))
        .route("/debug/batcher", get(batcher))
        .route("/debug/policy-manager", get(policy_manager))
        .layer(middleware::from_fn(only_local))
        .with_state(st)
}

/// Loopback, RFC 1918 / RFC 4193 private, and the tailnet's own ranges.
pub fn debug_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback() || v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return debug_allowed(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00
        }
    }
}

async fn only_local(req: Request, next: Next) -> Response {
    // The listener's view of the peer (axum's test stand-in counts too).
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            req.extensions()
                .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        });
    match peer {
        Some(ip) if debug_allowed(ip) => next.run(req).await,
        _ => (StatusCode::FORBIDDEN, "debug access denied\n").into_response(),
    }
}

fn json_response(v: &Value) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn wants_json(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

async fn index() -> Response {
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>headscale debug</title><h1>headscale debug</h1><ul>",
    );
    for (path, what) in ENDPOINTS {
        html.push_str(&format!(
            "<li><a href=\"/debug/{path}\">{path}</a>: {what}</li>"
        ));
    }
    html.push_str("</ul>");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn policy(State(st): State<ControlState>) -> Response {
    let text = match st.policy().await {
        Ok(Some(p)) => format!("{p:#?}\n"),
        Ok(None) => "no policy in force: every node may reach every node\n".to_owned(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

async fn derp(State(st): State<ControlState>) -> Response {
    match st.derp_map().await {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v) => json_response(&v),
            Err(_) => (
                [(header::CONTENT_TYPE, "application/json")],
                text.to_string(),
            )
                .into_response(),
        },
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn overview(State(st): State<ControlState>, headers: HeaderMap) -> Response {
    let snap = st.store().load_full();
    let nodes = snap.len();
    let online = snap.nodes().filter(|e| e.online).count();
    let tagged = snap.nodes().filter(|e| e.node.is_tagged()).count();
    let users = snap.users().count();
    let routes = snap.routes().count();
    let pending = st.pending().lock().len();
    let policy = match st.policy().await {
        Ok(Some(_)) => "in force",
        Ok(None) => "none (every node may reach every node)",
        Err(_) => "unknown (the coordinator is stopping)",
    };
    if wants_json(&headers) {
        return json_response(&json!({
            "nodes": {"total": nodes, "online": online, "tagged": tagged},
            "users": users,
            "primary_routes": routes,
            "pending_registrations": pending,
            "policy": policy,
            "snapshot_version": snap.version(),
        }));
    }
    let text = format!(
        "nodes: {nodes} ({online} online, {tagged} tagged)\nusers: {users}\nprimary routes: {routes}\n\
         pending registrations: {pending}\npolicy: {policy}\nsnapshot version: {}\n",
        snap.version()
    );
    ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn nodestore(State(st): State<ControlState>) -> Response {
    let snap = st.store().load_full();
    let nodes: Vec<Value> = snap
        .nodes()
        .map(|e| {
            let n = &e.node;
            json!({
                "id": n.id.get(),
                "given_name": n.given_name,
                "hostname": n.hostname,
                "user": n.user_id.map(|u| u.get()),
                "tags": n.tags,
                "ipv4": n.ipv4,
                "ipv6": n.ipv6,
                "machine_key": n.machine_key.to_string(),
                "node_key": n.node_key.to_string(),
                "online": e.online,
                "logged_out": e.logged_out,
                "home_derp": e.home_derp,
                "announced_routes": e.announced_routes,
                "approved_routes": n.approved_routes,
                "primary_routes": e.primary_routes,
                "expiry": n.expiry,
                "last_seen": n.last_seen,
            })
        })
        .collect();
    json_response(&Value::Array(nodes))
}

/// Per node, `f` of the node as the policy in force answers it, parsed from its wire form.
fn per_node(
    st: &ControlState,
    f: impl Fn(&dyn hs_nodestore::PolicyView, &hs_types::model::Node) -> Option<Value>,
) -> Response {
    let snap = st.store().load_full();
    let mut out = serde_json::Map::new();
    for e in snap.nodes() {
        let v = f(snap.policy().as_ref(), &e.node).unwrap_or(Value::Null);
        out.insert(e.node.id.get().to_string(), v);
    }
    json_response(&Value::Object(out))
}

async fn filter(State(st): State<ControlState>) -> Response {
    per_node(&st, |p, n| serde_json::from_str(&p.packet_filter(n)).ok())
}

async fn ssh(State(st): State<ControlState>) -> Response {
    per_node(&st, |p, n| {
        p.ssh_policy(n).and_then(|s| serde_json::from_str(&s).ok())
    })
}

/// Go's `DebugRoutes`: with `Accept: application/json`, `available_routes` (per online node
/// id, the routes it announces and has approval for, exit routes included, sorted),
/// `primary_routes` (prefix → elected node id) and `unhealthy_nodes` (ids that failed their
/// last HA probe, sorted; omitted when none). Otherwise plain text, one `prefix: id` line per
/// primary route, sorted by prefix (empty when none), as Go answers.
async fn primary_routes(State(st): State<ControlState>, headers: HeaderMap) -> Response {
    let snap = st.store().load_full();
    let mut primaries: Vec<(ipnet::IpNet, u64)> = snap
        .routes()
        .filter_map(|(prefix, _)| snap.primary_route(prefix).map(|id| (*prefix, id.get())))
        .collect();
    primaries.sort();
    if !wants_json(&headers) {
        let text: String = primaries
            .iter()
            .map(|(p, id)| format!("{p}: {id}\n"))
            .collect();
        return ([(header::CONTENT_TYPE, "text/plain")], text).into_response();
    }
    let mut available = serde_json::Map::new();
    let mut unhealthy = Vec::new();
    for e in snap.nodes() {
        if e.unhealthy {
            unhealthy.push(e.node.id.get());
        }
        if !e.online {
            continue;
        }
        let mut served: Vec<ipnet::IpNet> = e.served_routes().copied().collect();
        if served.is_empty() {
            continue;
        }
        served.sort();
        served.dedup();
        let served: Vec<String> = served.iter().map(ToString::to_string).collect();
        available.insert(e.node.id.get().to_string(), json!(served));
    }
    let primary: serde_json::Map<String, Value> = primaries
        .iter()
        .map(|(p, id)| (p.to_string(), json!(id)))
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("available_routes".into(), Value::Object(available));
    out.insert("primary_routes".into(), Value::Object(primary));
    if !unhealthy.is_empty() {
        unhealthy.sort_unstable();
        out.insert("unhealthy_nodes".into(), json!(unhealthy));
    }
    json_response(&Value::Object(out))
}

async fn registration_cache(State(st): State<ControlState>) -> Response {
    let t = now();
    let entries: Vec<Value> = st
        .pending()
        .lock()
        .values()
        .map(|p| {
            // The auth ID is what completes a registration: never shown.
            json!({
                "hostname": p.req.hostinfo.as_ref().map(|h| h.hostname.clone()),
                "machine_key": p.machine.to_string(),
                "node_key": p.req.node_key.to_string(),
                "age_seconds": (t - p.created).num_seconds(),
                "decided": p.done.borrow().is_some(),
            })
        })
        .collect();
    json_response(&json!({"count": entries.len(), "entries": entries}))
}

/// `?node=ID`.
#[derive(Debug, serde::Deserialize)]
struct NodeQuery {
    node: Option<String>,
}

async fn mapresponses(State(st): State<ControlState>, Query(q): Query<NodeQuery>) -> Response {
    let snap = st.store().load_full();
    let Some(raw) = q.node else {
        let nodes: Vec<Value> = snap
            .nodes()
            .map(|e| {
                let id = e.node.id.get();
                json!({"id": id, "given_name": e.node.given_name, "url": format!("/debug/mapresponses?node={id}")})
            })
            .collect();
        return json_response(&json!({"nodes": nodes}));
    };
    let Ok(id) = raw.parse::<u64>() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("node={raw:?}: want a node ID (a number)\n"),
        )
            .into_response();
    };
    if snap.node(hs_types::NodeId(id)).is_none() {
        return (StatusCode::NOT_FOUND, format!("no node with ID {id}\n")).into_response();
    }
    // Plain framing: a u32 length, then the JSON.
    match st.one_shot(hs_types::NodeId(id), false).await {
        Ok(frame) if frame.len() >= 4 => (
            [(header::CONTENT_TYPE, "application/json")],
            frame.slice(4..),
        )
            .into_response(),
        Ok(_) => (StatusCode::INTERNAL_SERVER_ERROR, "empty map\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn batcher(State(st): State<ControlState>) -> Response {
    let total = st.store().load().len();
    let streams = st.streams().await;
    let queued: usize = streams.iter().map(|s| s.queued_bytes).sum();
    let list: Vec<Value> = streams
        .iter()
        .map(|s| {
            json!({
                "node": s.node.get(),
                "stream": s.conn,
                "zstd": s.zstd,
                "version": s.version,
                "queued_bytes": s.queued_bytes,
            })
        })
        .collect();
    json_response(&json!({
        "total_nodes": total,
        "connected_nodes": streams.len(),
        "queued_bytes": queued,
        "streams": list,
    }))
}

async fn policy_manager(State(st): State<ControlState>) -> Response {
    let snap = st.store().load_full();
    let policy = snap.policy();
    let mut out = serde_json::Map::new();
    for v in snap.nodes() {
        let peers = snap
            .nodes()
            .filter(|p| p.node.id != v.node.id && snap.can_see(v, p))
            .count();
        let rules = serde_json::from_str::<Value>(&policy.packet_filter(&v.node))
            .ok()
            .and_then(|f| f.as_array().map(Vec::len))
            .unwrap_or(0);
        out.insert(
            v.node.id.get().to_string(),
            json!({
                "given_name": v.node.given_name,
                "peers": peers,
                "filter_rules": rules,
                "ssh_policy": policy.ssh_policy(&v.node).is_some(),
            }),
        );
    }
    json_response(&json!({
        "policy": if st.policy().await.ok().flatten().is_some() { "in force" } else { "none (every node may reach every node)" },
        "nodes": out,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_for_local_private_and_tailnet_addresses() {
        for ok in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.5.5",
            "100.64.0.1",
            "100.127.255.254",
            "fd7a:115c:a1e0::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(debug_allowed(ok.parse().expect("ip")), "{ok}");
        }
        for no in [
            "8.8.8.8",
            "100.128.0.1",
            "2001:db8::1",
            "::ffff:1.1.1.1",
            "172.32.0.1",
        ] {
            assert!(!debug_allowed(no.parse().expect("ip")), "{no}");
        }
    }
}
