//! No lost update: operator commands (rename, tags, approved routes, expiry) and the
//! clients' own map requests (endpoints, Hostinfo) hit the same nodes concurrently, a few
//! thousand writes in all (4 operators and 3 clients, 400 each), and afterwards the NodeStore holds exactly what the database
//! holds, which is the last value each writer wrote.
//!
//! The map requests come over the Tailscale Rust client's own Noise session.

use std::net::SocketAddr;

use chrono::{Duration as ChronoDuration, Utc};
use hs_types::NodeId;
use ipnet::IpNet;
use tokio::io::AsyncReadExt as _;

use crate::harness::{Client, Harness, post_map};

const ROUNDS: u16 = 400;

fn routes() -> Vec<IpNet> {
    vec![
        "10.1.0.0/24".parse().unwrap(),
        "10.2.0.0/24".parse().unwrap(),
    ]
}

/// One lite map request (`Stream: false, OmitPeers: true`) reporting round `i`'s endpoint
/// and Hostinfo.
async fn report(c: &Client, h: &Harness, i: u16) {
    let ep = SocketAddr::from(([192, 0, 2, 7], 20000 + i));
    let hostinfo = serde_json::json!({
        "Hostname": c.cfg.hostname.clone().unwrap(),
        "OS": "linux",
        "RoutableIPs": ["10.1.0.0/24", "10.2.0.0/24"],
        "IPNVersion": format!("1.0.{i}"),
    });
    let fields = serde_json::json!({
        "Stream": false,
        "OmitPeers": true,
        "Endpoints": [ep.to_string()],
        "Hostinfo": hostinfo,
    });
    let mut body = post_map(c, h, fields).await;
    let mut rest = Vec::new();
    body.read_to_end(&mut rest).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_operator_and_client_writes_lose_nothing() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let mut clients = Vec::new();
    for name in ["s1", "s2", "s3"] {
        clients.push(Client::registered(&h, name, &key).await);
    }
    // A connected stream makes the coordinator batch writes, the harder case.
    let _watch = clients[0].stream(&h).await;
    let ids: Vec<NodeId> = h.st.store().load().nodes().map(|e| e.node.id).collect();
    assert_eq!(ids.len(), 3);
    let t0 = Utc::now() + ChronoDuration::days(1);

    let mut tasks = tokio::task::JoinSet::new();
    let st = h.st.clone();
    let (i1, i2, i3, i4) = (ids.clone(), ids.clone(), ids.clone(), ids.clone());
    tasks.spawn(async move {
        for i in 0..ROUNDS {
            let id = i1[usize::from(i) % 3];
            st.rename_node(id, &format!("n{}-{i}", id.get()))
                .await
                .unwrap();
        }
    });
    let st = h.st.clone();
    tasks.spawn(async move {
        for i in 0..ROUNDS {
            let id = i2[usize::from(i) % 3];
            let tag = if i % 2 == 0 { "tag:even" } else { "tag:odd" };
            st.set_node_tags(id, vec![tag.into()]).await.unwrap();
        }
    });
    let st = h.st.clone();
    tasks.spawn(async move {
        for i in 0..ROUNDS {
            let id = i3[usize::from(i) % 3];
            let r = routes();
            st.set_approved_routes(id, r[..usize::from(i % 3).min(2)].to_vec())
                .await
                .unwrap();
        }
    });
    let st = h.st.clone();
    tasks.spawn(async move {
        for i in 0..ROUNDS {
            let id = i4[usize::from(i) % 3];
            let at = t0 + ChronoDuration::seconds(i64::from(i));
            st.expire_node(id, Some(at)).await.unwrap();
        }
    });
    let h = std::sync::Arc::new(h);
    for c in clients {
        let h = std::sync::Arc::clone(&h);
        tasks.spawn(async move {
            for i in 0..ROUNDS {
                report(&c, &h, i).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }

    let snap = h.st.store().load_full();
    let last = ROUNDS - 1;
    for (k, id) in ids.iter().enumerate() {
        let live = &snap.node(*id).unwrap().node;
        let row = h.db.tx(|c| c.get_node(*id)).unwrap().unwrap();
        // The NodeStore and the database agree on every column a writer touched.
        assert_eq!(live.given_name, row.given_name, "node {k}: name");
        assert_eq!(live.tags, row.tags, "node {k}: tags");
        assert_eq!(live.user_id, row.user_id, "node {k}: owner");
        assert_eq!(
            live.approved_routes, row.approved_routes,
            "node {k}: routes"
        );
        assert_eq!(live.expiry, row.expiry, "node {k}: expiry");
        assert_eq!(live.endpoints, row.endpoints, "node {k}: endpoints");
        assert_eq!(live.hostinfo, row.hostinfo, "node {k}: hostinfo");
        // And it is each writer's last write for this node.
        let k16 = u16::try_from(k).unwrap();
        let mine = (0..ROUNDS).filter(|i| i % 3 == k16).max().unwrap();
        assert_eq!(row.given_name, format!("n{}-{mine}", id.get()));
        let tag = if mine % 2 == 0 { "tag:even" } else { "tag:odd" };
        assert_eq!(row.tags, vec![tag.to_owned()]);
        assert_eq!(row.user_id, None, "a tagged node belongs to its tags");
        assert_eq!(
            row.approved_routes,
            routes()[..usize::from(mine % 3).min(2)].to_vec()
        );
        assert_eq!(
            row.expiry,
            Some(t0 + ChronoDuration::seconds(i64::from(mine)))
        );
        assert_eq!(
            row.endpoints,
            vec![SocketAddr::from(([192, 0, 2, 7], 20000 + last))]
        );
        let hi = row.hostinfo.as_ref().unwrap();
        assert_eq!(hi["IPNVersion"], format!("1.0.{last}"));
    }
}
