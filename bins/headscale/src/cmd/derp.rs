//! The embedded DERP relay on the main listener (`/derp` and its aux endpoints, `POST
//! /verify`) and the STUN responder, when `derp.server.enabled`.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use hs_derp::{ClientVerifier, DerpServer, ServerOptions};
use hs_types::config::DerpServerConfig;
use hs_types::key::NodePrivate;

/// A verifier that admits the node keys the control plane knows now.
pub(crate) fn known_nodes(state: hs_control::ControlState) -> ClientVerifier {
    Arc::new(move |key| state.store().load().node_by_node_key(key).is_some())
}

/// The relay, with admission checked against `known` when `derp.server.verify_clients`.
pub(crate) fn relay(
    key: NodePrivate,
    cfg: &DerpServerConfig,
    known: &ClientVerifier,
) -> Arc<DerpServer> {
    let opts = ServerOptions {
        verify_clients: cfg.verify_clients.then(|| Arc::clone(known)),
        ..ServerOptions::default()
    };
    DerpServer::new(key, opts)
}

#[derive(Clone)]
struct Derp {
    server: Arc<DerpServer>,
    known: ClientVerifier,
}

/// The DERP endpoints for the main router. `/verify` answers for other DERP servers
/// (`--verify-client-url`) whether a node key belongs to this tailnet.
pub(crate) fn routes(server: Arc<DerpServer>, known: ClientVerifier) -> Router {
    [
        "/derp",
        "/derp/probe",
        "/derp/latency-check",
        "/generate_204",
        "/bootstrap-dns",
        "/verify",
    ]
    .into_iter()
    .fold(Router::new(), |r, path| r.route(path, any(handle)))
    .with_state(Derp { server, known })
}

async fn handle(State(d): State<Derp>, req: Request) -> Response {
    // The main listener does not record peer addresses, so the relay sees none.
    hs_derp::http::handle(req, d.server, Some(d.known), None)
        .await
        .map(axum::body::Body::new)
}

/// Binds `derp.server.stun_listen_addr` (Go's `:3478` form allowed) and answers STUN
/// binding requests in the background.
pub(crate) async fn spawn_stun(addr: &str) -> anyhow::Result<()> {
    let target = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    let socket = tokio::net::UdpSocket::bind(&target)
        .await
        .with_context(|| format!("derp.server.stun_listen_addr: binding {addr}"))?;
    tracing::info!(addr = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(), "STUN listening");
    tokio::spawn(async move {
        if let Err(e) = hs_derp::stun::serve(socket).await {
            tracing::error!(error = %e, "STUN responder stopped");
        }
    });
    Ok(())
}
