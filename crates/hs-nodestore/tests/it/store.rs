//! Behaviour of single ops and small batches.

use std::sync::Arc;

use hs_nodestore::{AllowAll, Change, Error, NodePatch, NodeStore, Op, PatchFields};
use hs_types::{MachinePublic, NodeId, UserId};

use crate::fixtures::{node, user, with_routes};

fn store() -> (NodeStore, hs_nodestore::Writer) {
    NodeStore::new(Arc::new(AllowAll::new()))
}

fn online(id: u64, on: bool) -> Op {
    Op::Patch(
        NodeId(id),
        NodePatch {
            online: Some(on),
            ..Default::default()
        },
    )
}

#[test]
fn upsert_indexes_and_publishes() {
    let (reader, mut w) = store();
    let before = reader.load_full();
    let n = node(1, 7, "Laptop.local");
    let nk = n.node_key;
    let mk = n.machine_key;
    let applied = w.apply([
        Op::Upsert(Box::new(n)),
        Op::UpsertUser(Box::new(user(7, "alice"))),
    ]);
    assert_eq!(applied.results, vec![Ok(()), Ok(())]);
    assert_eq!(
        applied.changes,
        vec![
            Change::NodeChanged(NodeId(1)),
            Change::UserChanged(UserId(7))
        ]
    );
    let snap = reader.load();
    assert_eq!(snap.version(), 1);
    assert_eq!(before.len(), 0, "an old snapshot never changes");
    let e = snap.node(NodeId(1)).unwrap();
    assert_eq!(e.node.given_name, "laptop");
    assert_eq!(snap.node_by_node_key(&nk).unwrap().node.id, NodeId(1));
    assert_eq!(snap.nodes_by_machine_key(&mk).count(), 1);
    assert_eq!(snap.nodes_of_user(UserId(7)).count(), 1);
    assert_eq!(
        snap.node_by_given_name("laptop").unwrap().node.id,
        NodeId(1)
    );
    assert_eq!(snap.user(UserId(7)).unwrap().name, "alice");
    assert!(
        snap.nodes_by_machine_key(&MachinePublic::from_bytes([9; 32]))
            .next()
            .is_none()
    );
}

#[test]
fn given_names_get_collision_suffixes_and_renames_are_checked() {
    let (reader, mut w) = store();
    w.apply((1..=3).map(|i| Op::Upsert(Box::new(node(i, 1, "web")))));
    let snap = reader.load_full();
    let names: Vec<_> = snap.nodes().map(|e| e.node.given_name.clone()).collect();
    assert_eq!(names, ["web", "web-1", "web-2"]);

    // Re-upserting keeps a node's own name (it does not collide with itself).
    let mut again = node(2, 1, "web");
    again.given_name = "web-1".into();
    w.apply([Op::Upsert(Box::new(again))]);
    assert_eq!(
        reader.load().node(NodeId(2)).unwrap().node.given_name,
        "web-1"
    );

    let a = w.apply([
        Op::Rename(NodeId(3), "web".into()),
        Op::Rename(NodeId(3), "Bad_Name".into()),
        Op::Rename(NodeId(3), "db".into()),
        Op::Rename(NodeId(99), "x".into()),
    ]);
    assert_eq!(
        a.results,
        vec![
            Err(Error::GivenNameTaken {
                name: "web".into(),
                holder: NodeId(1)
            }),
            Err(Error::InvalidGivenName("Bad_Name".into())),
            Ok(()),
            Err(Error::UnknownNode(NodeId(99))),
        ]
    );
    let snap = reader.load();
    assert_eq!(snap.node(NodeId(3)).unwrap().node.given_name, "db");
    assert!(
        snap.node_by_given_name("web-2").is_none(),
        "old name is freed"
    );

    // Empty hostname falls back to "node".
    w.apply([Op::Upsert(Box::new(node(4, 1, "")))]);
    assert_eq!(
        reader.load().node(NodeId(4)).unwrap().node.given_name,
        "node"
    );
}

#[test]
fn remove_clears_indexes_and_frees_the_name() {
    let (reader, mut w) = store();
    let n = node(1, 1, "a");
    let nk = n.node_key;
    w.apply([Op::Upsert(Box::new(n))]);
    let a = w.apply([Op::Remove(NodeId(1)), Op::Remove(NodeId(1))]);
    assert_eq!(a.results, vec![Ok(()), Err(Error::UnknownNode(NodeId(1)))]);
    assert_eq!(a.changes, vec![Change::NodeRemoved(NodeId(1))]);
    assert!(
        a.prev.node(NodeId(1)).is_some(),
        "the previous snapshot still has it"
    );
    let snap = reader.load();
    assert!(snap.is_empty());
    assert!(snap.node_by_node_key(&nk).is_none());
    assert_eq!(snap.nodes_of_user(UserId(1)).count(), 0);
    w.apply([Op::Upsert(Box::new(node(2, 1, "a")))]);
    assert_eq!(reader.load().node(NodeId(2)).unwrap().node.given_name, "a");
}

#[test]
fn patches_report_only_real_changes() {
    let (reader, mut w) = store();
    w.apply([
        Op::Upsert(Box::new(node(1, 1, "a"))),
        Op::Upsert(Box::new(node(2, 1, "b"))),
    ]);
    let ep = vec!["192.0.2.1:41641".parse().unwrap()];
    let a = w.apply([
        Op::Patch(
            NodeId(1),
            NodePatch {
                endpoints: Some(ep.clone()),
                home_derp: Some(900),
                ..Default::default()
            },
        ),
        // Same values again: nothing to report.
        Op::Patch(
            NodeId(1),
            NodePatch {
                endpoints: Some(ep.clone()),
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(
        a.changes,
        vec![Change::NodePatched {
            id: NodeId(1),
            fields: PatchFields {
                endpoints: true,
                home_derp: true,
                ..Default::default()
            }
        }]
    );
    let e = reader.load().node(NodeId(1)).unwrap().clone();
    assert_eq!(e.node.endpoints, ep);
    assert_eq!(e.home_derp, 900);

    // Rotating to a key another node holds is refused.
    let other_key = reader.load().node(NodeId(2)).unwrap().node.node_key;
    let a = w.apply([Op::Patch(
        NodeId(1),
        NodePatch {
            node_key: Some(other_key),
            ..Default::default()
        },
    )]);
    assert_eq!(
        a.results,
        vec![Err(Error::NodeKeyInUse {
            node: NodeId(1),
            holder: NodeId(2)
        })]
    );
    assert!(a.changes.is_empty());
}

#[test]
fn upsert_keeps_runtime_state() {
    let (reader, mut w) = store();
    w.apply([Op::Upsert(Box::new(node(1, 1, "a"))), online(1, true)]);
    w.apply([Op::Upsert(Box::new(node(1, 1, "a-renamed")))]);
    let e = reader.load().node(NodeId(1)).unwrap().clone();
    assert!(e.online);
}

#[test]
fn primary_routes_fail_over_and_stick() {
    let (reader, mut w) = store();
    let r = "10.0.0.0/24";
    w.apply([
        Op::Upsert(Box::new(with_routes(node(1, 1, "r1"), &[r], &[r]))),
        Op::Upsert(Box::new(with_routes(node(2, 1, "r2"), &[r], &[r]))),
        // Announced but not approved: never a candidate.
        Op::Upsert(Box::new(with_routes(node(3, 1, "r3"), &[r], &[]))),
        online(3, true),
        online(2, true),
        online(1, true),
    ]);
    let p = r.parse().unwrap();
    let snap = reader.load_full();
    assert_eq!(
        snap.primary_route(&p),
        Some(NodeId(2)),
        "first online candidate wins"
    );
    assert_eq!(snap.node(NodeId(2)).unwrap().primary_routes, vec![p]);
    assert!(snap.node(NodeId(2)).unwrap().allowed_ips().contains(&p));
    assert!(!snap.node(NodeId(1)).unwrap().allowed_ips().contains(&p));

    let a = w.apply([online(2, false)]);
    assert_eq!(reader.load().primary_route(&p), Some(NodeId(1)));
    assert!(a.changes.contains(&Change::NodeChanged(NodeId(1))));
    assert!(a.changes.contains(&Change::NodeChanged(NodeId(2))));

    w.apply([online(2, true)]);
    assert_eq!(
        reader.load().primary_route(&p),
        Some(NodeId(1)),
        "primary is sticky"
    );

    w.apply([Op::Remove(NodeId(1))]);
    assert_eq!(reader.load().primary_route(&p), Some(NodeId(2)));
    w.apply([online(2, false)]);
    assert_eq!(reader.load().primary_route(&p), None);
    assert_eq!(reader.load().routes().count(), 0);
}

#[test]
fn exit_routes_are_served_without_election() {
    let (reader, mut w) = store();
    let n = with_routes(
        node(1, 1, "exit"),
        &["0.0.0.0/0", "::/0"],
        &["0.0.0.0/0", "::/0"],
    );
    w.apply([Op::Upsert(Box::new(n))]);
    let snap = reader.load();
    let allowed = snap.node(NodeId(1)).unwrap().allowed_ips();
    assert!(allowed.contains(&"0.0.0.0/0".parse().unwrap()));
    assert!(allowed.contains(&"::/0".parse().unwrap()));
    assert_eq!(snap.routes().count(), 0);
}
