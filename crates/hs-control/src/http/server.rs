//! The main HTTP listener (`listen_addr`): binds, serves the router and shuts down gracefully.
//! The router starts with [`super::web`]'s endpoints; other parts of the control plane add
//! theirs with [`Server::with_routes`] before [`Server::serve`]. Hostile clients meet the
//! per-client limits of [`super::guard`] and the per-connection bounds below (header size,
//! HTTP/2 streams and buffers).
//!
//! ```no_run
//! # async fn run(config: &hs_config::Config) -> Result<(), hs_control::Error> {
//! let server = hs_control::Server::bind(config).await?;
//! server.serve(hs_control::shutdown_signal()).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hs_config::{Config, LimitsConfig};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::guard::{self, CountedStream, Limiter};
use super::web::{self, HealthProbe};
use crate::error::Error;
use crate::version::VersionInfo;

/// How long a client may take to send a request's headers, as Go Headscale's 30 s read
/// timeout: a connection that dribbles its headers (slowloris) is closed instead of holding
/// a socket and a task forever. Long-polls are unaffected: their headers arrive at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a request's headers may take, on HTTP/1 (the read buffer, so the request line
/// counts too) and HTTP/2 (the decoded header list): nginx's default (4 buffers of 8 KiB),
/// so whatever reached Headscale through nginx fits, while Go's 1 MiB would let each
/// connection hold a megabyte before its request is even parsed. Larger heads get 431.
pub const MAX_HEADER_BYTES: usize = 32 << 10;

/// HTTP/1 headers per request, hyper's default, stated here as one of the bounds.
const MAX_HEADERS: usize = 100;

/// Concurrent HTTP/2 streams per connection: the least RFC 9113 recommends allowing, and
/// what bounds a connection's concurrent handlers.
const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Response bytes buffered per HTTP/2 stream for a client that does not read: with
/// [`MAX_CONCURRENT_STREAMS`], at most 6.4 MiB per connection (hyper's 400 KiB made 40 MiB).
/// Inbound data is bounded by the connection window, 1 MiB by default.
const MAX_SEND_BUF: usize = 64 << 10;

/// A bound listener and the routes it will serve.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    routes: Router,
    health: HealthProbe,
    version: VersionInfo,
    header_read_timeout: Duration,
    tls: Option<TlsAcceptor>,
    limits: LimitsConfig,
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
    /// Applies `config.limits`, with `trusted_proxies` exempt as well.
    pub async fn bind(config: &Config) -> Result<Self, Error> {
        let mut limits = config.limits.clone();
        limits.exempt.extend(config.trusted_proxies.iter().copied());
        Ok(Self::bind_addr(&config.listen_addr)
            .await?
            .with_limits(limits))
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
            tls: None,
            limits: LimitsConfig::default(),
        })
    }

    /// Sets the per-client limits (default: [`LimitsConfig::default`], which exempts
    /// loopback).
    pub fn with_limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how long a client may take to send a request's headers (default
    /// [`HEADER_READ_TIMEOUT`]).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Serves TLS with `acceptor` (see the `hs-tls` crate) instead of plain HTTP. The
    /// handshake must finish within the header read timeout; a TLS-ALPN-01 validation
    /// (`acme-tls/1`) ends after its handshake.
    pub fn with_tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
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

    /// The full router: built-in endpoints, added routes, the body limit, the per-client
    /// request limits and the security headers (outermost, so a 429 carries them too).
    fn router(
        routes: Router,
        health: HealthProbe,
        version: VersionInfo,
        limiter: Option<&Arc<Limiter>>,
    ) -> Router {
        let mut app = web::base_routes(health, version)
            .merge(routes)
            .layer(axum::middleware::from_fn(guard::limit_body));
        if let Some(limiter) = limiter {
            app = app.layer(axum::middleware::from_fn_with_state(
                Arc::clone(limiter),
                guard::limit_requests,
            ));
        }
        app.layer(axum::middleware::map_response(web::security_headers))
    }

    /// Serves until `shutdown` completes, then stops accepting and lets open requests finish
    /// (long-polls end when the control plane closes their streams).
    pub async fn serve<F>(self, shutdown: F) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let limiter = Limiter::new(&self.limits);
        let app = Self::router(self.routes, self.health, self.version, limiter.as_ref());
        let scheme = if self.tls.is_some() { "HTTPS" } else { "HTTP" };
        tracing::info!(addr = %self.local_addr, "listening for {scheme}");
        // Plaintext HTTP/2 (prior knowledge) is refused below, as Go Headscale's listener
        // speaks only HTTP/1: tailscaled opens such a connection when it fetches an `http://`
        // control URL (an SSH check follow-up) with no Noise session pooled, e.g. after a
        // restart; accepted, its HTTP/2 pool keeps that plain connection for `/machine/*` and
        // every request gets 404 until the client restarts. Refused, the client dials again
        // through Noise. TLS offers only `http/1.1` in ALPN for the same reason; HTTP/2 lives
        // inside Noise sessions (hs-noise) and on the gRPC listener. The HTTP/2 settings stay
        // for a TLS client that sends the preface regardless.
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(MAX_HEADER_BYTES)
            .max_headers(MAX_HEADERS);
        builder
            .http2()
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_send_buf_size(MAX_SEND_BUF);
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
            let slot = match &limiter {
                None => None,
                Some(l) => match l.admit(peer, self.tls.is_some()) {
                    Some(slot) => Some(slot),
                    // Closed unread: the cheapest answer, and it tells a flood nothing.
                    None => continue,
                },
            };
            let _ = tcp.set_nodelay(true);
            // Handlers see the TCP peer as axum's `ConnectInfo` (the DERP relay logs it).
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                app.clone(),
                move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                },
            ));
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            let handshake_timeout = self.header_read_timeout;
            tokio::spawn(async move {
                let Some(acceptor) = tls else {
                    if sends_http2_preface(&tcp, handshake_timeout).await {
                        tracing::debug!(%peer, "plaintext HTTP/2 refused: HTTP/1 only here");
                        return;
                    }
                    let tcp = CountedStream::new(tcp, slot);
                    serve_conn(&builder, watcher, tcp, service, peer).await;
                    return;
                };
                let tcp = CountedStream::new(tcp, slot);
                let stream =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                if stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                    // A CA validating TLS-ALPN-01: the handshake was the whole answer.
                    return;
                }
                serve_conn(&builder, watcher, stream, service, peer).await;
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
        tracing::info!("HTTP server stopped");
        Ok(())
    }
}

/// Whether a plaintext connection opens with HTTP/2's connection preface (`PRI * HTTP/2.0`;
/// `PRI` is no HTTP/1 method). Peeks without consuming, waiting at most `timeout` for the
/// first four bytes; a connection that sends fewer is left to HTTP/1's own header timeout.
async fn sends_http2_preface(tcp: &tokio::net::TcpStream, timeout: Duration) -> bool {
    let mut head = [0u8; 4];
    let peeked = tokio::time::timeout(timeout, async {
        loop {
            match tcp.peek(&mut head).await {
                Ok(n) if n >= head.len() => return true,
                Ok(0) | Err(_) => return false,
                // A partial first segment: wait for the rest rather than spin.
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    peeked == Ok(true) && &head == b"PRI "
}

/// RFC 8737's ALPN protocol name.
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

async fn serve_conn<S, Svc>(
    builder: &Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: S,
    service: Svc,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<axum::body::Body>,
        > + Send
        + 'static,
    Svc::Future: Send + 'static,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
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
