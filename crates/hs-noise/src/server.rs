//! The HTTP side of ts2021 that a server mounts: the `/key` answer, the `/ts2021` upgrade
//! (validate, answer 101, write the handshake response and the optional early payload,
//! then serve HTTP/2 over the Noise stream), and a raw-stream accept for callers that
//! already own a connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hs_types::{ChallengePublic, MachinePrivate, MachinePublic};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Error;
use crate::handshake::{
    INITIATION_HEADER_LEN, INITIATION_PAYLOAD_LEN, Initiation, error_message, respond,
};
use crate::stream::NoiseStream;
use crate::ws::{self, WsIo};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Path of the upgrade endpoint.
pub const UPGRADE_PATH: &str = "/ts2021";
/// Value of the `Upgrade` header (and WebSocket subprotocol) for ts2021.
pub const UPGRADE_PROTOCOL: &str = "tailscale-control-protocol";
/// Header carrying the base64 handshake initiation.
pub const HANDSHAKE_HEADER: &str = "X-Tailscale-Handshake";
/// Oldest client capability version accepted (Headscale's `MinSupportedCapabilityVersion`).
pub const MIN_CAPABILITY_VERSION: u16 = 113;
/// Clients older than this do not understand the early payload.
pub const EARLY_NOISE_CAPABILITY_VERSION: u16 = 49;
/// Magic that starts the early payload; it cannot be mistaken for an HTTP/2 frame header.
pub const EARLY_PAYLOAD_MAGIC: &[u8; 5] = b"\xff\xff\xffTS";
/// Default limit for completing the upgrade and sending the handshake response.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What handlers inside the tunnel learn about the session; inserted into every request's
/// extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoiseSession {
    /// The client's machine key, authenticated by the handshake.
    pub machine_key: MachinePublic,
    /// The client's capability version from the initiation.
    pub protocol_version: u16,
}

/// Produces the early payload's JSON (`tailcfg.EarlyNoise`) for a session, or `None` to send
/// nothing.
pub type EarlyPayloadHook = Arc<dyn Fn(&NoiseSession) -> Option<Vec<u8>> + Send + Sync>;

/// `{"nodeKeyChallenge":"chalpub:…"}`, the JSON Headscale sends as the early payload.
#[must_use]
pub fn early_noise_json(challenge: &ChallengePublic) -> Vec<u8> {
    let mut out = b"{\"nodeKeyChallenge\":\"".to_vec();
    out.extend_from_slice(challenge.to_string().as_bytes());
    out.extend_from_slice(b"\"}");
    out
}

/// Frames `json` as the early payload: magic, u32 BE length, JSON.
#[must_use]
pub fn early_payload(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + json.len());
    out.extend_from_slice(EARLY_PAYLOAD_MAGIC);
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(json);
    out
}

/// The ts2021 endpoint: the server's Noise key plus its policies. Cheap to clone.
///
/// Mounting it in axum (as the `axum_router_inside_the_tunnel_sees_the_session` test does):
/// `/key` calls [`Ts2021::key_response`] with the request's query; `/ts2021` (GET and POST)
/// calls [`Ts2021::upgrade`] with the inner router wrapped for hyper,
/// `hyper::service::service_fn(move |r| router.clone().oneshot(r))`, and maps the response
/// body with `axum::body::Body::new`. Handlers read `Extension<NoiseSession>`.
#[derive(Clone)]
pub struct Ts2021 {
    key: Arc<MachinePrivate>,
    public: MachinePublic,
    handshake_timeout: Duration,
    min_version: u16,
    early: Option<EarlyPayloadHook>,
}

impl std::fmt::Debug for Ts2021 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ts2021")
            .field("public", &self.public)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("min_version", &self.min_version)
            .finish_non_exhaustive()
    }
}

fn text_response(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{msg}\n"))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The `v` parameter of a query string, first occurrence, as Go's `Query().Get("v")`.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

impl Ts2021 {
    /// An endpoint with Noise static key `key`, the default timeout and Headscale's minimum
    /// client version, and no early payload.
    pub fn new(key: Arc<MachinePrivate>) -> Self {
        let public = key.public();
        Self {
            key,
            public,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            min_version: MIN_CAPABILITY_VERSION,
            early: None,
        }
    }

    /// Sets how long a client has to complete the handshake.
    #[must_use]
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Sets the oldest accepted client capability version.
    #[must_use]
    pub fn with_min_version(mut self, v: u16) -> Self {
        self.min_version = v;
        self
    }

    /// Sends the JSON `hook` returns as the early payload of every session (HTTP upgrade only).
    #[must_use]
    pub fn with_early_payload(mut self, hook: EarlyPayloadHook) -> Self {
        self.early = Some(hook);
        self
    }

    /// The server's Noise public key, as `/key` reports it.
    #[must_use]
    pub fn public_key(&self) -> MachinePublic {
        self.public
    }

    /// Answers `GET /key` given the request's raw query string.
    ///
    /// 200 with `{"legacyPublicKey":"mkey:0…0","publicKey":"mkey:…"}` for a supported `v`;
    /// 400 when `v` is missing, not a number, or below the minimum version (the key is not
    /// disclosed to clients that could not complete the handshake anyway).
    #[must_use]
    pub fn key_response(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let Some(v) = query_param(query, "v").filter(|v| !v.is_empty()) else {
            return text_response(StatusCode::BAD_REQUEST, "capability version must be set");
        };
        let Ok(version) = v.parse::<i64>() else {
            return text_response(StatusCode::BAD_REQUEST, "invalid capability version");
        };
        if version < i64::from(self.min_version) {
            tracing::info!(
                version,
                min = self.min_version,
                "refusing /key to old client"
            );
            return text_response(StatusCode::BAD_REQUEST, "unsupported client version");
        }
        let body = format!(
            "{{\"legacyPublicKey\":\"{}\",\"publicKey\":\"{}\"}}\n",
            MachinePublic::from_bytes([0; 32]),
            self.public
        );
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }

    /// Handles `GET`/`POST /ts2021`, either the HTTP upgrade (`Upgrade:
    /// tailscale-control-protocol`, initiation in `X-Tailscale-Handshake`) or the WebSocket
    /// variant (subprotocol `tailscale-control-protocol`, initiation in the query string).
    ///
    /// Validates the upgrade headers and the initiation, runs the handshake, and returns
    /// `101 Switching Protocols`; a spawned task then writes the handshake response and
    /// early payload and serves `service` over HTTP/2 inside the tunnel, each request
    /// carrying a [`NoiseSession`] extension. Bad requests get 4xx with a reason (and
    /// `Connection: close`); a missing `Upgrade` header gets Headscale's 500.
    ///
    /// Must run inside a tokio runtime, on a connection served by hyper (axum included) so
    /// that `hyper::upgrade::on` can take it over.
    pub fn upgrade<B, S, RB>(&self, mut req: Request<B>, service: S) -> Response<Full<Bytes>>
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<RB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        RB: hyper::body::Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let refuse = |status: StatusCode, why: &str| {
            tracing::info!(reason = why, "refusing ts2021 upgrade");
            let mut resp = text_response(status, why);
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        };
        if req.method() != Method::POST && req.method() != Method::GET {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let upgrade = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if upgrade.is_empty() {
            tracing::warn!(
                "no Upgrade header on /ts2021: a reverse proxy in front must pass upgrades through"
            );
            return text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal error");
        }
        let ws_accept = if upgrade == "websocket" {
            match websocket_accept(&req) {
                Ok(a) => Some(a),
                Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
            }
        } else if upgrade == UPGRADE_PROTOCOL {
            None
        } else {
            return refuse(StatusCode::BAD_REQUEST, "unknown next protocol");
        };
        let init = if ws_accept.is_some() {
            // Browsers cannot set headers on a WebSocket, so the initiation rides in the query.
            let Some(v) = query_param(req.uri().query(), HANDSHAKE_HEADER) else {
                return refuse(StatusCode::BAD_REQUEST, "no tailscale handshake parameter");
            };
            ws::query_unescape(v)
                .ok_or(Error::BadUpgrade(
                    "handshake parameter is not a valid query escape",
                ))
                .and_then(|v| Initiation::from_base64(&v))
        } else {
            let Some(v) = req.headers().get(HANDSHAKE_HEADER) else {
                return refuse(StatusCode::BAD_REQUEST, "no tailscale handshake header");
            };
            v.to_str()
                .map_err(|_| Error::BadUpgrade("handshake header is not ASCII"))
                .and_then(Initiation::from_base64)
        };
        let init = match init {
            Ok(i) => i,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let accepted = match self
            .check_version(init.version())
            .and_then(|()| respond(&self.key, &init, &mut rand::rngs::OsRng))
        {
            Ok(a) => a,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let session = NoiseSession {
            machine_key: accepted.peer,
            protocol_version: accepted.version,
        };
        // Go's server writes no early payload on the WebSocket path; neither do we.
        let early = self
            .early
            .as_ref()
            .filter(|_| ws_accept.is_none())
            .filter(|_| session.protocol_version >= EARLY_NOISE_CAPABILITY_VERSION)
            .and_then(|hook| hook(&session))
            .map(|json| early_payload(&json));
        let on_upgrade = hyper::upgrade::on(&mut req);
        let timeout = self.handshake_timeout;
        let is_ws = ws_accept.is_some();
        tokio::spawn(async move {
            let fail = |e: Error| {
                tracing::info!(peer = %session.machine_key.short_string(), error = %e, "ts2021 upgrade failed");
            };
            let upgraded = match tokio::time::timeout(timeout, on_upgrade).await {
                Ok(Ok(u)) => TokioIo::new(u),
                Ok(Err(e)) => return fail(Error::Io(std::io::Error::other(e))),
                Err(_) => return fail(Error::HandshakeTimeout(timeout)),
            };
            if is_ws {
                let ws =
                    WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(ws::ws_config()))
                        .await;
                match start_session(WsIo::new(ws), accepted, early, timeout).await {
                    Ok(stream) => serve_http2(stream, session, service).await,
                    Err(e) => fail(e),
                }
            } else {
                match start_session(upgraded, accepted, early, timeout).await {
                    Ok(stream) => serve_http2(stream, session, service).await,
                    Err(e) => fail(e),
                }
            }
        });

        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        match ws_accept {
            Some(accept) => {
                h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
                h.insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static(UPGRADE_PROTOCOL),
                );
            }
            None => {
                h.insert(header::UPGRADE, HeaderValue::from_static(UPGRADE_PROTOCOL));
            }
        }
        resp
    }

    fn check_version(&self, version: u16) -> Result<(), Error> {
        if version < self.min_version {
            return Err(Error::UnsupportedVersion {
                version,
                min: self.min_version,
            });
        }
        Ok(())
    }

    /// Runs the handshake on a raw stream whose first bytes are the initiation (no HTTP), as
    /// Go's `controlbase.Server` does, within the handshake timeout. On a bad initiation the
    /// client gets an error message (type 0x03) and the error is returned.
    pub async fn accept<T>(&self, mut io: T) -> Result<(NoiseStream<T>, NoiseSession), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let work = async {
            let mut buf = [0u8; INITIATION_HEADER_LEN + INITIATION_PAYLOAD_LEN as usize];
            io.read_exact(&mut buf[..INITIATION_HEADER_LEN]).await?;
            let parsed = buf
                .first_chunk::<INITIATION_HEADER_LEN>()
                .map_or(
                    Err(Error::InitiationSize { got: 0 }),
                    Initiation::check_header,
                )
                .and_then(|v| self.check_version(v));
            if let Err(e) = parsed {
                return Ok(Err(e));
            }
            io.read_exact(&mut buf[INITIATION_HEADER_LEN..]).await?;
            Ok(Initiation::parse(&buf)
                .and_then(|init| respond(&self.key, &init, &mut rand::rngs::OsRng)))
        };
        let accepted = match tokio::time::timeout(self.handshake_timeout, work).await {
            Err(_) => return Err(Error::HandshakeTimeout(self.handshake_timeout)),
            Ok(Err(e)) => return Err(Error::Io(e)),
            Ok(Ok(Err(e))) => {
                // Best effort, bounded: the client may be gone or stalled.
                let msg = error_message(&e.to_string());
                let _ = tokio::time::timeout(self.handshake_timeout, async {
                    io.write_all(&msg).await?;
                    io.flush().await
                })
                .await;
                return Err(e);
            }
            Ok(Ok(Ok(a))) => a,
        };
        let session = NoiseSession {
            machine_key: accepted.peer,
            protocol_version: accepted.version,
        };
        let mut stream = NoiseStream::with_preamble(io, accepted.transport, &accepted.response);
        match tokio::time::timeout(self.handshake_timeout, stream.flush()).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::HandshakeTimeout(self.handshake_timeout)),
        }
        Ok((stream, session))
    }
}

/// Checks a WebSocket upgrade request and returns its `Sec-WebSocket-Accept` value.
fn websocket_accept<B>(req: &Request<B>) -> Result<HeaderValue, &'static str> {
    let h = req.headers();
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err("websocket version must be 13");
    }
    let offers_ours = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == UPGRADE_PROTOCOL);
    if !offers_ours {
        return Err("websocket subprotocol must be tailscale-control-protocol");
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return Err("missing Sec-WebSocket-Key");
    };
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| "bad Sec-WebSocket-Key")
}

/// Sends the handshake response (and early payload) on a freshly upgraded stream within
/// `timeout`, and gives the client as long again to send its first record.
async fn start_session<I>(
    io: I,
    accepted: crate::Accepted,
    early: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<NoiseStream<I>, Error>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = NoiseStream::with_preamble(io, accepted.transport, &accepted.response);
    let work = async {
        if let Some(p) = early {
            stream.write_all(&p).await?;
        }
        stream.flush().await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r?,
        Err(_) => return Err(Error::HandshakeTimeout(timeout)),
    }
    // Some clients wait for the server's first bytes before sending their HTTP/2 preface,
    // so the silence check runs alongside the HTTP/2 server rather than before it.
    stream.set_first_read_deadline(timeout);
    Ok(stream)
}

/// Adds the session to each request before handing it to the inner service.
struct WithSession<S> {
    inner: S,
    session: NoiseSession,
}

impl<S, RB> hyper::service::Service<Request<Incoming>> for WithSession<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.session);
        self.inner.call(req)
    }
}

/// Concurrent HTTP/2 streams one Noise session may hold open. A client has a map long poll,
/// endpoint updates, a register follow-up and SSH checks in flight at most; hyper's default
/// (200) would let one authenticated session tie up far more of the server.
pub const MAX_SESSION_STREAMS: u32 = 64;
/// Largest header list one request in a Noise session may send (hyper's default is 16 MiB).
pub const MAX_SESSION_HEADER_LIST: u32 = 32 * 1024;

/// Serves HTTP/2 (prior knowledge) over an established Noise stream until the client goes
/// away, logging why the session ended. Every request carries `session` as an extension.
pub async fn serve_http2<T, S, RB>(stream: NoiseStream<T>, session: NoiseSession, service: S)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    RB: hyper::body::Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let peer = session.machine_key.short_string();
    tracing::debug!(%peer, version = session.protocol_version, "noise session established");
    let svc = WithSession {
        inner: service,
        session,
    };
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(MAX_SESSION_STREAMS)
        .max_header_list_size(MAX_SESSION_HEADER_LIST)
        .serve_connection(TokioIo::new(stream), svc);
    match conn.await {
        Ok(()) => tracing::debug!(%peer, "noise session closed"),
        Err(e) => {
            // hyper's own message is generic ("connection error"); the cause says which
            // record or frame was bad.
            let mut reason = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                reason.push_str(": ");
                reason.push_str(&s.to_string());
                src = s.source();
            }
            tracing::info!(%peer, error = %reason, "noise session ended with an error");
        }
    }
}
