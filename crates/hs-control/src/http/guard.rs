//! Limits for hostile clients on the main listener, applied per client address (the TCP
//! peer, never a forwarded-for header, which anyone can write):
//!
//! - at accept, a cap on open connections (`limits.max_connections_per_ip`); a connection
//!   over it is closed before anything is read. The count follows the socket, so a Noise or
//!   DERP session keeps its slot after the HTTP upgrade until it ends;
//! - per request, a token bucket (`limits.requests_per_second`, `limits.request_burst`) for
//!   everything unauthenticated: the `/ts2021` and `/derp` upgrades (whose handshakes cost
//!   X25519 operations), `/key`, the pages, `/health`, `/version`... Over it the answer is
//!   429 with `Retry-After`. With TLS each new connection also takes a token before its
//!   handshake. Requests inside an established Noise session never come through here;
//!   `/api/` requests carrying credentials do not spend the bucket either, but a client
//!   whose credentials keep failing is refused for a while ([`AUTH_FAILURE_BURST`]);
//! - request bodies outside `/api/` are cut at [`MAX_REQUEST_BODY`] (413).
//!
//! Loopback clients (`limits.exempt_loopback`), `limits.exempt` and `trusted_proxies` are not
//! limited: behind a reverse proxy every client has the proxy's address, so limiting it
//! would limit everyone at once; the proxy is the place for such limits then.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hs_config::LimitsConfig;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Limited;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::limits::{ClientKey, ClientTable, LogThrottle, Rate, Settings};
use crate::clock;

/// The largest request body read outside `/api/`: what the main listener takes
/// unauthenticated (a DERP `/verify` body, a form) is a few kilobytes, and Go Headscale
/// allows Noise requests 1 MiB (`noiseBodyLimit`). `/api/` keeps the admin API's own limit,
/// applied after the API key is checked.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// Failed authentications (401 answers to `/api/` requests with credentials) a client may
/// have in a row, then [`AUTH_FAILURES_PER_SECOND`]: a wrong key on a known prefix costs a
/// bcrypt check (tens of milliseconds of CPU), so guessing is slowed to a crawl, while an
/// operator who mistyped a key is back within seconds.
const AUTH_FAILURE_BURST: u32 = 10;

/// How fast failed authentications are forgiven, once [`AUTH_FAILURE_BURST`] is spent.
const AUTH_FAILURES_PER_SECOND: u32 = 1;

/// Client tables hold at most this many idle addresses (about 100 bytes each): past it,
/// addresses with nothing to remember, then those without a connection, are forgotten.
const MAX_TRACKED_CLIENTS: usize = 16_384;

/// At most one warning per kind of refusal in this interval, with the count since the last.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Paths answered without spending tokens, though unauthenticated: `/verify` is called by
/// DERP relays once per client connecting to them (one relay speaks for many clients), and
/// the DERP latency probes are static answers clients poll every netcheck; each costs about
/// what a 429 would (`/verify` reads a 4 KiB body at most and looks a key up in memory).
const UNMETERED: &[&str] = &[
    "/verify",
    "/derp/probe",
    "/derp/latency-check",
    "/generate_204",
];

/// The admin API: its requests carry an API key checked by its own middleware.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn rate(per_second: u32, burst: u32) -> Rate {
    Rate {
        per_second: f64::from(per_second),
        burst: f64::from(burst.max(1)),
    }
}

/// The limits of one listener, shared by its accept loop, its connections and its requests.
#[derive(Debug)]
pub(crate) struct Limiter {
    exempt: Vec<IpNet>,
    exempt_loopback: bool,
    caps_connections: bool,
    meters_requests: bool,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    table: ClientTable,
    refused_connections: LogThrottle,
    refused_requests: LogThrottle,
}

impl Limiter {
    /// The limiter for `c`, or `None` when every limit is off.
    pub(crate) fn new(c: &LimitsConfig) -> Option<Arc<Self>> {
        let caps_connections = c.max_connections_per_ip > 0;
        let meters_requests = c.requests_per_second > 0;
        if !caps_connections && !meters_requests {
            return None;
        }
        let settings = Settings {
            max_connections: caps_connections.then_some(c.max_connections_per_ip),
            requests: meters_requests.then(|| rate(c.requests_per_second, c.request_burst)),
            auth_failures: meters_requests
                .then(|| rate(AUTH_FAILURES_PER_SECOND, AUTH_FAILURE_BURST)),
            max_entries: MAX_TRACKED_CLIENTS,
        };
        Some(Arc::new(Self {
            exempt: c.exempt.clone(),
            exempt_loopback: c.exempt_loopback,
            caps_connections,
            meters_requests,
            inner: Mutex::new(Inner {
                table: ClientTable::new(settings),
                refused_connections: LogThrottle::default(),
                refused_requests: LogThrottle::default(),
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `ip` is limited at all.
    fn applies_to(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let exempt = (self.exempt_loopback && ip.is_loopback())
            || self.exempt.iter().any(|n| n.contains(&ip));
        !exempt
    }

    /// Decides on a new connection from `peer`: `None` refuses it; otherwise its slot, to be
    /// kept as long as the socket (see [`CountedStream`]). `tls`: a handshake follows, which
    /// costs a request token.
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr, tls: bool) -> Option<ConnSlot> {
        if !self.applies_to(peer.ip()) {
            return Some(ConnSlot(None));
        }
        let key = ClientKey::of(peer.ip());
        let now = clock::monotonic();
        let mut inner = self.lock();
        let handshake_allowed =
            !(tls && self.meters_requests) || inner.table.take_request(key, now).is_ok();
        let admitted = handshake_allowed && (!self.caps_connections || inner.table.open(key, now));
        if admitted {
            let tracked = self.caps_connections.then(|| (Arc::clone(self), key));
            return Some(ConnSlot(tracked));
        }
        let line = inner.refused_connections.note(now, LOG_EVERY);
        drop(inner);
        if let Some(refused) = line {
            tracing::warn!(
                client = %key,
                refused,
                "refusing connections over limits.max_connections_per_ip or limits.requests_per_second",
            );
        }
        None
    }

    /// A 429 for `key`, logged at most once per [`LOG_EVERY`].
    fn too_many(&self, key: ClientKey, wait: Duration) -> Response {
        let line = self
            .lock()
            .refused_requests
            .note(clock::monotonic(), LOG_EVERY);
        if let Some(refused) = line {
            tracing::warn!(
                client = %key,
                refused,
                "refusing requests over limits.requests_per_second (429)",
            );
        }
        // Whole seconds, rounded up: a client retrying sooner would only be refused again.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        resp
    }
}

/// A connection's place in its client's count, released when dropped.
#[derive(Debug)]
pub(crate) struct ConnSlot(Option<(Arc<Limiter>, ClientKey)>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some((limiter, key)) = self.0.take() {
            limiter.lock().table.close(key);
        }
    }
}

/// A TCP stream holding its [`ConnSlot`]: hyper hands the stream over on an HTTP upgrade,
/// so the slot lives exactly as long as the socket, through a Noise or DERP session.
#[derive(Debug)]
pub(crate) struct CountedStream {
    tcp: TcpStream,
    _slot: Option<ConnSlot>,
}

impl CountedStream {
    /// `tcp`, counted by `slot` (if the listener counts connections).
    pub(crate) fn new(tcp: TcpStream, slot: Option<ConnSlot>) -> Self {
        Self { tcp, _slot: slot }
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Middleware: the per-client token buckets (see the module docs).
pub(crate) async fn limit_requests(
    State(limiter): State<Arc<Limiter>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(ip) = peer.filter(|ip| limiter.meters_requests && limiter.applies_to(*ip)) else {
        return next.run(req).await;
    };
    let key = ClientKey::of(ip);
    let path = req.uri().path();
    if is_api(path) && req.headers().contains_key(header::AUTHORIZATION) {
        // Holders of a valid API key are not limited by what others behind their address
        // do; only this client's own failed attempts count.
        let allowed = limiter.lock().table.check_auth(key, clock::monotonic());
        if let Err(wait) = allowed {
            return limiter.too_many(key, wait);
        }
        let resp = next.run(req).await;
        if resp.status() == StatusCode::UNAUTHORIZED {
            limiter.lock().table.auth_failed(key, clock::monotonic());
        }
        return resp;
    }
    if UNMETERED.contains(&path) {
        return next.run(req).await;
    }
    let taken = limiter.lock().table.take_request(key, clock::monotonic());
    match taken {
        Ok(()) => next.run(req).await,
        Err(wait) => limiter.too_many(key, wait),
    }
}

/// Middleware: bodies outside `/api/` end at [`MAX_REQUEST_BODY`]. A declared length over it
/// is refused before anything is read; a longer chunked body fails the handler's read, which
/// axum answers with 413 too.
pub(crate) async fn limit_body(req: Request, next: Next) -> Response {
    if is_api(req.uri().path()) {
        return next.run(req).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large").into_response();
    }
    next.run(req.map(|b| Body::new(Limited::new(b, MAX_REQUEST_BODY))))
        .await
}
