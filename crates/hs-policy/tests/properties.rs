//! Property tests of the engine on small random tailnets and policies:
//! compilation is deterministic; adding an accept rule never removes access; peer visibility
//! agrees with the packet filter; `update_node` reports every viewer whose output changed.

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
