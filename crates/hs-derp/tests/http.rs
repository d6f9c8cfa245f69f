//! The auxiliary HTTP endpoints and `/verify`, through a real HTTP server on loopback.

mod common;

use std::sync::Arc;

use common::{key, raw_http, start_with};
use hs_derp::{ClientVerifier, DerpServer, ServerOptions};
use hs_types::NodePublic;

async fn harness() -> (common::Harness, NodePublic) {
    let known = key().public();
    let verify: ClientVerifier = Arc::new(move |k: &NodePublic| *k == known);
    let server = DerpServer::new(key(), ServerOptions::default());
    (start_with(server, Some(verify)).await, known)
}

fn status(resp: &str) -> &str {
    resp.split_whitespace().nth(1).unwrap_or("")
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn probe_answers_get_and_head_and_refuses_post() {
    let (h, _) = harness().await;
    for path in ["/derp/probe", "/derp/latency-check"] {
        let r = raw_http(
            h.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&r), "200", "{r}");
        assert!(
            r.to_ascii_lowercase()
                .contains("access-control-allow-origin: *"),
            "{r}"
        );
        let r = raw_http(
            h.addr,
            &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&r), "200", "{r}");
        let r = raw_http(
            h.addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status(&r), "405", "{r}");
    }
}

#[tokio::test]
async fn generate_204_echoes_valid_challenges_only() {
    let (h, _) = harness().await;
    let r = raw_http(
        h.addr,
        "GET /generate_204 HTTP/1.1\r\nHost: x\r\nX-Tailscale-Challenge: abc.DEF:9-_\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "204", "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(
        lower.contains("x-tailscale-response: response abc.def:9-_"),
        "{r}"
    );
    assert!(lower.contains("cache-control: no-cache, no-store"), "{r}");
    let r = raw_http(
        h.addr,
        "GET /generate_204 HTTP/1.1\r\nHost: x\r\nX-Tailscale-Challenge: bad/char\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "204", "{r}");
    assert!(
        !r.to_ascii_lowercase().contains("x-tailscale-response"),
        "{r}"
    );
}

#[tokio::test]
async fn derp_without_upgrade_is_426() {
    let (h, _) = harness().await;
    let r = raw_http(
        h.addr,
        "GET /derp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "426", "{r}");
    assert!(body(&r).contains("DERP requires connection upgrade"), "{r}");
}

#[tokio::test]
async fn upgrade_response_carries_derp_headers() {
    let (h, _) = harness().await;
    let mut s = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let leftover = hs_derp::client::http_upgrade(&mut s, "x")
        .await
        .expect("101");
    // The server speaks first after the upgrade: its ServerKey frame.
    let mut reader = hs_derp::FrameReader::new(s, leftover);
    let f = reader.read_frame().await.expect("frame").expect("not eof");
    assert_eq!(
        f,
        hs_derp::Frame::ServerKey {
            key: h.server.public_key()
        }
    );
}

async fn verify(h: &common::Harness, body: &str) -> String {
    raw_http(
        h.addr,
        &format!(
            "POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

#[tokio::test]
async fn verify_answers_allow_for_known_keys_only() {
    let (h, known) = harness().await;
    let r = verify(
        &h,
        &format!(r#"{{"NodePublic":"{known}","Source":"127.0.0.1"}}"#),
    )
    .await;
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(body(&r), r#"{"Allow":true}"#);
    let other = key().public();
    let r = verify(
        &h,
        &format!(r#"{{"NodePublic":"{other}","Source":"127.0.0.1"}}"#),
    )
    .await;
    assert_eq!(body(&r), r#"{"Allow":false}"#);
    let r = verify(&h, r#"{"NodePublic":"nodekey:zz"}"#).await;
    assert_eq!(status(&r), "400", "{r}");
    let big = format!(
        r#"{{"NodePublic":"{known}","Source":"{}"}}"#,
        "x".repeat(5000)
    );
    let r = verify(&h, &big).await;
    assert_eq!(status(&r), "400", "{r}");
    let r = raw_http(
        h.addr,
        "GET /verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "405", "{r}");
}

#[tokio::test]
async fn bootstrap_dns_resolves_the_map_host_names_only() {
    let (h, _) = harness().await;
    h.server
        .set_bootstrap_hosts(vec!["localhost".into(), "127.0.0.9".into()]);
    let r = raw_http(
        h.addr,
        "GET /bootstrap-dns?q=example.com HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "200", "{r}");
    let v: serde_json::Value = serde_json::from_str(body(&r)).expect("json");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 2, "{v}");
    let ips = v["localhost"].as_array().expect("array");
    assert!(ips.iter().any(|ip| ip == "127.0.0.1" || ip == "::1"), "{v}");
    assert_eq!(v["127.0.0.9"], serde_json::json!(["127.0.0.9"]));
}
