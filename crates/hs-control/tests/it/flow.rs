//! Two Tailscale Rust clients against the in-process server: registration with a pre-auth
//! key, full maps listing each other with the right addresses, endpoint patches, logout,
//! ephemeral clean-up.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use ts_http_util::{ClientExt as _, ResponseExt as _};

use crate::harness::{Client, Harness, next_update};
use crate::view::{View, alpha_watching_bravo, until};

pub(crate) async fn post_json(c: &Client, h: &Harness, path: &str, body: String) -> (u16, Bytes) {
    let url = h.url.join(path).unwrap();
    let resp = c
        .conn
        .post(&url, [], Bytes::from(body).into())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.collect_bytes().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_each_other_get_patches_and_logout() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let a = Client::registered(&h, "alpha", &key).await;
    let b = Client::registered(&h, "bravo", &key).await;
    // A restart (no auth key) of a known node is answered as authorized.
    ts_control::register(&a.cfg, &h.url, None, None, &a.keys, &a.conn)
        .await
        .unwrap();
    assert_eq!(h.node_count(), 2);

    let mut sa = a.stream(&h).await;
    let mut va = View::default();
    va.apply(next_update(&mut sa).await);
    let me_a = va.me.clone().expect("first map carries the self node");
    assert_eq!(me_a.hostname, "alpha");
    assert_eq!(me_a.node_key, a.keys.node_keys.public);

    let mut sb = b.stream(&h).await;
    let mut vb = View::default();
    vb.apply(next_update(&mut sb).await);
    let me_b = vb.me.clone().unwrap();
    assert_ne!(me_a.tailnet_address, me_b.tailnet_address);
    assert!(
        "100.64.0.0/10"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&me_b.tailnet_address.ipv4.addr())
    );
    let pa = vb.peers.get(&me_a.id).expect("B's first map lists A");
    assert_eq!(pa.tailnet_address, me_a.tailnet_address);
    assert_eq!(pa.node_key, a.keys.node_keys.public);
    until(&mut sa, &mut va, "A sees B", |v| {
        v.peers.contains_key(&me_b.id)
    })
    .await;
    assert_eq!(va.peers[&me_b.id].tailnet_address, me_b.tailnet_address);

    // B reports endpoints through a lite update; A gets them.
    let lite = serde_json::json!({
        "Version": 130, "NodeKey": b.keys.node_keys.public.to_string(),
        "DiscoKey": b.keys.disco_keys.public.to_string(),
        "Stream": false, "OmitPeers": true,
        "Endpoints": ["192.0.2.7:41641"], "EndpointTypes": [2]
    });
    let (status, body) = post_json(&b, &h, "/machine/map", lite.to_string()).await;
    assert_eq!(status, 200);
    assert!(
        body.is_empty(),
        "a lite update is answered with an empty body"
    );
    let ep: std::net::SocketAddr = "192.0.2.7:41641".parse().unwrap();
    until(&mut sa, &mut va, "B's endpoint at A", |v| {
        v.peers
            .get(&me_b.id)
            .is_some_and(|n| n.underlay_addresses.contains(&ep))
    })
    .await;

    // B logs out (an Expiry in the past): A is told its key expired.
    let logout = serde_json::json!({
        "Version": 130, "NodeKey": b.keys.node_keys.public.to_string(),
        "Expiry": "1970-01-01T00:02:03Z", "Hostinfo": null,
    });
    let (status, body) = post_json(&b, &h, "/machine/register", logout.to_string()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let stored =
        h.db.tx(|c| c.get_node(hs_types::NodeId(u64::try_from(me_b.id).unwrap())))
            .unwrap()
            .unwrap();
    assert!(stored.is_expired(Utc::now()), "logout is durable");
    until(&mut sa, &mut va, "B expired or gone at A", |v| {
        v.peers
            .get(&me_b.id)
            .is_none_or(|n| n.node_key_expiry.is_some_and(|e| e <= Utc::now()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_node_is_removed_after_inactivity() {
    let h = Harness::start().await;
    let key = h.key(false, true);
    let watcher_key = h.key(false, false);
    let w = Client::registered(&h, "watcher", &watcher_key).await;
    let e = Client::registered(&h, "eph", &key).await;
    let mut sw = w.stream(&h).await;
    let mut vw = View::default();
    vw.apply(next_update(&mut sw).await);
    assert_eq!(vw.peers.len(), 1);
    let eph_id = *vw.peers.keys().next().unwrap();
    {
        let mut se = e.stream(&h).await;
        next_update(&mut se).await;
        // The stream drops here: the ephemeral client goes away.
    }
    drop(e);
    until(&mut sw, &mut vw, "ephemeral peer removed", |v| {
        !v.peers.contains_key(&eph_id)
    })
    .await;
    // Deleted durably, and its addresses are free again.
    for _ in 0..50 {
        if h.node_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.node_count(), 1);
    assert!(
        h.st.store()
            .load()
            .node(hs_types::NodeId(u64::try_from(eph_id).unwrap()))
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_key_rotation_keeps_the_node_and_its_addresses() {
    let h = Harness::start().await;
    let key = h.key(false, false);
    let a = Client::registered(&h, "rot", &key).await;
    let before = h.db.tx(|c| c.list_nodes()).unwrap().remove(0);

    let new_key = ts_keys::NodeKeyPair::random().public.to_string();
    let req = serde_json::json!({"Version":130, "NodeKey": new_key,
        "OldNodeKey": a.keys.node_keys.public.to_string(), "Hostinfo": {"Hostname":"rot"}});
    let (status, body) = post_json(&a, &h, "/machine/register", req.to_string()).await;
    assert_eq!(status, 200);
    let r: hs_types::tailcfg::RegisterResponse = serde_json::from_slice(&body).unwrap();
    // A new node key without credentials (`tailscale up --force-reauth`) is a new login, as
    // Go Headscale asks: nothing changes until it is approved.
    assert!(!r.machine_authorized, "{r:?}");
    let (_, auth_id) = r.auth_url.rsplit_once("/register/").unwrap();
    assert_eq!(
        h.db.tx(|c| c.list_nodes()).unwrap()[0].node_key,
        before.node_key
    );
    let approved = h.st.approve_registration(auth_id, h.user).await.unwrap();
    assert_eq!(approved.id, before.id);

    let after = h.db.tx(|c| c.list_nodes()).unwrap();
    assert_eq!(after.len(), 1, "rotation does not create a node");
    assert_eq!(after[0].id, before.id);
    assert_eq!(after[0].ipv4, before.ipv4);
    assert_eq!(after[0].ipv6, before.ipv6);
    assert_eq!(after[0].node_key.to_string(), new_key);
    let snap = h.st.store().load();
    assert!(snap.node_by_node_key(&before.node_key).is_none());
    assert_eq!(
        snap.node_by_node_key(&after[0].node_key).unwrap().node.id,
        before.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rename_tags_and_expire_reach_peers_and_the_database() {
    let h = Harness::start().await;
    let mut w = alpha_watching_bravo(&h).await;
    let (b_id, bid) = (w.b_id, w.bid);

    h.st.rename_node(bid, "db-server").await.unwrap();
    w.until("renamed peer", |v| v.peers[&b_id].hostname == "db-server")
        .await;
    assert_eq!(
        h.db.tx(|c| c.get_node(bid)).unwrap().unwrap().given_name,
        "db-server"
    );
    assert!(h.st.rename_node(bid, "not a label!").await.is_err());
    assert!(h.st.rename_node(bid, "alpha").await.is_err(), "held by A");
    assert_eq!(
        h.db.tx(|c| c.get_node(bid)).unwrap().unwrap().given_name,
        "db-server"
    );

    h.st.set_node_tags(bid, vec!["tag:db".into()])
        .await
        .unwrap();
    w.until("tagged peer", |v| v.peers[&b_id].tags == ["tag:db"])
        .await;
    let stored = h.db.tx(|c| c.get_node(bid)).unwrap().unwrap();
    assert_eq!(stored.tags, vec!["tag:db".to_owned()]);
    assert_eq!(stored.user_id, None);
    assert!(h.st.set_node_tags(bid, vec!["db".into()]).await.is_err());

    let at = Utc::now() - chrono::Duration::minutes(1);
    h.st.expire_node(bid, Some(at)).await.unwrap();
    w.until("expired peer", |v| {
        v.peers[&b_id]
            .node_key_expiry
            .is_some_and(|e| e <= Utc::now())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_see_online_then_offline_after_the_grace_and_last_seen_is_stored() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let w = Client::registered(&h, "watch", &key).await;
    let p = Client::registered(&h, "peer", &key).await;
    let mut sw = w.stream(&h).await;
    let mut vw = View::default();
    vw.apply(next_update(&mut sw).await);
    let (&pid, _) = vw.peers.iter().next().unwrap();
    let node_id = hs_types::NodeId(u64::try_from(pid).unwrap());
    // Registering counts as being seen (Go Headscale stamps it too).
    let registered = h.db.tx(|c| c.get_node(node_id)).unwrap().unwrap().last_seen;
    assert!(registered.is_some());
    {
        let mut sp = p.stream(&h).await;
        next_update(&mut sp).await;
        until(&mut sw, &mut vw, "peer online", |v| {
            v.peers[&pid].status == ts_control::NodeStatus::Online
        })
        .await;
    }
    drop(p);
    until(&mut sw, &mut vw, "peer offline", |v| {
        matches!(v.peers[&pid].status, ts_control::NodeStatus::Offline(_))
    })
    .await;
    let stored = h.db.tx(|c| c.get_node(node_id)).unwrap().unwrap();
    assert!(
        stored.last_seen > registered,
        "going offline persists a later last seen"
    );
    assert!(!h.st.is_connected(node_id).await);
    assert_eq!(h.node_count(), 2, "a non-ephemeral node stays");
}

/// A client's new hostname renames its node while the name is still the one derived from
/// the old hostname (bumped on a collision, as Go Headscale does); once an operator renamed
/// the node, the operator's name stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_hostname_renames_the_node_until_an_operator_has() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let a = Client::registered(&h, "laptop", &key).await;
    let _b = Client::registered(&h, "joes-mac-mini", &key).await;
    let id = |host: &str| {
        h.st.store()
            .load()
            .nodes()
            .find(|e| e.node.hostname == host)
            .unwrap()
            .node
            .id
    };
    let given = |id| h.db.tx(|c| c.get_node(id)).unwrap().unwrap().given_name;
    let aid = id("laptop");
    let set_hostname = |name: &'static str| {
        crate::harness::post_map(
            &a,
            &h,
            serde_json::json!({"Stream": false, "Hostinfo": {"Hostname": name}}),
        )
    };
    let mut r = set_hostname("Joe's Mac mini").await;
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(
        given(aid),
        "joes-mac-mini-1",
        "follows the hostname, bumped past the other node"
    );
    assert_eq!(
        h.st.store().load().node(aid).unwrap().node.given_name,
        "joes-mac-mini-1"
    );

    h.st.rename_node(aid, "work").await.unwrap();
    let mut r = set_hostname("laptop-again").await;
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(given(aid), "work", "an operator's name stays");
    assert_eq!(
        h.db.tx(|c| c.get_node(aid)).unwrap().unwrap().hostname,
        "laptop-again"
    );
}
