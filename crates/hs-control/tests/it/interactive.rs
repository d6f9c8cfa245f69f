//! Interactive login: `AuthURL`, the registration page, the follow-up long poll answered by
//! an operator's approval, and a leaked auth ID that registers nothing.

use std::time::Duration;

use chrono::Utc;
use hs_db::NewUser;
use hs_types::tailcfg::RegisterResponse;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::flow::post_json;
use crate::harness::{Client, Harness};

async fn http_get(h: &Harness, path: &str) -> String {
    let addr = format!("{}:{}", h.url.host_str().unwrap(), h.url.port().unwrap());
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A follow-up register request of `c` naming `followup`: the server's answer.
async fn follow_up(h: &Harness, c: &Client, followup: &str) -> RegisterResponse {
    let body = serde_json::json!({"Version":130, "NodeKey": c.keys.node_keys.public.to_string(),
        "Followup": followup});
    let (status, resp) = post_json(c, h, "/machine/register", body.to_string()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    serde_json::from_slice(&resp).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_login_is_approved_by_the_operator_for_a_user_created_later() {
    let h = Harness::start().await;
    // Created after the server started (as the API does): registration must still find it.
    let bob =
        h.db.tx(|c| {
            c.create_user(
                &NewUser {
                    name: "bob".into(),
                    ..NewUser::default()
                },
                Utc::now(),
            )
        })
        .unwrap()
        .id;
    let c = Client::connect(&h, "laptop").await;
    let err = ts_control::register(&c.cfg, &h.url, None, None, &c.keys, &c.conn)
        .await
        .unwrap_err();
    let ts_control::RegistrationError::MachineNotAuthorized(Some(auth_url)) = err else {
        panic!("expected an AuthURL, got {err:?}");
    };
    let prefix = format!("{}register/", h.url);
    assert!(auth_url.as_str().starts_with(&prefix), "{auth_url}");
    let auth_id = auth_url.as_str()[prefix.len()..].to_owned();
    // Go Headscale 0.29's shape: `hskey-authreq-` and 24 URL-safe characters.
    let random = auth_id.strip_prefix("hskey-authreq-").unwrap();
    assert_eq!(random.len(), 24, "{auth_id}");
    assert!(
        random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    let page = http_get(&h, &format!("/register/{auth_id}")).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains(&format!(
        "headscale auth register --auth-id {auth_id} --user"
    )));
    assert!(
        http_get(&h, "/register/AAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .starts_with("HTTP/1.1 404")
    );
    assert!(
        http_get(&h, "/register/hskey-authreq-AAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .starts_with("HTTP/1.1 404")
    );
    // The 24 characters alone (the older form operators may still type) name it too.
    assert!(
        http_get(&h, &format!("/register/{random}"))
            .await
            .starts_with("HTTP/1.1 200")
    );

    // Another machine holding the leaked URL learns nothing and registers nothing: it is
    // answered as for an unknown ID, with a registration of its own.
    let thief = Client::connect(&h, "thief").await;
    let r = follow_up(&h, &thief, auth_url.as_str()).await;
    assert!(!r.machine_authorized);
    assert_eq!(r.error, "");
    assert!(r.auth_url.starts_with(&prefix), "{}", r.auth_url);
    assert_ne!(r.auth_url, auth_url.as_str());
    assert_eq!(h.node_count(), 0);
    assert!(
        h.st.is_registration_pending(&auth_id),
        "the leak spent nothing"
    );

    let wait = {
        let (cfg, url, keys, conn) = (c.cfg.clone(), h.url.clone(), c.keys.clone(), c.conn.clone());
        let followup = auth_url.clone();
        tokio::spawn(async move {
            ts_control::register(&cfg, &url, None, Some(followup), &keys, &conn).await
        })
    };
    // Approval races the follow-up on purpose: either order must answer the client. The
    // operator typed the older, unprefixed form.
    let node = h.st.approve_registration(random, bob).await.unwrap();
    assert_eq!(node.user_id, Some(bob));
    wait.await.unwrap().unwrap();
    let stored = h.db.tx(|c| c.list_nodes()).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].user_id, Some(bob));
    assert_eq!(
        stored[0].node_key.to_string(),
        c.keys.node_keys.public.to_string()
    );
    // The auth ID is spent; its page now says the machine is registered (not an error).
    assert!(h.st.approve_registration(&auth_id, bob).await.is_err());
    let page = http_get(&h, &format!("/register/{auth_id}")).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Machine registered"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_and_windows_pages_point_clients_at_this_server() {
    let h = Harness::start().await;
    let server = h.url.as_str().trim_end_matches('/').to_owned();
    let win = http_get(&h, "/windows").await;
    assert!(win.starts_with("HTTP/1.1 200"));
    assert!(win.contains(&format!("tailscale login --login-server {server}")));
    let ios = http_get(&h, "/apple/ios").await;
    assert!(ios.starts_with("HTTP/1.1 200"), "{ios}");
    assert!(ios.contains("content-type: application/x-apple-aspen-config"));
    assert!(ios.contains("<string>io.tailscale.ipn.ios</string>"));
    assert!(ios.contains(&format!("<key>ControlURL</key><string>{server}</string>")));
    assert!(
        http_get(&h, "/apple/bogus")
            .await
            .starts_with("HTTP/1.1 400")
    );
}

/// `tuning.register_cache_expiration`: a pending registration lapses after it; the follow-up
/// held on it wakes then and, as in Go Headscale, is given a new registration (a new
/// `AuthURL`), as is a follow-up naming an unknown ID. The new one registers as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_registration_wakes_its_follow_up_with_a_new_auth_url() {
    let h = Harness::start_expiring(Duration::from_secs(2)).await;
    let c = Client::connect(&h, "laptop").await;
    // Before the registration is filed, so a slow machine cannot make the bound below fail.
    let started = std::time::Instant::now();
    let err = ts_control::register(&c.cfg, &h.url, None, None, &c.keys, &c.conn)
        .await
        .unwrap_err();
    let ts_control::RegistrationError::MachineNotAuthorized(Some(first)) = err else {
        panic!("expected an AuthURL, got {err:?}");
    };
    let prefix = format!("{}register/", h.url);
    let first_id = first.as_str()[prefix.len()..].to_owned();
    assert!(h.st.is_registration_pending(&first_id));

    // Held until the registration lapses (long before the 120 s poll would end).
    let r = tokio::time::timeout(Duration::from_secs(20), follow_up(&h, &c, first.as_str()))
        .await
        .expect("the follow-up wakes when its registration lapses");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "answered before the registration lapsed: {r:?}"
    );
    assert!(!r.machine_authorized);
    assert_eq!(r.error, "");
    assert!(r.auth_url.starts_with(&prefix), "{}", r.auth_url);
    assert_ne!(
        r.auth_url,
        first.as_str(),
        "a new registration, not the lapsed one"
    );
    assert!(!h.st.is_registration_pending(&first_id));
    assert!(
        h.st.approve_registration(&first_id, h.user).await.is_err(),
        "a lapsed registration cannot be approved"
    );
    let page = http_get(&h, &format!("/register/{first_id}")).await;
    assert!(page.starts_with("HTTP/1.1 404"), "{page}");

    // An unknown ID is answered at once with a new registration too.
    let unknown = format!("{prefix}hskey-authreq-AAAAAAAAAAAAAAAAAAAAAAAA");
    let r2 = tokio::time::timeout(Duration::from_secs(10), follow_up(&h, &c, &unknown))
        .await
        .expect("an unknown ID is not waited on");
    assert!(r2.auth_url.starts_with(&prefix), "{}", r2.auth_url);
    assert_ne!(r2.auth_url, unknown);

    // The new registration completes as usual.
    let second_id = r.auth_url[prefix.len()..].to_owned();
    let wait = {
        let (cfg, url, keys, conn) = (c.cfg.clone(), h.url.clone(), c.keys.clone(), c.conn.clone());
        let followup: url::Url = r.auth_url.parse().unwrap();
        tokio::spawn(async move {
            ts_control::register(&cfg, &url, None, Some(followup), &keys, &conn).await
        })
    };
    h.st.approve_registration(&second_id, h.user).await.unwrap();
    wait.await.unwrap().unwrap();
    assert_eq!(h.node_count(), 1);
}
