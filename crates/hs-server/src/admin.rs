//! The admin API's listeners: the unix socket (no auth, for the local CLI) and, when
//! `grpc_listen_addr` is set and TLS or `grpc_allow_insecure` allows it, remote gRPC.

use std::sync::Arc;

use hs_config::{Config, PolicyMode};
use hs_control::ControlState;
use tokio::sync::watch;

use crate::error::Error;

/// The admin service over the database and the control plane, with `/api/v2`'s state file
/// beside the Noise private key (see [`oauth_state_path`]); the DNS edits kept there are put
/// in force.
pub(crate) async fn service(
    c: &Config,
    db: &hs_db::Db,
    state: ControlState,
) -> Result<hs_api::Admin, Error> {
    let mode = match c.policy.mode {
        PolicyMode::File => hs_api::PolicyMode::File,
        PolicyMode::Database => hs_api::PolicyMode::Database,
    };
    let path = oauth_state_path(c);
    let store = tokio::task::spawn_blocking(move || hs_api::v2::OAuthStore::open(path))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|e| Error::Config(format!("/api/v2 state file: {e}")))?;
    let admin = hs_api::Admin::new(Arc::new(db.clone()), state, hs_api::system_clock(), mode)
        .with_oauth_store(store);
    let admin = if c.policy.path.is_empty() {
        admin
    } else {
        admin.with_policy_file(&c.policy.path)
    };
    hs_api::v2::V2::new(admin.clone())
        .apply_stored_dns()
        .await
        .map_err(|e| Error::Config(format!("DNS edits stored by /api/v2: {e}")))?;
    Ok(admin)
}

/// Where `/api/v2` keeps OAuth clients and DNS edits: `api_v2.json` in the directory of
/// `noise.private_key_path` (the server's state directory; Go Headscale's schema check
/// leaves no room for them in the database).
pub fn oauth_state_path(c: &Config) -> std::path::PathBuf {
    c.noise_private_key_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::Path::new("."))
        .join("api_v2.json")
}

/// Starts the listeners; both stop when `stop` turns true.
pub(crate) async fn spawn_listeners(
    c: &Config,
    admin: &hs_api::Admin,
    tls: Option<&hs_tls::Tls>,
    stop: &watch::Receiver<bool>,
) -> Result<(), Error> {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if !c.unix_socket.as_os_str().is_empty() {
        let listener = hs_api::serve::bind_unix(&c.unix_socket, c.unix_socket_permission)
            .map_err(|e| Error::Config(format!("unix_socket {}: {e}", c.unix_socket.display())))?;
        tracing::info!(path = %c.unix_socket.display(), "admin API on the unix socket");
        let admin = admin.clone();
        let stop = stopped(stop.clone());
        tokio::spawn(async move {
            if let Err(e) = hs_api::serve::serve_unix(listener, admin, stop).await {
                tracing::error!(error = %e, "unix socket admin listener failed");
            }
        });
    }
    if c.grpc_listen_addr.is_empty() {
        return Ok(());
    }
    // With TLS on the main listener, gRPC serves the same certificate (files or ACME), as Go.
    let security = match tls {
        Some(tls) => Some(hs_api::serve::GrpcSecurity::Tls(
            tls.grpc_acceptor()
                .map_err(|e| Error::Config(format!("grpc_listen_addr: {e}")))?,
        )),
        None => hs_api::serve::grpc_security(None, None, c.grpc_allow_insecure)
            .map_err(|e| Error::Config(format!("grpc_listen_addr: {e}")))?,
    };
    let Some(security) = security else {
        return Ok(());
    };
    let addr = c.grpc_listen_addr.clone();
    let target = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.clone()
    };
    let listener = tokio::net::TcpListener::bind(&target)
        .await
        .map_err(|source| Error::Bind {
            what: "grpc_listen_addr",
            addr,
            source,
        })?;
    let admin = admin.clone();
    let stop = stopped(stop.clone());
    tokio::spawn(async move {
        if let Err(e) = hs_api::serve::serve_grpc(listener, admin, security, stop).await {
            tracing::error!(error = %e, "gRPC admin listener failed");
        }
    });
    Ok(())
}
