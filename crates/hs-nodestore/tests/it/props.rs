//! Property tests: after any sequence of ops the indexes and the route table agree with the
//! nodes (an unhealthy primary only when no candidate is healthy), and applying ops as one
//! batch gives the same tailnet as applying them one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hs_nodestore::{AllowAll, NodePatch, NodeStore, Op, Snapshot};
use hs_types::NodeId;
use proptest::prelude::*;

use crate::fixtures::{node, with_routes};

const ROUTES: [&str; 3] = ["10.0.0.0/24", "10.1.0.0/16", "0.0.0.0/0"];

fn arb_op() -> impl Strategy<Value = Op> {
    let id = 1u64..8;
    prop_oneof![
        (
            id.clone(),
            0u64..3,
            0usize..4,
            prop::collection::vec(0usize..3, 0..3),
            prop::collection::vec(0usize..3, 0..3)
        )
            .prop_map(|(id, user, host, ann, appr)| {
                let hosts = ["web", "db", "", "Web"];
                let ann: Vec<&str> = ann.iter().map(|i| ROUTES[*i]).collect();
                let appr: Vec<&str> = appr.iter().map(|i| ROUTES[*i]).collect();
                Op::Upsert(Box::new(with_routes(
                    node(id, user, hosts[host]),
                    &ann,
                    &appr,
                )))
            }),
        id.clone().prop_map(|i| Op::Remove(NodeId(i))),
        (id.clone(), any::<bool>()).prop_map(|(i, on)| Op::Patch(
            NodeId(i),
            NodePatch {
                online: Some(on),
                ..Default::default()
            }
        )),
        (id.clone(), 0u16..3).prop_map(|(i, port)| Op::Patch(
            NodeId(i),
            NodePatch {
                endpoints: Some(vec![format!("192.0.2.1:{port}").parse().unwrap()]),
                ..Default::default()
            }
        )),
        (id.clone(), any::<bool>()).prop_map(|(i, bad)| Op::Patch(
            NodeId(i),
            NodePatch {
                unhealthy: Some(bad),
                ..Default::default()
            }
        )),
        (id, 0usize..3).prop_map(|(i, n)| Op::Rename(NodeId(i), ["web", "x", "web-1"][n].into())),
    ]
}

fn check_invariants(s: &Snapshot) {
    let mut names = BTreeSet::new();
    for e in s.nodes() {
        let n = &e.node;
        assert!(
            names.insert(n.given_name.clone()),
            "duplicate name {}",
            n.given_name
        );
        assert_eq!(s.node_by_given_name(&n.given_name).unwrap().node.id, n.id);
        assert_eq!(s.node_by_node_key(&n.node_key).unwrap().node.id, n.id);
        assert!(
            s.nodes_by_machine_key(&n.machine_key)
                .any(|m| m.node.id == n.id)
        );
        if let Some(u) = n.user_id {
            assert!(s.nodes_of_user(u).any(|m| m.node.id == n.id));
        }
    }
    // Route table: candidates are exactly the online servers not logged out; the primary is a
    // candidate and the only node listing the prefix among its primary routes.
    let mut expect: BTreeMap<ipnet::IpNet, BTreeSet<NodeId>> = BTreeMap::new();
    for e in s.nodes().filter(|e| e.online && !e.logged_out) {
        for r in e
            .served_routes()
            .filter(|r| !hs_nodestore::is_exit_route(r))
        {
            expect.entry(*r).or_default().insert(e.node.id);
        }
    }
    let got: BTreeMap<_, BTreeSet<NodeId>> = s
        .routes()
        .map(|(p, st)| (*p, st.candidates.iter().copied().collect()))
        .collect();
    assert_eq!(got, expect);
    for (p, st) in s.routes() {
        let primary = st.primary.expect("a prefix with candidates has a primary");
        assert!(st.candidates.contains(&primary));
        // An unhealthy primary only while no candidate is healthy.
        if s.node(primary).unwrap().unhealthy {
            assert!(
                st.candidates.iter().all(|c| s.node(*c).unwrap().unhealthy),
                "unhealthy primary {primary} for {p} beside a healthy candidate"
            );
        }
        for e in s.nodes() {
            assert_eq!(e.primary_routes.contains(p), e.node.id == primary);
        }
    }
    for e in s.nodes() {
        for p in &e.primary_routes {
            assert_eq!(s.primary_route(p), Some(e.node.id));
        }
    }
}

type Essence = Vec<(hs_types::model::Node, bool, Vec<ipnet::IpNet>)>;

fn essence(s: &Snapshot) -> Essence {
    s.nodes()
        .map(|e| (e.node.clone(), e.online, e.primary_routes.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn indexes_and_routes_stay_consistent(batches in prop::collection::vec(prop::collection::vec(arb_op(), 1..6), 1..12)) {
        let (reader, mut w) = NodeStore::new(Arc::new(AllowAll::new()));
        for b in batches {
            w.apply(b);
            check_invariants(&reader.load());
        }
    }

    #[test]
    fn one_batch_equals_ops_one_by_one(ops in prop::collection::vec(arb_op(), 1..30)) {
        let (r1, mut w1) = NodeStore::new(Arc::new(AllowAll::new()));
        let (r2, mut w2) = NodeStore::new(Arc::new(AllowAll::new()));
        let a = w1.apply(ops.clone());
        let mut results = Vec::new();
        for op in ops {
            results.extend(w2.apply([op]).results);
        }
        prop_assert_eq!(a.results, results);
        prop_assert_eq!(essence(&r1.load()), essence(&r2.load()));
    }
}
