//! Shared test plumbing: an axum server on 127.0.0.1:0 mounting `/key` and `/ts2021`, and
//! a raw HTTP/1.1 client for requests real clients never send.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::routing::{any, get};
use bytes::Bytes;
use hs_noise::{NoiseSession, Ts2021};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The handler inside the tunnel: echoes the session and the request back.
async fn inner(req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let session = req.extensions().get::<NoiseSession>().copied();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = match session {
        Some(s) => format!(
            "{} v{} {} {} {}",
            s.machine_key,
            s.protocol_version,
            parts.method,
            parts.uri.path(),
            String::from_utf8_lossy(&body)
        ),
        None => "no session".to_owned(),
    };
    Ok(hyper::Response::new(Full::new(Bytes::from(text))))
}

/// Serves `ts` with axum on an ephemeral loopback port.
pub(crate) async fn serve(ts: Ts2021) -> SocketAddr {
    let app = Router::new()
        .route(
            "/key",
            get(|State(ts): State<Arc<Ts2021>>, req: Request| async move {
                ts.key_response(req.uri().query()).map(Body::new)
            }),
        )
        .route(
            "/ts2021",
            any(|State(ts): State<Arc<Ts2021>>, req: Request| async move {
                ts.upgrade(req, hyper::service::service_fn(inner))
                    .map(Body::new)
            }),
        )
        .with_state(Arc::new(ts));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Sends raw `request` bytes and returns everything the server sends until it closes or
/// `limit` bytes arrive (a guard against hanging, not a timing assertion).
pub(crate) async fn raw_exchange(addr: SocketAddr, request: &[u8], limit: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_until_close(&mut s, limit).await
}

pub(crate) async fn read_until_close(s: &mut TcpStream, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() >= limit {
                    break;
                }
            }
            Err(_) => panic!("server neither answered nor closed"),
        }
    }
    out
}

/// Splits an HTTP/1.1 response into (status, head, rest).
pub(crate) fn split_response(bytes: &[u8]) -> (u16, String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, bytes[end + 4..].to_vec())
}
