//! HTTP entry points the control plane mounts: the `/derp` upgrade, the probe and
//! captive-portal endpoints, `/bootstrap-dns`, and `POST /verify` for external derpers.
//! [`handle`] dispatches on the path so a plain hyper service can serve them all.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hs_types::NodePublic;
use http::header::{CONNECTION, HeaderValue, UPGRADE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::server::{ClientVerifier, DerpServer};

/// The body type of every response here.
pub type Body = Full<Bytes>;

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// Whether the request asks for a DERP upgrade (`Upgrade: DERP`, or WebSocket with the
/// `derp` subprotocol).
fn upgrade_kind<B>(req: &Request<B>) -> Option<&'static str> {
    let up = req
        .headers()
        .get(UPGRADE)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    match up.as_str() {
        "derp" => Some("derp"),
        "websocket" => {
            let protos = req.headers().get("sec-websocket-protocol")?.to_str().ok()?;
            protos
                .split(',')
                .any(|p| p.trim() == "derp")
                .then_some("websocket")
        }
        _ => None,
    }
}

/// `/derp`: answers 101 and hands the upgraded connection to `server`, either raw
/// (`Upgrade: DERP`) or wrapped in WebSocket binary messages (`Upgrade: websocket` with
/// subprotocol `derp`). Anything else gets 426. `remote` is the client's address, if known.
pub fn handle_derp<B>(
    mut req: Request<B>,
    server: Arc<DerpServer>,
    remote: Option<SocketAddr>,
) -> Response<Body> {
    let ws_key = match upgrade_kind(&req) {
        Some("derp") => None,
        Some(_) => match req
            .headers()
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
        {
            Some(k) => Some(crate::ws::accept_key(k)),
            None => return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n"),
        },
        None => {
            return text(
                StatusCode::UPGRADE_REQUIRED,
                "DERP requires connection upgrade\n",
            );
        }
    };
    let websocket = ws_key.is_some();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let public_hex = server.public_key().untyped_hex();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(?remote, error = %e, "DERP upgrade failed");
                return;
            }
        };
        let io = TokioIo::new(upgraded);
        let result = if websocket {
            let ws = crate::ws::WsStream::new(io, crate::ws::Role::Server, BytesMut::new());
            server.accept(ws, BytesMut::new(), remote).await
        } else {
            server.accept(io, BytesMut::new(), remote).await
        };
        if let Err(e) = result {
            tracing::debug!(?remote, websocket, error = %e, "DERP client dropped");
        }
    });
    if let Some(accept) = ws_key {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert("sec-websocket-protocol", HeaderValue::from_static("derp"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert("sec-websocket-accept", v);
        }
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("DERP"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert("derp-version", HeaderValue::from_static("2"));
    if let Ok(v) = HeaderValue::from_str(&public_hex) {
        h.insert("derp-public-key", v);
    }
    r
}

/// `/derp/probe` and `/derp/latency-check`.
pub fn handle_probe(method: &Method) -> Response<Body> {
    if method == Method::GET || method == Method::HEAD {
        let mut r = text(StatusCode::OK, "");
        r.headers_mut()
            .insert("access-control-allow-origin", HeaderValue::from_static("*"));
        r
    } else {
        text(StatusCode::METHOD_NOT_ALLOWED, "bogus probe method\n")
    }
}

/// `/generate_204`: captive-portal detection, echoing a well-formed challenge.
pub fn handle_generate_204(headers: &http::HeaderMap) -> Response<Body> {
    let mut r = text(StatusCode::NO_CONTENT, "");
    let h = r.headers_mut();
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate, no-transform, max-age=0"),
    );
    if let Some(c) = headers
        .get("x-tailscale-challenge")
        .and_then(|v| v.to_str().ok())
    {
        let ok = !c.is_empty()
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
        if ok && let Ok(v) = HeaderValue::from_str(&format!("response {c}")) {
            h.insert("x-tailscale-response", v);
        }
    }
    r
}

/// `/bootstrap-dns`: the addresses of every DERP node host name in the current map, as
/// `{"host":["ip",…]}`, for clients whose own DNS is broken. Like Headscale, the query is
/// ignored and only the map's names are resolved, so this is no open resolver.
pub async fn handle_bootstrap_dns(server: &DerpServer) -> Response<Body> {
    let mut map = serde_json::Map::new();
    for name in server.bootstrap_hosts().iter() {
        match tokio::net::lookup_host((name.as_str(), 0)).await {
            Ok(addrs) => {
                let mut ips: Vec<String> = Vec::new();
                for a in addrs {
                    let ip = a.ip().to_string();
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                map.insert(
                    name.clone(),
                    serde_json::Value::Array(
                        ips.into_iter().map(serde_json::Value::String).collect(),
                    ),
                );
            }
            Err(e) => tracing::debug!(%name, error = %e, "bootstrap-dns lookup failed"),
        }
    }
    json_response(StatusCode::OK, &serde_json::Value::Object(map))
}

fn json_response<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(v).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The body external derpers POST to `/verify` (`tailcfg.DERPAdmitClientRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitRequest {
    /// The connecting node's key.
    #[serde(rename = "NodePublic")]
    pub node_public: NodePublic,
    /// The client's IP as the derper saw it.
    #[serde(rename = "Source", default)]
    pub source: String,
}

/// The `/verify` answer (`tailcfg.DERPAdmitClientResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitResponse {
    /// Whether the node may connect.
    #[serde(rename = "Allow")]
    pub allow: bool,
}

/// Largest `/verify` body accepted.
pub const VERIFY_BODY_LIMIT: usize = 4096;

/// `POST /verify`: answers whether the node is known, using the same check as the embedded
/// relay.
pub async fn handle_verify<B>(req: Request<B>, verify: &ClientVerifier) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let body = match Limited::new(req.into_body(), VERIFY_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::BAD_REQUEST, "body too large or unreadable\n"),
    };
    match serde_json::from_slice::<AdmitRequest>(&body) {
        Ok(r) => json_response(
            StatusCode::OK,
            &AdmitResponse {
                allow: verify(&r.node_public),
            },
        ),
        Err(_) => text(
            StatusCode::BAD_REQUEST,
            "body is not a DERPAdmitClientRequest\n",
        ),
    }
}

/// Serves every endpoint of this module by path; anything else is 404. `verify` answers
/// `/verify` (405/404 handling as above); without it `/verify` is 404.
pub async fn handle<B>(
    req: Request<B>,
    server: Arc<DerpServer>,
    verify: Option<ClientVerifier>,
    remote: Option<SocketAddr>,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match req.uri().path() {
        "/derp" => handle_derp(req, server, remote),
        "/derp/probe" | "/derp/latency-check" => handle_probe(req.method()),
        "/generate_204" => handle_generate_204(req.headers()),
        "/bootstrap-dns" => handle_bootstrap_dns(&server).await,
        "/verify" => match verify {
            Some(v) => handle_verify(req, &v).await,
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
