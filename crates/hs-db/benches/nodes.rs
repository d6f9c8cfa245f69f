//! Node upserts per second and full node-list load time for 10k nodes, on an SQLite file
//! and on a throwaway PostgreSQL server (skipped when the server binaries are missing).
//!
//! Run: `cargo bench -p hs-db --bench nodes -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_main};
use hs_db::Db;
use hs_types::model::{Node, RegisterMethod};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic};

#[allow(unreachable_pub, clippy::unwrap_used)]
#[path = "../tests/it/support.rs"]
mod support;

const NODES: u32 = 10_000;

fn node(i: u32) -> Node {
    let mut mk = [7u8; 32];
    mk[..4].copy_from_slice(&i.to_be_bytes());
    let t = Utc.timestamp_opt(1_700_000_000, 0).single().expect("t");
    let [_, a, b, c] = i.to_be_bytes();
    Node {
        id: NodeId(u64::from(i) + 1),
        machine_key: MachinePublic::from_bytes(mk),
        node_key: NodePublic::from_bytes(mk),
        disco_key: DiscoPublic::from_bytes(mk),
        endpoints: vec![std::net::SocketAddr::from(([198, 51, 100, c], 41641))],
        hostinfo: Some(
            serde_json::from_value(serde_json::json!({
                "Hostname": format!("bench-{i}"), "OS": "linux", "IPNVersion": "1.80.0",
                "RoutableIPs": ["10.0.0.0/24"]
            }))
            .expect("hostinfo"),
        ),
        ipv4: Some(std::net::Ipv4Addr::new(100, 64 + a, b, c)),
        ipv6: Some(std::net::Ipv6Addr::new(
            0xfd7a,
            0x115c,
            0xa1e0,
            0,
            0,
            0,
            0,
            (i & 0xffff) as u16,
        )),
        hostname: format!("bench-{i}"),
        given_name: format!("bench-{i}"),
        user_id: None,
        register_method: RegisterMethod::AuthKey,
        tags: vec!["tag:bench".into()],
        auth_key_id: None,
        expiry: None,
        last_seen: Some(t),
        approved_routes: vec!["10.0.0.0/24".parse().expect("net")],
        created_at: t,
        updated_at: t,
    }
}

fn seed(db: &Db) {
    for chunk in (0..NODES).collect::<Vec<_>>().chunks(1000) {
        db.tx(|c| {
            for i in chunk {
                c.upsert_node(&node(*i))?;
            }
            Ok(())
        })
        .expect("seed");
    }
}

fn run(c: &mut Criterion, backend: &str, db: &Db) {
    seed(db);
    let mut g = c.benchmark_group(format!("nodes/{backend}"));
    g.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    g.bench_function("upsert_one_tx", |b| {
        b.iter(|| {
            let mut n = node(i % NODES);
            n.last_seen = Some(
                Utc.timestamp_opt(1_700_000_000 + i64::from(i), 0)
                    .single()
                    .expect("t"),
            );
            db.tx(|c| c.upsert_node(&n)).expect("upsert");
            i = i.wrapping_add(1);
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("upsert_100_per_tx", |b| {
        b.iter(|| {
            db.tx(|c| {
                for k in 0..100 {
                    c.upsert_node(&node((i + k) % NODES))?;
                }
                Ok(())
            })
            .expect("upsert batch");
            i = i.wrapping_add(100);
        })
    });
    g.throughput(Throughput::Elements(u64::from(NODES)));
    g.sample_size(10);
    g.bench_function("list_10k", |b| {
        b.iter(|| {
            let all = db.tx(|c| c.list_nodes()).expect("list");
            assert_eq!(all.len(), NODES as usize);
            black_box(all)
        })
    });
    g.finish();
}

fn sqlite(c: &mut Criterion) {
    let f = support::sqlite_db();
    let db = support::open(&f.config());
    run(c, "sqlite", &db);
}

fn postgres(c: &mut Criterion) {
    if !std::path::Path::new("/usr/lib/postgresql").exists() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL server binaries not installed; skipping the postgres benches"
        );
        return;
    }
    let d = support::pg_db();
    let db = support::open(&d.config());
    run(c, "postgres", &db);
}

#[allow(missing_docs, unreachable_pub)]
mod harness {
    criterion::criterion_group!(benches, super::sqlite, super::postgres);
}
criterion_main!(harness::benches);
