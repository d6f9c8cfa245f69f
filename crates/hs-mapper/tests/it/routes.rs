//! Per-viewer routes: a router's `AllowedIPs` and `PrimaryRoutes` as each viewer's policy
//! lets it use them, a primary move reaching every viewer in the same batch, a policy
//! change resending exactly the router entries whose visible routes moved, and exit-node
//! suggestions.

use std::sync::Arc;

use hs_mapper::{Mapper, Session};
use hs_nodestore::{NodeAttr, NodeEntry, NodePatch, NodeStore, Op, PolicyView, Writer};
use hs_types::NodeId;
use hs_types::UserId;
use hs_types::model::Node;
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::fixtures::{NOW, frames, mapper, node, t, user};

/// Everyone sees everyone; routes are usable only by viewers owned by one of `route_users`.
/// With `suggest`, every node gets the `suggest-exit-node` attribute.
#[derive(Debug)]
struct RoutesFor {
    route_users: Vec<u64>,
    filter: Arc<str>,
    suggest: bool,
}

impl RoutesFor {
    fn policy(route_users: &[u64]) -> Arc<dyn PolicyView> {
        Arc::new(Self {
            route_users: route_users.to_vec(),
            filter: Arc::from(hs_nodestore::ALLOW_ALL_FILTER_JSON),
            suggest: false,
        })
    }

    fn suggesting(route_users: &[u64]) -> Arc<dyn PolicyView> {
        Arc::new(Self {
            route_users: route_users.to_vec(),
            filter: Arc::from(hs_nodestore::ALLOW_ALL_FILTER_JSON),
            suggest: true,
        })
    }
}

impl PolicyView for RoutesFor {
    fn can_see(&self, _viewer: &Node, _peer: &Node) -> bool {
        true
    }

    fn packet_filter(&self, _viewer: &Node) -> Arc<str> {
        Arc::clone(&self.filter)
    }

    fn ssh_policy(&self, _viewer: &Node) -> Option<Arc<str>> {
        None
    }

    fn node_attrs(&self, _node: &Node) -> Vec<NodeAttr> {
        if !self.suggest {
            return Vec::new();
        }
        vec![NodeAttr {
            cap: "suggest-exit-node".into(),
            values: Vec::new(),
        }]
    }

    fn visible_routes(&self, viewer: &Node, peer: &NodeEntry) -> Vec<IpNet> {
        let ok = viewer
            .user_id
            .is_some_and(|UserId(u)| self.route_users.contains(&u));
        if ok {
            peer.offered_routes()
        } else {
            Vec::new()
        }
    }
}

const SUBNET: &str = "10.33.0.0/24";

fn router(id: u64, user: u64, exit: bool) -> Node {
    let mut n = node(id, user);
    let mut routes = vec![SUBNET.to_owned()];
    if exit {
        routes.extend(["0.0.0.0/0".to_owned(), "::/0".to_owned()]);
    }
    if let Some(h) = n.hostinfo.as_mut() {
        h["RoutableIPs"] = json!(routes);
    }
    n.approved_routes = routes.iter().map(|r| r.parse().unwrap()).collect();
    n
}

fn online(id: u64, on: bool) -> Op {
    Op::Patch(
        NodeId(id),
        NodePatch {
            online: Some(on),
            ..NodePatch::default()
        },
    )
}

struct World {
    store: NodeStore,
    w: Writer,
    m: Mapper,
    sessions: Vec<Session>,
}

/// Routers 1 (user 1, subnet + exit) and 4 (user 1, subnet only), plain nodes 2 (user 1)
/// and 3 (user 2), all online, router 1 primary; routes usable by user 1 only.
fn world() -> World {
    let (store, mut w) = NodeStore::new(RoutesFor::policy(&[1]));
    w.apply((1..=2).map(|u| Op::UpsertUser(Box::new(user(u)))));
    w.apply([
        Op::Upsert(Box::new(router(1, 1, true))),
        Op::Upsert(Box::new(node(2, 1))),
        Op::Upsert(Box::new(node(3, 2))),
        Op::Upsert(Box::new(router(4, 1, false))),
    ]);
    w.apply((1..=4).map(|i| online(i, true)));
    let m = mapper();
    let snap = store.load_full();
    assert_eq!(
        snap.primary_route(&SUBNET.parse().unwrap()),
        Some(NodeId(1))
    );
    let sessions = [2, 3]
        .iter()
        .map(|i| m.full_map(&snap, NodeId(*i), t(NOW)).unwrap().0)
        .collect();
    World {
        store,
        w,
        m,
        sessions,
    }
}

impl World {
    fn apply(&mut self, ops: Vec<Op>) -> std::collections::BTreeMap<NodeId, Value> {
        let a = self.w.apply(ops);
        assert!(a.results.iter().all(Result::is_ok), "{:?}", a.results);
        frames(
            &self
                .m
                .fanout(&a.prev, &a.next, &a.changes, &mut self.sessions, t(NOW))
                .unwrap(),
        )
    }

    fn full(&self, viewer: u64) -> Value {
        let snap = self.store.load_full();
        let (_, bytes) = self.m.full_map(&snap, NodeId(viewer), t(NOW)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn peer(list: &Value, id: u64) -> Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["ID"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("peer {id} missing from {list}"))
}

fn ips(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn a_router_shows_its_routes_only_to_viewers_that_may_use_them() {
    let w = world();
    let allowed = w.full(2);
    let r = peer(&allowed["Peers"], 1);
    assert_eq!(
        ips(&r["AllowedIPs"]),
        [
            "0.0.0.0/0",
            "10.33.0.0/24",
            "100.64.0.1/32",
            "::/0",
            "fd7a:115c:a1e0::1/128"
        ]
    );
    assert_eq!(ips(&r["PrimaryRoutes"]), [SUBNET]);
    // The standby router serves the prefix but is not primary: nobody routes it there.
    let standby = peer(&allowed["Peers"], 4);
    assert!(!ips(&standby["AllowedIPs"]).contains(&SUBNET.to_owned()));
    assert!(ips(&standby["PrimaryRoutes"]).is_empty());

    let denied = w.full(3);
    let r = peer(&denied["Peers"], 1);
    assert_eq!(
        ips(&r["AllowedIPs"]),
        ["100.64.0.1/32", "fd7a:115c:a1e0::1/128"]
    );
    assert!(ips(&r["PrimaryRoutes"]).is_empty());
    // The router itself always sees all it serves.
    let me = w.full(1);
    assert_eq!(ips(&me["Node"]["PrimaryRoutes"]), [SUBNET]);
    assert!(ips(&me["Node"]["AllowedIPs"]).contains(&"::/0".to_owned()));
}

#[test]
fn a_primary_move_reaches_every_viewer_in_one_message() {
    let mut w = world();
    let out = w.apply(vec![online(1, false)]);
    assert_eq!(
        w.store.load().primary_route(&SUBNET.parse().unwrap()),
        Some(NodeId(4))
    );
    let m = &out[&NodeId(2)];
    let changed = &m["PeersChanged"];
    let old = peer(changed, 1);
    let new = peer(changed, 4);
    assert!(ips(&old["PrimaryRoutes"]).is_empty());
    assert!(!ips(&old["AllowedIPs"]).contains(&SUBNET.to_owned()));
    assert_eq!(ips(&new["PrimaryRoutes"]), [SUBNET]);
    assert!(ips(&new["AllowedIPs"]).contains(&SUBNET.to_owned()));
    // The viewer without route rights is told of the change but never of the route.
    let m = &out[&NodeId(3)];
    for p in m["PeersChanged"].as_array().unwrap() {
        assert!(ips(&p["PrimaryRoutes"]).is_empty(), "{p}");
        assert!(!ips(&p["AllowedIPs"]).contains(&SUBNET.to_owned()), "{p}");
    }
    // Back online, router 1 does not take the prefix back.
    w.apply(vec![online(1, true)]);
    assert_eq!(
        w.store.load().primary_route(&SUBNET.parse().unwrap()),
        Some(NodeId(4))
    );
}

#[test]
fn a_policy_change_resends_routers_whose_visible_routes_moved() {
    let mut w = world();
    let out = w.apply(vec![Op::SetPolicy(RoutesFor::policy(&[1, 2]))]);
    // Viewer 3 may now use the routes: router 1 is resent to it with them.
    let m = &out[&NodeId(3)];
    let r = peer(&m["PeersChanged"], 1);
    assert_eq!(ips(&r["PrimaryRoutes"]), [SUBNET]);
    assert!(ips(&r["AllowedIPs"]).contains(&"0.0.0.0/0".to_owned()));
    // Nothing moved for viewer 2 or for plain peers.
    assert!(!out.contains_key(&NodeId(2)), "{:?}", out.get(&NodeId(2)));
    assert!(
        m["PeersChanged"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["ID"] == 1 || p["ID"] == 4),
        "{m}"
    );
}

#[test]
fn only_approved_exit_nodes_are_suggested_to_peers() {
    let mut w = world();
    let out = w.apply(vec![Op::SetPolicy(RoutesFor::suggesting(&[1]))]);
    // Router 1 serves an approved exit route: its peers are told it is a suggestion.
    let m = &out[&NodeId(2)];
    let r = peer(&m["PeersChanged"], 1);
    assert_eq!(r["CapMap"], json!({"suggest-exit-node": []}), "{r}");
    // Router 4 has the attribute too but no exit route: nothing for its peers.
    assert!(
        m["PeersChanged"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["ID"] == 1),
        "{m}"
    );
    // Peers never see the rest of a node's CapMap; the node itself sees all of it.
    let full = w.full(2);
    let r4 = peer(&full["Peers"], 4);
    assert!(r4.get("CapMap").is_none(), "{r4}");
    assert!(
        full["Node"]["CapMap"]
            .get("https://tailscale.com/cap/is-admin")
            .is_some()
    );
    assert_eq!(full["Node"]["CapMap"]["suggest-exit-node"], json!([]));
}
