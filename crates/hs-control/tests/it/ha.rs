//! HA health probes: a primary router that keeps its map stream but stops answering
//! `PingRequest`s loses its prefix to the standby that answers; once it answers again it
//! is healthy but does not take the prefix back.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::Harness;
use crate::routes::{AUTO, Failover, Peers, SUBNET, failover, join};

/// What tailscaled does with a `PingRequest` that has no `Types`: a plain-HTTP `HEAD` of
/// its URL. Returns the status code.
async fn head(url: &str) -> u16 {
    let url: url::Url = url.parse().unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "HEAD {}?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        url.path(),
        url.query().unwrap_or("")
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Reads `stream` forever, answering every `PingRequest` as tailscaled does.
fn answer_pings(mut stream: Peers) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            stream.next().await;
            if let Some(url) = stream.last["PingRequest"]["URL"].as_str() {
                // A probe read after its round ended is answered 404; that is fine.
                head(url).await;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_probe_fails_over_and_recovery_does_not_flap() {
    let h = Harness::start().await;
    // router1 holds its stream but never reads it, so it never answers.
    let Failover {
        viewer: mut v,
        s1,
        s2,
        id1,
        id2,
        clients: _clients,
    } = failover(&h).await;
    let answering2 = answer_pings(s2);
    crate::routes::eventually("both routers are online candidates", || {
        h.st.store()
            .load()
            .routes()
            .any(|(_, r)| r.candidates.len() == 2)
    })
    .await;

    // A probe round with a timeout long enough for the answering router on a busy machine.
    let failed = h.st.probe_routers(Duration::from_secs(5)).await.unwrap();
    assert_eq!(failed, vec![id1]);
    // Ids are single-use and unguessable: a made-up or spent one is refused.
    let bogus = h.url.join("/machine/ping-response?id=00112233").unwrap();
    assert_eq!(head(bogus.as_str()).await, 404);
    v.until("router2 took over in the viewer's map", |v| {
        v.primary(id2, SUBNET) && !v.primary(id1, SUBNET)
    })
    .await;
    let snap = h.st.store().load_full();
    assert!(snap.node(id1).unwrap().unhealthy);
    assert!(
        snap.node(id1).unwrap().online,
        "still connected: only the probe failed"
    );
    // `/debug/routes` shows it as Go's DebugRoutes does: both routers available, router2
    // primary, router1 unhealthy; the text form names the primary only.
    let routes = debug_routes(&h, "application/json").await;
    let v: serde_json::Value = serde_json::from_str(&routes).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "available_routes": {id1.get().to_string(): [SUBNET], id2.get().to_string(): [SUBNET]},
            "primary_routes": {SUBNET: id2.get()},
            "unhealthy_nodes": [id1.get()],
        }),
        "{routes}"
    );
    assert_eq!(
        debug_routes(&h, "text/plain").await,
        format!("{SUBNET}: {}\n", id2.get())
    );

    // router1 answers again: healthy, but router2 keeps the prefix.
    let answering1 = answer_pings(s1);
    let failed = h.st.probe_routers(Duration::from_secs(5)).await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let snap = h.st.store().load_full();
    assert!(!snap.node(id1).unwrap().unhealthy);
    assert_eq!(snap.primary_route(&SUBNET.parse().unwrap()), Some(id2));
    let v: serde_json::Value =
        serde_json::from_str(&debug_routes(&h, "application/json").await).unwrap();
    assert!(
        v.get("unhealthy_nodes").is_none(),
        "healthy again, yet listed: {v}"
    );
    answering1.abort();
    answering2.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_prober_runs_by_itself() {
    let h = Harness::start().await;
    h.st.set_policy_text("test policy", Some(AUTO))
        .await
        .unwrap();
    h.st.start_ha_probes(Duration::from_millis(500), Duration::from_secs(2));
    let (r1, id1) = join(&h, "router1").await;
    let (r2, id2) = join(&h, "router2").await;
    let _s1 = Peers::open(&r1, &h, "router1", &[SUBNET]).await;
    crate::routes::eventually("router1 is primary", || {
        h.st.store().load().primary_route(&SUBNET.parse().unwrap()) == Some(id1)
    })
    .await;
    let s2 = Peers::open(&r2, &h, "router2", &[SUBNET]).await;
    let answering = answer_pings(s2);
    crate::routes::eventually(
        "the prober moved the prefix to the answering router",
        || h.st.store().load().primary_route(&SUBNET.parse().unwrap()) == Some(id2),
    )
    .await;
    answering.abort();
}

/// `GET /debug/routes` through the debug router, asked from loopback with `accept`.
async fn debug_routes(h: &Harness, accept: &str) -> String {
    use tower::ServiceExt as _;
    let config = crate::metrics::debug_config();
    let peer: std::net::SocketAddr = "127.0.0.1:5555".parse().unwrap();
    let resp = hs_control::debug::routes(h.st.clone(), &config)
        .layer(axum::extract::connect_info::MockConnectInfo(peer))
        .oneshot(
            http::Request::get("/debug/routes")
                .header("accept", accept)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}
