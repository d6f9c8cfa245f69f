//! HA health in the primary election: an unhealthy primary hands its prefixes to a healthy
//! standby in the same batch (peers told through `NodeChanged`), a recovered router does
//! not take them back, and when every router is unhealthy the primary stays. A logged-out
//! router (hidden from peers) is no candidate.

use std::sync::Arc;

use hs_nodestore::{AllowAll, Change, NodePatch, NodeStore, Op, Writer};
use hs_types::NodeId;
use ipnet::IpNet;

use crate::fixtures::{node, user, with_routes};

const P: &str = "10.33.0.0/24";

fn patch(id: u64, p: NodePatch) -> Op {
    Op::Patch(NodeId(id), p)
}

fn online(id: u64) -> Op {
    patch(
        id,
        NodePatch {
            online: Some(true),
            ..NodePatch::default()
        },
    )
}

fn unhealthy(id: u64, v: bool) -> Op {
    patch(
        id,
        NodePatch {
            unhealthy: Some(v),
            ..NodePatch::default()
        },
    )
}

/// Routers 1, 2 and 3 serving P, all online; 1 is primary.
fn three_routers() -> (NodeStore, Writer, IpNet) {
    let (store, mut w) = NodeStore::new(Arc::new(AllowAll::new()));
    w.apply([Op::UpsertUser(Box::new(user(1, "alice")))]);
    w.apply((1..=3).map(|i| {
        Op::Upsert(Box::new(with_routes(
            node(i, 1, &format!("r{i}")),
            &[P],
            &[P],
        )))
    }));
    w.apply((1..=3).map(online));
    let p: IpNet = P.parse().unwrap();
    assert_eq!(store.load().primary_route(&p), Some(NodeId(1)));
    (store, w, p)
}

#[test]
fn an_unhealthy_primary_fails_over_and_recovery_does_not_flap() {
    let (store, mut w, p) = three_routers();
    let a = w.apply([unhealthy(1, true)]);
    assert_eq!(store.load().primary_route(&p), Some(NodeId(2)));
    // Both routers whose PrimaryRoutes changed are resent to peers in this batch.
    assert!(a.changes.contains(&Change::NodeChanged(NodeId(1))));
    assert!(a.changes.contains(&Change::NodeChanged(NodeId(2))));
    assert!(
        store
            .load()
            .node(NodeId(1))
            .unwrap()
            .primary_routes
            .is_empty()
    );
    assert_eq!(
        store.load().node(NodeId(2)).unwrap().primary_routes,
        vec![p]
    );

    // Recovery: no change of primary, and nothing to tell peers.
    let a = w.apply([unhealthy(1, false)]);
    assert_eq!(store.load().primary_route(&p), Some(NodeId(2)));
    assert!(a.changes.is_empty(), "{:?}", a.changes);

    // The lowest healthy id wins when the primary fails: 1 is healthy again, 3 is not.
    w.apply([unhealthy(3, true), unhealthy(2, true)]);
    assert_eq!(store.load().primary_route(&p), Some(NodeId(1)));
}

#[test]
fn when_every_router_is_unhealthy_the_primary_stays() {
    let (store, mut w, p) = three_routers();
    w.apply([unhealthy(2, true), unhealthy(3, true)]);
    assert_eq!(store.load().primary_route(&p), Some(NodeId(1)));
    w.apply([unhealthy(1, true)]);
    assert_eq!(
        store.load().primary_route(&p),
        Some(NodeId(1)),
        "no healthy router: keep"
    );
    // A healthy router coming back takes over from the unhealthy primary.
    w.apply([unhealthy(3, false)]);
    assert_eq!(store.load().primary_route(&p), Some(NodeId(3)));
}

#[test]
fn reconnecting_clears_the_unhealthy_mark() {
    let (store, mut w, _) = three_routers();
    w.apply([unhealthy(1, true)]);
    w.apply([patch(
        1,
        NodePatch {
            online: Some(false),
            ..NodePatch::default()
        },
    )]);
    assert!(store.load().node(NodeId(1)).unwrap().unhealthy);
    w.apply([online(1)]);
    assert!(!store.load().node(NodeId(1)).unwrap().unhealthy);
    // An Upsert (Hostinfo change) keeps the runtime mark.
    w.apply([unhealthy(2, true)]);
    let n2 = store.load().node(NodeId(2)).unwrap().node.clone();
    w.apply([Op::Upsert(Box::new(n2))]);
    assert!(store.load().node(NodeId(2)).unwrap().unhealthy);
}

#[test]
fn a_logged_out_router_hands_its_prefixes_over() {
    let (store, mut w, p) = three_routers();
    w.apply([patch(
        1,
        NodePatch {
            logged_out: Some(true),
            ..NodePatch::default()
        },
    )]);
    assert_eq!(store.load().primary_route(&p), Some(NodeId(2)));
    w.apply([patch(
        1,
        NodePatch {
            logged_out: Some(false),
            ..NodePatch::default()
        },
    )]);
    assert_eq!(
        store.load().primary_route(&p),
        Some(NodeId(2)),
        "no flap back"
    );
}
