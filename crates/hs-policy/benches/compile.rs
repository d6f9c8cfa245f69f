//! Policy compile and re-evaluation on synthetic tailnets of 100, 1k and 10k nodes with a
//! realistic policy (20 groups, 10 tags, autogroup:self, subnet routes, ~300 rules).
//!
//! - `compile`: validate + resolve every rule + every node's packet filter.
//! - `peers_one`: one node's peer list (what a map response needs per node).
//! - `update_node`: one node changes its tags; recompile and compute which viewers changed.
//! - `compile_via`, `peers_one_via`: the same policy plus `via` grants to the routed subnets
//!   (per-viewer primary routers) and Taildrive grants (companion capabilities sent back to
//!   every source).

#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hs_policy::{CompiledPolicy, synth};
use std::hint::black_box;

const RULES: usize = 300;

/// `via` grants over the synthetic subnets (`10.x.y.0/24` behind tagged routers) and
/// Taildrive grants, added for the `_via` benches.
const EXTRA_GRANTS: &[&str] = &[
    r#"{"src": ["group:g1"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["tag:t2"]}"#,
    r#"{"src": ["group:g2"], "dst": ["10.0.0.0/8"], "ip": ["tcp:22"], "via": ["tag:t3", "tag:t4"]}"#,
    r#"{"src": ["autogroup:member"], "dst": ["10.1.0.0/16"], "ip": ["*"], "via": ["tag:t5"]}"#,
    r#"{"src": ["tag:t6"], "dst": ["10.0.0.0/8"], "app": {"example.com/cap/x": [{}]}, "via": ["tag:t6"]}"#,
    r#"{"src": ["autogroup:member"], "dst": ["tag:t7"], "app": {"tailscale.com/cap/drive": [{"shares": ["*"], "access": "rw"}]}}"#,
    r#"{"src": ["autogroup:member"], "dst": ["autogroup:self"], "app": {"tailscale.com/cap/drive": [{"shares": ["*"], "access": "rw"}]}}"#,
];

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy");
    g.sample_size(10);
    for n in [100usize, 1_000, 10_000] {
        let (policy, users, nodes) = synth::tailnet(n, RULES, 42).unwrap();
        g.bench_with_input(BenchmarkId::new("compile", n), &n, |b, _| {
            b.iter(|| {
                let c = CompiledPolicy::compile(&policy, &users, &nodes).unwrap();
                let mut rules = 0;
                for i in 0..nodes.len() {
                    rules += c.filter(i).len();
                }
                black_box(rules)
            })
        });
        let compiled = CompiledPolicy::compile(&policy, &users, &nodes).unwrap();
        g.bench_with_input(BenchmarkId::new("peers_one", n), &n, |b, _| {
            b.iter(|| black_box(compiled.peers(black_box(n / 2)).len()))
        });
        let mut via_policy = policy.clone();
        via_policy.grants.get_or_insert_with(Vec::new).extend(
            EXTRA_GRANTS
                .iter()
                .map(|g| serde_json::from_str(g).unwrap()),
        );
        g.bench_with_input(BenchmarkId::new("compile_via", n), &n, |b, _| {
            b.iter(|| {
                let c = CompiledPolicy::compile(&via_policy, &users, &nodes).unwrap();
                let mut rules = 0;
                for i in 0..nodes.len() {
                    rules += c.filter(i).len();
                }
                black_box(rules)
            })
        });
        let via_compiled = CompiledPolicy::compile(&via_policy, &users, &nodes).unwrap();
        g.bench_with_input(BenchmarkId::new("peers_one_via", n), &n, |b, _| {
            b.iter(|| black_box(via_compiled.peers(black_box(n / 2)).len()))
        });
        let mut changed = nodes[n / 3].clone();
        changed.tags = vec!["tag:t3".into()];
        changed.user = None;
        g.bench_with_input(BenchmarkId::new("update_node", n), &n, |b, _| {
            b.iter_batched(
                || compiled.clone(),
                |mut c| black_box(c.update_node(changed.clone()).unwrap()),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(policy, benches);
criterion_main!(policy);
