//! The embedded DERP relay (its routes on the main listener, STUN on its own UDP port) and
//! the DERP map clients get: `derp.urls` fetched over HTTP(S), `derp.paths` files and the
//! embedded region, merged in that order and refreshed every `derp.update_frequency`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use hs_config::{Config, DerpServerConfig};
use hs_control::ControlState;
use hs_derp::refresh::{self, DerpMapLoader};
use hs_derp::{ClientVerifier, DerpServer, ServerOptions, derpmap};
use hs_types::key::NodePrivate;
use hs_types::tailcfg::DERPMap;

use crate::error::Error;

/// Whether a node key belongs to a node of this tailnet (`derp.server.verify_clients`).
pub(crate) fn known_nodes(state: ControlState) -> ClientVerifier {
    Arc::new(move |key| state.store().load().node_by_node_key(key).is_some())
}

/// The relay, verifying clients against the tailnet when the config asks for it.
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

/// The relay's HTTP paths, as Tailscale's derper serves them.
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

/// `POST /verify` alone, for a server whose embedded relay is off: an external derper run
/// with `--verify-client-url` still asks it whether a node key belongs to the tailnet.
pub(crate) fn verify_route(known: ClientVerifier) -> Router {
    Router::new()
        .route("/verify", any(verify))
        .with_state(known)
}

async fn verify(State(known): State<ClientVerifier>, req: Request) -> Response {
    hs_derp::http::handle_verify(req, &known)
        .await
        .map(axum::body::Body::new)
}

async fn handle(State(d): State<Derp>, req: Request) -> Response {
    // The main listener records each connection's peer.
    let remote = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    hs_derp::http::handle(req, d.server, Some(d.known), remote)
        .await
        .map(axum::body::Body::new)
}

/// Binds `derp.server.stun_listen_addr` and answers STUN there in the background.
pub(crate) async fn spawn_stun(addr: &str) -> Result<(), Error> {
    let target = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    let socket = tokio::net::UdpSocket::bind(&target)
        .await
        .map_err(|source| Error::Bind {
            what: "derp.server.stun_listen_addr",
            addr: addr.to_owned(),
            source,
        })?;
    tracing::info!(addr = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(), "STUN listening");
    tokio::spawn(async move {
        if let Err(e) = hs_derp::stun::serve(socket).await {
            tracing::error!(error = %e, "STUN responder stopped");
        }
    });
    Ok(())
}

/// How long one `derp.urls` fetch may take.
const DERP_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the DERP map comes from.
pub(crate) fn loader(c: &Config) -> Result<DerpMapLoader, Error> {
    let embedded = if c.derp.server.enabled && c.derp.server.automatically_add_embedded_derp_region
    {
        Some(
            derpmap::embedded_region(&c.server_url, &c.derp.server)
                .map_err(|e| Error::Config(format!("derp.server: {e}")))?,
        )
    } else {
        None
    };
    Ok(DerpMapLoader {
        urls: c.derp.urls.clone(),
        paths: c.derp.paths.clone(),
        embedded,
        seed: derpmap::seed_from_base_domain(&c.dns.base_domain),
        fetch: hs_derp::fetch::http_fetcher(DERP_FETCH_TIMEOUT),
    })
}

/// The DERP map clients get at start. A `derp.paths` file that cannot be read stops the
/// server; a `derp.urls` source that cannot be fetched does not (the server may start before
/// the network does): the map is built without the URLs and the refresh retries them.
pub(crate) async fn initial_map(loader: &DerpMapLoader) -> Result<DERPMap, Error> {
    let paths_error = |e: hs_derp::Error| Error::Config(format!("derp.paths: {e}"));
    match loader.load().await {
        Ok(map) => Ok(map),
        Err(e) if !loader.urls.is_empty() => {
            tracing::warn!(error = %e, "derp.urls: not fetched; starting with derp.paths and the embedded region only");
            let local = DerpMapLoader {
                urls: Vec::new(),
                ..loader.clone()
            };
            local.load().await.map_err(paths_error)
        }
        Err(e) => Err(paths_error(e)),
    }
}

/// With `derp.auto_update_enabled`, reloads the DERP map every `derp.update_frequency` and
/// pushes each change to the connected nodes.
pub(crate) fn spawn_refresh(
    c: &Config,
    loader: DerpMapLoader,
    first: DERPMap,
    state: ControlState,
) {
    if !c.derp.auto_update_enabled || (loader.urls.is_empty() && loader.paths.is_empty()) {
        return;
    }
    let every = c.derp.update_frequency;
    let (tx, mut rx) = tokio::sync::watch::channel(Arc::new(first));
    tokio::spawn(refresh::refresh_loop(
        loader,
        every,
        refresh::Backoff::default(),
        tx,
    ));
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let map = Arc::clone(&rx.borrow_and_update());
            match state.set_derp_map(&map).await {
                Ok(true) => tracing::info!("new DERP map sent to nodes"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "new DERP map not applied"),
            }
        }
    });
    tracing::info!(every = ?every, "DERP map refresh enabled");
}
