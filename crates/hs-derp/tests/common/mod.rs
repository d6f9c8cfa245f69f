//! Shared test harness: a DERP server behind a tiny hyper HTTP/1 server on 127.0.0.1.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hs_derp::frame::Frame;
use hs_derp::{ClientVerifier, DerpClient, DerpServer, ServerOptions};
use hs_types::NodePrivate;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Harness {
    pub addr: SocketAddr,
    pub server: Arc<DerpServer>,
}

pub async fn start(opts: ServerOptions) -> Harness {
    let verify = opts.verify_clients.clone();
    let server = DerpServer::new(NodePrivate::generate(&mut OsRng), opts);
    start_with(server, verify).await
}

pub async fn start_with(server: Arc<DerpServer>, verify: Option<ClientVerifier>) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let srv = server.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, remote)) = listener.accept().await else {
                return;
            };
            let srv = srv.clone();
            let verify = verify.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let srv = srv.clone();
                    let verify = verify.clone();
                    async move {
                        Ok::<_, Infallible>(
                            hs_derp::http::handle(req, srv, verify, Some(remote)).await,
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Harness { addr, server }
}

pub fn key() -> NodePrivate {
    NodePrivate::generate(&mut OsRng)
}

pub async fn connect(h: &Harness, k: &NodePrivate) -> DerpClient<TcpStream> {
    DerpClient::connect(h.addr, k).await.expect("DERP connect")
}

/// Guards against hangs only; no test asserts on time.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The next frame that is not a keep-alive or health/info chatter.
pub async fn next_frame(c: &mut DerpClient<TcpStream>) -> Option<Frame> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match c.recv().await {
                Ok(Some(Frame::KeepAlive)) => continue,
                Ok(other) => return other,
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("no frame within the patience window")
}

/// Sends a raw HTTP/1.1 request and returns the whole response text.
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("response in time")
        .expect("read response");
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `cond` until it holds (panics after the patience window).
pub async fn wait_until(cond: impl Fn() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition never became true");
}
