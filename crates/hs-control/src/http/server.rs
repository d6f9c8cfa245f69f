//! The main HTTP listener (`listen_addr`): binds, serves the router and shuts down gracefully.
//! The router starts with [`super::web`]'s endpoints; other parts of the control plane add
//! theirs with [`Server::with_routes`] before [`Server::serve`].
//!
//! ```no_run
//! # async fn run(config: &hs_config::Config) -> Result<(), hs_control::Error> {
//! let server = hs_control::Server::bind(config).await?;
//! server.serve(hs_control::shutdown_signal()).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hs_config::Config;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::web::{self, HealthProbe};
use crate::error::Error;
use crate::version::VersionInfo;

/// How long a client may take to send a request's headers, as Go Headscale's 30 s read
/// timeout: a connection that dribbles its headers (slowloris) is closed instead of holding
/// a socket and a task forever. Long-polls are unaffected: their headers arrive at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound listener and the routes it will serve.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    routes: Router,
    health: HealthProbe,
    version: VersionInfo,
    header_read_timeout: Duration,
}

/// Go's listen syntax allows an empty host (`":8080"`) for "every interface".
fn normalise_listen_addr(addr: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_owned(),
    }
}

impl Server {
    /// Binds `config.listen_addr`. Port 0 picks a free port; see [`Server::local_addr`].
    pub async fn bind(config: &Config) -> Result<Self, Error> {
        Self::bind_addr(&config.listen_addr).await
    }

    /// Binds an explicit address (`host:port`, or Go's `:port`).
    pub async fn bind_addr(addr: &str) -> Result<Self, Error> {
        let target = normalise_listen_addr(addr);
        let bind_err = |source| Error::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(&target).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self {
            listener,
            local_addr,
            routes: Router::new(),
            health: web::always_healthy(),
            version: VersionInfo::current(),
            header_read_timeout: HEADER_READ_TIMEOUT,
        })
    }

    /// Sets how long a client may take to send a request's headers (default
    /// [`HEADER_READ_TIMEOUT`]).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds routes (for example `/key`, `/ts2021`, the API) next to the built-in ones.
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Sets what `/health` checks (by default nothing: it always passes).
    pub fn with_health(mut self, probe: HealthProbe) -> Self {
        self.health = probe;
        self
    }

    /// The full router: built-in endpoints, added routes and the security headers.
    fn router(routes: Router, health: HealthProbe, version: VersionInfo) -> Router {
        web::base_routes(health, version)
            .merge(routes)
            .layer(axum::middleware::map_response(web::security_headers))
    }

    /// Serves until `shutdown` completes, then stops accepting and lets open requests finish
    /// (long-polls end when the control plane closes their streams).
    pub async fn serve<F>(self, shutdown: F) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let app = Self::router(self.routes, self.health, self.version);
        tracing::info!(addr = %self.local_addr, "listening for HTTP");
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: the listener itself is fine;
                        // pause so a full table does not spin the loop, and keep serving.
                        tracing::warn!(error = %e, "accepting an HTTP connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone());
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
        tracing::info!("HTTP server stopped");
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, the signals a terminal or a service manager sends.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = term => tracing::info!("received SIGTERM, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_listen_addresses() {
        assert_eq!(normalise_listen_addr(":8080"), "0.0.0.0:8080");
        assert_eq!(normalise_listen_addr("127.0.0.1:8080"), "127.0.0.1:8080");
    }
}
