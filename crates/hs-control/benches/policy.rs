//! What a policy recompile costs the state coordinator: compiling the operator's policy
//! against a 1k- and a 10k-node tailnet (done on a user change or a batch of many node
//! changes), that plus every node's packet filter (what a full fan-out then asks for), and
//! compiling one node's change onto the previous view (`update_*`, done on a registration or
//! a tag change).
//! Run: `cargo bench -p hs-control --bench policy -- --warm-up-time 1 --measurement-time 3`.

#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "a measuring tool: it fails loudly"
)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use hs_control::policy::CompiledView;
use hs_nodestore::{AllowAll, NodeStore, Op, PolicyView};
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::{DiscoPublic, MachinePrivate, NodeId, NodePrivate, UserId};

const USERS: u64 = 20;

fn tailnet(nodes: u32) -> Arc<hs_nodestore::Snapshot> {
    let t = DateTime::<Utc>::UNIX_EPOCH;
    let mut rng = rand::rngs::OsRng;
    let (store, mut writer) = NodeStore::new(Arc::new(AllowAll::new()));
    let users = (1..=USERS).map(|u| {
        Op::UpsertUser(Box::new(User {
            id: UserId(u),
            name: format!("u{u}"),
            display_name: String::new(),
            email: format!("u{u}@example.com"),
            provider_identifier: None,
            provider: String::new(),
            profile_pic_url: String::new(),
            created_at: t,
            updated_at: t,
            groups: Vec::new(),
        }))
    });
    let nodes = (0..nodes).map(|i| {
        let tagged = i % 10 == 0;
        Op::Upsert(Box::new(Node {
            id: NodeId(u64::from(i) + 1),
            machine_key: MachinePrivate::generate(&mut rng).public(),
            node_key: NodePrivate::generate(&mut rng).public(),
            disco_key: DiscoPublic::default(),
            endpoints: Vec::new(),
            hostinfo: None,
            ipv4: Some(Ipv4Addr::from(0x6440_0000u32 + 1 + i)),
            ipv6: Some(Ipv6Addr::from(
                0xfd7a_115c_a1e0_u128 << 80 | u128::from(i + 1),
            )),
            hostname: format!("n{i}"),
            given_name: format!("n{i}"),
            user_id: Some(UserId(u64::from(i) % USERS + 1)),
            register_method: RegisterMethod::AuthKey,
            tags: if tagged {
                vec!["tag:server".into()]
            } else {
                Vec::new()
            },
            auth_key_id: None,
            expiry: None,
            last_seen: None,
            approved_routes: Vec::new(),
            created_at: t,
            updated_at: t,
        }))
    });
    let applied = writer.apply(users.chain(nodes));
    assert!(applied.results.iter().all(Result::is_ok));
    store.load_full()
}

const POLICY: &str = r#"{
  "groups": {"group:ops": ["u1@", "u2@"]},
  "tagOwners": {"tag:server": ["group:ops"]},
  "acls": [
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
    {"action": "accept", "src": ["group:ops"], "dst": ["tag:server:22,443"]},
    {"action": "accept", "src": ["tag:server"], "dst": ["tag:server:*"]},
  ],
}"#;

fn bench(c: &mut Criterion) {
    let policy = hs_policy::Policy::parse(POLICY).unwrap();
    for (name, n) in [
        ("policy_recompile_1k", 1000),
        ("policy_recompile_10k", 10_000),
    ] {
        let snap = tailnet(n);
        let mut g = c.benchmark_group(name);
        g.sample_size(10);
        g.bench_function("compile", |b| {
            b.iter(|| CompiledView::compile(&policy, &snap).unwrap());
        });
        g.bench_function("compile_and_all_filters", |b| {
            b.iter(|| {
                let v = CompiledView::compile(&policy, &snap).unwrap();
                snap.nodes()
                    .map(|e| v.packet_filter(&e.node).len())
                    .sum::<usize>()
            });
        });
        // One node changed, compiled onto the previous view (what the coordinator does for
        // a registration or a tag change): a member node's address moves (its user's
        // autogroup:self filters change), a new member node joins, a node is tagged.
        let base = CompiledView::compile(&policy, &snap).unwrap();
        let some = snap.nodes().nth(1).unwrap();
        let mut moved = hs_control::policy::policy_node(some);
        moved.ipv4 = Some(Ipv4Addr::new(100, 127, 0, 1));
        let mut joined = moved.clone();
        joined.id = NodeId(u64::from(n) + 100);
        joined.ipv4 = Some(Ipv4Addr::new(100, 127, 0, 2));
        joined.ipv6 = None;
        let mut tagged = hs_control::policy::policy_node(some);
        tagged.user = None;
        tagged.tags = vec!["tag:server".into()];
        for (what, node) in [
            ("update_address", moved),
            ("update_new_node", joined),
            ("update_tagged", tagged),
        ] {
            g.bench_function(what, |b| {
                b.iter(|| base.updated(vec![node.clone()]).unwrap().unwrap());
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
