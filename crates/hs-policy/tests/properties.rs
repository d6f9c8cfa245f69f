//! Property tests of the engine on small random tailnets and policies:
//! compilation is deterministic; adding an accept rule never removes access; peer visibility
//! agrees with the packet filter; `update_node` reports every viewer whose output changed;
//! the same for grants (via, app capabilities with companions), and a viewer sees each
//! routed prefix on one router at most.

#![allow(clippy::unwrap_used)]

use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser, synth};
use proptest::prelude::*;
use std::net::IpAddr;

const SRCS: &[&str] = &[
    "*",
    "autogroup:member",
    "autogroup:tagged",
    "tag:t0",
    "tag:t1",
    "user0@example.com",
    "user1@",
    "group:g0",
    "10.0.0.0/24",
    "100.64.0.0/29",
];
const DSTS: &[&str] = &[
    "*:*",
    "tag:t0:22",
    "tag:t1:80,443",
    "autogroup:member:*",
    "autogroup:tagged:8000-8100",
    "user2@example.com:22",
    "group:g0:*",
    "10.0.0.0/24:*",
    "100.64.0.2:443",
];
const PORTS: &[u16] = &[22, 80, 443, 8050, 9999];

fn acl(src: usize, dst: usize) -> String {
    format!(
        "{{\"action\": \"accept\", \"src\": [\"{}\"], \"dst\": [\"{}\"]}}",
        SRCS[src], DSTS[dst]
    )
}

fn policy(rules: &[(usize, usize)]) -> Policy {
    let acls: Vec<String> = rules.iter().map(|&(s, d)| acl(s, d)).collect();
    let text = format!(
        "{{\"groups\": {{\"group:g0\": [\"user0@example.com\", \"user2@\"]}},\n\
          \"tagOwners\": {{\"tag:t0\": [], \"tag:t1\": []}},\n\
          \"ssh\": [{{\"action\": \"accept\", \"src\": [\"autogroup:member\"], \"dst\": [\"autogroup:self\"], \"users\": [\"root\"]}},\n\
                   {{\"action\": \"check\", \"src\": [\"group:g0\", \"tag:t1\"], \"dst\": [\"tag:t0\"], \"users\": [\"autogroup:nonroot\"]}}],\n\
          \"acls\": [{}]}}",
        acls.join(",")
    );
    Policy::parse(&text).unwrap()
}

fn tailnet(n: usize, seed: u64) -> (Vec<PolicyUser>, Vec<PolicyNode>) {
    let users = synth::users(30);
    let mut rng = synth::Rng::new(seed);
    let mut nodes: Vec<PolicyNode> = (0..n)
        .map(|i| synth::node(i, users.len(), &mut rng))
        .collect();
    // Keep tags within the two the policy defines, and give node 0 a subnet route.
    for node in &mut nodes {
        for t in &mut node.tags {
            *t = if t.ends_with(|c: char| c.to_digit(10).unwrap_or(0).is_multiple_of(2)) {
                "tag:t0".into()
            } else {
                "tag:t1".into()
            };
        }
        node.tags.dedup();
    }
    if let Some(first) = nodes.first_mut() {
        let route = "10.0.0.0/24".parse().unwrap();
        first.announced_routes = vec![route];
        first.approved_routes = vec![route];
        first.primary_routes = vec![route];
    }
    (users, nodes)
}

type Snapshot = Vec<(
    Vec<hs_policy::Rule>,
    Vec<hs_policy::PeerView>,
    Vec<hs_policy::SshRuleOut>,
)>;

fn snapshot(c: &CompiledPolicy) -> Snapshot {
    (0..c.nodes().len())
        .map(|i| (c.filter(i), c.peers(i), c.ssh_rules(i)))
        .collect()
}

fn ips(c: &CompiledPolicy) -> Vec<(usize, IpAddr)> {
    c.nodes()
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.ips().map(move |ip| (i, ip)))
        .collect()
}

fn rules_strategy() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0..SRCS.len(), 0..DSTS.len()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compilation_is_deterministic(n in 2usize..12, seed in any::<u64>(), rules in rules_strategy()) {
        let (users, nodes) = tailnet(n, seed);
        let p = policy(&rules);
        let a = CompiledPolicy::compile(&p, &users, &nodes).unwrap();
        let b = CompiledPolicy::compile(&p, &users, &nodes).unwrap();
        prop_assert_eq!(snapshot(&a), snapshot(&b));
    }

    #[test]
    fn adding_an_accept_rule_never_removes_access(
        n in 2usize..10,
        seed in any::<u64>(),
        rules in rules_strategy(),
        extra in (0..SRCS.len(), 0..DSTS.len()),
    ) {
        let (users, nodes) = tailnet(n, seed);
        let before = CompiledPolicy::compile(&policy(&rules), &users, &nodes).unwrap();
        let mut more = rules.clone();
        more.push(extra);
        let after = CompiledPolicy::compile(&policy(&more), &users, &nodes).unwrap();
        for d in 0..n {
            for (_, src) in ips(&before) {
                for &port in PORTS {
                    if before.allows(d, src, 6, port) {
                        prop_assert!(after.allows(d, src, 6, port), "node {d} lost {src}:{port}");
                    }
                }
            }
            let had: Vec<usize> = before.peers(d).iter().map(|p| p.index).collect();
            let has: Vec<usize> = after.peers(d).iter().map(|p| p.index).collect();
            for p in had {
                prop_assert!(has.contains(&p), "node {d} lost peer {p}");
            }
        }
    }

    #[test]
    fn peers_agree_with_the_packet_filter(n in 2usize..12, seed in any::<u64>(), rules in rules_strategy()) {
        let (users, nodes) = tailnet(n, seed);
        let c = CompiledPolicy::compile(&policy(&rules), &users, &nodes).unwrap();
        for d in 0..n {
            for (s, src) in ips(&c) {
                if s == d {
                    continue;
                }
                let allowed = PORTS.iter().any(|&p| c.allows(d, src, 6, p));
                if allowed {
                    prop_assert!(c.peers(d).iter().any(|p| p.index == s), "{d} filters in {s} but does not see it");
                    prop_assert!(c.peers(s).iter().any(|p| p.index == d), "{s} may reach {d} but does not see it");
                }
            }
        }
    }

    #[test]
    fn update_node_reports_every_changed_viewer(
        n in 2usize..10,
        seed in any::<u64>(),
        rules in rules_strategy(),
        which in any::<prop::sample::Index>(),
        retag in 0usize..3,
    ) {
        let (users, nodes) = tailnet(n, seed);
        let p = policy(&rules);
        let mut c = CompiledPolicy::compile(&p, &users, &nodes).unwrap();
        let before = snapshot(&c);
        let x = which.index(n);
        let mut changed = nodes[x].clone();
        match retag {
            0 => { changed.tags = vec!["tag:t0".into()]; changed.user = None; }
            1 => { changed.tags = vec![]; changed.user = Some(users[2].id); }
            _ => { changed.ipv4 = Some("100.64.0.2".parse().unwrap()); }
        }
        let delta = c.update_node(changed).unwrap();
        let after = snapshot(&c);
        for i in 0..n {
            let id = c.nodes()[i].id;
            if before[i].0 != after[i].0 || before[i].2 != after[i].2 {
                prop_assert!(delta.filters_changed.contains(&id), "filter of {i} changed unreported");
            }
            if before[i].1 != after[i].1 {
                prop_assert!(delta.peers_changed.contains(&id), "peers of {i} changed unreported");
            }
        }
    }
}

/// Grant sources and destinations (grants take no ports in `dst`).
const GRANT_SRCS: &[&str] = &[
    "*",
    "autogroup:member",
    "autogroup:tagged",
    "tag:t0",
    "tag:t1",
    "user1@",
    "group:g0",
];
const GRANT_DSTS: &[&str] = &[
    "*",
    "tag:t0",
    "tag:t1",
    "autogroup:member",
    "autogroup:tagged",
    "user2@example.com",
    "group:g0",
    "10.0.0.0/24",
    "100.64.0.2",
];

/// One grant: (kind, source, destination) indices. Kinds cover plain IP grants, `via`
/// grants to the routed subnet, app grants with a companion capability (drive, relay to
/// autogroup:self) and an app-only `via` grant.
fn grant(kind: usize, src: usize, dst: usize) -> String {
    let (s, d) = (GRANT_SRCS[src], GRANT_DSTS[dst]);
    match kind {
        0 => format!(r#"{{"src": ["{s}"], "dst": ["{d}"], "ip": ["*"]}}"#),
        1 => format!(
            r#"{{"src": ["{s}"], "dst": ["10.0.0.0/24"], "ip": ["*"], "via": ["tag:t0"]}}"#
        ),
        2 => format!(
            r#"{{"src": ["{s}"], "dst": ["10.0.0.0/24"], "ip": ["tcp:22"], "via": ["tag:t1"]}}"#
        ),
        3 => format!(
            r#"{{"src": ["{s}"], "dst": ["{d}"], "app": {{"tailscale.com/cap/drive": [{{"shares": ["*"], "access": "rw"}}]}}}}"#
        ),
        4 => r#"{"src": ["autogroup:member"], "dst": ["autogroup:self"], "app": {"tailscale.com/cap/relay": [{}]}}"#.to_string(),
        _ => format!(
            r#"{{"src": ["{s}"], "dst": ["10.0.0.0/24"], "app": {{"example.com/cap/x": [{{}}]}}, "via": ["tag:t0"]}}"#
        ),
    }
}

fn grant_policy(grants: &[(usize, usize, usize)]) -> Policy {
    let gs: Vec<String> = grants.iter().map(|&(k, s, d)| grant(k, s, d)).collect();
    let text = format!(
        "{{\"groups\": {{\"group:g0\": [\"user0@example.com\", \"user2@\"]}},\n\
          \"tagOwners\": {{\"tag:t0\": [], \"tag:t1\": []}},\n\
          \"grants\": [{}]}}",
        gs.join(",")
    );
    Policy::parse(&text).unwrap()
}

/// As [`tailnet`], plus high availability: node 1 also serves node 0's subnet, on standby.
fn ha_tailnet(n: usize, seed: u64) -> (Vec<PolicyUser>, Vec<PolicyNode>) {
    let (users, mut nodes) = tailnet(n, seed);
    if let Some(second) = nodes.get_mut(1) {
        let route = "10.0.0.0/24".parse().unwrap();
        second.announced_routes = vec![route];
        second.approved_routes = vec![route];
        second.primary_routes = vec![];
    }
    (users, nodes)
}

fn grants_strategy() -> impl Strategy<Value = Vec<(usize, usize, usize)>> {
    prop::collection::vec((0usize..6, 0..GRANT_SRCS.len(), 0..GRANT_DSTS.len()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn grant_compilation_is_deterministic(n in 2usize..12, seed in any::<u64>(), grants in grants_strategy()) {
        let (users, nodes) = ha_tailnet(n, seed);
        let p = grant_policy(&grants);
        let a = CompiledPolicy::compile(&p, &users, &nodes).unwrap();
        let b = CompiledPolicy::compile(&p, &users, &nodes).unwrap();
        prop_assert_eq!(snapshot(&a), snapshot(&b));
    }

    #[test]
    fn grant_peers_agree_with_the_packet_filter(n in 2usize..12, seed in any::<u64>(), grants in grants_strategy()) {
        let (users, nodes) = ha_tailnet(n, seed);
        let c = CompiledPolicy::compile(&grant_policy(&grants), &users, &nodes).unwrap();
        for d in 0..n {
            for (s, src) in ips(&c) {
                if s != d && PORTS.iter().any(|&p| c.allows(d, src, 6, p)) {
                    prop_assert!(c.peers(d).iter().any(|p| p.index == s), "{d} filters in {s} but does not see it");
                    prop_assert!(c.peers(s).iter().any(|p| p.index == d), "{s} may reach {d} but does not see it");
                }
            }
        }
    }

    /// Per-viewer primaries (`via`) never show one prefix on two routers to the same viewer,
    /// and a prefix a peer shows is one it serves.
    #[test]
    fn each_viewer_sees_a_prefix_on_one_router_at_most(n in 2usize..12, seed in any::<u64>(), grants in grants_strategy()) {
        let (users, nodes) = ha_tailnet(n, seed);
        let c = CompiledPolicy::compile(&grant_policy(&grants), &users, &nodes).unwrap();
        for v in 0..n {
            let mut shown = std::collections::BTreeMap::new();
            for p in c.peers(v) {
                for r in &p.primary_routes {
                    prop_assert!(c.nodes()[p.index].approved_routes.contains(r), "{} shows {r} it does not serve", p.index);
                    prop_assert!(p.allowed_ips.contains(r), "{r} primary but not in allowed IPs");
                    if let Some(other) = shown.insert(*r, p.index) {
                        prop_assert!(false, "viewer {v} sees {r} on {other} and {}", p.index);
                    }
                }
            }
        }
    }

    #[test]
    fn update_node_reports_every_changed_viewer_with_grants(
        n in 2usize..10,
        seed in any::<u64>(),
        grants in grants_strategy(),
        which in any::<prop::sample::Index>(),
        retag in 0usize..4,
    ) {
        let (users, nodes) = ha_tailnet(n, seed);
        let mut c = CompiledPolicy::compile(&grant_policy(&grants), &users, &nodes).unwrap();
        let before = snapshot(&c);
        let x = which.index(n);
        let mut changed = nodes[x].clone();
        match retag {
            0 => { changed.tags = vec!["tag:t0".into()]; changed.user = None; }
            1 => { changed.tags = vec![]; changed.user = Some(users[2].id); }
            2 => { changed.tags = vec!["tag:t1".into()]; changed.user = None; }
            _ => { changed.ipv4 = Some("100.64.0.2".parse().unwrap()); }
        }
        let delta = c.update_node(changed).unwrap();
        let after = snapshot(&c);
        for i in 0..n {
            let id = c.nodes()[i].id;
            if before[i].0 != after[i].0 || before[i].2 != after[i].2 {
                prop_assert!(delta.filters_changed.contains(&id), "filter of {i} changed unreported");
            }
            if before[i].1 != after[i].1 {
                prop_assert!(delta.peers_changed.contains(&id), "peers of {i} changed unreported");
            }
        }
    }
}
