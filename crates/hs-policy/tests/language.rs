//! Parts of Tailscale's published policy syntax the conformance corpus has no capture of,
//! compiled: the legacy `users`/`ports` names of an acl's `src`/`dst`, IP sets, and device
//! posture conditions (which grant nothing on this server: it has no posture data).
#![allow(clippy::unwrap_used, reason = "test code")]

use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser};
use hs_types::{NodeId, UserId};

/// odin's n0 (100.64.0.1), the tagged n1 (100.64.0.2, tag:s) and n2 (100.64.0.3, tag:r),
/// which routes 10.1.0.0/16.
fn tailnet() -> (Vec<PolicyUser>, Vec<PolicyNode>) {
    let users = vec![PolicyUser {
        id: UserId(1),
        name: "odin".into(),
        email: "odin@example.com".into(),
        groups: vec![],
    }];
    let node = |i: u64, user: Option<u64>, tag: Option<&str>, routes: &[&str]| {
        let routes: Vec<ipnet::IpNet> = routes.iter().map(|r| r.parse().unwrap()).collect();
        PolicyNode {
            id: NodeId(i),
            name: format!("n{i}"),
            ipv4: Some(format!("100.64.0.{}", i + 1).parse().unwrap()),
            ipv6: None,
            user: user.map(UserId),
            tags: tag.into_iter().map(str::to_owned).collect(),
            announced_routes: routes.clone(),
            approved_routes: routes.clone(),
            primary_routes: routes,
        }
    };
    let nodes = vec![
        node(0, Some(1), None, &[]),
        node(1, None, Some("tag:s"), &[]),
        node(2, None, Some("tag:r"), &["10.1.0.0/16"]),
    ];
    (users, nodes)
}

const OWNERS: &str =
    r#""tagOwners": {"tag:s": ["odin@example.com"], "tag:r": ["odin@example.com"]}"#;

fn compile(sections: &str) -> CompiledPolicy {
    let (users, nodes) = tailnet();
    let text = format!("{{{OWNERS}, {sections}}}");
    let policy = Policy::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    CompiledPolicy::compile_and_test(&policy, &users, &nodes).unwrap_or_else(|e| panic!("{e}"))
}

/// One filter rule as (sources, destinations with port ranges).
type Seen = (Vec<String>, Vec<(String, u16, u16)>);

/// Every rule of node `n`'s filter.
fn filter(c: &CompiledPolicy, n: usize) -> Vec<Seen> {
    c.filter(n)
        .into_iter()
        .map(|r| (r.src_ips.to_vec(), r.dst_ports))
        .collect()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn users_and_ports_are_src_and_dst() {
    let legacy = compile(
        r#""acls": [{"action": "accept", "users": ["odin@example.com"], "ports": ["tag:s:22", "10.1.0.0/24:80"]}]"#,
    );
    let modern = compile(
        r#""acls": [{"action": "accept", "src": ["odin@example.com"], "dst": ["tag:s:22", "10.1.0.0/24:80"]}]"#,
    );
    for n in 0..3 {
        assert_eq!(filter(&legacy, n), filter(&modern, n), "node {n}");
        assert_eq!(legacy.peers(n), modern.peers(n), "node {n}");
    }
    assert_eq!(
        filter(&legacy, 1),
        [(
            owned(&["100.64.0.1"]),
            vec![("100.64.0.2".to_owned(), 22, 22)]
        )]
    );
    assert_eq!(
        filter(&legacy, 2),
        [(
            owned(&["100.64.0.1"]),
            vec![("10.1.0.0/24".to_owned(), 80, 80)]
        )]
    );
}

#[test]
fn an_ip_set_is_its_addresses_in_acls_and_grants() {
    // lan: the routed prefix without one /24; srv: a host (n1's address); office: a range.
    let c = compile(
        r#""hosts": {"srv": "100.64.0.2"},
           "ipsets": {"ipset:lan": ["add 10.1.0.0/16", "remove 10.1.128.0/17", "remove ipset:srv"],
                      "ipset:srv": ["host:srv"],
                      "ipset:office": ["10.1.0.4-10.1.0.5"]},
           "acls": [{"action": "accept", "src": ["odin@example.com"], "dst": ["ipset:lan:22", "ipset:srv:80"]}],
           "grants": [{"src": ["ipset:office"], "dst": ["tag:s"], "ip": ["443"]}]"#,
    );
    assert_eq!(
        filter(&c, 2),
        [(
            owned(&["100.64.0.1"]),
            vec![("10.1.0.0/17".to_owned(), 22, 22)]
        )]
    );
    assert_eq!(
        filter(&c, 1),
        [
            (
                owned(&["10.1.0.4/31"]),
                vec![("100.64.0.2".to_owned(), 443, 443)]
            ),
            (
                owned(&["100.64.0.1"]),
                vec![("100.64.0.2".to_owned(), 80, 80)]
            ),
        ]
    );
    assert!(filter(&c, 0).is_empty());
}

#[test]
fn an_ip_set_trims_autogroup_internet_for_exit_nodes() {
    let (users, mut nodes) = tailnet();
    nodes[2].approved_routes = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
    nodes[2].announced_routes = nodes[2].approved_routes.clone();
    let text = format!(
        r#"{{{OWNERS}, "ipsets": {{"ipset:web": ["add autogroup:internet", "remove 8.0.0.0/8"]}},
             "grants": [{{"src": ["autogroup:member"], "dst": ["ipset:web"], "ip": ["443"]}}]}}"#
    );
    let c = CompiledPolicy::compile(&Policy::parse(&text).unwrap(), &users, &nodes).unwrap();
    let f = filter(&c, 2);
    assert_eq!(f.len(), 1);
    let dsts: Vec<&str> = f[0].1.iter().map(|(d, ..)| d.as_str()).collect();
    assert!(
        dsts.contains(&"9.0.0.0/8") && dsts.contains(&"0.0.0.0/5"),
        "{dsts:?}"
    );
    assert!(!dsts.iter().any(|d| d.starts_with("8.")), "{dsts:?}");
}

#[test]
fn a_posture_condition_grants_nothing_here() {
    let postures =
        r#""postures": {"posture:linux": ["node:os == 'linux'", "node:tsVersion >= '1.40'"]}"#;
    let open = compile(&format!(
        r#"{postures}, "grants": [{{"src": ["autogroup:member"], "dst": ["tag:s"], "ip": ["22"]}}],
           "acls": [{{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:r:80"]}}],
           "ssh": [{{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:s"], "users": ["root"]}}]"#
    ));
    assert!(!filter(&open, 1).is_empty() && !filter(&open, 2).is_empty());
    assert!(!open.ssh_rules(1).is_empty());
    let gated = compile(&format!(
        r#"{postures}, "grants": [{{"src": ["autogroup:member"], "dst": ["tag:s"], "ip": ["22"], "srcPosture": ["posture:linux"]}}],
           "acls": [{{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:r:80"], "srcPosture": ["posture:linux"]}}],
           "ssh": [{{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:s"], "users": ["root"], "srcPosture": ["posture:linux"]}}]"#
    ));
    for n in 0..3 {
        assert!(filter(&gated, n).is_empty(), "node {n}");
        assert!(gated.peers(n).is_empty(), "node {n}");
        assert!(gated.ssh_rules(n).is_empty(), "node {n}");
    }
    // A default posture gates every rule without its own.
    let defaulted = compile(&format!(
        r#"{postures}, "defaultSrcPosture": ["posture:linux"],
           "grants": [{{"src": ["autogroup:member"], "dst": ["tag:s"], "ip": ["22"]}}]"#
    ));
    assert!(filter(&defaulted, 1).is_empty());
    // Tests judge posture conditions on the attributes a test gives its source device, as
    // the hosted service does: met, the rule applies; absent or not met, it does not.
    let with_test = |attrs: &str, verdict: &str| {
        let text = format!(
            r#"{{{OWNERS}, {postures},
                 "grants": [{{"src": ["autogroup:member"], "dst": ["tag:s"], "ip": ["22"], "srcPosture": ["posture:linux"]}}],
                 "tests": [{{"src": "odin@example.com", {attrs} "{verdict}": ["tag:s:22"]}}]}}"#
        );
        let (users, nodes) = tailnet();
        CompiledPolicy::compile_and_test(&Policy::parse(&text).unwrap(), &users, &nodes)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let linux = r#""srcPostureAttrs": {"node:os": "linux", "node:tsVersion": "1.62.0"},"#;
    let old = r#""srcPostureAttrs": {"node:os": "linux", "node:tsVersion": "1.38.1"},"#;
    assert_eq!(with_test(linux, "accept"), Ok(()));
    assert!(with_test(linux, "deny").is_err());
    assert_eq!(with_test(old, "deny"), Ok(()));
    assert_eq!(with_test("", "deny"), Ok(()));
    assert!(
        with_test("", "accept")
            .unwrap_err()
            .contains("test(s) failed")
    );
}

#[test]
fn an_ip_set_of_one_ipv6_address_reaches_its_router() {
    // An IP set holding one IPv6 address is that address, as any other set: the router of
    // the prefix it lies in gets the rule.
    let (users, mut nodes) = tailnet();
    nodes[2].approved_routes = vec!["fd00:1::/64".parse().unwrap()];
    nodes[2].announced_routes = nodes[2].approved_routes.clone();
    nodes[2].primary_routes = nodes[2].approved_routes.clone();
    let text = format!(
        r#"{{{OWNERS}, "ipsets": {{"ipset:one": ["fd00:1::5"]}},
             "grants": [{{"src": ["autogroup:member"], "dst": ["ipset:one"], "ip": ["443"]}}]}}"#
    );
    let c = CompiledPolicy::compile(&Policy::parse(&text).unwrap(), &users, &nodes).unwrap();
    assert_eq!(
        filter(&c, 2),
        [(
            owned(&["100.64.0.1"]),
            vec![("fd00:1::5".to_owned(), 443, 443)]
        )]
    );
}
