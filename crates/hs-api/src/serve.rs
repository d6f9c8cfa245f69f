//! Putting the API on listeners: the gRPC TCP listener (`grpc_listen_addr`, API-key auth),
//! the unix socket (`unix_socket`, no auth, for the local CLI) and the router hs-control
//! mounts on the main HTTP listener.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use axum::Router;
use tokio::net::{TcpListener, UnixListener};

use crate::error::Error;
use crate::service::Admin;
use crate::{auth, grpc, rest};

/// REST and gRPC on one router. With `authenticated`, every API call needs a valid bearer
/// key; the OpenAPI document stays public either way.
pub fn app(admin: Admin, authenticated: bool) -> Router {
    let api = rest::router(admin.clone()).merge(grpc::router(admin.clone()));
    let api = if authenticated {
        api.layer(axum::middleware::from_fn_with_state(
            admin,
            auth::require_api_key,
        ))
    } else {
        api
    };
    rest::docs_router().merge(api)
}

/// The `/api/v1` router (with API-key auth and the public OpenAPI document) that hs-control
/// merges into the main HTTP listener.
pub fn http_router(admin: Admin) -> Router {
    let api = rest::router(admin.clone()).layer(axum::middleware::from_fn_with_state(
        admin,
        auth::require_api_key,
    ));
    rest::docs_router().merge(api)
}

/// Serves gRPC (and REST) with API-key auth on `listener` until `shutdown` resolves.
///
/// Without TLS this is only allowed when the operator set `grpc_allow_insecure`; TLS on this
/// listener is not implemented yet, so `allow_insecure == false` is refused with a clear
/// error rather than silently serving plaintext.
pub async fn serve_grpc(
    listener: TcpListener,
    admin: Admin,
    allow_insecure: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if !allow_insecure {
        return Err(Error::Listen {
            addr,
            source: std::io::Error::other(
                "gRPC over TLS is not supported yet: set grpc_allow_insecure: true (and keep the \
                 port private) or leave grpc_listen_addr unused",
            ),
        });
    }
    tracing::info!(%addr, "serving the gRPC admin API (API key required, no TLS)");
    axum::serve(listener, app(admin, true))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Serve(e.to_string()))
}

/// Binds the unix socket at `path` with permission bits `mode` (e.g. `0o770`), replacing a
/// stale socket file from an earlier run.
pub fn bind_unix(path: &Path, mode: u32) -> Result<UnixListener, Error> {
    let err = |source| Error::Listen {
        addr: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

/// Serves REST and gRPC without authentication on a unix socket until `shutdown` resolves.
pub async fn serve_unix(
    listener: UnixListener,
    admin: Admin,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    axum::serve(listener, app(admin, false))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Serve(e.to_string()))
}
