//! `CompiledPolicy::update_node` checked against a full compile of the same tailnet.
//!
//! Over every scenario of the hosted-service conformance corpus
//! (`shared/conformance/tailscale-saas`) whose policy compiles (about 670 of 730; the
//! refused ones are skipped), a deterministic random sequence of single-node changes is
//! applied with `update_node` to a running compiled policy (with the scenario's user roles
//! set, which `update_node` must keep). The changes, each to a random node or a new one:
//! a tag of the policy's `tagOwners` added or removed (a tagged node has no user; removing
//! the last tag gives it one), an untagged node moved to another user, a new IPv4 and/or
//! IPv6 address (a made-up one, or one the policy names, so that the node becomes a host or
//! address destination) or one family dropped, a route announced or withdrawn (a prefix the
//! policy or the topology names, `10.33.0.0/24`, or the exit routes; approved, or left to
//! `autoApprovers`; primary unless another router already is), a brand-new node (a random
//! user, or tags). After each change:
//! - the running policy must equal a from-scratch compile of the same raw node list (kept
//!   here without auto-approved routes), for every node: `nodes()`, `filter`, `peers` (the
//!   full `PeerView`), `ssh_rules`, `self_cap_map`;
//! - the returned `Delta` must be sound against the full compiles before and after the
//!   change: every node whose filter or SSH rules differ is in `filters_changed`, every node
//!   whose peers differ is in `peers_changed` (listing more is allowed; a new node counts as
//!   having had nothing).
//!
//! Every scenario runs `STEPS` (6) changes, about 4,000 in all, in about two seconds in a
//! debug build; the walk is seeded from the scenario's id (the same run every time, and one
//! scenario's walk does not depend on which others exist). `HS_INCREMENTAL_STEPS=40` runs a
//! longer walk per scenario. A failure names the scenario, the step, the change, the node
//! and both values; a scenario's walk stops at its first failing step.
//!
//! Blind spot: no change leaves a node without any address, so a rule's autogroup:self
//! destinations are never re-decided for the *other* nodes of a user (with user-level
//! sources, which autogroup:self requires, they change only through addressless nodes).
//!
//! Two hand-written tests pin `Delta` contents on a tiny `autogroup:self` + group→tag
//! policy.
//!
//! Run: `cargo test -p hs-policy --test incremental` (add `-- --nocapture` for the counts).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code"
)]

#[allow(
    dead_code,
    reason = "the corpus loader also holds the conformance runner's comparison"
)]
mod conformance_support;

use hs_policy::synth::Rng;
use hs_policy::{
    CapMap, CompiledPolicy, Delta, PeerView, Policy, PolicyNode, PolicyUser, Roles, Rule,
    SshRuleOut,
};
use hs_types::{NodeId, UserId};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Changes applied to each scenario (`HS_INCREMENTAL_STEPS` overrides, for a longer run).
const STEPS: usize = 6;

fn steps() -> usize {
    std::env::var("HS_INCREMENTAL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(STEPS)
}

/// This crate's directory, read when the test runs (as the conformance runner does).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// One corpus scenario as the engine takes it.
struct Scenario {
    id: String,
    policy_text: String,
    policy: Policy,
    users: Vec<PolicyUser>,
    nodes: Vec<PolicyNode>,
    roles: Roles,
}

/// Every scenario file of the corpus, in path order: (file, parsed JSON).
fn corpus_files() -> Vec<(PathBuf, Value)> {
    let dir = manifest_dir().join("../../../shared/conformance/tailscale-saas");
    let mut cats: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus dir {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cats.sort();
    let mut out = Vec::new();
    for cat in cats {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&cat)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            out.push((f, v));
        }
    }
    out
}

/// The scenario's tailnet and policy, or `None` when the policy does not parse or compile.
fn scenario(s: &Value) -> Option<Scenario> {
    let policy_text = match &s["policy"] {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    let (users, nodes, names) = conformance_support::tailnet(&s["topology"], &s["captures"]);
    let roles = conformance_support::roles(&nodes, &names, &s["captures"]);
    let policy = Policy::parse(&policy_text).ok()?;
    CompiledPolicy::compile(&policy, &users, &nodes).ok()?;
    Some(Scenario {
        id: s["id"].as_str().unwrap_or_default().to_string(),
        policy_text,
        policy,
        users,
        nodes,
        roles,
    })
}

/// What one node gets from a compiled policy.
#[derive(Debug, Clone, PartialEq, Default)]
struct View {
    filter: Vec<Rule>,
    peers: Vec<PeerView>,
    ssh: Vec<SshRuleOut>,
    caps: CapMap,
}

fn views(c: &CompiledPolicy) -> Vec<View> {
    (0..c.nodes().len())
        .map(|i| View {
            filter: c.filter(i),
            peers: c.peers(i),
            ssh: c.ssh_rules(i),
            caps: c.self_cap_map(i),
        })
        .collect()
}

fn full_compile(s: &Scenario, nodes: &[PolicyNode]) -> Result<CompiledPolicy, String> {
    let mut c = CompiledPolicy::compile(&s.policy, &s.users, nodes).map_err(|e| e.to_string())?;
    c.set_roles(s.roles.clone());
    Ok(c)
}

/// Tokens of the policy text that parse as addresses or prefixes: tailnet addresses it names
/// (a node moved onto one becomes a host or address destination) and routes it names.
fn literals(text: &str) -> (Vec<IpAddr>, Vec<IpNet>) {
    let cgnat: IpNet = "100.64.0.0/10".parse().unwrap();
    let ula: IpNet = "fd7a:115c:a1e0::/48".parse().unwrap();
    let mut addrs = BTreeSet::new();
    let mut nets = BTreeSet::new();
    for tok in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':' || c == '/')) {
        if let Ok(ip) = tok.parse::<IpAddr>() {
            if cgnat.contains(&ip) || ula.contains(&ip) {
                addrs.insert(ip);
            }
        } else if let Ok(net) = tok.parse::<IpNet>()
            && net.prefix_len() > 0
            && !cgnat.contains(&net)
            && !ula.contains(&net)
            && net == net.trunc()
        {
            nets.insert(net);
        }
    }
    (addrs.into_iter().collect(), nets.into_iter().collect())
}

/// The running state of one scenario's random walk.
struct Walk<'a> {
    s: &'a Scenario,
    rng: Rng,
    /// The raw node list (no auto-approved routes), in the compiled order.
    raw: Vec<PolicyNode>,
    tags: Vec<String>,
    /// Tailnet addresses the policy names, tried before made-up ones.
    named_addrs: Vec<IpAddr>,
    /// Route groups to announce: one subnet each, or the two exit routes together.
    routes: Vec<Vec<IpNet>>,
    next_addr: u32,
}

impl<'a> Walk<'a> {
    fn new(s: &'a Scenario) -> Self {
        // FNV-1a of the id: each scenario's walk is its own.
        let seed = s.id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let (named_addrs, named_nets) = literals(&s.policy_text);
        let mut nets: BTreeSet<IpNet> = named_nets.into_iter().collect();
        for n in &s.nodes {
            nets.extend(n.announced_routes.iter().filter(|r| r.prefix_len() > 0));
        }
        nets.insert("10.33.0.0/24".parse().unwrap());
        let mut routes: Vec<Vec<IpNet>> = nets.into_iter().map(|n| vec![n]).collect();
        routes.push(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
        Self {
            s,
            rng: Rng::new(seed),
            raw: s.nodes.clone(),
            tags: s.policy.tag_owners.keys().cloned().collect(),
            named_addrs,
            routes,
            next_addr: 0,
        }
    }

    fn used(&self, ip: IpAddr) -> bool {
        self.raw.iter().any(|n| n.ips().any(|a| a == ip))
    }

    /// An address of the family no node has: one the policy names (half the time, when
    /// there is one left), else a made-up one.
    fn fresh(&mut self, v6: bool) -> IpAddr {
        if self.rng.below(2) == 0 {
            let free: Vec<IpAddr> = self
                .named_addrs
                .iter()
                .copied()
                .filter(|a| a.is_ipv6() == v6 && !self.used(*a))
                .collect();
            if !free.is_empty() {
                return free[self.rng.below(free.len())];
            }
        }
        loop {
            self.next_addr += 1;
            let k = self.next_addr;
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::new(
                    0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0x7e57, k as u16,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::new(100, 120, (k >> 8) as u8, k as u8))
            };
            if !self.used(ip) {
                return ip;
            }
        }
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.rng.below(v.len())].clone()
    }

    fn random_user(&mut self, except: Option<UserId>) -> Option<UserId> {
        let ids: Vec<UserId> = (self.s.users.iter().map(|u| u.id))
            .filter(|u| Some(*u) != except)
            .collect();
        (!ids.is_empty()).then(|| self.pick(&ids))
    }

    /// A random valid change: the node as it is to be given to `update_node`, and what
    /// changed.
    fn draw(&mut self) -> (PolicyNode, String) {
        for _ in 0..1000 {
            let kind = self.rng.below(6);
            if kind == 5 || self.raw.is_empty() {
                if let Some(c) = self.new_node() {
                    return c;
                }
                continue;
            }
            let x = self.rng.below(self.raw.len());
            let mut n = self.raw[x].clone();
            let what = match kind {
                0 => {
                    if self.tags.is_empty() {
                        continue;
                    }
                    let t = self.pick(&self.tags.clone());
                    if n.tags.contains(&t) {
                        n.tags.retain(|x| *x != t);
                        if n.tags.is_empty() {
                            let Some(u) = self.random_user(None) else {
                                continue;
                            };
                            n.user = Some(u);
                            format!("removed its last tag {t}; now owned by user {u}")
                        } else {
                            format!("removed tag {t}, keeps {:?}", n.tags)
                        }
                    } else {
                        n.tags.push(t.clone());
                        n.user = None;
                        format!("added tag {t}: tags now {:?}", n.tags)
                    }
                }
                1 => {
                    if n.is_tagged() {
                        continue;
                    }
                    let Some(u) = self.random_user(n.user) else {
                        continue;
                    };
                    let from = n.user;
                    n.user = Some(u);
                    format!("moved from user {from:?} to user {u}")
                }
                2 => {
                    // 0: new IPv4, 1: new IPv6, 2: both new, 3: one family dropped (as in
                    // an IPv4-only or IPv6-only tailnet; a later change may give it back).
                    let which = self.rng.below(4);
                    let mut parts = Vec::new();
                    if which == 3 {
                        if n.ipv4.is_none() || n.ipv6.is_none() {
                            continue;
                        }
                        if self.rng.below(2) == 0 {
                            parts.push(format!("ipv6 {:?} dropped", n.ipv6));
                            n.ipv6 = None;
                        } else {
                            parts.push(format!("ipv4 {:?} dropped", n.ipv4));
                            n.ipv4 = None;
                        }
                    } else if which != 1 {
                        let IpAddr::V4(a) = self.fresh(false) else {
                            unreachable!()
                        };
                        parts.push(format!("ipv4 {:?} -> {a}", n.ipv4));
                        n.ipv4 = Some(a);
                    }
                    if which == 1 || which == 2 {
                        let IpAddr::V6(a) = self.fresh(true) else {
                            unreachable!()
                        };
                        parts.push(format!("ipv6 {:?} -> {a}", n.ipv6));
                        n.ipv6 = Some(a);
                    }
                    format!("readdressed: {}", parts.join(", "))
                }
                _ => {
                    let group = self.pick(&self.routes.clone());
                    if group.iter().all(|r| n.announced_routes.contains(r)) {
                        n.announced_routes.retain(|r| !group.contains(r));
                        n.approved_routes.retain(|r| !group.contains(r));
                        n.primary_routes.retain(|r| !group.contains(r));
                        format!("withdrew {group:?}")
                    } else {
                        // A third of the time left to autoApprovers.
                        let approve = self.rng.below(3) != 0;
                        let mut primary = Vec::new();
                        for r in &group {
                            if !n.announced_routes.contains(r) {
                                n.announced_routes.push(*r);
                            }
                            if approve && !n.approved_routes.contains(r) {
                                n.approved_routes.push(*r);
                            }
                            // Primary unless another router already is (then on standby).
                            let taken = self.raw.iter().any(|o| o.primary_routes.contains(r));
                            if r.prefix_len() > 0 && !taken && !n.primary_routes.contains(r) {
                                n.primary_routes.push(*r);
                                primary.push(*r);
                            }
                        }
                        format!(
                            "announced {group:?} ({}, primary for {primary:?})",
                            if approve { "approved" } else { "not approved" }
                        )
                    }
                }
            };
            let what = format!("node {x} ({}, id {}): {what}", n.name, n.id);
            return (n, what);
        }
        panic!("{}: no valid change found in 1000 draws", self.s.id)
    }

    fn new_node(&mut self) -> Option<(PolicyNode, String)> {
        let id = NodeId(self.raw.iter().map(|n| n.id.0).max().unwrap_or(0) + 1);
        let (user, tags) = if !self.tags.is_empty() && self.rng.below(2) == 0 {
            let mut tags = vec![self.pick(&self.tags.clone())];
            if self.rng.below(3) == 0 {
                let t = self.pick(&self.tags.clone());
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            (None, tags)
        } else {
            (Some(self.random_user(None)?), Vec::new())
        };
        let (IpAddr::V4(v4), IpAddr::V6(v6)) = (self.fresh(false), self.fresh(true)) else {
            unreachable!()
        };
        let n = PolicyNode {
            id,
            name: format!("new{}", id.0),
            ipv4: Some(v4),
            ipv6: Some(v6),
            user,
            tags,
            announced_routes: Vec::new(),
            approved_routes: Vec::new(),
            primary_routes: Vec::new(),
        };
        let what = format!(
            "new node {} (id {id}, {v4}, {v6}, user {:?}, tags {:?})",
            n.name, n.user, n.tags
        );
        Some((n, what))
    }

    /// Applies a change to the raw list as `update_node` does to its own.
    fn apply(&mut self, n: PolicyNode) {
        match self.raw.iter().position(|o| o.id == n.id) {
            Some(i) => self.raw[i] = n,
            None => self.raw.push(n),
        }
    }
}

/// Adds a failure when the values differ: (label, value) each.
fn same<T: PartialEq + Debug>(
    out: &mut Vec<String>,
    ctx: &str,
    what: &str,
    (la, a): (&str, &T),
    (lb, b): (&str, &T),
) {
    if a != b {
        out.push(format!(
            "{ctx}: {what} differs\n    {la:<13} {a:?}\n    {lb:<13} {b:?}"
        ));
    }
}

/// Runs one scenario's walk; failures are appended to `out`. Returns the steps run.
fn walk(s: &Scenario, out: &mut Vec<String>) -> usize {
    let mut w = Walk::new(s);
    let mut running = full_compile(s, &w.raw).unwrap();
    let mut before = views(&running);
    let steps = steps();
    for step in 1..=steps {
        let (node, what) = w.draw();
        let ctx = format!("{} step {step} [{what}]", s.id);
        let delta: Delta = match running.update_node(node.clone()) {
            Ok(d) => d,
            Err(e) => {
                out.push(format!("{ctx}: update_node refused: {e}"));
                return step;
            }
        };
        w.apply(node);
        let full = match full_compile(s, &w.raw) {
            Ok(c) => c,
            Err(e) => {
                out.push(format!("{ctx}: full compile refused: {e}"));
                return step;
            }
        };
        let failures = out.len();
        // 1. The running policy is the full compile.
        let (inc, fc) = ("update_node:", "full compile:");
        same(
            out,
            &ctx,
            "nodes()",
            (inc, &running.nodes()),
            (fc, &full.nodes()),
        );
        if running.nodes().len() != full.nodes().len() {
            return step;
        }
        let after = views(&full);
        for (i, (a, b)) in views(&running).iter().zip(&after).enumerate() {
            let ctx = format!("{ctx} node {i} ({})", full.nodes()[i].name);
            same(out, &ctx, "filter", (inc, &a.filter), (fc, &b.filter));
            same(out, &ctx, "peers", (inc, &a.peers), (fc, &b.peers));
            same(out, &ctx, "ssh_rules", (inc, &a.ssh), (fc, &b.ssh));
            same(out, &ctx, "self_cap_map", (inc, &a.caps), (fc, &b.caps));
        }
        // 2. The delta names every viewer whose outputs changed (a new node had none).
        let ids: Vec<NodeId> = full.nodes().iter().map(|n| n.id).collect();
        for id in delta.filters_changed.iter().chain(&delta.peers_changed) {
            if !ids.contains(id) {
                out.push(format!(
                    "{ctx}: delta names {id:?}, no such node ({delta:?})"
                ));
            }
        }
        let none = View::default();
        let (was, is) = ("before:", "after:");
        for (i, b) in after.iter().enumerate() {
            let a = before.get(i).unwrap_or(&none);
            let ctx = format!("{ctx} node {i} ({}, id {})", full.nodes()[i].name, ids[i]);
            if !delta.filters_changed.contains(&ids[i]) {
                let what = format!(
                    "filter (not in filters_changed {:?})",
                    delta.filters_changed
                );
                same(out, &ctx, &what, (was, &a.filter), (is, &b.filter));
                let what = format!(
                    "ssh_rules (not in filters_changed {:?})",
                    delta.filters_changed
                );
                same(out, &ctx, &what, (was, &a.ssh), (is, &b.ssh));
            }
            if !delta.peers_changed.contains(&ids[i]) {
                let what = format!("peers (not in peers_changed {:?})", delta.peers_changed);
                same(out, &ctx, &what, (was, &a.peers), (is, &b.peers));
            }
        }
        if out.len() > failures {
            // Later steps would start from a diverged state.
            return step;
        }
        before = after;
    }
    steps
}

#[test]
fn update_node_matches_a_full_compile_over_the_corpus() {
    let mut out = Vec::new();
    let (mut scenarios, mut skipped, mut steps) = (0, 0, 0);
    for (file, v) in corpus_files() {
        let Some(s) = scenario(&v) else {
            skipped += 1;
            continue;
        };
        assert!(!s.id.is_empty(), "{}: no id", file.display());
        scenarios += 1;
        steps += walk(&s, &mut out);
    }
    println!(
        "{scenarios} scenarios ({skipped} refused, skipped), {steps} changes, {} failures",
        out.len()
    );
    assert!(scenarios > 500, "only {scenarios} scenarios compiled");
    assert!(
        out.is_empty(),
        "{} failures in {scenarios} scenarios; the first ones:\n{}",
        out.len(),
        out.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Hand-written cases on a tiny tailnet.

const TINY: &str = r#"{
    "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
    "tagOwners": {"tag:web": ["group:eng"]},
    "acls": [
        {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
        {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]}
    ]
}"#;

fn tiny_users() -> Vec<PolicyUser> {
    ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, name)| PolicyUser {
            id: UserId(i as u64 + 1),
            name: (*name).into(),
            email: format!("{name}@example.com"),
            groups: vec![],
        })
        .collect()
}

fn tiny_node(id: u64, user: Option<u64>, tags: &[&str]) -> PolicyNode {
    PolicyNode {
        id: NodeId(id),
        name: format!("n{id}"),
        ipv4: Some(Ipv4Addr::new(100, 64, 0, id as u8)),
        ipv6: Some(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, id as u16)),
        user: user.map(UserId),
        tags: tags.iter().map(|t| (*t).into()).collect(),
        announced_routes: vec![],
        approved_routes: vec![],
        primary_routes: vec![],
    }
}

/// alice: n1, n2; bob: n3; carol: n4, n5; tag:web: n6.
fn tiny_nodes() -> Vec<PolicyNode> {
    vec![
        tiny_node(1, Some(1), &[]),
        tiny_node(2, Some(1), &[]),
        tiny_node(3, Some(2), &[]),
        tiny_node(4, Some(3), &[]),
        tiny_node(5, Some(3), &[]),
        tiny_node(6, None, &["tag:web"]),
    ]
}

/// Applies `changed` to the tiny tailnet: the views before and after (from full compiles),
/// and the delta `update_node` reports; `update_node`'s result must be the full compile.
fn tiny_change(changed: PolicyNode) -> (Vec<View>, Vec<View>, Delta) {
    let policy = Policy::parse(TINY).unwrap();
    let users = tiny_users();
    let mut nodes = tiny_nodes();
    let mut c = CompiledPolicy::compile(&policy, &users, &nodes).unwrap();
    let before = views(&c);
    let delta = c.update_node(changed.clone()).unwrap();
    let i = nodes.iter().position(|n| n.id == changed.id).unwrap();
    nodes[i] = changed;
    let full = CompiledPolicy::compile(&policy, &users, &nodes).unwrap();
    let after = views(&full);
    assert_eq!(views(&c), after, "update_node differs from a full compile");
    (before, after, delta)
}

fn ids(v: &[u64]) -> Vec<NodeId> {
    v.iter().map(|&i| NodeId(i)).collect()
}

#[test]
fn moving_a_node_to_another_user_changes_both_users_self_rules() {
    // n2 moves from alice to bob: alice's n1 loses n2 from its autogroup:self sources, bob's
    // n3 gains it (filters and peers); carol's nodes and the web server see no change (n2
    // stays in group:eng, so the web server's sources are the same addresses).
    let mut n2 = tiny_nodes()[1].clone();
    n2.user = Some(UserId(2));
    let (before, after, delta) = tiny_change(n2);
    for i in [0, 1, 2] {
        assert_ne!(
            before[i].filter, after[i].filter,
            "filter of node index {i}"
        );
        assert_ne!(before[i].peers, after[i].peers, "peers of node index {i}");
    }
    for i in [3, 4, 5] {
        assert_eq!(before[i], after[i], "node index {i}");
    }
    for id in ids(&[1, 2, 3]) {
        assert!(
            delta.filters_changed.contains(&id),
            "{id:?} missing from filters_changed: {delta:?}"
        );
        assert!(
            delta.peers_changed.contains(&id),
            "{id:?} missing from peers_changed: {delta:?}"
        );
    }
}

#[test]
fn tagging_a_member_node_changes_the_web_servers_and_its_former_users_filters() {
    // n2 (alice) becomes tag:web: it leaves group:eng, so the web server n6's sources shrink;
    // it leaves alice's autogroup:self, so n1's filter changes; it is now a web server
    // itself, reached from group:eng (alice's n1 and bob's n3 see it); n6 no longer sees it.
    let mut n2 = tiny_nodes()[1].clone();
    n2.user = None;
    n2.tags = vec!["tag:web".into()];
    let (before, after, delta) = tiny_change(n2);
    for i in [0, 1, 5] {
        assert_ne!(
            before[i].filter, after[i].filter,
            "filter of node index {i}"
        );
    }
    for i in [1, 2, 5] {
        assert_ne!(before[i].peers, after[i].peers, "peers of node index {i}");
    }
    for i in [3, 4] {
        assert_eq!(before[i], after[i], "node index {i}");
    }
    for id in ids(&[1, 2, 6]) {
        assert!(
            delta.filters_changed.contains(&id),
            "{id:?} missing from filters_changed: {delta:?}"
        );
    }
    for id in ids(&[2, 3, 6]) {
        assert!(
            delta.peers_changed.contains(&id),
            "{id:?} missing from peers_changed: {delta:?}"
        );
    }
}
