//! The HTTP glue served by axum on 127.0.0.1: `/key`, the `/ts2021` upgrade and HTTP/2 in
//! the tunnel, driven by Tailscale's Rust client and by raw requests.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hs_noise::{Ts2021, early_noise_json};
use hs_types::{ChallengePublic, MachinePrivate};
use http_body_util::Full;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use ts_http_util::{ClientExt, ResponseExt};

use crate::core::{CLIENT, CLIENT_EPH, client_public, server_key};
use crate::initiator::Initiator;
use crate::support::{raw_exchange, read_until_close, serve, split_response};

fn ts2021() -> Ts2021 {
    Ts2021::new(Arc::new(server_key()))
}

fn client_version() -> u16 {
    ts_control::client::CONTROL_PROTOCOL_VERSION
        .rsplit('v')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn ts_control_round_trip(ts: Ts2021) {
    let public = ts.public_key();
    let addr = serve(ts).await;
    let url: url::Url = format!("http://{addr}").parse().unwrap();
    let fetched = ts_control::client::fetch_control_key(&url).await.unwrap();
    assert_eq!(fetched.to_string(), public.to_string());

    let keys = ts_keys::MachineKeyPair::random();
    let h2 = ts_control::client::connect(&url, &keys).await.unwrap();

    // Three requests at once on the one session, as a real client multiplexes them.
    let mut tasks = Vec::new();
    for i in 0..3 {
        let h2 = h2.clone();
        let u = url.join(&format!("/machine/echo{i}")).unwrap();
        tasks.push(tokio::spawn(async move {
            let resp = h2
                .post(&u, [], Full::new(Bytes::from(format!("body{i}"))))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            String::from_utf8(resp.collect_bytes().await.unwrap().to_vec()).unwrap()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let body = t.await.unwrap();
        assert_eq!(
            body,
            format!(
                "{} v{} POST /machine/echo{i} body{i}",
                keys.public,
                client_version()
            )
        );
    }

    // A body larger than one record goes through in both directions.
    let big = "x".repeat(100_000);
    let resp = h2
        .post(
            &url.join("/big").unwrap(),
            [],
            Full::new(Bytes::from(big.clone())),
        )
        .await
        .unwrap();
    let body = resp.collect_bytes().await.unwrap();
    assert!(body.ends_with(big.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_control_client_completes_handshake_and_gets_http2_response() {
    ts_control_round_trip(ts2021()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_control_client_skips_early_payload() {
    let challenge = ChallengePublic::from_bytes([9; 32]);
    let ts = ts2021().with_early_payload(Arc::new(move |_s| Some(early_noise_json(&challenge))));
    ts_control_round_trip(ts).await;
}

#[tokio::test]
async fn key_endpoint_answers_like_headscale() {
    let ts = ts2021();
    let public = ts.public_key();
    let addr = serve(ts).await;
    let get = |q: &'static str| async move {
        let req = format!("GET /key{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        split_response(&raw_exchange(addr, req.as_bytes(), 1 << 16).await)
    };
    let (status, head, body) = get("?v=130").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["publicKey"], public.to_string());
    assert_eq!(json["legacyPublicKey"], format!("mkey:{}", "0".repeat(64)));

    for (q, msg) in [
        ("", "capability version must be set"),
        ("?v=", "capability version must be set"),
        ("?x=1", "capability version must be set"),
        ("?v=abc", "invalid capability version"),
        ("?v=112", "unsupported client version"),
        ("?v=-5", "unsupported client version"),
    ] {
        let (status, _, body) = get(q).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(String::from_utf8_lossy(&body).trim(), msg, "{q}");
    }
    let (status, _, _) = get("?v=113").await;
    assert_eq!(status, 200);
}

fn upgrade_request(method: &str, upgrade: Option<&str>, handshake: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} /ts2021 HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(u) = upgrade {
        r.push_str(&format!("Upgrade: {u}\r\nConnection: upgrade\r\n"));
    } else {
        r.push_str("Connection: close\r\n");
    }
    if let Some(h) = handshake {
        r.push_str(&format!("X-Tailscale-Handshake: {h}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn init_b64(version: u16, server: &MachinePrivate) -> (Initiator, String) {
    let (ini, msg) = Initiator::start(version, CLIENT, CLIENT_EPH, *server.public().as_bytes());
    (ini, base64::engine::general_purpose::STANDARD.encode(msg))
}

#[tokio::test]
async fn upgrade_rejections_have_status_and_reason() {
    let addr = serve(ts2021()).await;
    let key = server_key();
    let (_, good) = init_b64(130, &key);
    let (_, old) = init_b64(100, &key);
    let (_, other) = init_b64(130, &MachinePrivate::from_bytes([0x55; 32]));
    let short = base64::engine::general_purpose::STANDARD.encode([0u8; 100]);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            upgrade_request("POST", None, Some(&good)),
            500,
            "Internal error",
        ),
        (
            upgrade_request("POST", Some("h2c"), Some(&good)),
            400,
            "unknown next protocol",
        ),
        (
            upgrade_request("POST", Some("tailscale-control-protocol"), None),
            400,
            "no tailscale handshake header",
        ),
        (
            upgrade_request(
                "POST",
                Some("tailscale-control-protocol"),
                Some("%%%not-base64"),
            ),
            400,
            "not valid base64",
        ),
        (
            upgrade_request("POST", Some("tailscale-control-protocol"), Some(&short)),
            400,
            "wrong handshake initiation size: 100 bytes",
        ),
        (
            upgrade_request("POST", Some("tailscale-control-protocol"), Some(&old)),
            400,
            "unsupported client version",
        ),
        (
            upgrade_request("POST", Some("tailscale-control-protocol"), Some(&other)),
            400,
            "failed to decrypt",
        ),
        (
            upgrade_request("PUT", Some("tailscale-control-protocol"), Some(&good)),
            405,
            "method not allowed",
        ),
    ];
    for (req, want_status, want_msg) in cases {
        let (status, _, body) = split_response(&raw_exchange(addr, &req, 1 << 16).await);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, want_status, "{body}");
        assert!(body.contains(want_msg), "{body:?} lacks {want_msg:?}");
    }
}

/// Upgrades with the spec initiator over a raw socket; returns the socket, the client keys
/// and the bytes that followed the 101 header.
async fn raw_upgrade(
    addr: std::net::SocketAddr,
    method: &str,
) -> (TcpStream, crate::initiator::ClientTransport, Vec<u8>) {
    let (ini, b64) = init_b64(130, &server_key());
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&upgrade_request(
        method,
        Some("tailscale-control-protocol"),
        Some(&b64),
    ))
    .await
    .unwrap();
    // Read until the header block and the 51-byte response are in.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n")
            && got.len() >= p + 4 + 51
        {
            break;
        }
    }
    let (status, head, rest) = split_response(&got);
    assert_eq!(status, 101);
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("upgrade: tailscale-control-protocol"),
        "{head}"
    );
    assert!(lower.contains("connection: upgrade"), "{head}");
    let client = ini.finish(&rest[..51]).unwrap();
    (s, client, rest[51..].to_vec())
}

#[tokio::test]
async fn get_upgrade_works_and_early_payload_is_first_record() {
    let challenge = ChallengePublic::from_bytes([9; 32]);
    let ts = ts2021().with_early_payload(Arc::new(move |s| {
        assert_eq!(s.machine_key, client_public());
        Some(early_noise_json(&challenge))
    }));
    let addr = serve(ts).await;
    let (mut s, mut client, mut rest) = raw_upgrade(addr, "GET").await;
    // The early payload is the first plaintext: magic, u32 BE length, JSON.
    let mut plain = Vec::new();
    loop {
        let (msgs, left) = client.open_all(&rest);
        for m in msgs {
            plain.extend_from_slice(&m);
        }
        rest = left;
        if plain.len() >= 9
            && plain.len() >= 9 + u32::from_be_bytes(plain[5..9].try_into().unwrap()) as usize
        {
            break;
        }
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        rest.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&plain[..5], b"\xff\xff\xffTS");
    let len = u32::from_be_bytes(plain[5..9].try_into().unwrap()) as usize;
    let json: serde_json::Value = serde_json::from_slice(&plain[9..9 + len]).unwrap();
    assert_eq!(json["nodeKeyChallenge"], challenge.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_end_only_their_own_session() {
    let addr = serve(ts2021().with_handshake_timeout(Duration::from_secs(2))).await;
    let url: url::Url = format!("http://{addr}").parse().unwrap();
    let keys = ts_keys::MachineKeyPair::random();
    let good = ts_control::client::connect(&url, &keys).await.unwrap();

    // Each bad session: upgraded correctly, then sends garbage; the server must close it.
    type MakeFrame = Box<dyn Fn(&mut crate::initiator::ClientTransport) -> Vec<u8>>;
    let bad_frames: Vec<MakeFrame> = vec![
        Box::new(|_| vec![0x05, 0, 20]),      // unknown message type
        Box::new(|_| vec![0x04, 0x10, 0x00]), // 4099-byte frame
        Box::new(|c| {
            let mut f = c.seal(b"PRI * HTTP/2.0");
            f[4] ^= 1;
            f
        }), // fails decryption
        Box::new(|c| {
            c.tx_n = 1;
            c.seal(b"PRI * HTTP/2.0")
        }), // out-of-order nonce
    ];
    for make in bad_frames {
        let (mut s, mut client, _) = raw_upgrade(addr, "POST").await;
        let frame = make(&mut client);
        s.write_all(&frame).await.unwrap();
        // The server drops the connection (EOF or reset) instead of waiting for more.
        let _ = read_until_close(&mut s, usize::MAX).await;
    }

    // A client that upgrades and then never speaks is dropped after the handshake
    // timeout, and meanwhile blocks no one.
    let (mut stalled, _, _) = raw_upgrade(addr, "POST").await;

    let resp = good
        .post(
            &url.join("/still-alive").unwrap(),
            [],
            Full::new(Bytes::from("ok")),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.collect_bytes().await.unwrap();
    assert!(body.ends_with(b"POST /still-alive ok"));
    let _ = read_until_close(&mut stalled, usize::MAX).await;
}

/// How hs-control mounts it: an axum `Router` as the service inside the tunnel, reading the
/// session with the `Extension` extractor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_router_inside_the_tunnel_sees_the_session() {
    use axum::Extension;
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::routing::{any, get, post};
    use hs_noise::NoiseSession;
    use tower::ServiceExt as _;

    let inner = axum::Router::new().route(
        "/machine/whoami",
        post(|Extension(s): Extension<NoiseSession>| async move {
            format!("{} {}", s.machine_key, s.protocol_version)
        }),
    );
    let outer = axum::Router::new()
        .route(
            "/key",
            get(|State(ts): State<Arc<Ts2021>>, req: Request| async move {
                ts.key_response(req.uri().query()).map(Body::new)
            }),
        )
        .route(
            "/ts2021",
            any(
                move |State(ts): State<Arc<Ts2021>>, req: Request| async move {
                    let router = inner.clone();
                    let svc = hyper::service::service_fn(move |r| router.clone().oneshot(r));
                    ts.upgrade(req, svc).map(Body::new)
                },
            ),
        )
        .with_state(Arc::new(ts2021()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, outer).await });

    let url: url::Url = format!("http://{addr}").parse().unwrap();
    let keys = ts_keys::MachineKeyPair::random();
    let h2 = ts_control::client::connect(&url, &keys).await.unwrap();
    let resp = h2
        .post(
            &url.join("/machine/whoami").unwrap(),
            [],
            Full::new(Bytes::new()),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.collect_bytes().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{} {}", keys.public, client_version())
    );
    let resp = h2
        .post(&url.join("/nope").unwrap(), [], Full::new(Bytes::new()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// One Noise session holds at most `MAX_SESSION_STREAMS` requests at once: 100 concurrent
/// requests from one client (hyper's client honours the announced limit) all complete, but
/// never more than the limit are in the handler together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_at_most_the_announced_number_of_streams() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::routing::{any, get, post};
    use tower::ServiceExt as _;

    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let inner = axum::Router::new().route(
        "/machine/slow",
        post(move || {
            let (f, p) = (f.clone(), p.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                "done"
            }
        }),
    );
    let outer = axum::Router::new()
        .route(
            "/key",
            get(|State(ts): State<Arc<Ts2021>>, req: Request| async move {
                ts.key_response(req.uri().query()).map(Body::new)
            }),
        )
        .route(
            "/ts2021",
            any(
                move |State(ts): State<Arc<Ts2021>>, req: Request| async move {
                    let router = inner.clone();
                    let svc = hyper::service::service_fn(move |r| router.clone().oneshot(r));
                    ts.upgrade(req, svc).map(Body::new)
                },
            ),
        )
        .with_state(Arc::new(ts2021()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, outer).await });

    // A plain hyper HTTP/2 client over the Noise stream: it multiplexes as far as the
    // server's SETTINGS allow.
    let (tcp, keys, rest) = raw_upgrade(addr, "POST").await;
    // Records that arrived with the handshake response are read first.
    let io = Prefixed {
        pre: rest,
        inner: tcp,
    };
    let stream = hs_noise::NoiseStream::new(io, hs_noise::Transport::new(&keys.tx, &keys.rx));
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut all = Vec::new();
    for _ in 0..100 {
        let mut sender = sender.clone();
        all.push(tokio::spawn(async move {
            let req = hyper::Request::post("https://127.0.0.1/machine/slow")
                .body(Full::new(Bytes::new()))
                .unwrap();
            sender.send_request(req).await.map(|r| r.status())
        }));
    }
    for t in all {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= hs_noise::MAX_SESSION_STREAMS as usize,
        "{peak} requests were in flight in one session"
    );
    assert!(peak > 1, "the requests did run concurrently ({peak})");
}

/// A socket whose first reads return bytes already taken off it.
struct Prefixed {
    pre: Vec<u8>,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.drain(..n);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
