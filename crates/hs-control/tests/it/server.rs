//! The HTTP shell served on 127.0.0.1: built-in endpoints, headers, added routes, health
//! failures and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use hs_control::{HealthProbe, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn get_path(addr: SocketAddr, path: &str) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn start(server: Server) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (addr, tx, task)
}

#[tokio::test]
async fn health_version_robots_and_headers() {
    let server = Server::bind_addr("127.0.0.1:0").await.unwrap();
    let (addr, stop, task) = start(server).await;

    let health = get_path(addr, "/health").await;
    assert_eq!(health.status, 200);
    let body: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(body, serde_json::json!({"status": "pass"}));
    assert_eq!(health.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(health.header("x-frame-options"), Some("DENY"));

    let version = get_path(addr, "/version").await;
    assert_eq!(version.status, 200);
    let v: serde_json::Value = serde_json::from_str(&version.body).unwrap();
    assert!(v["version"].is_string());
    assert!(v["go"]["os"].is_string());

    let robots = get_path(addr, "/robots.txt").await;
    assert_eq!(robots.status, 200);
    assert_eq!(robots.body, "User-agent: *\nDisallow: /");

    let missing = get_path(addr, "/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-content-type-options"), Some("nosniff"));

    stop.send(()).unwrap();
    task.await.unwrap();
    // After a graceful shutdown nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn added_routes_and_failing_health() {
    let failing: HealthProbe = Arc::new(|| Box::pin(async { Err("database is down".to_owned()) }));
    let server = Server::bind_addr("127.0.0.1:0")
        .await
        .unwrap()
        .with_routes(Router::new().route("/extra", get(|| async { "extra route" })))
        .with_health(failing);
    let (addr, stop, task) = start(server).await;

    let extra = get_path(addr, "/extra").await;
    assert_eq!(extra.status, 200);
    assert_eq!(extra.body, "extra route");
    assert_eq!(extra.header("referrer-policy"), Some("no-referrer"));

    let health = get_path(addr, "/health").await;
    assert_eq!(health.status, 500);
    let body: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(body["status"], "fail");
    assert_eq!(body["output"], "database is down");

    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn bind_failure_names_the_address() {
    let first = Server::bind_addr("127.0.0.1:0").await.unwrap();
    let taken = first.local_addr().to_string();
    let Err(err) = Server::bind_addr(&taken).await else {
        panic!("second bind on {taken} succeeded");
    };
    assert!(err.to_string().contains(&taken), "{err}");
}

/// Slowloris: connections that dribble their headers are closed when the header-read
/// timeout passes, while a client that sends a whole request is served meanwhile.
#[tokio::test]
async fn slow_headers_are_cut_off_and_others_are_served() {
    let server = Server::bind_addr("127.0.0.1:0")
        .await
        .unwrap()
        .with_header_read_timeout(std::time::Duration::from_millis(500));
    let (addr, stop, task) = start(server).await;

    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
            .await
            .unwrap();
        slow.push(s);
    }
    assert_eq!(get_path(addr, "/health").await.status, 200);
    for mut s in slow {
        // The server closes it (possibly after a 408): reading ends, well before the test's
        // own deadline.
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slow connection was still open after 10 s");
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// An idle keep-alive connection (a request answered, then silence) is closed after the
/// header read timeout, as a slow one is: idle clients cannot hold connections open.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let server = Server::bind_addr("127.0.0.1:0")
        .await
        .unwrap()
        .with_header_read_timeout(std::time::Duration::from_millis(500));
    let (addr, stop, task) = start(server).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "an idle keep-alive connection was still open after 10 s"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "the request was answered first: {text}"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Handlers on the main listener see the TCP peer as axum's `ConnectInfo`.
#[tokio::test]
async fn handlers_see_the_peer_address() {
    let server = Server::bind_addr("127.0.0.1:0")
        .await
        .unwrap()
        .with_routes(Router::new().route(
        "/peer",
        get(
            |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| async move {
                peer.to_string()
            },
        ),
    ));
    let (addr, stop, task) = start(server).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let local = s.local_addr().unwrap();
    let req = format!("GET /peer HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.ends_with(&local.to_string()),
        "{raw} (connected from {local})"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}
