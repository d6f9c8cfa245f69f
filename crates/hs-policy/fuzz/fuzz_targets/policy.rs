//! Fuzzes the policy pipeline: any text is parsed as HuJSON; what parses is validated and
//! compiled against a small fixed tailnet (two users, a tagged node, a router) and its
//! tests run. Every step must return a value or an error, never panic, and compiling the
//! same policy twice must give the same filters (determinism).
#![no_main]

use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser};
use hs_types::{NodeId, UserId};
use libfuzzer_sys::fuzz_target;

fn tailnet() -> (Vec<PolicyUser>, Vec<PolicyNode>) {
    let users = vec![
        PolicyUser { id: UserId(1), name: "alice".into(), email: "alice@example.com".into(), groups: vec![] },
        PolicyUser { id: UserId(2), name: "bob".into(), email: "bob@example.com".into(), groups: vec![] },
    ];
    let node = |id: u64, user: Option<u64>, tags: &[&str], routes: &[&str]| PolicyNode {
        id: NodeId(id),
        name: format!("n{id}"),
        ipv4: Some(format!("100.64.0.{id}").parse().expect("v4")),
        ipv6: Some(format!("fd7a:115c:a1e0::{id}").parse().expect("v6")),
        user: user.map(UserId),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        announced_routes: routes.iter().map(|r| r.parse().expect("route")).collect(),
        approved_routes: routes.iter().map(|r| r.parse().expect("route")).collect(),
        primary_routes: routes.iter().map(|r| r.parse().expect("route")).collect(),
    };
    let nodes = vec![
        node(1, Some(1), &[], &[]),
        node(2, Some(2), &[], &[]),
        node(3, None, &["tag:server"], &[]),
        node(4, None, &["tag:router"], &["10.0.0.0/24", "0.0.0.0/0", "::/0"]),
    ];
    (users, nodes)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    let (users, nodes) = tailnet();
    let Ok(a) = CompiledPolicy::compile(&policy, &users, &nodes) else {
        return;
    };
    let _ = a.check_tests();
    let b = CompiledPolicy::compile(&policy, &users, &nodes).expect("compiles twice");
    for i in 0..nodes.len() {
        assert_eq!(a.filter(i), b.filter(i), "filters differ for node {i}");
        let _ = a.peers(i);
    }
});
