//! Serving without the embedded relay and watching `dns.extra_records_path`: what external
//! derpers and operators who edit the records file rely on.

use std::time::Duration;

use hs_testkit::TestServer;

/// `POST body` to `path` over a plain HTTP/1.1 connection; returns status and body.
async fn http_post(srv: &TestServer, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        srv.addr,
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// With `derp.server.enabled: false`, `/verify` still answers an external derper: a node of
/// the tailnet is allowed, any other key is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_answers_with_the_embedded_relay_off() {
    let srv = TestServer::start_with(|c| c.derp.server.enabled = false).await;
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
        .create_preauth_key(Some(user.id), false, false, Some(expires), Vec::new())
        .await
        .unwrap()
        .full
        .unwrap();
    let _node = super::register(&url, "member", &key).await;
    let member = srv
        .state
        .store()
        .load()
        .nodes()
        .next()
        .unwrap()
        .node
        .node_key
        .to_string();
    let stranger = format!("nodekey:{}", "ab".repeat(32));

    let (status, body) =
        http_post(&srv, "/verify", &format!(r#"{{"NodePublic":"{member}"}}"#)).await;
    assert_eq!((status, body.trim()), (200, r#"{"Allow":true}"#));
    let (status, body) = http_post(
        &srv,
        "/verify",
        &format!(r#"{{"NodePublic":"{stranger}"}}"#),
    )
    .await;
    assert_eq!((status, body.trim()), (200, r#"{"Allow":false}"#));
    // The relay itself stays off.
    let (status, _) = http_post(&srv, "/derp", "").await;
    assert_eq!(status, 404, "/derp must not be served with the relay off");
}

/// Changes to `dns.extra_records_path` are loaded without SIGHUP: an edit in place, a file
/// renamed over it, a deleted file (the records stay) and a file written there again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_records_file_changes_are_loaded_without_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extra.json");
    let rec = |name: &str, ip: &str| format!(r#"[{{"name":"{name}","type":"A","value":"{ip}"}}]"#);
    std::fs::write(&path, rec("a.example.com", "6.6.6.6")).unwrap();
    let p = path.clone();
    let srv = TestServer::start_with(move |c| c.dns.extra_records_path = Some(p)).await;
    let names = || -> Vec<String> {
        srv.state
            .extra_records()
            .unwrap_or_default()
            .into_iter()
            .map(|r| format!("{}={}", r.name, r.value))
            .collect()
    };
    let wait_for = |want: &'static str| async move {
        for _ in 0..100 {
            if names() == [want] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("records are {:?}, want [{want}]", names());
    };
    wait_for("a.example.com=6.6.6.6").await;

    std::fs::write(&path, rec("b.example.com", "2.2.2.2")).unwrap();
    wait_for("b.example.com=2.2.2.2").await;

    let tmp = dir.path().join("extra.json.new");
    std::fs::write(&tmp, rec("c.example.com", "7.7.7.7")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_for("c.example.com=7.7.7.7").await;

    std::fs::write(&path, "[{\"name\":").unwrap();
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        names(),
        ["c.example.com=7.7.7.7"],
        "a deleted file keeps the records"
    );

    std::fs::write(&path, rec("d.example.com", "8.8.8.8")).unwrap();
    wait_for("d.example.com=8.8.8.8").await;
}
