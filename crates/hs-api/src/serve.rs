//! Putting the API on listeners: the gRPC TCP listener (`grpc_listen_addr`, API-key auth),
//! the unix socket (`unix_socket`, no auth, for the local CLI) and the router hs-control
//! mounts on the main HTTP listener.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::error::Error;
use crate::service::Admin;
use crate::{auth, grpc, rest};

/// REST and gRPC on one router. With `authenticated`, every API call needs a valid bearer
/// key; the OpenAPI document stays public either way. The key is checked on the routes that
/// exist (`route_layer`), so an unknown path is a plain 404 rather than a 401.
pub fn app(admin: Admin, authenticated: bool) -> Router {
    let api = rest::router(admin.clone()).merge(grpc::router(admin.clone()));
    let api = if authenticated {
        api.route_layer(axum::middleware::from_fn_with_state(
            admin,
            auth::require_api_key,
        ))
    } else {
        api
    };
    rest::docs_router().merge(api)
}

/// The `/api/v1` router (with API-key auth and the public OpenAPI document) and `/api/v2`
/// (its own auth: API keys or OAuth access tokens) that hs-control merges into the main HTTP
/// listener.
pub fn http_router(admin: Admin) -> Router {
    let v2 = crate::v2::router(crate::v2::V2::new(admin.clone()));
    let api = rest::router(admin.clone()).route_layer(axum::middleware::from_fn_with_state(
        admin,
        auth::require_api_key,
    ));
    rest::docs_router().merge(v2).merge(api)
}

/// How the gRPC listener protects its traffic.
#[derive(Clone)]
pub enum GrpcSecurity {
    /// TLS with the server's certificate (`tls_cert_path` / `tls_key_path`).
    Tls(TlsAcceptor),
    /// Plaintext, allowed only by `grpc_allow_insecure: true`.
    Insecure,
}

impl std::fmt::Debug for GrpcSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tls(_) => "Tls",
            Self::Insecure => "Insecure",
        })
    }
}

/// Chooses the gRPC listener's security the way Headscale 0.29 does: TLS when a certificate
/// and key are configured, else plaintext if `grpc_allow_insecure` is set, else `None`: the
/// remote gRPC listener is not started (the unix socket and REST API still are).
pub fn grpc_security(
    tls_cert_path: Option<&Path>,
    tls_key_path: Option<&Path>,
    allow_insecure: bool,
) -> Result<Option<GrpcSecurity>, Error> {
    match (tls_cert_path, tls_key_path) {
        (Some(cert), Some(key)) => load_tls(cert, key).map(|t| Some(GrpcSecurity::Tls(t))),
        (Some(_), None) | (None, Some(_)) => Err(Error::Tls(
            "tls_cert_path and tls_key_path must be set together".into(),
        )),
        (None, None) if allow_insecure => Ok(Some(GrpcSecurity::Insecure)),
        (None, None) => {
            tracing::info!(
                "remote gRPC disabled: set tls_cert_path/tls_key_path or grpc_allow_insecure to enable it"
            );
            Ok(None)
        }
    }
}

/// Loads a PEM certificate chain and private key into a TLS acceptor that offers HTTP/2
/// (gRPC) and HTTP/1.1.
pub fn load_tls(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, Error> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("reading certificate {}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "no certificate found in {}",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| Error::Tls(format!("reading private key {}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("certificate and key do not match: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Serves gRPC (and REST) with API-key auth on `listener` until `shutdown` resolves.
pub async fn serve_grpc(
    listener: TcpListener,
    admin: Admin,
    security: GrpcSecurity,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let router = app(admin, true);
    match security {
        GrpcSecurity::Insecure => {
            tracing::warn!(%addr, "serving the gRPC admin API without TLS (grpc_allow_insecure)");
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| Error::Serve(e.to_string()))
        }
        GrpcSecurity::Tls(acceptor) => {
            tracing::info!(%addr, "serving the gRPC admin API over TLS");
            serve_tls(listener, acceptor, router, shutdown).await;
            Ok(())
        }
    }
}

/// Accepts TLS connections until `shutdown`; each connection runs in a task owned by a
/// `JoinSet`, so stopping drops them all.
async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accepting a gRPC connection");
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        conns.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "gRPC connection ended with an error");
            }
        });
    }
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
    let listener = crate::socket_authority::AuthorityFilter { inner: listener };
    axum::serve(listener, app(admin, false))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Serve(e.to_string()))
}
