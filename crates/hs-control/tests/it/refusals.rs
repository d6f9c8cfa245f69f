//! Requests that must be refused, with the error a client reads and nothing written: a node
//! key forged under another machine key, spent, expired and unknown pre-auth keys, malformed
//! bodies, and other `/machine/*` paths.

use chrono::{Duration as ChronoDuration, Utc};
use hs_db::NewPreAuthKey;
use hs_types::tailcfg::RegisterResponse;

use crate::flow::post_json;
use crate::harness::{Client, Harness};

fn register_body(c: &Client, node_key: &str, auth_key: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "Version": 130,
        "NodeKey": node_key,
        "Hostinfo": {"Hostname": "x"},
    });
    if let Some(k) = auth_key {
        v["Auth"] = serde_json::json!({ "AuthKey": k });
    }
    let _ = c;
    v.to_string()
}

pub(crate) async fn register_error(h: &Harness, c: &Client, auth_key: &str) -> String {
    let body = register_body(c, &c.keys.node_keys.public.to_string(), Some(auth_key));
    let (status, body) = post_json(c, h, "/machine/register", body).await;
    assert_eq!(status, 200, "key refusals travel in RegisterResponse.Error");
    let r: RegisterResponse = serde_json::from_slice(&body).unwrap();
    assert!(!r.machine_authorized);
    r.error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_node_key_under_another_machine_key_is_refused() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let victim = Client::registered(&h, "victim", &key).await;
    let before = h.db.tx(|c| c.list_nodes()).unwrap();

    // The attacker has its own machine key but names the victim's node key.
    let attacker = Client::connect(&h, "attacker").await;
    let victim_nk = victim.keys.node_keys.public.to_string();
    let (status, _) = post_json(
        &attacker,
        &h,
        "/machine/register",
        register_body(&attacker, &victim_nk, Some(&key)),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post_json(
        &attacker,
        &h,
        "/machine/register",
        register_body(&attacker, &victim_nk, None),
    )
    .await;
    assert_eq!(status, 401);
    let map = serde_json::json!({"Version": 130, "NodeKey": victim_nk, "Stream": true});
    let (status, _) = post_json(&attacker, &h, "/machine/map", map.to_string()).await;
    assert_eq!(status, 404);
    let lite = serde_json::json!({"Version": 130, "NodeKey": victim_nk, "OmitPeers": true,
        "Endpoints": ["192.0.2.9:1"]});
    let (status, _) = post_json(&attacker, &h, "/machine/map", lite.to_string()).await;
    assert_eq!(status, 404);
    assert_eq!(
        h.db.tx(|c| c.list_nodes()).unwrap(),
        before,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_expired_and_unknown_keys_are_refused() {
    let h = Harness::start().await;
    let single = h.key(false, false);
    let _first = Client::registered(&h, "first", &single).await;
    assert_eq!(h.node_count(), 1);

    let second = Client::connect(&h, "second").await;
    assert_eq!(
        register_error(&h, &second, &single).await,
        "authkey already used"
    );

    let expired = h.key_with(NewPreAuthKey {
        user_id: Some(h.user),
        expiration: Some(Utc::now() - ChronoDuration::hours(1)),
        ..NewPreAuthKey::default()
    });
    assert_eq!(
        register_error(&h, &second, &expired).await,
        "authkey expired"
    );

    let unknown = "hskey-auth-000000000000-000000000000000000000000000000000000000000000000";
    assert_eq!(
        register_error(&h, &second, unknown).await,
        "invalid pre auth key"
    );
    assert_eq!(
        register_error(&h, &second, "garbage").await,
        "invalid pre auth key"
    );

    assert_eq!(h.node_count(), 1, "no refused registration wrote a node");
    let keys = h.db.tx(|c| c.list_pre_auth_keys(None)).unwrap();
    let exp = keys.iter().find(|k| k.expiration.is_some()).unwrap();
    assert!(!exp.used, "a refused key is not marked used");
    assert!(
        h.st.metrics()
            .render()
            .contains("headscale_registrations_total{method=\"authkey\",status=\"refused\"} 4")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_key_registers_a_node_owned_by_no_user() {
    let h = Harness::start().await;
    let k = h.key_with(NewPreAuthKey {
        user_id: None,
        tags: vec!["tag:server".into()],
        ..NewPreAuthKey::default()
    });
    let _c = Client::registered(&h, "srv", &k).await;
    let nodes = h.db.tx(|c| c.list_nodes()).unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].user_id, None);
    assert_eq!(nodes[0].tags, vec!["tag:server".to_owned()]);
    assert_eq!(nodes[0].expiry, None, "tagged nodes do not expire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_and_other_machine_paths_501() {
    let h = Harness::start().await;
    let c = Client::connect(&h, "m").await;
    for body in [
        "",
        "{",
        "[]",
        r#"{"NodeKey":"nodekey:zz"}"#,
        r#"{"Version":"x"}"#,
    ] {
        let (status, text) = post_json(&c, &h, "/machine/register", body.into()).await;
        assert_eq!(
            status,
            400,
            "register {body:?}: {}",
            String::from_utf8_lossy(&text)
        );
        let (status, _) = post_json(&c, &h, "/machine/map", body.into()).await;
        assert_eq!(status, 400, "map {body:?}");
    }
    // A well-formed request without a node key.
    let (status, _) = post_json(&c, &h, "/machine/register", r#"{"Version":130}"#.into()).await;
    assert_eq!(status, 400);
    // A map request for a node key nobody registered.
    let unknown = serde_json::json!({"Version":130, "NodeKey": c.keys.node_keys.public.to_string(), "Stream": true});
    let (status, _) = post_json(&c, &h, "/machine/map", unknown.to_string()).await;
    assert_eq!(status, 404);
    for p in ["/machine/set-dns", "/machine/id-token", "/machine/whatever"] {
        let (status, body) = post_json(&c, &h, p, "{}".into()).await;
        assert_eq!(status, 501, "{p}");
        assert_eq!(&body[..], b"Not implemented yet");
    }
    assert_eq!(h.node_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_expired_after_use_is_refused_at_once() {
    let h = Harness::start().await;
    let reusable = h.key(true, false);
    let _a = Client::registered(&h, "a", &reusable).await;
    let id = h.db.tx(|c| c.list_pre_auth_keys(None)).unwrap()[0].id;
    h.db.tx(|c| c.expire_pre_auth_key(id, Utc::now())).unwrap();
    let b = Client::connect(&h, "b").await;
    assert_eq!(register_error(&h, &b, &reusable).await, "authkey expired");
    assert_eq!(h.node_count(), 1);
}

/// Go's zero instant stored as a pre-auth key's expiration (what Headscale's API stores when a
/// create request has none, and what a database imported from Go may hold) is a past time:
/// the key is expired, not "never expires". NULL still means never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_expiration_keys_are_refused_as_expired() {
    let h = Harness::start().await;
    let zero = chrono::DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap();
    let hashed = h.key_with(NewPreAuthKey {
        user_id: Some(h.user),
        reusable: true,
        expiration: Some(zero),
        ..NewPreAuthKey::default()
    });
    // A legacy plaintext key written the way Go's GORM writes the zero time into SQLite.
    let legacy = "00112233445566778899aabbccddeeff0011223344556677";
    let uid = h.user.get();
    h.db.tx(|c| {
        c.execute_raw(&format!(
            "INSERT INTO pre_auth_keys (key, user_id, reusable, ephemeral, used, tags, expiration) \
             VALUES ('{legacy}', {uid}, true, false, false, '[]', '0001-01-01 00:00:00+00:00')"
        ))
    })
    .unwrap();

    let c = Client::connect(&h, "zero").await;
    assert_eq!(register_error(&h, &c, &hashed).await, "authkey expired");
    assert_eq!(register_error(&h, &c, legacy).await, "authkey expired");
    assert_eq!(h.node_count(), 0, "no refused registration wrote a node");

    let never = h.key_with(NewPreAuthKey {
        user_id: Some(h.user),
        expiration: None,
        ..NewPreAuthKey::default()
    });
    let _ok = Client::registered(&h, "never", &never).await;
    assert_eq!(h.node_count(), 1, "a key without expiration still works");
}
