//! One test per change kind and per nil-vs-empty rule.

use std::sync::Arc;

use hs_mapper::{CloseReason, Mapper, Outgoing, Session};
use hs_nodestore::{AllowAll, NodePatch, NodeStore, Op, PolicyView, Writer};
use hs_types::{NodeId, UserId};
use serde_json::{Value, json};

use crate::fixtures::{NOW, SameUser, config, derp_map, frames, json, mapper, node, t, user};

struct World {
    store: NodeStore,
    w: Writer,
    m: Mapper,
    sessions: Vec<Session>,
}

fn world(n: u64, policy: Arc<dyn PolicyView>) -> World {
    let (store, mut w) = NodeStore::new(policy);
    w.apply((1..=3).map(|u| Op::UpsertUser(Box::new(user(u)))));
    w.apply((1..=n).map(|i| Op::Upsert(Box::new(node(i, 1 + (i - 1) % 3)))));
    let m = mapper();
    let snap = store.load_full();
    let sessions = (1..=n)
        .map(|i| m.full_map(&snap, NodeId(i), t(NOW)).unwrap().0)
        .collect();
    World {
        store,
        w,
        m,
        sessions,
    }
}

impl World {
    fn apply(&mut self, ops: Vec<Op>) -> Vec<Outgoing> {
        let a = self.w.apply(ops);
        assert!(a.results.iter().all(Result::is_ok), "{:?}", a.results);
        self.m
            .fanout(&a.prev, &a.next, &a.changes, &mut self.sessions, t(NOW))
            .unwrap()
    }
}

fn patch(id: u64, p: NodePatch) -> Op {
    Op::Patch(NodeId(id), p)
}

#[test]
fn full_map_has_everything_the_first_message_needs() {
    let w = world(4, Arc::new(AllowAll::new()));
    let snap = w.store.load_full();
    let (s, bytes) = w.m.full_map(&snap, NodeId(2), t(NOW)).unwrap();
    assert_eq!(s.version(), snap.version());
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    let me = &m["Node"];
    assert_eq!(me["ID"], 2);
    assert_eq!(me["StableID"], "2");
    assert_eq!(me["Name"], "host-2.ts.example.com.");
    assert_eq!(me["MachineAuthorized"], true);
    assert_eq!(
        me["Addresses"],
        json!(["100.64.0.2/32", "fd7a:115c:a1e0::2/128"])
    );
    assert_eq!(me["HomeDERP"], 900);
    assert_eq!(me["User"], 2);
    assert_eq!(me["Online"], false);
    assert_eq!(
        me["CapMap"]["https://tailscale.com/cap/file-sharing"],
        json!([])
    );
    assert_eq!(me["CapMap"]["default-auto-update"], json!([false]));
    let ids: Vec<_> = m["Peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ID"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!(1), json!(3), json!(4)],
        "sorted by ID, self excluded"
    );
    assert_eq!(m["DERPMap"]["Regions"]["900"]["RegionCode"], "test");
    assert_eq!(m["DNSConfig"]["Resolvers"][0]["Addr"], "1.1.1.1");
    assert_eq!(m["Domain"], "ts.example.com");
    assert_eq!(m["CollectServices"], false);
    assert_eq!(m["PacketFilters"]["base"][0]["SrcIPs"], json!(["*"]));
    assert_eq!(m["SSHPolicy"], json!({"rules": []}));
    assert_eq!(m["Debug"]["DisableLogTail"], true);
    assert_eq!(m["ClientVersion"]["RunningLatest"], true);
    assert!(
        m["ControlTime"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T22:13:20")
    );
    let users: Vec<_> = m["UserProfiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ID"].clone())
        .collect();
    assert_eq!(users, [json!(1), json!(2), json!(3)]);
    assert_eq!(m["UserProfiles"][0]["LoginName"], "user1@example.com");
    assert!(w.m.full_map(&snap, NodeId(99), t(NOW)).is_err());
}

#[test]
fn endpoint_change_is_one_shared_patch_for_every_viewer() {
    let mut w = world(5, Arc::new(AllowAll::new()));
    let out = w.apply(vec![patch(
        3,
        NodePatch {
            endpoints: Some(vec!["198.51.100.7:1234".parse().unwrap()]),
            ..Default::default()
        },
    )]);
    assert_eq!(out.len(), 5);
    let f = frames(&out);
    for v in [1u64, 2, 4, 5] {
        let m = &f[&NodeId(v)];
        assert_eq!(
            m,
            &json!({"PeersChangedPatch": [{"NodeID": 3, "Endpoints": ["198.51.100.7:1234"]}]})
        );
    }
    assert_eq!(
        f[&NodeId(3)]["Node"]["Endpoints"],
        json!(["198.51.100.7:1234"])
    );
    // Identical messages are one allocation.
    let ptrs: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Outgoing::Frame { node, frame } if *node != NodeId(3) => Some(frame.as_ptr()),
            _ => None,
        })
        .collect();
    assert!(ptrs.windows(2).all(|p| p[0] == p[1]));
    // Nothing changed, nothing sent.
    let out = w.apply(vec![patch(
        3,
        NodePatch {
            endpoints: Some(vec!["198.51.100.7:1234".parse().unwrap()]),
            ..Default::default()
        },
    )]);
    assert!(out.is_empty());
}

#[test]
fn derp_key_and_disco_changes_are_patches() {
    let mut w = world(2, Arc::new(AllowAll::new()));
    let nk = hs_types::NodePublic::from_bytes([7; 32]);
    let dk = hs_types::DiscoPublic::from_bytes([8; 32]);
    let f = frames(&w.apply(vec![patch(
        2,
        NodePatch {
            home_derp: Some(901),
            node_key: Some(nk),
            disco_key: Some(dk),
            ..Default::default()
        },
    )]));
    let pc = &f[&NodeId(1)]["PeersChangedPatch"][0];
    assert_eq!(pc["DERPRegion"], 901);
    assert_eq!(pc["Key"], nk.to_string());
    assert_eq!(pc["DiscoKey"], dk.to_string());
    assert!(f[&NodeId(1)].get("PeersChanged").is_none());
}

#[test]
fn online_and_last_seen_use_online_change_and_patches() {
    let mut w = world(2, Arc::new(AllowAll::new()));
    let f = frames(&w.apply(vec![patch(
        2,
        NodePatch {
            online: Some(true),
            ..Default::default()
        },
    )]));
    assert_eq!(
        f[&NodeId(1)],
        json!({"OnlineChange": {"2": true}, "PeerSeenChange": {"2": false}})
    );
    let f = frames(&w.apply(vec![patch(
        2,
        NodePatch {
            online: Some(false),
            last_seen: Some(t(NOW)),
            ..Default::default()
        },
    )]));
    let m = &f[&NodeId(1)];
    assert_eq!(m["OnlineChange"], json!({"2": false}));
    assert_eq!(
        m["PeersChangedPatch"][0]["LastSeen"],
        "2023-11-14T22:13:20Z"
    );
}

#[test]
fn zero_values_and_expiry_go_out_as_full_peer_entries() {
    let mut w = world(2, Arc::new(AllowAll::new()));
    let f = frames(&w.apply(vec![patch(
        2,
        NodePatch {
            endpoints: Some(vec![]),
            ..Default::default()
        },
    )]));
    let m = &f[&NodeId(1)];
    assert!(m.get("PeersChangedPatch").is_none());
    assert_eq!(m["PeersChanged"][0]["ID"], 2);
    assert!(m["PeersChanged"][0].get("Endpoints").is_none());

    let f = frames(&w.apply(vec![patch(
        2,
        NodePatch {
            expiry: Some(Some(t(NOW - 1))),
            ..Default::default()
        },
    )]));
    let p = &f[&NodeId(1)]["PeersChanged"][0];
    assert_eq!(p["Expired"], true);
    assert!(
        p.get("MachineAuthorized").is_none(),
        "expired peers are not authorized"
    );
}

#[test]
fn hostinfo_change_resends_the_peer_with_its_user_profile() {
    let mut w = world(3, Arc::new(AllowAll::new()));
    let mut n = node(2, 2);
    n.hostname = "renamed".into();
    let f = frames(&w.apply(vec![Op::Upsert(Box::new(n))]));
    let m = &f[&NodeId(1)];
    assert_eq!(m["PeersChanged"][0]["ID"], 2);
    assert_eq!(m["UserProfiles"][0]["ID"], 2);
    assert_eq!(
        f[&NodeId(2)]["Node"]["ID"],
        2,
        "the node itself gets its new self entry"
    );
}

#[test]
fn removing_every_peer_uses_peers_removed_never_an_empty_peers() {
    let mut w = world(3, Arc::new(AllowAll::new()));
    let out = w.apply(vec![Op::Remove(NodeId(2)), Op::Remove(NodeId(3))]);
    let f: Vec<_> = out.iter().collect();
    assert!(f.contains(&&Outgoing::Close {
        node: NodeId(2),
        reason: CloseReason::NodeRemoved
    }));
    let m = match out
        .iter()
        .find(|o| matches!(o, Outgoing::Frame { node, .. } if *node == NodeId(1)))
    {
        Some(Outgoing::Frame { frame, .. }) => json(frame),
        other => panic!("no frame for node 1: {other:?}"),
    };
    assert_eq!(m["PeersRemoved"], json!([2, 3]));
    assert!(m.get("Peers").is_none());
}

#[test]
fn policy_change_sends_visibility_filter_and_ssh_only_where_they_changed() {
    let mut w = world(6, Arc::new(AllowAll::new()));
    let f = frames(&w.apply(vec![Op::SetPolicy(Arc::new(SameUser::new(None)))]));
    // Node 1 (user 1) now sees only node 4 (user 1).
    let m = &f[&NodeId(1)];
    assert_eq!(m["PeersRemoved"], json!([2, 3, 5, 6]));
    assert!(
        m.get("PeersChanged").is_none(),
        "still-visible peers are not resent"
    );
    assert_eq!(
        m["PacketFilters"]["base"][0]["SrcIPs"],
        json!(["100.64.0.1"])
    );
    assert_eq!(m["SSHPolicy"]["rules"][0]["action"]["accept"], true);
    assert!(
        f[&NodeId(2)].get("SSHPolicy").is_none(),
        "user 2 had and has no SSH rules"
    );

    // Same policy again: nothing changes for anyone.
    let out = w.apply(vec![Op::SetPolicy(w.store.load().policy().clone())]);
    assert!(out.is_empty(), "{out:?}");

    // A policy that adds a node attribute resends each node to itself; peers do not see
    // another node's attributes (Headscale's PeerCapMap), so no peer entry is resent.
    let f = frames(&w.apply(vec![Op::SetPolicy(Arc::new(SameUser::new(Some("funnel"))))]));
    assert_eq!(f[&NodeId(1)]["Node"]["CapMap"]["funnel"], json!([true]));
    assert!(
        f[&NodeId(1)].get("PeersChanged").is_none(),
        "{}",
        f[&NodeId(1)]
    );
}

#[test]
fn deny_all_filter_is_an_explicit_empty_list() {
    let mut w = world(4, Arc::new(SameUser::new(None)));
    let mut n = node(4, 0);
    n.given_name = "host-4".into();
    let out = w.apply(vec![Op::Upsert(Box::new(n))]);
    let f = frames(&out);
    assert_eq!(f[&NodeId(4)]["PacketFilters"], json!({"base": []}));
    assert_eq!(
        f[&NodeId(1)]["PeersRemoved"],
        json!([4]),
        "owner changed: no longer visible"
    );
}

#[test]
fn user_profile_changes_reach_only_viewers_that_show_the_user() {
    let mut w = world(4, Arc::new(SameUser::new(None)));
    let mut u = user(2);
    u.display_name = "Bob".into();
    let f = frames(&w.apply(vec![Op::UpsertUser(Box::new(u))]));
    assert_eq!(f.keys().copied().collect::<Vec<_>>(), [NodeId(2)]);
    assert_eq!(
        f[&NodeId(2)]["UserProfiles"],
        json!([{"ID": 2, "LoginName": "user2@example.com", "DisplayName": "Bob"}])
    );
    assert!(w.store.load().user(UserId(2)).is_some());
}

#[test]
fn out_of_sync_sessions_are_closed() {
    let mut w = world(2, Arc::new(AllowAll::new()));
    let a1 = w.w.apply([patch(
        2,
        NodePatch {
            home_derp: Some(5),
            ..Default::default()
        },
    )]);
    let a2 = w.w.apply([patch(
        2,
        NodePatch {
            home_derp: Some(6),
            ..Default::default()
        },
    )]);
    // Skipping batch a1 is detected.
    let out =
        w.m.fanout(&a2.prev, &a2.next, &a2.changes, &mut w.sessions, t(NOW))
            .unwrap();
    assert!(out.iter().all(|o| matches!(
        o,
        Outgoing::Close {
            reason: CloseReason::Desynced,
            ..
        }
    )));
    assert_eq!(out.len(), 2);
    // A session already past a batch ignores it.
    let snap = w.store.load_full();
    let mut fresh = vec![w.m.full_map(&snap, NodeId(1), t(NOW)).unwrap().0];
    assert!(
        w.m.fanout(&a1.prev, &a1.next, &a1.changes, &mut fresh, t(NOW))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn reconfigure_sends_derp_map_to_everyone_once_encoded() {
    let mut w = world(3, Arc::new(AllowAll::new()));
    let snap = w.store.load_full();
    let mut cfg = config();
    cfg.derp_map = Arc::from(serde_json::to_string(&derp_map(901)).unwrap());
    let out =
        w.m.reconfigure(cfg, &snap, &mut w.sessions, t(NOW))
            .unwrap();
    let f = frames(&out);
    assert_eq!(f.len(), 3);
    assert_eq!(
        f[&NodeId(1)],
        json!({"DERPMap": serde_json::to_value(derp_map(901)).unwrap()})
    );
    // Later batches still flow (sessions moved to the new config generation).
    let out = w.apply(vec![patch(
        1,
        NodePatch {
            home_derp: Some(901),
            ..Default::default()
        },
    )]);
    assert_eq!(frames(&out).len(), 3);

    let mut cfg = config();
    cfg.derp_map = Arc::from(serde_json::to_string(&derp_map(901)).unwrap());
    cfg.base_domain = "other.example".into();
    let f = frames(
        &w.m.reconfigure(cfg, &w.store.load_full(), &mut w.sessions, t(NOW))
            .unwrap(),
    );
    assert_eq!(f[&NodeId(1)]["Node"]["Name"], "host-1.other.example.");
    assert_eq!(
        f[&NodeId(1)]["PeersChanged"][1]["Name"],
        "host-3.other.example."
    );
}

#[test]
fn dns_changes_are_sent_and_removal_is_an_empty_config_not_nil() {
    let mut w = world(2, Arc::new(AllowAll::new()));
    let snap = w.store.load_full();
    let dns = hs_types::tailcfg::DNSConfig {
        domains: vec!["other.example".into()],
        ..Default::default()
    };
    let cfg = hs_mapper::MapperConfig::new(
        "ts.example.com",
        &derp_map(900),
        Some(&dns),
        true,
        false,
        false,
    )
    .unwrap();
    let f = frames(
        &w.m.reconfigure(cfg, &snap, &mut w.sessions, t(NOW))
            .unwrap(),
    );
    assert_eq!(
        f[&NodeId(1)],
        json!({"DNSConfig": {"Domains": ["other.example"]}})
    );
    let cfg =
        hs_mapper::MapperConfig::new("ts.example.com", &derp_map(900), None, true, false, false)
            .unwrap();
    let f = frames(
        &w.m.reconfigure(cfg, &snap, &mut w.sessions, t(NOW))
            .unwrap(),
    );
    assert_eq!(f[&NodeId(2)], json!({"DNSConfig": {}}));
}

#[test]
fn tagged_nodes_show_the_tagged_devices_user() {
    let mut w = world(2, Arc::new(AllowAll::new()));
    let mut n = node(2, 2);
    n.tags = vec!["tag:server".into()];
    n.given_name = "host-2".into();
    let f = frames(&w.apply(vec![Op::Upsert(Box::new(n))]));
    let m = &f[&NodeId(1)];
    assert_eq!(m["PeersChanged"][0]["User"], 2_147_455_555u64);
    assert_eq!(m["PeersChanged"][0]["Tags"], json!(["tag:server"]));
    assert_eq!(
        m["UserProfiles"],
        json!([{"ID": 2_147_455_555u64, "LoginName": "tagged-devices", "DisplayName": "Tagged Devices"}])
    );
}

#[test]
fn route_failover_resends_both_routers() {
    let mut w = world(3, Arc::new(AllowAll::new()));
    let router = |id: u64| {
        let mut n = node(id, 1);
        let mut h = serde_json::to_value(&n.hostinfo).unwrap();
        h["RoutableIPs"] = json!(["10.0.0.0/24"]);
        n.hostinfo = serde_json::from_value(h).unwrap();
        n.approved_routes = vec!["10.0.0.0/24".parse().unwrap()];
        n.given_name = format!("host-{id}");
        Op::Upsert(Box::new(n))
    };
    let online = |id: u64, on: bool| {
        patch(
            id,
            NodePatch {
                online: Some(on),
                ..Default::default()
            },
        )
    };
    w.apply(vec![router(2), router(3), online(2, true), online(3, true)]);
    let f = frames(&w.apply(vec![online(2, false)]));
    let m = &f[&NodeId(1)];
    let changed: Vec<_> = m["PeersChanged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ID"].clone())
        .collect();
    assert_eq!(changed, [json!(2), json!(3)]);
    assert!(m["PeersChanged"][0].get("PrimaryRoutes").is_none());
    assert_eq!(
        m["PeersChanged"][1]["PrimaryRoutes"],
        json!(["10.0.0.0/24"])
    );
    assert_eq!(
        m["PeersChanged"][1]["AllowedIPs"],
        json!(["10.0.0.0/24", "100.64.0.3/32", "fd7a:115c:a1e0::3/128"])
    );
}

#[test]
fn framed_full_maps_share_compressed_runs_and_decode_to_the_full_map() {
    let mut w = world(300, Arc::new(AllowAll::new()));
    let framed = |w: &World, v: u64| {
        let snap = w.store.load_full();
        let (_, plain) = w.m.full_map(&snap, NodeId(v), t(NOW)).unwrap();
        let (s, frame) = w.m.full_map_frame(&snap, NodeId(v), t(NOW)).unwrap();
        assert_eq!(s.version(), snap.version());
        let (json, rest) = hs_mapper::decode_frame(&frame).unwrap();
        assert!(rest.is_empty());
        assert_eq!(json, plain, "viewer {v}: framed and plain maps differ");
        serde_json::from_slice::<Value>(&json).unwrap()
    };
    // Ids 1..=300 make runs 0 (1–63), 1, 2, 3 and 4 (256–300); each viewer's own run is
    // written for it alone, every other run and the DERP map once for everyone.
    framed(&w, 100);
    assert_eq!(w.m.shared_frames(), 1 + 4);
    framed(&w, 200);
    let m = framed(&w, 150);
    assert_eq!(w.m.shared_frames(), 1 + 5, "no run compressed twice");
    assert_eq!(m["Peers"].as_array().unwrap().len(), 299);
    // A change reaches the next full map: no stale run is reused.
    w.apply(vec![patch(
        20,
        NodePatch {
            endpoints: Some(vec!["198.51.100.20:41641".parse().unwrap()]),
            ..Default::default()
        },
    )]);
    let m = framed(&w, 150);
    let p20 = m["Peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ID"] == 20)
        .unwrap();
    assert_eq!(p20["Endpoints"], json!(["198.51.100.20:41641"]));
}
