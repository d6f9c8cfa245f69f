//! Property tests of the engine on small random tailnets and policies:
//! compilation is deterministic; adding an accept rule never removes access; peer visibility
//! agrees with the packet filter; `update_node` reports every viewer whose output changed;
//! the same for grants (via, app capabilities with companions), and a viewer sees each
//! routed prefix on one router at most; and whether a policy (valid or not) is accepted
//! never depends on the tailnet it is compiled against.

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

/// Rule fragments, valid and not: undefined tags and groups, bad ports and protocols, SSH
/// shapes the model refuses, nodeAttrs targets.
const FRAGMENTS: &[&str] = &[
    r#""acls": [{"action": "accept", "src": ["tag:t0"], "dst": ["tag:t1:22"]}]"#,
    r#""acls": [{"action": "accept", "src": ["tag:nope"], "dst": ["*:*"]}]"#,
    r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:t0:0"]}]"#,
    r#""acls": [{"action": "accept", "src": ["*"], "proto": "icmp", "dst": ["tag:t0:22"]}]"#,
    r#""acls": [{"action": "accept", "src": ["group:g0"], "dst": ["autogroup:self:*"]}]"#,
    r#""acls": [{"action": "accept", "src": ["tag:t0"], "dst": ["autogroup:self:*"]}]"#,
    r#""grants": [{"src": ["autogroup:member"], "dst": ["tag:t1"], "ip": ["tcp:443"]}]"#,
    r#""grants": [{"src": ["*"], "dst": ["10.0.0.0/24"], "ip": ["*"], "via": ["tag:t0"]}]"#,
    r#""grants": [{"src": ["*"], "dst": ["tag:t0"]}]"#,
    r#""ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}]"#,
    r#""ssh": [{"action": "accept", "src": ["tag:t0"], "dst": ["autogroup:member"], "users": ["root"]}]"#,
    r#""ssh": [{"action": "accept", "src": ["group:g0"], "dst": ["user0@example.com"], "users": ["root"]}]"#,
    r#""ssh": [{"action": "accept", "src": ["user:*@example.com"], "dst": ["autogroup:self"], "users": ["root"]}]"#,
    r#""ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["localpart:*@example.com"]}]"#,
    r#""nodeAttrs": [{"target": ["tag:t1"], "attr": ["funnel"]}]"#,
    r#""nodeAttrs": [{"target": ["group:nope"], "attr": ["funnel"]}]"#,
    r#""autoApprovers": {"routes": {"10.0.0.0/24": ["tag:t0"]}, "exitNode": ["group:g0"]}"#,
    r#""autoApprovers": {"exitNode": ["tag:nope"]}"#,
];

fn fragment_policy(picks: &[usize]) -> Option<Policy> {
    let mut seen = std::collections::BTreeSet::new();
    let mut parts = vec![
        r#""groups": {"group:g0": ["user0@example.com", "user2@"]}"#.to_owned(),
        r#""tagOwners": {"tag:t0": [], "tag:t1": []}"#.to_owned(),
    ];
    for &i in picks {
        let f = FRAGMENTS[i];
        // One fragment per top-level key: a second would be a duplicate field.
        let key = f.split(':').next().unwrap_or_default().to_owned();
        if seen.insert(key) {
            parts.push(f.to_owned());
        }
    }
    Policy::parse(&format!("{{{}}}", parts.join(",\n"))).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whether a policy is valid depends on the policy alone, never on the tailnet it is
    /// compiled against: so a node or user joining or leaving can never take a policy out of
    /// force, and a refusal is the same refusal on any tailnet.
    #[test]
    fn validity_does_not_depend_on_the_tailnet(
        picks in prop::collection::vec(0..FRAGMENTS.len(), 1..5),
        (n1, s1) in (0usize..10, any::<u64>()),
        (n2, s2) in (0usize..10, any::<u64>()),
    ) {
        let p = fragment_policy(&picks);
        prop_assume!(p.is_some(), "the fragments always parse");
        let p = p.unwrap();
        let (u1, t1) = tailnet(n1, s1);
        let (u2, t2) = tailnet(n2, s2);
        let a = CompiledPolicy::compile(&p, &u1, &t1).map(drop).map_err(|e| e.to_string());
        let b = CompiledPolicy::compile(&p, &u2, &t2).map(drop).map_err(|e| e.to_string());
        let c = CompiledPolicy::compile(&p, &[], &[]).map(drop).map_err(|e| e.to_string());
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
    }
}
