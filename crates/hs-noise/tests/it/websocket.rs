//! The WebSocket variant of /ts2021: a tungstenite client carrying the spec initiator's
//! handshake in the query string, then HTTP/2 (hyper client) over Noise over WebSocket.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use hs_noise::{NoiseStream, Transport, Ts2021, WsIo, early_noise_json};
use hs_types::ChallengePublic;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::core::{CLIENT, CLIENT_EPH, client_public, server_key};
use crate::initiator::Initiator;
use crate::support::{raw_exchange, serve, split_response};

fn query_escape(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_gets_http2_response_through_noise() {
    // An early payload is configured but must not be sent on the WebSocket path.
    let challenge = ChallengePublic::from_bytes([9; 32]);
    let ts = Ts2021::new(Arc::new(server_key()))
        .with_early_payload(Arc::new(move |_| Some(early_noise_json(&challenge))));
    let addr = serve(ts).await;
    let (ini, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *server_key().public().as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(msg);
    let mut req = format!(
        "ws://{addr}/ts2021?X-Tailscale-Handshake={}",
        query_escape(&b64)
    )
    .into_client_request()
    .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "tailscale-control-protocol".parse().unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "tailscale-control-protocol"
    );
    let mut io = WsIo::new(ws);
    let mut response = [0u8; 51];
    io.read_exact(&mut response).await.unwrap();
    let keys = ini.finish(&response).unwrap();
    let stream = NoiseStream::new(io, Transport::new(&keys.tx, &keys.rx));

    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("https://127.0.0.1/machine/ws")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{} v130 GET /machine/ws ", client_public())
    );
}

#[tokio::test]
async fn websocket_without_our_subprotocol_is_refused() {
    let addr = serve(Ts2021::new(Arc::new(server_key()))).await;
    let (_, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *server_key().public().as_bytes());
    let b64 = query_escape(&base64::engine::general_purpose::STANDARD.encode(msg));
    let base = format!(
        "GET /ts2021?X-Tailscale-Handshake={b64} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    let cases = [
        (format!("{base}\r\n"), "subprotocol"),
        (
            format!("{base}Sec-WebSocket-Protocol: chat\r\n\r\n"),
            "subprotocol",
        ),
        (
            base.replace(&b64, "%%%")
                + "Sec-WebSocket-Protocol: tailscale-control-protocol\r\n\r\n",
            "query escape",
        ),
    ];
    for (req, want) in cases {
        let (status, _, body) = split_response(&raw_exchange(addr, req.as_bytes(), 1 << 16).await);
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains(want), "{body:?}");
    }
}
