//! Encoding and decoding cost of the tailcfg wire types at tailnet sizes the mapper meets.
//!
//! Run: `cargo bench -p hs-types --bench tailcfg -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_main};
use hs_types::tailcfg::{
    CapMap, FilterRule, Hostinfo, MapRequest, MapResponse, NetInfo, Node, Service, godecode, gojson,
};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};

fn peer(i: u64) -> Node {
    let b = u8::try_from(i % 251).unwrap_or(0);
    let v4 = format!("100.64.{}.{}/32", i / 256, i % 256);
    Node {
        id: NodeId(i),
        stable_id: i.to_string(),
        name: format!("node-{i}.tailnet.example.com."),
        user: UserId(i % 10 + 1),
        key: NodePublic::from_bytes([b; 32]),
        machine: MachinePublic::from_bytes([b; 32]),
        disco_key: DiscoPublic::from_bytes([b; 32]),
        addresses: vec![v4.parse().expect("prefix")],
        allowed_ips: Some(vec![v4.parse().expect("prefix")]),
        endpoints: vec!["192.0.2.1:41641".parse().expect("addr")],
        home_derp: 999,
        hostinfo: Some(Hostinfo {
            hostname: format!("node-{i}"),
            os: "linux".into(),
            ipn_version: "1.84.0".into(),
            services: vec![Service {
                proto: "peerapi4".into(),
                port: 63098,
                description: String::new(),
            }],
            net_info: Some(NetInfo {
                preferred_derp: 999,
                ..Default::default()
            }),
            ..Default::default()
        }),
        online: Some(true),
        machine_authorized: true,
        cap_map: CapMap::from([("https://tailscale.com/cap/ssh", vec![])]),
        ..Default::default()
    }
}

fn full_map(peers: u64) -> MapResponse {
    MapResponse {
        node: Some(peer(0)),
        peers: Some((1..=peers).map(peer).collect()),
        packet_filter: Some(vec![FilterRule::allow_all()]),
        domain: "tailnet.example.com".into(),
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("map_response");
    for n in [100u64, 1000] {
        let m = full_map(n);
        let bytes = serde_json::to_vec(&m).expect("encode");
        g.bench_with_input(BenchmarkId::new("serialize", n), &m, |b, m| {
            b.iter(|| serde_json::to_vec(black_box(m)).expect("encode"));
        });
        g.bench_with_input(BenchmarkId::new("serialize_gojson", n), &m, |b, m| {
            b.iter(|| gojson::to_vec(black_box(m)).expect("encode"));
        });
        g.bench_with_input(BenchmarkId::new("deserialize", n), &bytes, |b, bytes| {
            b.iter(|| serde_json::from_slice::<MapResponse>(black_box(bytes)).expect("decode"));
        });
    }
    g.finish();

    let req = MapRequest {
        stream: true,
        keep_alive: true,
        compress: "zstd".into(),
        hostinfo: peer(1).hostinfo,
        endpoints: vec!["192.0.2.1:41641".parse().expect("addr")],
        endpoint_types: vec![2],
        ..Default::default()
    };
    let req = serde_json::to_vec(&req).expect("encode");
    c.bench_function("map_request/deserialize", |b| {
        b.iter(|| serde_json::from_slice::<MapRequest>(black_box(&req)).expect("decode"));
    });
    c.bench_function("map_request/deserialize_godecode", |b| {
        b.iter(|| godecode::from_slice::<MapRequest>(black_box(&req)).expect("decode"));
    });
}

// The macro generates an undocumented `pub fn`.
#[allow(missing_docs, unreachable_pub)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
