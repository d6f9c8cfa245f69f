//! Mapper benchmarks at 100 / 1k / 10k nodes, all-to-all and under a group policy (ten
//! groups; a node sees the nodes of its own group):
//! (a) the full map for one node, built, serialised and compressed (warm peer cache, the
//!     steady state; and cold, right after a restart);
//! (b) one node's endpoint change, from the NodeStore write to a frame for every viewer;
//! (c) reconnect storm: the full map of every node, cold cache (100 and 1k nodes).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_main};
use hs_mapper::{Mapper, MapperConfig, Session, encode_frame};
use hs_nodestore::{AllowAll, NodeAttr, NodePatch, NodeStore, Op, PolicyView, Writer};
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::tailcfg::{DERPMap, DERPNode, DERPRegion, DNSConfig, DNSResolver};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};

const GROUPS: u64 = 10;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default()
}

/// splitmix64: deterministic, well-mixed bytes so keys and log ids look as random as real
/// ones do (identical-looking nodes would flatter the compressor).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key(tag: u8, id: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(id * 64 + u64::from(tag) * 8 + i as u64).to_le_bytes());
    }
    b
}

fn hex_id(seed: u64) -> String {
    key(9, seed).iter().map(|b| format!("{b:02x}")).collect()
}

/// A node with a realistic Hostinfo (what a Linux tailscaled sends, trimmed of services).
fn node(id: u64) -> Node {
    let hostinfo = serde_json::json!({
        "IPNVersion": "1.80.0-t0123456789-g0123456789",
        "FrontendLogID": hex_id(id),
        "BackendLogID": hex_id(id + 1_000_000),
        "OS": "linux", "OSVersion": "6.1.0-18-amd64", "Distro": "debian", "DistroVersion": "12.5",
        "Hostname": format!("host-{id}"), "GoArch": "amd64", "GoVersion": "go1.23.4",
        "Services": [{"Proto": "peerapi4", "Port": 41234}, {"Proto": "peerapi6", "Port": 41234}],
        "NetInfo": {"MappingVariesByDestIP": false, "WorkingIPv6": false, "WorkingUDP": true,
                    "PreferredDERP": 900, "DERPLatency": {"900-v4": (mix(id) % 50_000) as f64 / 1e6}}
    });
    Node {
        id: NodeId(id),
        machine_key: MachinePublic::from_bytes(key(1, id)),
        node_key: NodePublic::from_bytes(key(2, id)),
        disco_key: DiscoPublic::from_bytes(key(3, id)),
        endpoints: vec![
            SocketAddr::from((
                mix(id).to_le_bytes()[..4].try_into().unwrap_or([0; 4]),
                41641,
            )),
            SocketAddr::from(([10, 1, (id >> 8) as u8, id as u8], 41641)),
        ],
        hostinfo: serde_json::from_value(hostinfo).ok(),
        ipv4: Some(Ipv4Addr::from(0x6440_0000 + u32::try_from(id).unwrap_or(0))),
        ipv6: Some(Ipv6Addr::from(
            (0xfd7a_115c_a1e0_u128 << 80) | u128::from(id),
        )),
        hostname: format!("host-{id}"),
        given_name: String::new(),
        user_id: Some(UserId(id % GROUPS + 1)),
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

fn user(id: u64) -> User {
    User {
        id: UserId(id),
        name: format!("user{id}"),
        display_name: format!("User {id}"),
        email: format!("user{id}@example.com"),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
        groups: Vec::new(),
    }
}

/// Nodes of the same user see each other; one filter per user, shared by its nodes.
#[derive(Debug, Default)]
struct Groups {
    filters: Mutex<BTreeMap<Option<UserId>, Arc<str>>>,
}

impl PolicyView for Groups {
    fn can_see(&self, viewer: &Node, peer: &Node) -> bool {
        viewer.user_id == peer.user_id
    }
    fn packet_filter(&self, viewer: &Node) -> Arc<str> {
        let mut f = self
            .filters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(f.entry(viewer.user_id).or_insert_with(|| {
            Arc::from(format!(
                r#"[{{"SrcIPs":["group:{}"],"DstPorts":[{{"IP":"*","Ports":{{"First":0,"Last":65535}}}}]}}]"#,
                viewer.user_id.map_or(0, |u| u.0)
            ))
        }))
    }
    fn ssh_policy(&self, _viewer: &Node) -> Option<Arc<str>> {
        None
    }
    fn node_attrs(&self, _node: &Node) -> Vec<NodeAttr> {
        Vec::new()
    }
}

fn config() -> MapperConfig {
    let derp = DERPMap {
        regions: Some(BTreeMap::from([(
            900,
            DERPRegion {
                region_id: 900,
                region_code: "headscale".into(),
                region_name: "Headscale Embedded DERP".into(),
                nodes: vec![DERPNode {
                    name: "900a".into(),
                    region_id: 900,
                    host_name: "derp.example.com".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )])),
        omit_default_regions: true,
        ..Default::default()
    };
    let dns = DNSConfig {
        resolvers: vec![DNSResolver::new("1.1.1.1")],
        domains: vec!["ts.example.com".into()],
        proxied: true,
        ..Default::default()
    };
    MapperConfig::new("ts.example.com", &derp, Some(&dns), true, false, false)
        .unwrap_or_else(|e| panic!("config: {e}"))
}

fn tailnet(n: u64, policy: Arc<dyn PolicyView>) -> (NodeStore, Writer) {
    let (r, mut w) = NodeStore::new(policy);
    w.apply((1..=GROUPS).map(|u| Op::UpsertUser(Box::new(user(u)))));
    w.apply((1..=n).map(|i| Op::Upsert(Box::new(node(i)))));
    w.apply((1..=n).map(|i| {
        Op::Patch(
            NodeId(i),
            NodePatch {
                online: Some(true),
                ..Default::default()
            },
        )
    }));
    (r, w)
}

type MakePolicy = fn() -> Arc<dyn PolicyView>;

fn policies() -> [(&'static str, MakePolicy); 2] {
    [
        ("all", || Arc::new(AllowAll::new())),
        ("groups", || Arc::new(Groups::default())),
    ]
}

#[allow(clippy::print_stderr, reason = "the sizes put the timings in context")]
fn full_map(c: &mut Criterion) {
    let mut g = c.benchmark_group("a_full_map");
    g.sample_size(20);
    for (pname, mk) in policies() {
        for n in [100u64, 1_000, 10_000] {
            let (r, _w) = tailnet(n, mk());
            let snap = r.load_full();
            let m = Mapper::new(config());
            let viewer = NodeId(n / 2);
            let (_, json) = m
                .full_map(&snap, viewer, now())
                .unwrap_or_else(|e| panic!("{e}"));
            let frame = encode_frame(&json).unwrap_or_else(|e| panic!("{e}"));
            let parts = m
                .full_map_frame(&snap, viewer, now())
                .unwrap_or_else(|e| panic!("{e}"))
                .1;
            eprintln!(
                "a_full_map/{pname}/{n}: {} peers, {} B JSON, {} B as one zstd frame, {} B as \
                 shared parts",
                snap.peers_of(viewer).count(),
                json.len(),
                frame.len(),
                parts.len()
            );
            g.bench_with_input(BenchmarkId::new(format!("{pname}/warm"), n), &n, |b, _| {
                b.iter(|| black_box(m.full_map_frame(&snap, viewer, now())));
            });
            if n <= 1_000 {
                g.bench_with_input(BenchmarkId::new(format!("{pname}/cold"), n), &n, |b, _| {
                    b.iter_batched(
                        || Mapper::new(config()),
                        |m| black_box(m.full_map_frame(&snap, viewer, now()).map(|x| x.1.len())),
                        BatchSize::SmallInput,
                    );
                });
            }
        }
    }
    g.finish();
}

fn endpoint_change(c: &mut Criterion) {
    let mut g = c.benchmark_group("b_endpoint_change");
    g.sample_size(20);
    for (pname, mk) in policies() {
        for n in [100u64, 1_000, 10_000] {
            let (r, mut w) = tailnet(n, mk());
            let snap = r.load_full();
            let m = Mapper::new(config());
            let mut sessions: Vec<Session> = (1..=n)
                .map(|i| {
                    m.session_at(&snap, NodeId(i))
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            let mut port = 1u16;
            let changed = NodeId(n / 2);
            g.bench_with_input(BenchmarkId::new(pname, n), &n, |b, _| {
                b.iter(|| {
                    port = port.wrapping_add(1).max(1);
                    let a = w.apply([Op::Patch(
                        changed,
                        NodePatch {
                            endpoints: Some(vec![SocketAddr::from(([198, 51, 100, 7], port))]),
                            ..Default::default()
                        },
                    )]);
                    let out = m
                        .fanout(&a.prev, &a.next, &a.changes, &mut sessions, now())
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(out.len())
                });
            });
        }
    }
    g.finish();
}

fn reconnect_storm(c: &mut Criterion) {
    let mut g = c.benchmark_group("c_reconnect_storm");
    g.sample_size(10);
    for (pname, mk) in policies() {
        for n in [100u64, 1_000] {
            let (r, _w) = tailnet(n, mk());
            let snap = r.load_full();
            g.bench_with_input(BenchmarkId::new(pname, n), &n, |b, &n| {
                b.iter_batched(
                    || Mapper::new(config()),
                    |m| {
                        let mut bytes = 0;
                        for i in 1..=n {
                            let (_, f) = m
                                .full_map_frame(&snap, NodeId(i), now())
                                .unwrap_or_else(|e| panic!("{e}"));
                            bytes += f.len();
                        }
                        black_box(bytes)
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    g.finish();
}

// The macro generates an undocumented `pub fn`.
#[allow(missing_docs, unreachable_pub)]
mod harness {
    criterion::criterion_group!(
        benches,
        super::full_map,
        super::endpoint_change,
        super::reconnect_storm
    );
}
criterion_main!(harness::benches);
