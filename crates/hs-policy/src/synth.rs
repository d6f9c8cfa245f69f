//! Synthetic tailnets and policies of any size, for benchmarks and property tests: users,
//! groups, tags, subnet routers and a few hundred mixed rules (groups, tags, autogroup:self,
//! routes, grants with app capabilities). Deterministic for a given size and seed.

use crate::ast::Policy;
use crate::error::PolicyError;
use crate::input::{PolicyNode, PolicyUser};
use hs_types::{NodeId, UserId};
use ipnet::IpNet;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A small deterministic pseudo-random generator (SplitMix64): no dependency, stable output.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Number of tags in a synthetic tailnet.
pub const TAGS: usize = 10;
/// Number of groups in a synthetic tailnet.
pub const GROUPS: usize = 20;

/// Users for a tailnet of `nodes` nodes (one user per ten nodes, at least three).
pub fn users(nodes: usize) -> Vec<PolicyUser> {
    (0..(nodes / 10).max(3))
        .map(|i| PolicyUser {
            id: UserId(i as u64 + 1),
            name: format!("user{i}"),
            email: format!("user{i}@example.com"),
            groups: Vec::new(),
        })
        .collect()
}

/// Node `i` of a synthetic tailnet: 70% user nodes, 30% tagged, every fiftieth tagged node a
/// subnet router for `10.x.y.0/24`.
pub fn node(i: usize, users: usize, rng: &mut Rng) -> PolicyNode {
    let v4 = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 1)) + i as u32);
    let v6 = Ipv6Addr::from(
        u128::from(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 1)) + i as u128,
    );
    let tagged = rng.below(10) < 3;
    let mut tags = Vec::new();
    let mut routes: Vec<IpNet> = Vec::new();
    if tagged {
        tags.push(format!("tag:t{}", rng.below(TAGS)));
        if rng.below(4) == 0 {
            tags.push(format!("tag:t{}", rng.below(TAGS)));
        }
        tags.dedup();
        if i.is_multiple_of(50) {
            let net = format!("10.{}.{}.0/24", (i / 256) % 256, i % 256);
            if let Ok(n) = net.parse() {
                routes.push(n);
            }
        }
    }
    PolicyNode {
        id: NodeId(i as u64 + 1),
        name: format!("node{i}"),
        ipv4: Some(v4),
        ipv6: Some(v6),
        user: (!tagged).then(|| UserId(rng.below(users) as u64 + 1)),
        tags,
        announced_routes: routes.clone(),
        approved_routes: routes.clone(),
        primary_routes: routes,
    }
}

/// A tailnet of `n` nodes.
pub fn nodes(n: usize, seed: u64) -> Vec<PolicyNode> {
    let users = users(n).len();
    let mut rng = Rng::new(seed);
    (0..n).map(|i| node(i, users, &mut rng)).collect()
}

/// A realistic policy text with about `rules` rules for a tailnet with `users` users.
pub fn policy_text(rules: usize, users: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut s = String::from("{\n  \"groups\": {\n");
    for g in 0..GROUPS {
        let members: Vec<String> = (0..(users / 20).max(1))
            .map(|_| format!("\"user{}@example.com\"", rng.below(users)))
            .collect();
        let _ = writeln!(
            s,
            "    \"group:g{g}\": [{}]{}",
            members.join(", "),
            if g + 1 < GROUPS { "," } else { "" }
        );
    }
    s.push_str("  },\n  \"tagOwners\": {\n");
    for t in 0..TAGS {
        let _ = writeln!(
            s,
            "    \"tag:t{t}\": [\"group:g{}\"]{}",
            t % GROUPS,
            if t + 1 < TAGS { "," } else { "" }
        );
    }
    s.push_str("  },\n  \"acls\": [\n");
    let ports = ["22", "80", "443", "5432", "8000-8100", "*"];
    let mut acls = Vec::new();
    acls.push(
        "{\"action\": \"accept\", \"src\": [\"autogroup:member\"], \"dst\": [\"autogroup:self:*\"]}"
            .to_string(),
    );
    for _ in 0..rules.saturating_sub(rules / 10 + 1) {
        let port = ports[rng.below(ports.len())];
        let (src, dst) = match rng.below(5) {
            0 => (
                format!("group:g{}", rng.below(GROUPS)),
                format!("tag:t{}:{port}", rng.below(TAGS)),
            ),
            1 => (
                format!("tag:t{}", rng.below(TAGS)),
                format!("tag:t{}:{port}", rng.below(TAGS)),
            ),
            2 => (
                format!("user{}@example.com", rng.below(users)),
                format!("tag:t{}:{port}", rng.below(TAGS)),
            ),
            3 => (
                format!("group:g{}", rng.below(GROUPS)),
                format!("10.{}.0.0/16:{port}", rng.below(40)),
            ),
            _ => (
                "autogroup:member".to_string(),
                format!("tag:t{}:{port}", rng.below(TAGS)),
            ),
        };
        acls.push(format!(
            "{{\"action\": \"accept\", \"src\": [\"{src}\"], \"dst\": [\"{dst}\"]}}"
        ));
    }
    s.push_str(&acls.join(",\n"));
    s.push_str("\n  ],\n  \"grants\": [\n");
    let mut grants = Vec::new();
    for _ in 0..(rules / 10).max(1) {
        grants.push(format!(
            "{{\"src\": [\"group:g{}\"], \"dst\": [\"tag:t{}\"], \"ip\": [\"tcp:443\"], \"app\": {{\"example.com/cap/web\": [{{\"role\": \"viewer\"}}]}}}}",
            rng.below(GROUPS),
            rng.below(TAGS)
        ));
    }
    s.push_str(&grants.join(",\n"));
    s.push_str("\n  ],\n  \"ssh\": [\n    {\"action\": \"accept\", \"src\": [\"autogroup:member\"], \"dst\": [\"autogroup:self\"], \"users\": [\"autogroup:nonroot\"]}\n  ]\n}\n");
    s
}

/// A synthetic tailnet of `n` nodes with a policy of about `rules` rules.
pub fn tailnet(
    n: usize,
    rules: usize,
    seed: u64,
) -> Result<(Policy, Vec<PolicyUser>, Vec<PolicyNode>), PolicyError> {
    let users = users(n);
    let policy = Policy::parse(&policy_text(rules, users.len(), seed))?;
    Ok((policy, users, nodes(n, seed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_tailnet_compiles() {
        let (p, u, n) = tailnet(200, 50, 7).unwrap();
        let c = crate::CompiledPolicy::compile(&p, &u, &n).unwrap();
        assert_eq!(c.nodes().len(), 200);
        // Every user node reaches its own user's nodes through autogroup:self.
        let i = n.iter().position(|x| !x.is_tagged()).unwrap();
        assert!(!c.filter(i).is_empty());
    }
}
