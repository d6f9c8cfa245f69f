//! NodeStore write latency at 100 / 1k / 10k nodes: one endpoint patch (the most frequent
//! write), one node upsert, and a batch of 100 patches; each measured from `apply` to the
//! published snapshot. Also the cost of a lock-free read.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use chrono::DateTime;
use criterion::{BenchmarkId, Criterion, criterion_main};
use hs_nodestore::{AllowAll, NodePatch, NodeStore, Op, Writer};
use hs_types::model::{Node, RegisterMethod};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};

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
        endpoints: vec![SocketAddr::from(([192, 0, 2, 1], 41641))],
        hostinfo: None,
        ipv4: Some(Ipv4Addr::from(0x6440_0000 + u32::try_from(id).unwrap_or(0))),
        ipv6: Some(Ipv6Addr::from(0xfd7a_115c_a1e0_u128 << 80 | u128::from(id))),
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

fn filled(n: u64) -> (NodeStore, Writer) {
    let (r, mut w) = NodeStore::new(Arc::new(AllowAll::new()));
    w.apply((1..=n).map(|i| Op::Upsert(Box::new(node(i)))));
    (r, w)
}

fn endpoint_patch(id: u64, port: u16) -> Op {
    Op::Patch(
        NodeId(id),
        NodePatch {
            endpoints: Some(vec![SocketAddr::from(([198, 51, 100, 7], port))]),
            ..Default::default()
        },
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("nodestore");
    for n in [100u64, 1_000, 10_000] {
        let (reader, mut w) = filled(n);
        let mut port = 0u16;
        g.bench_with_input(BenchmarkId::new("patch_endpoints", n), &n, |b, &n| {
            b.iter(|| {
                port = port.wrapping_add(1);
                black_box(w.apply([endpoint_patch(n / 2, port)]))
            });
        });
        g.bench_with_input(BenchmarkId::new("upsert_node", n), &n, |b, &n| {
            let mut host = 0u64;
            b.iter(|| {
                host += 1;
                let mut x = node(n / 3);
                x.hostname = format!("renamed-{host}");
                black_box(w.apply([Op::Upsert(Box::new(x))]))
            });
        });
        g.bench_with_input(BenchmarkId::new("batch_100_patches", n), &n, |b, &n| {
            b.iter(|| {
                port = port.wrapping_add(1);
                black_box(w.apply((0..100).map(|i| endpoint_patch(1 + (i * 7919) % n, port))))
            });
        });
        g.bench_with_input(BenchmarkId::new("read_node", n), &n, |b, &n| {
            b.iter(|| black_box(reader.load().node(NodeId(n / 2)).map(|e| e.home_derp)));
        });
    }
    g.finish();
}

// The macro generates an undocumented `pub fn`.
#[allow(missing_docs, unreachable_pub)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
