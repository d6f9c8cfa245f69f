//! Property: for any sequence of batches, a client that applies the incremental messages
//! ends up with the same peer set, peer contents, filter, SSH policy, DNS and self node as
//! a fresh full map of the same snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use hs_mapper::{Outgoing, Session};
use hs_nodestore::{AllowAll, NodePatch, NodeStore, Op, PolicyView};
use hs_types::{DiscoPublic, NodeId, NodePublic};
use proptest::prelude::*;

use crate::client::ClientModel;
use crate::fixtures::{Modulo, NOW, SameUser, json, mapper, node, t, user};

#[derive(Debug, Clone)]
enum Step {
    Endpoints(u64, u16),
    NoEndpoints(u64),
    Derp(u64, i32),
    Online(u64, bool, i64),
    LastSeen(u64, i64),
    Keys(u64, u8),
    Expiry(u64, Option<i64>),
    Upsert(u64, u64, bool, bool),
    Remove(u64),
    Policy(u8),
    User(u64, u8),
}

fn arb_step() -> impl Strategy<Value = Step> {
    let id = 1u64..7;
    prop_oneof![
        1 => (id.clone(), 1u16..4).prop_map(|(i, p)| Step::Endpoints(i, p)),
        1 => id.clone().prop_map(Step::NoEndpoints),
        1 => (id.clone(), 0i32..3).prop_map(|(i, d)| Step::Derp(i, d)),
        4 => (id.clone(), any::<bool>(), 0i64..3).prop_map(|(i, o, s)| Step::Online(i, o, s)),
        1 => (id.clone(), 0i64..3).prop_map(|(i, s)| Step::LastSeen(i, s)),
        1 => (id.clone(), 1u8..4).prop_map(|(i, k)| Step::Keys(i, k)),
        1 => (id.clone(), prop::option::of(-2i64..2)).prop_map(|(i, e)| Step::Expiry(i, e)),
        3 => (id.clone(), 0u64..3, prop::bool::weighted(0.2), prop::bool::weighted(0.7))
            .prop_map(|(i, u, tag, r)| Step::Upsert(i, u, tag, r)),
        1 => id.prop_map(Step::Remove),
        2 => (0u8..5).prop_map(Step::Policy),
        1 => (0u64..3, 0u8..3).prop_map(|(u, n)| Step::User(u, n)),
    ]
}

fn policy(n: u8) -> Arc<dyn PolicyView> {
    match n {
        0 => Arc::new(AllowAll::new()),
        1 => Arc::new(SameUser::new(None)),
        2 => Arc::new(SameUser::new(Some("funnel"))),
        3 => Arc::new(Modulo::new(2)),
        _ => Arc::new(Modulo::new(3)),
    }
}

fn op(step: &Step) -> Op {
    let p = |id: u64, p: NodePatch| Op::Patch(NodeId(id), p);
    match step.clone() {
        Step::Endpoints(i, port) => p(
            i,
            NodePatch {
                endpoints: Some(vec![format!("198.51.100.{port}:41641").parse().unwrap()]),
                ..Default::default()
            },
        ),
        Step::NoEndpoints(i) => p(
            i,
            NodePatch {
                endpoints: Some(vec![]),
                ..Default::default()
            },
        ),
        Step::Derp(i, d) => p(
            i,
            NodePatch {
                home_derp: Some(d),
                ..Default::default()
            },
        ),
        Step::Online(i, o, s) => p(
            i,
            NodePatch {
                online: Some(o),
                last_seen: (!o).then(|| t(NOW + s)),
                ..Default::default()
            },
        ),
        Step::LastSeen(i, s) => p(
            i,
            NodePatch {
                last_seen: Some(t(NOW + 10 + s)),
                ..Default::default()
            },
        ),
        Step::Keys(i, k) => p(
            i,
            NodePatch {
                node_key: Some(NodePublic::from_bytes([k.wrapping_add(i as u8 * 16); 32])),
                disco_key: Some(DiscoPublic::from_bytes([k; 32])),
                ..Default::default()
            },
        ),
        Step::Expiry(i, e) => p(
            i,
            NodePatch {
                expiry: Some(e.map(|e| t(NOW + e))),
                ..Default::default()
            },
        ),
        Step::Upsert(i, u, tag, routes) => {
            let mut n = node(i, u);
            if tag {
                n.tags = vec!["tag:server".into()];
            }
            if routes {
                // Subnet routers for one shared prefix (primary election and fail-over) and
                // an exit route.
                let mut h = serde_json::to_value(&n.hostinfo).unwrap();
                h["RoutableIPs"] = serde_json::json!(["10.0.0.0/24", "0.0.0.0/0"]);
                n.hostinfo = serde_json::from_value(h).unwrap();
                n.approved_routes =
                    vec!["10.0.0.0/24".parse().unwrap(), "0.0.0.0/0".parse().unwrap()];
            }
            n.given_name = format!("host-{i}");
            Op::Upsert(Box::new(n))
        }
        Step::Remove(i) => Op::Remove(NodeId(i)),
        Step::Policy(n) => Op::SetPolicy(policy(n)),
        Step::User(u, n) => {
            let mut x = user(u);
            x.display_name = format!("name {n}");
            Op::UpsertUser(Box::new(x))
        }
    }
}

fn fresh_model(m: &hs_mapper::Mapper, snap: &hs_nodestore::Snapshot, id: NodeId) -> ClientModel {
    let (_, bytes) = m.full_map(snap, id, t(NOW)).unwrap();
    let mut c = ClientModel::default();
    c.apply(&serde_json::from_slice(&bytes).unwrap());
    c
}

fn run(start_policy: u8, batches: &[Vec<Step>]) {
    let (store, mut w) = NodeStore::new(policy(start_policy));
    w.apply((0..3).map(|u| Op::UpsertUser(Box::new(user(u)))));
    w.apply((1..=5).map(|i| Op::Upsert(Box::new(node(i, i % 3)))));
    let m = mapper();
    let mut clients: BTreeMap<NodeId, (Session, ClientModel)> = BTreeMap::new();
    let connect = |snap: &hs_nodestore::Snapshot,
                   clients: &mut BTreeMap<NodeId, (Session, ClientModel)>| {
        for e in snap.nodes() {
            let id = e.node.id;
            clients.entry(id).or_insert_with(|| {
                let (s, bytes) = m.full_map(snap, id, t(NOW)).unwrap();
                let mut c = ClientModel::default();
                c.apply(&serde_json::from_slice(&bytes).unwrap());
                (s, c)
            });
        }
    };
    connect(&store.load_full(), &mut clients);
    for (bi, batch) in batches.iter().enumerate() {
        let a = w.apply(batch.iter().map(op));
        let mut sessions: Vec<Session> = clients.values().map(|(s, _)| s.clone()).collect();
        let out = m
            .fanout(&a.prev, &a.next, &a.changes, &mut sessions, t(NOW))
            .unwrap();
        for s in sessions {
            if let Some(c) = clients.get_mut(&s.node()) {
                c.0 = s;
            }
        }
        for o in out {
            match o {
                Outgoing::Frame { node, frame } => {
                    clients.get_mut(&node).unwrap().1.apply(&json(&frame));
                }
                Outgoing::Close { node, reason } => {
                    assert_eq!(reason, hs_mapper::CloseReason::NodeRemoved);
                    assert!(a.next.node(node).is_none());
                    clients.remove(&node);
                }
            }
        }
        for (id, (_, c)) in &clients {
            let fresh = fresh_model(&m, &a.next, *id);
            c.assert_matches_full(&fresh, &format!("viewer {id} after batch {bi}: {batch:?}"));
        }
        // New nodes connect after the batch.
        connect(&store.load_full(), &mut clients);
    }
}

#[test]
fn route_failover_reaches_the_client_model() {
    run(
        0,
        &[
            vec![
                Step::Upsert(2, 1, false, true),
                Step::Upsert(3, 1, false, true),
                Step::Online(2, true, 0),
                Step::Online(3, true, 0),
            ],
            vec![Step::Online(2, false, 0)],
        ],
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn incremental_stream_equals_fresh_full_map(
        start_policy in 0u8..3,
        batches in prop::collection::vec(prop::collection::vec(arb_step(), 1..5), 1..10),
    ) {
        run(start_policy, &batches);
    }
}
