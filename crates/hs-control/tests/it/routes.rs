//! Subnet routes in the running control plane: autoApprovers approve announced routes
//! (durably) on announcement and on a policy change, peers see a router's routes only where
//! the policy lets them use them, and the primary moves to the standby router when the
//! primary disconnects.

use std::collections::BTreeMap;
use std::time::Duration;

use hs_types::NodeId;
use ipnet::IpNet;
use serde_json::{Value, json};
use tokio::io::AsyncRead;

use crate::harness::{Client, Harness, open_map, read_frame};

pub(crate) const SUBNET: &str = "10.33.0.0/24";

/// Everyone reaches everything; alice's nodes may have 10.33.0.0/16 sub-prefixes and exit
/// routes approved automatically.
pub(crate) const AUTO: &str = r#"{
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
  "autoApprovers": {
    "routes": {"10.33.0.0/16": ["alice@"]},
    "exitNode": ["alice@"],
  },
}"#;

/// [`AUTO`] plus 192.168.77.0/24 for alice.
const AUTO_MORE: &str = r#"{
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
  "autoApprovers": {
    "routes": {"10.33.0.0/16": ["alice@"], "192.168.77.0/24": ["alice@"]},
    "exitNode": ["alice@"],
  },
}"#;

/// A map stream's view of the tailnet: each peer's latest full entry.
pub(crate) struct Peers {
    read: Box<dyn AsyncRead + Unpin + Send>,
    pub(crate) peers: BTreeMap<u64, Value>,
    /// The last map response read, for diagnostics.
    pub(crate) last: Value,
}

impl Peers {
    /// Opens a streaming map request, announcing `routes` in its Hostinfo.
    pub(crate) async fn open(c: &Client, h: &Harness, host: &str, routes: &[&str]) -> Self {
        let hostinfo = json!({"Hostname": host, "OS": "linux", "RoutableIPs": routes});
        let read = open_map(c, h, Some(hostinfo)).await;
        let mut v = Self {
            read: Box::new(read),
            peers: BTreeMap::new(),
            last: Value::Null,
        };
        v.next().await;
        v
    }

    /// Reads one frame and folds it into the view.
    pub(crate) async fn next(&mut self) {
        let m = read_frame(&mut self.read).await.expect("map stream open");
        if let Some(all) = m["Peers"].as_array() {
            self.peers = all
                .iter()
                .map(|p| (p["ID"].as_u64().unwrap(), p.clone()))
                .collect();
        }
        for p in m["PeersChanged"].as_array().into_iter().flatten() {
            self.peers.insert(p["ID"].as_u64().unwrap(), p.clone());
        }
        for g in m["PeersRemoved"].as_array().into_iter().flatten() {
            self.peers.remove(&g.as_u64().unwrap());
        }
        self.last = m;
    }

    /// Reads frames until `done` holds (each frame within a hang guard).
    pub(crate) async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..100 {
            if done(self) {
                return;
            }
            self.next().await;
        }
        panic!("{what}: not reached; peers {:?}", self.peers);
    }

    /// A field of a peer as a list of strings (empty when absent).
    pub(crate) fn list(&self, peer: NodeId, field: &str) -> Vec<String> {
        self.peers
            .get(&peer.get())
            .and_then(|p| p[field].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `peer` is shown as the primary router of `prefix`, with the prefix routed to
    /// it.
    pub(crate) fn primary(&self, peer: NodeId, prefix: &str) -> bool {
        let p = prefix.to_owned();
        self.list(peer, "PrimaryRoutes").contains(&p) && self.list(peer, "AllowedIPs").contains(&p)
    }
}

/// Registers a client as `h.user` (alice) and returns it with its node id.
pub(crate) async fn join(h: &Harness, host: &str) -> (Client, NodeId) {
    let (c, node) = h.join_as(host, h.user).await;
    (c, node.id)
}

/// Polls `cond` until it holds (a hang guard, not a timing assert).
pub(crate) async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not reached within 20 s");
}

/// A viewer's map stream and two routers announcing [`SUBNET`] under [`AUTO`]: router1's
/// stream opened first and shown as primary to the viewer, then router2's.
pub(crate) struct Failover {
    pub(crate) viewer: Peers,
    pub(crate) s1: Peers,
    pub(crate) s2: Peers,
    pub(crate) id1: NodeId,
    pub(crate) id2: NodeId,
    /// The clients whose connections carry the streams: keep them bound.
    pub(crate) clients: [Client; 3],
}

pub(crate) async fn failover(h: &Harness) -> Failover {
    h.st.set_policy_text("test policy", Some(AUTO))
        .await
        .unwrap();
    let (viewer, _) = join(h, "viewer").await;
    let (r1, id1) = join(h, "router1").await;
    let (r2, id2) = join(h, "router2").await;
    let mut v = Peers::open(&viewer, h, "viewer", &[]).await;
    let s1 = Peers::open(&r1, h, "router1", &[SUBNET]).await;
    v.until("router1 is primary", |v| v.primary(id1, SUBNET))
        .await;
    let s2 = Peers::open(&r2, h, "router2", &[SUBNET]).await;
    Failover {
        viewer: v,
        s1,
        s2,
        id1,
        id2,
        clients: [viewer, r1, r2],
    }
}

fn stored_approved(h: &Harness, id: NodeId) -> Vec<IpNet> {
    h.db.tx(|c| c.get_node(id))
        .unwrap()
        .unwrap()
        .approved_routes
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = v.iter().map(|s| s.parse().unwrap()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_approvers_approve_on_announce_and_on_policy_change() {
    let h = Harness::start().await;
    h.st.set_policy_text("test policy", Some(AUTO))
        .await
        .unwrap();
    let (viewer, _) = join(&h, "viewer").await;
    let (router, rid) = join(&h, "router").await;
    let mut v = Peers::open(&viewer, &h, "viewer", &[]).await;
    let _r = Peers::open(
        &router,
        &h,
        "router",
        &[SUBNET, "192.168.77.0/24", "0.0.0.0/0", "::/0"],
    )
    .await;
    v.until("the subnet and exit routes reach the viewer", |v| {
        v.primary(rid, SUBNET) && v.list(rid, "AllowedIPs").contains(&"::/0".to_owned())
    })
    .await;
    // Covered by the policy: approved and written to the database; 192.168.77.0/24 is not.
    assert_eq!(
        stored_approved(&h, rid),
        nets(&[SUBNET, "0.0.0.0/0", "::/0"])
    );
    assert!(
        !v.list(rid, "AllowedIPs")
            .contains(&"192.168.77.0/24".to_owned())
    );

    // A policy that covers the other prefix approves it without any new announcement.
    h.st.set_policy_text("test policy", Some(AUTO_MORE))
        .await
        .unwrap();
    v.until("the newly approved route reaches the viewer", |v| {
        v.primary(rid, "192.168.77.0/24")
    })
    .await;
    assert_eq!(
        stored_approved(&h, rid),
        nets(&[SUBNET, "192.168.77.0/24", "0.0.0.0/0", "::/0"])
    );
    // Back to the narrower policy: approval is never taken away by the policy.
    h.st.set_policy_text("test policy", Some(AUTO))
        .await
        .unwrap();
    assert_eq!(stored_approved(&h, rid).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_show_only_to_viewers_the_policy_lets_use_them() {
    let h = Harness::start().await;
    // The viewer may reach the router's own address but not the subnet behind it; the
    // other viewer may reach the subnet.
    let (router, rid) = join(&h, "router").await;
    let (blind, _) = join(&h, "blind").await;
    let (seeing, _) = join(&h, "seeing").await;
    let ip = |host: &str| {
        h.db.tx(|t| t.list_nodes())
            .unwrap()
            .into_iter()
            .find(|n| n.hostname == host)
            .unwrap()
            .ipv4
            .unwrap()
            .to_string()
    };
    let policy = format!(
        r#"{{
          "hosts": {{"router": "{r}/32", "blind": "{b}/32", "seeing": "{s}/32"}},
          "acls": [
            {{"action": "accept", "src": ["blind", "seeing"], "dst": ["router:*"]}},
            {{"action": "accept", "src": ["seeing"], "dst": ["10.33.0.0/24:*"]}},
          ],
          "autoApprovers": {{"routes": {{"10.33.0.0/24": ["alice@"]}}}},
        }}"#,
        r = ip("router"),
        b = ip("blind"),
        s = ip("seeing"),
    );
    h.st.set_policy_text("test policy", Some(&policy))
        .await
        .unwrap();
    let mut vs = Peers::open(&seeing, &h, "seeing", &[]).await;
    let _r = Peers::open(&router, &h, "router", &[SUBNET]).await;
    vs.until("the allowed viewer gets the route", |v| {
        v.primary(rid, SUBNET)
    })
    .await;
    assert_eq!(stored_approved(&h, rid), nets(&[SUBNET]));
    // A full map of the same tailnet for the other viewer: the router without the subnet.
    let vb = Peers::open(&blind, &h, "blind", &[]).await;
    assert!(vb.peers.contains_key(&rid.get()), "{:?}", vb.peers);
    assert!(vb.list(rid, "PrimaryRoutes").is_empty(), "{:?}", vb.peers);
    assert!(!vb.list(rid, "AllowedIPs").contains(&SUBNET.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_router_takes_over_when_the_primary_disconnects() {
    let h = Harness::start().await;
    let Failover {
        viewer: mut v,
        s1,
        s2: _s2,
        id1,
        id2,
        clients: _clients,
    } = failover(&h).await;
    eventually("router2 is an online candidate", || {
        let snap = h.st.store().load();
        snap.node(id2).is_some_and(|e| e.online)
            && snap
                .routes()
                .any(|(_, st)| st.candidates.contains(&id2) && st.primary == Some(id1))
    })
    .await;
    assert!(
        !v.primary(id2, SUBNET),
        "the standby must not be primary yet"
    );
    assert!(v.primary(id1, SUBNET));

    drop(s1);
    v.until("router2 took over in the viewer's map", |v| {
        v.primary(id2, SUBNET) && !v.primary(id1, SUBNET)
    })
    .await;
    // The old primary keeps its approval.
    assert_eq!(stored_approved(&h, id1), nets(&[SUBNET]));
}

/// How many batches the coordinator has applied (each is one fan-out).
fn batches(h: &Harness) -> u64 {
    h.st.metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("headscale_nodestore_batch_size_count "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_approving_many_routers_is_one_fan_out() {
    const ROUTERS: u8 = 5;
    let h = Harness::start().await;
    let (viewer, _) = join(&h, "viewer").await;
    let mut v = Peers::open(&viewer, &h, "viewer", &[]).await;
    let mut streams = Vec::new();
    let mut clients = Vec::new();
    for i in 0..ROUTERS {
        let host = format!("router{i}");
        let (c, _) = join(&h, &host).await;
        let subnet = format!("10.33.{i}.0/24");
        streams.push(Peers::open(&c, &h, &host, &[subnet.as_str()]).await);
        clients.push(c);
    }
    // Quiet: every stream is open and its node marked online.
    let total = usize::from(ROUTERS) + 1;
    eventually("every node online", || {
        h.st.store().load().nodes().filter(|e| e.online).count() == total
    })
    .await;
    assert!(
        h.st.store()
            .load()
            .nodes()
            .all(|e| e.node.approved_routes.is_empty())
    );

    let before = batches(&h);
    h.st.set_policy_text("test policy", Some(AUTO))
        .await
        .unwrap();
    assert_eq!(
        batches(&h) - before,
        1,
        "the policy and its {ROUTERS} approvals were not one batch"
    );
    // The first frame the viewer gets with any router's route carries all of them.
    let with_routes = |last: &Value| {
        last["PeersChanged"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["AllowedIPs"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|ip| ip.as_str().is_some_and(|s| s.starts_with("10.33.")))
                })
            })
            .count()
    };
    let mut routed = 0;
    for _ in 0..20 {
        v.next().await;
        routed = with_routes(&v.last);
        if routed > 0 {
            break;
        }
    }
    assert_eq!(routed, usize::from(ROUTERS), "{}", v.last);
    // Durable too: every router's approval is in the database.
    let rows = h.db.tx(|c| c.list_nodes()).unwrap();
    let approved = rows
        .iter()
        .filter(|n| !n.approved_routes.is_empty())
        .count();
    assert_eq!(approved, usize::from(ROUTERS));
    drop((streams, clients));
}
