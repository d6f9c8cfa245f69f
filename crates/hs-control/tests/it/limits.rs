//! Hostile clients on the main listener, over real sockets on 127.0.0.1 with small limits
//! and loopback not exempt: floods from one address are refused (closed, or 429) while the
//! same address's established Noise session and API-key requests, and other addresses
//! (127.0.0.2), are served; oversized bodies get 413, oversized heads 431; HTTP/2 announces
//! its bounds.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::routing::{any, get, post};
use hs_config::LimitsConfig;
use hs_control::Server;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{Client, Harness};

/// Limits for these tests: loopback is limited, as a public address would be.
fn limits(max_connections_per_ip: u32, requests_per_second: u32, burst: u32) -> LimitsConfig {
    LimitsConfig {
        max_connections_per_ip,
        requests_per_second,
        request_burst: burst,
        exempt_loopback: false,
        exempt: Vec::new(),
    }
}

/// A connection to `addr` from the loopback address `from` (127.0.0.1, 127.0.0.2, ...).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    sock.connect(addr).await.unwrap()
}

fn status_of(text: &str) -> u16 {
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Sends `request` and returns the answer's status and head; status 0 when the server
/// closed (or reset) the connection without answering.
async fn exchange(s: &mut TcpStream, request: &[u8]) -> (u16, String) {
    // A refused connection may already be closed: the write can fail, the read tells.
    let _ = s.write_all(request).await;
    let mut raw = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("no answer and no close within 20 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    (status_of(&text), text)
}

/// The whole answer to `request`, which must end the connection (`Connection: close`).
async fn exchange_all(s: &mut TcpStream, request: &[u8]) -> (u16, String) {
    let _ = s.write_all(request).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw)).await;
    let _ = read.expect("no close within 20 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    (status_of(&text), text)
}

async fn get_from(from: &str, addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let mut s = connect_from(from, addr).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    exchange(&mut s, req.as_bytes()).await
}

/// A connection from 127.0.0.1 that was served and stays open, or `None` if refused.
async fn held_open(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = connect_from("127.0.0.1", addr).await;
    let (status, _) = exchange(&mut s, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    (status == 200).then_some(s)
}

async fn start(server: Server) -> SocketAddr {
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));
    addr
}

/// An upgrade route that holds the upgraded connection until the client closes it, as the
/// Noise and DERP handlers do.
fn upgrade_route() -> Router {
    Router::new().route(
        "/up",
        any(|req: Request| async move {
            tokio::spawn(async move {
                if let Ok(up) = hyper::upgrade::on(req).await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1];
                    let _ = io.read(&mut buf).await;
                }
            });
            http::Response::builder()
                .status(101)
                .header("upgrade", "test")
                .header("connection", "upgrade")
                .body(axum::body::Body::empty())
                .unwrap()
        }),
    )
}

/// Retries `f` until it holds, as a hang guard: the server notices a closed socket a
/// moment after the client closes it.
async fn eventually<F: AsyncFnMut() -> bool>(mut f: F) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached within 5 s");
}

/// Connections over the cap are closed unanswered, upgraded ones keep their slot, other
/// addresses are served meanwhile, and a closed connection frees its slot.
#[tokio::test]
async fn connection_cap_closes_extra_connections_and_serves_other_addresses() {
    let server = Server::bind_addr("127.0.0.1:0")
        .await
        .unwrap()
        .with_limits(limits(2, 0, 0))
        .with_routes(upgrade_route());
    let addr = start(server).await;

    // One idle connection and one upgraded (a session) fill 127.0.0.1's two slots.
    let idle = connect_from("127.0.0.1", addr).await;
    let mut session = connect_from("127.0.0.1", addr).await;
    session
        .write_all(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    session.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");

    for _ in 0..20 {
        let (status, text) = get_from("127.0.0.1", addr, "/health", "").await;
        assert_eq!(status, 0, "a connection over the cap was answered: {text}");
    }
    let (status, _) = get_from("127.0.0.2", addr, "/health", "").await;
    assert_eq!(status, 200, "another address is served");

    // Closing the idle connection frees a slot...
    drop(idle);
    let mut held = None;
    eventually(async || {
        held = held_open(addr).await;
        held.is_some()
    })
    .await;
    // ...while the upgraded session still holds the other.
    assert_eq!(get_from("127.0.0.1", addr, "/health", "").await.0, 0);
    drop(session);
    eventually(async || get_from("127.0.0.1", addr, "/health", "").await.0 == 200).await;
    drop(held);
}

/// Unauthenticated requests past the burst get 429 with `Retry-After`; requests with a
/// valid API key are still served from the same address, a client whose key keeps failing
/// is refused, and another address is served.
#[tokio::test]
async fn request_flood_gets_429_while_api_keys_and_other_addresses_are_served() {
    let api = Router::new().route(
        "/api/v1/thing",
        get(|headers: HeaderMap| async move {
            match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some("Bearer good") => (http::StatusCode::OK, "thing"),
                _ => (http::StatusCode::UNAUTHORIZED, "Unauthorized"),
            }
        }),
    );
    let server = Server::bind_addr("127.0.0.1:0")
        .await
        .unwrap()
        .with_limits(limits(0, 1, 5))
        .with_routes(api);
    let addr = start(server).await;

    for _ in 0..5 {
        assert_eq!(get_from("127.0.0.1", addr, "/health", "").await.0, 200);
    }
    let (status, text) = get_from("127.0.0.1", addr, "/health", "").await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("\r\nretry-after: 1\r\n"), "{text}");
    assert!(text.contains("x-content-type-options: nosniff"), "{text}");
    // Anonymous API calls spend the same bucket.
    assert_eq!(
        get_from("127.0.0.1", addr, "/api/v1/thing", "").await.0,
        429
    );

    // A valid API key is served from the throttled address...
    for _ in 0..20 {
        let (status, text) = get_from(
            "127.0.0.1",
            addr,
            "/api/v1/thing",
            "Authorization: Bearer good\r\n",
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    // ...and another address is served too.
    assert_eq!(get_from("127.0.0.2", addr, "/health", "").await.0, 200);

    // Guessing keys: ten failures pass (401), then the guesser is refused.
    let bad = "Authorization: Bearer guess\r\n";
    for _ in 0..10 {
        assert_eq!(
            get_from("127.0.0.3", addr, "/api/v1/thing", bad).await.0,
            401
        );
    }
    assert_eq!(
        get_from("127.0.0.3", addr, "/api/v1/thing", bad).await.0,
        429
    );
}

/// Loopback is exempt by default: load tests and a reverse proxy on the same host are not
/// limited.
#[tokio::test]
async fn loopback_is_exempt_by_default() {
    let server = Server::bind_addr("127.0.0.1:0")
        .await
        .unwrap()
        .with_limits(LimitsConfig {
            max_connections_per_ip: 1,
            requests_per_second: 1,
            request_burst: 1,
            ..LimitsConfig::default()
        });
    let addr = start(server).await;
    let _held = connect_from("127.0.0.1", addr).await;
    for _ in 0..20 {
        assert_eq!(get_from("127.0.0.1", addr, "/health", "").await.0, 200);
    }
}

/// A flood of `/ts2021` upgrades (each a Noise handshake) and `/key` requests from one
/// address is refused with 429, a new client there cannot connect, while a client whose
/// Noise session was established before keeps working and another address is served.
#[tokio::test]
async fn handshake_flood_is_refused_while_an_established_session_works() {
    let h = Harness::start_limited(limits(0, 1, 6)).await;
    let addr: SocketAddr = format!("{}:{}", h.url.host_str().unwrap(), h.url.port().unwrap())
        .parse()
        .unwrap();
    let established = Client::connect(&h, "early").await;

    let handshake = b"POST /ts2021 HTTP/1.1\r\nHost: x\r\nUpgrade: tailscale-control-protocol\r\n\
                      Connection: upgrade\r\nX-Tailscale-Handshake: AAAA\r\n\r\n";
    let mut refused = false;
    for _ in 0..10 {
        let mut s = connect_from("127.0.0.1", addr).await;
        let (status, text) = exchange(&mut s, handshake).await;
        if status == 429 {
            assert!(
                text.to_ascii_lowercase().contains("retry-after: "),
                "{text}"
            );
            refused = true;
            break;
        }
        assert_ne!(status, 0, "the server closed without answering");
    }
    assert!(
        refused,
        "ten handshakes within the burst of six were all accepted"
    );
    assert_eq!(get_from("127.0.0.1", addr, "/key?v=130", "").await.0, 429);
    let keys = ts_keys::NodeState::generate();
    assert!(
        ts_control::client::connect(&h.url, &keys.machine_keys)
            .await
            .is_err(),
        "a new client connected from the throttled address"
    );

    // The session set up before the flood is not limited: it registers and streams.
    let key = h.key(false, false);
    established.register(&h, &key).await.unwrap();
    let mut map = crate::harness::open_map(&established, &h, None).await;
    assert!(crate::harness::read_frame(&mut map).await.is_some());

    assert_eq!(get_from("127.0.0.2", addr, "/key?v=130", "").await.0, 200);
}

/// Bodies outside `/api/` stop at 1 MiB (413, declared or streamed), the API keeps its own
/// limit, and a head over 32 KiB gets 431.
#[tokio::test]
async fn oversized_body_gets_413_and_oversized_head_431() {
    let echo = |b: Bytes| async move { b.len().to_string() };
    let server = Server::bind_addr("127.0.0.1:0").await.unwrap().with_routes(
        Router::new()
            .route("/echo", post(echo))
            .route("/api/v1/echo", post(echo)),
    );
    let addr = start(server).await;
    let post = |path: &str, len: usize, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n{body}"
        )
    };

    // Declared too long: refused before a byte of the body is sent.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (status, text) = exchange_all(&mut s, post("/echo", 2 << 20, "").as_bytes()).await;
    assert_eq!(status, 413, "{text}");

    // Streamed too long (chunked): the read stops at the limit.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        // 1.5 MiB: over this limit, under axum's default 2 MiB.
        for _ in 0..24 {
            let ok = wr.write_all(b"10000\r\n").await.is_ok()
                && wr.write_all(&chunk).await.is_ok()
                && wr.write_all(b"\r\n").await.is_ok();
            if !ok {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut raw))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    writer.abort();

    // Within the limit: read whole.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = "y".repeat(1 << 20);
    let (status, text) = exchange_all(&mut s, post("/echo", body.len(), &body).as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\n1048576"), "{text}");

    // The API is not cut at 1 MiB (its own limit applies after the key check).
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = "z".repeat(3 << 19);
    let (status, text) =
        exchange_all(&mut s, post("/api/v1/echo", body.len(), &body).as_bytes()).await;
    assert_eq!(status, 200, "{text}");

    // A 64 KiB header.
    let big = format!("X-Big: {}\r\n", "a".repeat(64 << 10));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{big}\r\n");
    let (status, text) = exchange(&mut s, req.as_bytes()).await;
    assert_eq!(status, 431, "{text}");
    // Within the bound, a large header is fine.
    let fine = format!("X-Big: {}\r\n", "a".repeat(16 << 10));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{fine}\r\n");
    let (status, text) = exchange(&mut s, req.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
}

/// Plaintext HTTP/2 (prior knowledge) is not spoken on the main listener, as in Go Headscale:
/// tailscaled would otherwise keep such a connection for its `/machine/*` requests after a
/// restart and get 404s forever. The preface gets an HTTP/1 refusal (or a close), never a
/// SETTINGS frame; HTTP/1 on the next connection still works.
#[tokio::test]
async fn plaintext_http2_is_refused_and_http1_still_served() {
    let server = Server::bind_addr("127.0.0.1:0").await.unwrap();
    let addr = start(server).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 "),
        "the server answered the HTTP/2 preface in HTTP/2: {:?}",
        &got[..got.len().min(32)]
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (status, text) = exchange(
        &mut s,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
}
