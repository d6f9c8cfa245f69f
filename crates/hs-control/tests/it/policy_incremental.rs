//! A view compiled onto the previous one after a node changed (`CompiledView::updated`, what
//! the coordinator does for each registration or tag change) answers every viewer exactly
//! as a compile from scratch does, even for answers it carried over from the old view, and
//! names every viewer whose answers moved.

use std::sync::Arc;

use hs_control::policy::{CompiledView, policy_node};
use hs_nodestore::{AllowAll, NodePatch, NodeStore, Op, PolicyView, Snapshot};
use hs_types::model::Node;
use hs_types::{NodeId, UserId};

use crate::policy::{bare_node, user_named as user};

const POLICY: &str = r#"{
  "groups": {"group:ops": ["alice@"]},
  "tagOwners": {"tag:server": ["group:ops"], "tag:db": ["group:ops"]},
  "autoApprovers": {"routes": {"10.20.0.0/16": ["tag:server"]}},
  "acls": [
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
    {"action": "accept", "src": ["group:ops"], "dst": ["tag:server:22,443"]},
    {"action": "accept", "src": ["tag:server"], "dst": ["tag:db:5432", "10.20.0.0/16:*"]},
    {"action": "accept", "src": ["group:ops"], "dst": ["10.30.0.0/24:*"]},
  ],
  "ssh": [{"action": "accept", "src": ["group:ops"], "dst": ["tag:server"], "users": ["root"]}],
  "nodeAttrs": [{"target": ["tag:db"], "attr": ["funnel"]}],
}"#;

/// Every answer a fan-out asks of a view about `viewer`, spelled so two views compare.
fn answers(view: &dyn PolicyView, snap: &Snapshot, viewer: &Node) -> String {
    let routes: Vec<String> = snap
        .nodes()
        .filter_map(|p| {
            let r = view.visible_routes(viewer, p);
            (!r.is_empty()).then(|| format!("{}:{r:?}", p.node.id.get()))
        })
        .collect();
    format!(
        "peers {:?}\nfilter {}\nssh {:?}\nattrs {:?}\nroutes {routes:?}",
        view.visible_ids(viewer),
        view.packet_filter(viewer),
        view.ssh_policy(viewer),
        view.node_attrs(viewer),
    )
}

#[test]
fn a_view_updated_for_one_node_answers_as_a_full_compile() {
    let policy = hs_policy::Policy::parse(POLICY).unwrap();
    let (store, mut writer) = NodeStore::new(Arc::new(AllowAll::new()));
    let mut nodes: Vec<Node> = (1..=12)
        .map(|i| {
            let tags: &[&str] = match i {
                4 => &["tag:server"],
                5 => &["tag:db"],
                _ => &[],
            };
            bare_node(i, i % 3 + 1, tags)
        })
        .collect();
    let applied = writer.apply(
        [
            Op::UpsertUser(Box::new(user(1, "alice"))),
            Op::UpsertUser(Box::new(user(2, "bob"))),
            Op::UpsertUser(Box::new(user(3, "carol"))),
        ]
        .into_iter()
        .chain(nodes.iter().map(|n| Op::Upsert(Box::new(n.clone()))))
        // Online, so that routers are elected primaries and routes are shown.
        .chain(nodes.iter().map(|n| {
            let online = NodePatch {
                online: Some(true),
                ..NodePatch::default()
            };
            Op::Patch(n.id, online)
        })),
    );
    assert!(applied.results.iter().all(Result::is_ok));
    let mut snap = store.load_full();
    let mut view = CompiledView::compile(&policy, &snap).unwrap();

    // (what changes, node index or a new node)
    type Edit = Box<dyn Fn(&mut Node)>;
    let steps: Vec<(&str, Option<usize>, Edit)> = vec![
        (
            "bob's node becomes a server",
            Some(0),
            Box::new(|n| n.tags = vec!["tag:server".into()]),
        ),
        (
            "a node moves from carol to alice",
            Some(1),
            Box::new(|n| n.user_id = Some(UserId(1))),
        ),
        (
            "a member node changes its address",
            Some(2),
            Box::new(|n| {
                n.ipv4 = Some(std::net::Ipv4Addr::new(100, 64, 1, 3));
            }),
        ),
        (
            "the server drops its tag",
            Some(3),
            Box::new(|n| n.tags.clear()),
        ),
        ("a new node for bob", None, Box::new(|_| {})),
        (
            "a server announces an auto-approved route",
            Some(0),
            Box::new(|n| {
                let hi = serde_json::json!({"Hostname": "n1", "RoutableIPs": ["10.20.0.0/16", "10.30.0.0/24"]});
                n.hostinfo = Some(serde_json::from_value(hi).unwrap());
                n.approved_routes = vec!["10.30.0.0/24".parse().unwrap()];
            }),
        ),
        (
            "a db node becomes a server",
            Some(4),
            Box::new(|n| n.tags = vec!["tag:server".into()]),
        ),
    ];
    for (what, at, edit) in steps {
        // Warm every per-viewer answer of the old view: those are what gets carried over.
        let before: Vec<(NodeId, String)> = snap
            .nodes()
            .map(|e| (e.node.id, answers(&view, &snap, &e.node)))
            .collect();
        let node = match at {
            Some(i) => {
                edit(&mut nodes[i]);
                nodes[i].clone()
            }
            None => {
                let n = bare_node(40, 2, &[]);
                nodes.push(n.clone());
                n
            }
        };
        let applied = writer.apply([Op::Upsert(Box::new(node.clone()))]);
        assert!(applied.results.iter().all(Result::is_ok), "{what}");
        let next = applied.next;
        let entry = next.node(node.id).unwrap();
        let updated = view
            .updated(vec![policy_node(entry)])
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: no incremental view"));
        let fresh = CompiledView::compile(&policy, &next).unwrap();
        let affected = updated
            .affected_since(&view)
            .unwrap_or_else(|| panic!("{what}: the view does not say what it was derived from"))
            .clone();
        assert!(updated.affected_since(&fresh).is_none(), "{what}");
        for e in next.nodes() {
            let got = answers(&updated, &next, &e.node);
            let want = answers(&fresh, &next, &e.node);
            assert_eq!(
                got,
                want,
                "{what}: node {} differs from a full compile",
                e.node.id.get()
            );
            let old = before.iter().find(|(id, _)| *id == e.node.id);
            if old.is_none_or(|(_, a)| *a != got) {
                assert!(
                    affected.contains(&e.node.id),
                    "{what}: node {}'s answers moved but it is not named as affected",
                    e.node.id.get()
                );
            }
        }
        if what == "a server announces an auto-approved route" {
            // The step must exercise routes: some viewer is routed to the server's subnet.
            let routed = next.nodes().any(|v| {
                next.nodes()
                    .any(|p| !updated.visible_routes(&v.node, p).is_empty())
            });
            assert!(routed, "{what}: no viewer is shown a route");
        }
        if what == "a member node changes its address" {
            // Only the node's own user's fleet (autogroup:self) and the node are touched.
            let owner = entry.node.user_id;
            for e in next.nodes() {
                if e.node.user_id != owner && e.node.tags.is_empty() {
                    assert!(
                        !affected.contains(&e.node.id),
                        "{what}: node {} of another user is named as affected",
                        e.node.id.get()
                    );
                }
            }
        }
        snap = next;
        view = updated;
    }
}
