//! Node lifecycle with Tailscale's Rust client: a logout hides the node from its peers (and
//! survives a restart of the state), logging in again brings it back with its id and
//! addresses, and an admin expiry keeps the node visible as expired.

use chrono::Utc;
use hs_control::ControlState;

use crate::flow::post_json;
use crate::harness::{Client, Harness, next_update, start_state};
use crate::view::{View, alpha_watching_bravo, until};

fn logout_body(c: &Client) -> String {
    serde_json::json!({
        "Version": 130, "NodeKey": c.keys.node_keys.public.to_string(),
        "Expiry": "1970-01-01T00:02:03Z", "Hostinfo": null,
    })
    .to_string()
}

async fn reload(h: &Harness) -> ControlState {
    start_state(&h.db, &h.url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_removes_the_node_from_peers_until_it_logs_in_again() {
    let h = Harness::start().await;
    let mut w = alpha_watching_bravo(&h).await;
    let (b_id, bid) = (w.b_id, w.bid);
    let b_addr = w.va.peers[&b_id].tailnet_address.clone();

    let (status, body) = post_json(&w.b, &h, "/machine/register", logout_body(&w.b)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let resp: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(resp["NodeKeyExpired"], true);
    w.until("B gone from A's peers", |v| !v.peers.contains_key(&b_id))
        .await;
    // The row stays, expired at the logout (clamped to now, not 1970).
    let stored = h.db.tx(|c| c.get_node(bid)).unwrap().unwrap();
    let exp = stored.expiry.expect("logout sets an expiry");
    assert!(
        exp <= Utc::now() && exp.timestamp() > 1_000_000_000,
        "{exp}"
    );
    assert_eq!(h.node_count(), 2);
    assert!(h.st.is_logged_out(bid));

    // A fresh client of A (full map) does not list B either.
    let mut sa2 = w.a.stream(&h).await;
    let mut va2 = View::default();
    va2.apply(next_update(&mut sa2).await);
    assert!(va2.me.is_some());
    assert!(!va2.peers.contains_key(&b_id), "a full map hides B too");

    // The logged-out state is derived from the stored row after a restart of the state.
    let reloaded = reload(&h).await;
    assert!(reloaded.is_logged_out(bid), "logout survives a reload");

    // B logs in again from the same machine: same node, same addresses, visible again.
    w.b.register(&h, &w.key).await.unwrap();
    assert!(!h.st.is_logged_out(bid));
    until(&mut sa2, &mut va2, "B back at A", |v| {
        v.peers.contains_key(&b_id)
    })
    .await;
    assert_eq!(va2.peers[&b_id].tailnet_address, b_addr);
    assert_eq!(h.node_count(), 2);
    let stored = h.db.tx(|c| c.get_node(bid)).unwrap().unwrap();
    assert!(!stored.is_expired(Utc::now()));
    assert!(
        !reload(&h).await.is_logged_out(bid),
        "a login is durable too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_expire_keeps_the_node_visible_and_is_no_logout_after_a_reload() {
    let h = Harness::start().await;
    let mut w = alpha_watching_bravo(&h).await;
    let (b_id, bid) = (w.b_id, w.bid);
    h.st.expire_node(bid, Some(Utc::now())).await.unwrap();
    w.until("B shown expired", |v| {
        v.peers
            .get(&b_id)
            .and_then(|n| n.node_key_expiry)
            .is_some_and(|e| e <= Utc::now())
    })
    .await;
    assert!(!h.st.is_logged_out(bid));
    assert!(!reload(&h).await.is_logged_out(bid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_derp_map_reaches_connected_clients() {
    use futures_util::StreamExt as _;
    let h = Harness::start().await;
    let key = h.key(true, false);
    let a = Client::registered(&h, "alpha", &key).await;
    let mut sa = a.stream(&h).await;
    next_update(&mut sa).await;
    let map: hs_types::tailcfg::DERPMap = serde_json::from_str(
        r#"{"Regions":{"900":{"RegionID":900,"RegionCode":"new","RegionName":"New",
            "Nodes":[{"Name":"900a","RegionID":900,"HostName":"127.0.0.1","DERPPort":1}]}}}"#,
    )
    .unwrap();
    assert!(h.st.set_derp_map(&map).await.unwrap(), "a different map");
    assert!(
        !h.st.set_derp_map(&map).await.unwrap(),
        "the same map again"
    );
    loop {
        let u = tokio::time::timeout(std::time::Duration::from_secs(20), sa.next())
            .await
            .expect("a DERP map update within 20 s")
            .expect("stream open");
        if let Some(d) = u.derp {
            let json = format!("{d:?}");
            assert!(json.contains("900"), "{json}");
            break;
        }
    }
}
