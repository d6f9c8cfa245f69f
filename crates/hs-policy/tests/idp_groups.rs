//! Identity-provider groups in a policy: a policy group's `idp-group:<name>` member stands
//! for the users whose last login carried that group, beside the users it lists by name.

#![allow(clippy::unwrap_used, reason = "test code")]

use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser};
use hs_types::{NodeId, UserId};

fn user(id: u64, name: &str, groups: &[&str]) -> PolicyUser {
    PolicyUser {
        id: UserId(id),
        name: name.into(),
        email: format!("{name}@example.com"),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn node(id: u64, user: u64) -> PolicyNode {
    PolicyNode {
        id: NodeId(id),
        name: format!("n{id}"),
        ipv4: Some(format!("100.64.0.{id}").parse().unwrap()),
        ipv6: None,
        user: Some(UserId(user)),
        tags: vec![],
        announced_routes: vec![],
        approved_routes: vec![],
        primary_routes: vec![],
    }
}

const POLICY: &str = r#"{
    "groups": {"group:eng": ["idp-group:engineering", "carol@example.com"]},
    "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["bob@example.com:22"]}]
}"#;

/// Whether node `from` (index) may reach node `to` (index) on port 22.
fn reaches(c: &CompiledPolicy, from: usize, to: usize) -> bool {
    let src = c.nodes()[from].ipv4.unwrap().into();
    c.allows(to, src, 6, 22)
}

#[test]
fn idp_group_members_are_the_users_whose_login_carried_it() {
    let policy = Policy::parse(POLICY).unwrap();
    let users = [
        user(1, "alice", &["engineering", "staff"]),
        user(2, "bob", &[]),
        user(3, "carol", &[]),
        user(4, "dave", &["staff"]),
    ];
    let nodes = [node(1, 1), node(2, 2), node(3, 3), node(4, 4)];
    let c = CompiledPolicy::compile(&policy, &users, &nodes).unwrap();
    assert!(reaches(&c, 0, 1), "alice is in engineering at the provider");
    assert!(reaches(&c, 2, 1), "carol is listed by name");
    assert!(!reaches(&c, 3, 1), "dave is in another provider group only");

    // Alice leaves the group at the provider and logs in again: access ends.
    let mut users = users;
    users[0].groups = vec!["staff".into()];
    let c = CompiledPolicy::compile(&policy, &users, &nodes).unwrap();
    assert!(!reaches(&c, 0, 1));
    assert!(reaches(&c, 2, 1));
}

#[test]
fn malformed_idp_group_members_are_refused() {
    for bad in [r#""idp-group:""#, r#""idp-group:two words""#] {
        let text = format!(r#"{{"groups": {{"group:x": [{bad}]}}, "acls": []}}"#);
        let err = CompiledPolicy::compile(&Policy::parse(&text).unwrap(), &[], &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("idp-group:<name>"), "{bad}: {err}");
    }
}
