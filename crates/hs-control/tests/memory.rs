//! What the policy view holds for a whole tailnet, counted by the allocator: every viewer's
//! peers of a 2,000-node allow-all tailnet (four million visible pairs) must fit in a few
//! megabytes. A view per pair took hundreds of megabytes here and gigabytes in a server
//! (issue #25); this test fails if such a representation comes back.
//!
//! Its own test binary, because the counting allocator is process-wide.

#![allow(clippy::unwrap_used, reason = "a test")]

use std::alloc::System;
use std::sync::Arc;

use chrono::Utc;
use hs_control::policy::CompiledView;
use hs_nodestore::{AllowAll, NodeStore, Op, PolicyView};
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::{DiscoPublic, MachinePrivate, NodeId, NodePrivate, UserId};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const NODES: u64 = 2_000;

fn node(id: u64) -> Node {
    let mut rng = rand::rngs::OsRng;
    let t = chrono::DateTime::<Utc>::UNIX_EPOCH;
    Node {
        id: NodeId(id),
        machine_key: MachinePrivate::generate(&mut rng).public(),
        node_key: NodePrivate::generate(&mut rng).public(),
        disco_key: DiscoPublic::default(),
        endpoints: Vec::new(),
        hostinfo: None,
        ipv4: Some(std::net::Ipv4Addr::from(0x6440_0000 + id as u32)),
        ipv6: Some(std::net::Ipv6Addr::from(
            0xfd7a_115c_a1e0_u128 << 80 | u128::from(id),
        )),
        hostname: format!("n{id}"),
        given_name: format!("n{id}"),
        user_id: Some(UserId(1)),
        register_method: RegisterMethod::AuthKey,
        tags: Vec::new(),
        auth_key_id: None,
        expiry: None,
        last_seen: None,
        approved_routes: Vec::new(),
        created_at: t,
        updated_at: t,
    }
}

#[test]
fn every_viewers_peers_of_a_large_tailnet_fit_in_a_few_megabytes() {
    let t = chrono::DateTime::<Utc>::UNIX_EPOCH;
    let (store, mut writer) = NodeStore::new(Arc::new(AllowAll::new()));
    let nodes: Vec<Node> = (1..=NODES).map(node).collect();
    let user = User {
        id: UserId(1),
        name: "load".into(),
        display_name: String::new(),
        email: String::new(),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
        created_at: t,
        updated_at: t,
    };
    let applied = writer.apply(
        std::iter::once(Op::UpsertUser(Box::new(user)))
            .chain(nodes.iter().map(|n| Op::Upsert(Box::new(n.clone())))),
    );
    assert!(applied.results.iter().all(Result::is_ok));
    let policy = hs_policy::Policy::parse(
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
    )
    .unwrap();
    let view = CompiledView::compile(&policy, &store.load_full()).unwrap();

    let region = Region::new(GLOBAL);
    let mut seen = 0u64;
    for v in &nodes {
        for p in nodes.iter().step_by(97) {
            seen += u64::from(view.can_see(v, p));
        }
    }
    let held = region.change();
    let net = held.bytes_allocated as i64 - held.bytes_deallocated as i64;
    // Every viewer sees every other node.
    assert_eq!(seen, NODES * NODES.div_ceil(97) - NODES.div_ceil(97));
    // N² bits are 500 kB; allow for the containers around them.
    assert!(net < 4 << 20, "the view grew by {net} bytes");
    drop(view);
}
