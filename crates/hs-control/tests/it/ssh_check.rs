//! SSH `check` mode over the Noise session, as a destination node's tailscaled drives it:
//! `/machine/ssh/action/{src}/to/{dst}` files a check and answers with the approval link and
//! a `HoldAndDelegate` URL; the follow-up waits for the operator's `auth approve` or
//! `auth reject`; an approval holds for the rule's `checkPeriod`, `"always"` asks every time;
//! only the destination may ask, and a follow-up must name the pair its check was filed for.

use std::time::Duration;

use bytes::Bytes;
use ts_http_util::{ClientExt as _, ResponseExt as _};

use crate::harness::{Client, Harness};

fn policy(period: &str) -> String {
    format!(
        r#"{{
  "acls": [{{"action": "accept", "src": ["*"], "dst": ["*:*"]}}],
  "ssh": [{{"action": "check", "src": ["alice@"], "dst": ["alice@"], "users": ["root"]{period}}}]
}}"#
    )
}

/// `GET` on the Noise session of `c`: status and parsed body (JSON when it is).
async fn get(c: &Client, h: &Harness, path: &str) -> (u16, serde_json::Value, String) {
    let url = h.url.join(path).unwrap();
    let resp = c.conn.get(&url, []).await.unwrap();
    let status = resp.status().as_u16();
    let body: Bytes = resp.collect_bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        text,
    )
}

/// The path of a `HoldAndDelegate` URL with the client's substitutions made.
fn follow_up_path(hold: &str, src: u64, dst: u64) -> String {
    let url: url::Url = hold
        .replace("$SRC_NODE_ID", &src.to_string())
        .replace("$DST_NODE_ID", &dst.to_string())
        .replace("$LOCAL_USER", "root")
        .parse()
        .unwrap();
    format!("{}?{}", url.path(), url.query().unwrap())
}

/// The `auth_id` query value of a `HoldAndDelegate` URL.
fn auth_id_of(hold: &str) -> String {
    let (_, rest) = hold.split_once("auth_id=").unwrap();
    rest.split('&').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_mode_holds_until_the_operator_decides_and_remembers_the_period() {
    let h = Harness::start().await;
    h.st.set_policy_text("test", Some(&policy(r#", "checkPeriod": "1h""#)))
        .await
        .unwrap();
    let (a, na) = h.join_as("src", h.user).await;
    let (b, nb) = h.join_as("dst", h.user).await;
    let (src, dst) = (na.id.get(), nb.id.get());
    let first = format!("/machine/ssh/action/{src}/to/{dst}?local_user=root");

    // Only the destination may ask.
    let (status, _, text) = get(&a, &h, &first).await;
    assert_eq!(status, 401, "{text}");

    let (status, action, text) = get(&b, &h, &first).await;
    assert_eq!(status, 200, "{text}");
    assert_ne!(action["accept"], true);
    let message = action["message"].as_str().unwrap();
    let auth_id = message
        .split("/auth/")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the message links the approval page")
        .to_owned();
    assert!(auth_id.starts_with("hskey-authreq-"), "{message}");
    let hold = action["holdAndDelegate"].as_str().unwrap().to_owned();
    assert!(hold.contains(&format!("auth_id={auth_id}")), "{hold}");
    assert!(h.st.is_ssh_check_pending(&auth_id));

    // A follow-up for another pair is refused; the right one waits for the verdict.
    let other = follow_up_path(&hold, dst, src);
    assert_eq!(get(&b, &h, &other).await.0, 401);
    let path = follow_up_path(&hold, src, dst);
    let waiting = {
        let (b_conn, url) = (b.conn.clone(), h.url.join(&path).unwrap());
        tokio::spawn(async move {
            let resp = b_conn.get(&url, []).await.unwrap();
            let body = resp.collect_bytes().await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the follow-up waits for a verdict");
    h.st.decide_ssh_check(&auth_id, true).unwrap();
    let verdict = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verdict["accept"], true, "{verdict}");
    assert!(
        h.st.decide_ssh_check(&auth_id, true).is_err(),
        "decided once"
    );

    // Within the check period the next session is accepted at once.
    let (status, action, _) = get(&b, &h, &first).await;
    assert_eq!(status, 200);
    assert_eq!(action["accept"], true, "{action}");
    assert_eq!(action["holdAndDelegate"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_check_refuses_and_always_asks_every_time() {
    let h = Harness::start().await;
    h.st.set_policy_text("test", Some(&policy(r#", "checkPeriod": "always""#)))
        .await
        .unwrap();
    let (_a, na) = h.join_as("src", h.user).await;
    let (b, nb) = h.join_as("dst", h.user).await;
    let (src, dst) = (na.id.get(), nb.id.get());
    let first = format!("/machine/ssh/action/{src}/to/{dst}?local_user=root");
    for approve in [false, true, false] {
        let (_, action, _) = get(&b, &h, &first).await;
        assert_ne!(action["accept"], true, "\"always\" never skips the check");
        let hold = action["holdAndDelegate"].as_str().unwrap().to_owned();
        let auth_id = auth_id_of(&hold);
        let path = follow_up_path(&hold, src, dst);
        let waiting = {
            let (b_conn, url) = (b.conn.clone(), h.url.join(&path).unwrap());
            tokio::spawn(async move {
                let body = b_conn
                    .get(&url, [])
                    .await
                    .unwrap()
                    .collect_bytes()
                    .await
                    .unwrap();
                serde_json::from_slice::<serde_json::Value>(&body).unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.st.decide_ssh_check(&auth_id, approve).unwrap();
        let verdict = waiting.await.unwrap();
        if approve {
            assert_eq!(verdict["accept"], true, "{verdict}");
        } else {
            assert_eq!(verdict["reject"], true, "{verdict}");
            assert_ne!(verdict["accept"], true);
        }
    }
    // Unknown auth IDs and malformed node IDs.
    let bogus = format!(
        "/machine/ssh/action/{src}/to/{dst}?auth_id=hskey-authreq-AAAAAAAAAAAAAAAAAAAAAAAA"
    );
    let (status, action, _) = get(&b, &h, &bogus).await;
    assert_eq!(
        status, 200,
        "a lost check is delegated again while the rule applies"
    );
    assert!(action["holdAndDelegate"].as_str().is_some());
    assert_eq!(get(&b, &h, "/machine/ssh/action/x/to/1").await.0, 400);
}

/// `tuning.register_cache_expiration`: a check nobody decides lapses after it, and the
/// follow-up held on it is refused then (Go's answer), not after 15 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_check_refuses_its_held_follow_up() {
    let h = Harness::start_expiring(Duration::from_secs(2)).await;
    h.st.set_policy_text("test", Some(&policy(r#", "checkPeriod": "1h""#)))
        .await
        .unwrap();
    let (_a, na) = h.join_as("src", h.user).await;
    let (b, nb) = h.join_as("dst", h.user).await;
    let (src, dst) = (na.id.get(), nb.id.get());
    let first = format!("/machine/ssh/action/{src}/to/{dst}?local_user=root");
    // Before the check is filed, so a slow machine cannot make the bound below fail.
    let started = std::time::Instant::now();
    let (status, action, text) = get(&b, &h, &first).await;
    assert_eq!(status, 200, "{text}");
    let hold = action["holdAndDelegate"].as_str().unwrap().to_owned();
    let auth_id = auth_id_of(&hold);
    assert!(h.st.is_ssh_check_pending(&auth_id));

    let path = follow_up_path(&hold, src, dst);
    let (status, verdict, text) = tokio::time::timeout(Duration::from_secs(20), get(&b, &h, &path))
        .await
        .expect("the held follow-up is answered when its check lapses");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "answered before the check lapsed: {text}"
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(verdict["reject"], true, "{verdict}");
    assert_ne!(verdict["accept"], true);
    assert!(!h.st.is_ssh_check_pending(&auth_id));
    assert!(
        h.st.decide_ssh_check(&auth_id, true).is_err(),
        "a lapsed check cannot be approved"
    );
}
