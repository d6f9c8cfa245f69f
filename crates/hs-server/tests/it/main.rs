//! The whole server in-process (`hs_testkit::TestServer`: what `headscale serve` runs) with
//! Tailscale's Rust client as a real peer: an admin call over HTTP reaches a connected
//! client through the one write path.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code; the server reads the clock"
)]

mod apiv2;
mod derp_dns;
mod oidc;
mod oidc_tokens;
mod pages;

use std::time::Duration;

use futures_util::StreamExt as _;
use hs_testkit::TestServer;

async fn register(
    url: &url::Url,
    host: &str,
    key: &str,
) -> (
    ts_keys::NodeState,
    ts_control::client::HttpConn,
    ts_control::Config,
) {
    let keys = ts_keys::NodeState::generate();
    let conn = ts_control::client::connect(url, &keys.machine_keys)
        .await
        .unwrap();
    let cfg = ts_control::Config {
        server_url: url.clone(),
        hostname: Some(host.to_owned()),
        client_name: None,
        tags: Vec::new(),
        ephemeral: false,
    };
    ts_control::register(&cfg, url, Some(key), None, &keys, &conn)
        .await
        .unwrap();
    (keys, conn, cfg)
}

async fn next_peers(
    s: &mut (impl futures_util::Stream<Item = ts_control::StateUpdate> + Unpin),
    peers: &mut std::collections::BTreeSet<ts_control::NodeId>,
) {
    loop {
        let u = tokio::time::timeout(Duration::from_secs(20), s.next())
            .await
            .expect("a map update within 20 s (hang guard)")
            .expect("map stream open");
        match u.peer_update {
            Some(ts_control::PeerUpdate::Full(v)) => {
                *peers = v.into_iter().map(|n| n.id).collect();
                return;
            }
            Some(ts_control::PeerUpdate::Delta { upsert, remove, .. }) => {
                for id in remove {
                    peers.remove(&id);
                }
                peers.extend(upsert.into_iter().map(|n| n.id));
                return;
            }
            None => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_node_over_rest_reaches_a_connected_rust_client() {
    let srv = TestServer::start().await;
    let url: url::Url = srv.url.parse().unwrap();
    let user = srv
        .admin
        .create_user(hs_api::NewUser {
            name: "alice".into(),
            display_name: String::new(),
            email: String::new(),
            profile_pic_url: String::new(),
        })
        .await
        .unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let key = srv
        .admin
        .create_preauth_key(Some(user.id), true, false, Some(expires), Vec::new())
        .await
        .unwrap()
        .full
        .unwrap();
    let (wk, wconn, wcfg) = register(&url, "watcher", &key).await;
    let _peer = register(&url, "peer", &key).await;
    let mut stream = Box::pin(
        ts_control::client::start_stream(&url, &wk, &wcfg, wconn)
            .await
            .unwrap(),
    );
    let mut peers = std::collections::BTreeSet::new();
    next_peers(&mut stream, &mut peers).await;
    assert_eq!(peers.len(), 1, "the watcher sees the peer");
    let peer_id = *peers.iter().next().unwrap();

    // An admin with an API key deletes the peer through the REST surface.
    let api_key = srv.admin.create_api_key(Some(expires)).await.unwrap();
    let status = http_delete(&srv, &format!("/api/v1/node/{peer_id}"), &api_key).await;
    assert_eq!(status, 200);
    for _ in 0..10 {
        if peers.is_empty() {
            break;
        }
        next_peers(&mut stream, &mut peers).await;
    }
    assert!(peers.is_empty(), "the watcher still sees the deleted peer");
    assert_eq!(srv.state.store().load().len(), 1);
}

/// `DELETE path` with a bearer key over a plain HTTP/1.1 connection; returns the status.
async fn http_delete(srv: &TestServer, path: &str, key: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let req = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n",
        srv.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// SSH `check` without OIDC: the approval page names the command, and the admin API's
/// `auth approve` / `auth reject` (what `headscale auth approve --auth-id` calls) decide the
/// held connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_approve_and_reject_decide_ssh_checks() {
    use ts_http_util::{ClientExt as _, ResponseExt as _};
    let srv = TestServer::start().await;
    let url: url::Url = srv.url.parse().unwrap();
    let user = srv
        .admin
        .create_user(hs_api::NewUser {
            name: "alice".into(),
            display_name: String::new(),
            email: String::new(),
            profile_pic_url: String::new(),
        })
        .await
        .unwrap();
    let key = srv
        .admin
        .create_preauth_key(
            Some(user.id),
            true,
            false,
            Some(chrono::Utc::now() + chrono::Duration::hours(1)),
            Vec::new(),
        )
        .await
        .unwrap()
        .full
        .unwrap();
    let _src = register(&url, "src", &key).await;
    let (_, dst_conn, _) = register(&url, "dst", &key).await;
    srv.state
        .set_policy_text(
            "test",
            Some(
                r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
                    "ssh": [{"action": "check", "src": ["alice@"], "dst": ["alice@"], "users": ["root"], "checkPeriod": "always"}]}"#,
            ),
        )
        .await
        .unwrap();
    let snap = srv.state.store().load();
    let id = |h: &str| {
        snap.nodes()
            .find(|e| e.node.hostname == h)
            .unwrap()
            .node
            .id
            .get()
    };
    let (src, dst) = (id("src"), id("dst"));
    for approve in [true, false] {
        let ask = |path: String| {
            let (conn, u) = (dst_conn.clone(), url.join(&path).unwrap());
            async move {
                let body = conn
                    .get(&u, [])
                    .await
                    .unwrap()
                    .collect_bytes()
                    .await
                    .unwrap();
                serde_json::from_slice::<serde_json::Value>(&body).unwrap()
            }
        };
        let action = ask(format!(
            "/machine/ssh/action/{src}/to/{dst}?local_user=root"
        ))
        .await;
        let hold = action["holdAndDelegate"]
            .as_str()
            .expect("a check")
            .to_owned();
        let auth_id = hold
            .split("auth_id=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let page = http_get(&srv, &format!("/auth/{auth_id}")).await;
        assert!(
            page.contains(&format!("headscale auth approve --auth-id {auth_id}")),
            "{page}"
        );
        let follow: url::Url = hold
            .replace("$SRC_NODE_ID", &src.to_string())
            .replace("$DST_NODE_ID", &dst.to_string())
            .replace("$LOCAL_USER", "root")
            .parse()
            .unwrap();
        let waiting = tokio::spawn(ask(format!(
            "{}?{}",
            follow.path(),
            follow.query().unwrap()
        )));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if approve {
            srv.admin.auth_approve(&auth_id).unwrap();
        } else {
            srv.admin.auth_reject(&auth_id).unwrap();
        }
        let verdict = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap();
        let key = if approve { "accept" } else { "reject" };
        assert_eq!(verdict[key], true, "{verdict}");
        assert!(srv.admin.auth_approve(&auth_id).is_err(), "decided once");
    }
}

/// `GET path` over plain HTTP/1.1; the whole answer as text.
async fn http_get(srv: &TestServer, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
