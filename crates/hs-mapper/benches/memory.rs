//! Memory per node at 10k nodes (Hostinfo excluded, as the target is stated): live heap bytes
//! (counted by the allocator, so freed garbage from building does not count) held by a
//! filled NodeStore snapshot, by the mapper's peer cache (every node serialised once) and by
//! one session per node. Prints its figures to stderr.

use std::alloc::System;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use hs_mapper::{Mapper, MapperConfig, Session};
use hs_nodestore::{AllowAll, NodePatch, NodeStore, Op};
use hs_types::model::{Node, RegisterMethod};
use hs_types::tailcfg::DERPMap;
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

const N: u64 = 10_000;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes currently allocated and not freed.
fn live() -> u64 {
    let s = GLOBAL.stats();
    (s.bytes_allocated as u64 + s.bytes_reallocated.max(0) as u64)
        .saturating_sub(s.bytes_deallocated as u64)
        .saturating_sub(s.bytes_reallocated.min(0).unsigned_abs() as u64)
}

fn key(tag: u8, id: u64) -> [u8; 32] {
    let mut b = [tag; 32];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

fn node(id: u64) -> Node {
    Node {
        id: NodeId(id),
        machine_key: MachinePublic::from_bytes(key(1, id)),
        node_key: NodePublic::from_bytes(key(2, id)),
        disco_key: DiscoPublic::from_bytes(key(3, id)),
        endpoints: vec![
            SocketAddr::from(([192, 0, 2, (id % 250) as u8], 41641)),
            SocketAddr::from(([10, 1, (id >> 8) as u8, id as u8], 41641)),
        ],
        hostinfo: None,
        ipv4: Some(Ipv4Addr::from(0x6440_0000 + u32::try_from(id).unwrap_or(0))),
        ipv6: Some(Ipv6Addr::from(
            (0xfd7a_115c_a1e0_u128 << 80) | u128::from(id),
        )),
        hostname: format!("host-{id}"),
        given_name: String::new(),
        user_id: Some(UserId(id % 10 + 1)),
        register_method: RegisterMethod::AuthKey,
        tags: vec![],
        auth_key_id: None,
        expiry: None,
        last_seen: None,
        approved_routes: vec![],
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

#[allow(
    clippy::print_stderr,
    reason = "a measurement tool reports what it measured"
)]
fn main() {
    let now = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let base = live();
    let (r, mut w) = NodeStore::new(Arc::new(AllowAll::new()));
    w.apply((1..=N).map(|i| Op::Upsert(Box::new(node(i)))));
    w.apply((1..=N).map(|i| {
        Op::Patch(
            NodeId(i),
            NodePatch {
                online: Some(true),
                ..Default::default()
            },
        )
    }));
    let snap = r.load_full();
    let after_store = live();
    let cfg = MapperConfig::new(
        "ts.example.com",
        &DERPMap::default(),
        None,
        true,
        false,
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = Mapper::new(cfg);
    let (_, json) = m
        .full_map(&snap, NodeId(1), now)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(json);
    let after_cache = live();
    let sessions: Vec<Session> = (1..=N)
        .map(|i| {
            m.session_at(&snap, NodeId(i))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let after_sessions = live();
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / N as f64;
    eprintln!("nodes: {N}, cached entries: {}", m.peer_cache().len());
    eprintln!("nodestore:        {:8.0} B/node", per(after_store, base));
    eprintln!(
        "peer JSON cache:  {:8.0} B/node",
        per(after_cache, after_store)
    );
    eprintln!(
        "sessions:         {:8.0} B/node",
        per(after_sessions, after_cache)
    );
    eprintln!("total:            {:8.0} B/node", per(after_sessions, base));
    std::hint::black_box((&snap, &sessions));
}
