//! The policy's `tests` and `sshTests` blocks. A failing test refuses the whole policy with
//! the hosted service's "test(s) failed"; the details say which entry failed and why.
//!
//! `tests` are judged on the policy's rules at the level of aliases (a host need not exist in
//! the tailnet); `sshTests` are judged on the compiled SSH rules of the destination nodes.

use crate::alias::{Alias, parse_addr, parse_proto, split_alias_ports};
use crate::ast::{AclTest, SshTest};
use crate::engine::CompiledPolicy;
use crate::error::{PolicyError, invalid};
use crate::resolve::Resolver;
use crate::ssh::SshAction;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Runs every test of the policy; any failure refuses the policy.
pub(crate) fn run_tests(c: &CompiledPolicy) -> Result<(), PolicyError> {
    let r = Resolver::new(&c.policy, &c.users, &c.nodes);
    let mut failures = Vec::new();
    for (i, t) in c.policy.tests.iter().enumerate() {
        // A test asserts something: an entry with nothing to accept or deny is a mistake,
        // not a pass.
        if t.accept.is_empty() && t.deny.is_empty() {
            failures.push(format!("tests[{i}]: no \"accept\" or \"deny\" to check"));
            continue;
        }
        if let Err(why) = acl_test(c, &r, t) {
            failures.push(format!("tests[{i}]: {why}"));
        }
    }
    for (i, t) in c.policy.ssh_tests.iter().enumerate() {
        for d in t.dst.iter().map(|d| d.trim()) {
            // An SSH test names single devices: not the internet, not a prefix, and not a
            // host that stands for a prefix (a CIDR under a name).
            let host_prefix = r.policy.hosts.get(d).is_some_and(|v| {
                v.contains('/') && set_is_single(&r, &Alias::Host(d.to_owned())).is_none()
            });
            if d == "autogroup:internet"
                || (d.contains('/') && parse_addr(d).is_some())
                || host_prefix
            {
                return Err(invalid(format!(
                    "SSH tests dst contains disallowed element {d:?}"
                )));
            }
            if d.starts_with("tag:") && !r.tag_defined(d) {
                return Err(invalid(format!("SSH tests dst contains unknown tag {d:?}")));
            }
        }
        if t.accept.is_empty() && t.check.is_empty() && t.deny.is_empty() {
            failures.push(format!(
                "sshTests[{i}]: no \"accept\", \"check\" or \"deny\" to check"
            ));
            continue;
        }
        if let Err(why) = ssh_test(c, &r, t) {
            failures.push(format!("sshTests[{i}]: {why}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::TestsFailed(failures))
    }
}

/// A test endpoint: the alias plus the addresses it stands for.
struct Endpoint {
    alias: Alias,
    ips: Vec<IpAddr>,
}

fn known_alias(r: &Resolver<'_>, a: &Alias) -> bool {
    match a {
        Alias::Tag(t) => r.tag_defined(t),
        Alias::Group(g) => r.policy.groups.contains_key(g),
        Alias::User(u) => r.users.iter().any(|x| Resolver::user_matches(u, x)),
        _ => true,
    }
}

fn endpoint(r: &Resolver<'_>, s: &str) -> Result<Endpoint, String> {
    if s.is_empty() {
        return Err("empty src".into());
    }
    let alias = r.parse(s)?;
    if !known_alias(r, &alias) {
        return Err(format!("{s:?} not found"));
    }
    let ips = match &alias {
        Alias::Addr(_) | Alias::Host(_) if set_is_single(r, &alias).is_none() => {
            return Err(format!("{s:?} is not a single address"));
        }
        Alias::Addr(_) | Alias::Host(_) => set_is_single(r, &alias).into_iter().collect(),
        Alias::Internet | Alias::SelfNodes | Alias::DangerAll | Alias::NonRoot => {
            return Err(format!("{s:?} cannot be tested"));
        }
        other => {
            let nodes = r.identity_nodes(other);
            nodes.iter().flat_map(|i| r.nodes[i].ips()).collect()
        }
    };
    Ok(Endpoint { alias, ips })
}

fn set_is_single(r: &Resolver<'_>, a: &Alias) -> Option<IpAddr> {
    let set = match a {
        Alias::Addr(s) => s.clone(),
        Alias::Host(h) => r.host_set(h),
        _ => return None,
    };
    let p = set.to_prefixes();
    match p.as_slice() {
        [one] if one.prefix_len() == one.max_prefix_len() => Some(one.addr()),
        _ => None,
    }
}

/// True when rule alias `rule` covers test endpoint `e`.
fn covers(r: &Resolver<'_>, rule: &Alias, e: &Endpoint) -> bool {
    if rule == &e.alias {
        return true;
    }
    match (rule, &e.alias) {
        (Alias::Wildcard, _) => true,
        (Alias::Member, Alias::User(_) | Alias::Group(_)) => true,
        (Alias::Tagged, Alias::Tag(_)) => true,
        (Alias::Group(g), Alias::User(u)) => r.group_members(g).iter().any(|m| {
            r.users
                .iter()
                .any(|x| Resolver::user_matches(m, x) && Resolver::user_matches(u, x))
        }),
        (Alias::User(a), Alias::User(b)) => r
            .users
            .iter()
            .any(|x| Resolver::user_matches(a, x) && Resolver::user_matches(b, x)),
        (Alias::Host(_) | Alias::Addr(_), _) => {
            let set = r.source(rule).ips;
            !e.ips.is_empty() && e.ips.iter().all(|ip| set.contains_ip(*ip))
        }
        (_, Alias::Addr(_) | Alias::Host(_)) => {
            let set = r.source(rule).ips;
            !e.ips.is_empty() && e.ips.iter().all(|ip| set.contains_ip(*ip))
        }
        _ => false,
    }
}

fn proto_of(v: &Option<Value>) -> Result<Vec<u8>, String> {
    match v {
        None => Ok(vec![]),
        Some(Value::String(s)) => parse_proto(s),
        Some(Value::Number(n)) => parse_proto(&n.to_string()),
        Some(other) => Err(format!("invalid proto {other}")),
    }
}

/// True when a rule's protocol list admits the test's protocol (empty means TCP, UDP, ICMP).
fn proto_ok(rule: &[u8], test: &[u8]) -> bool {
    let rule: Vec<u8> = if rule.is_empty() {
        vec![6, 17, 1, 58]
    } else {
        rule.to_vec()
    };
    let test: Vec<u8> = if test.is_empty() {
        vec![6]
    } else {
        test.to_vec()
    };
    test.iter().all(|p| rule.contains(p))
}

fn allowed(
    c: &CompiledPolicy,
    r: &Resolver<'_>,
    attrs: &BTreeMap<String, Value>,
    src: &Endpoint,
    dst: &Endpoint,
    port: u16,
    proto: &[u8],
) -> bool {
    let ports_ok = |ports: &[(u16, u16)]| ports.iter().any(|&(a, b)| a <= port && port <= b);
    // As a source, `*` is the tailnet: its own addresses and approved subnet routes, not an
    // arbitrary address (as a destination it is every address).
    let src_covers = |a: &Alias| match (a, &src.alias) {
        (Alias::Wildcard, Alias::Addr(_) | Alias::Host(_)) => {
            !src.ips.is_empty() && src.ips.iter().all(|ip| r.wildcard().contains_ip(*ip))
        }
        _ => covers(r, a, src),
    };
    let src_ok = |srcs: &[String]| {
        srcs.iter()
            .any(|s| r.parse(s).is_ok_and(|a| src_covers(&a)))
    };
    // A rule with a posture condition applies when the test's source device, described by
    // its `srcPostureAttrs`, meets one of the postures (as the hosted service judges tests).
    let ungated = |sp: &[String]| crate::posture::met_by(&c.policy, sp, attrs);
    let acls_ok = c.policy.acls.iter().flatten().any(|acl| {
        ungated(&acl.src_posture)
            && src_ok(&acl.src)
            && proto_ok(&proto_of(&acl.proto).unwrap_or_default(), proto)
            && acl.dst.iter().any(|d| {
                split_alias_ports(d).is_ok_and(|(a, p)| {
                    r.parse(a).is_ok_and(|a| covers(r, &a, dst))
                        && crate::alias::parse_ports(p).is_ok_and(|ps| ports_ok(&ps))
                })
            })
    });
    let grants_ok = c.policy.grants.iter().flatten().any(|g| {
        ungated(&g.src_posture)
            && src_ok(&g.src)
            && g.dst
                .iter()
                .any(|d| r.parse(d).is_ok_and(|a| covers(r, &a, dst)))
            && g.ip.iter().any(|ip| {
                crate::rules::parse_ip_cap(ip)
                    .is_ok_and(|(protos, ports)| proto_ok(&protos, proto) && ports_ok(&ports))
            })
    });
    acls_ok || grants_ok
}

fn test_dst(r: &Resolver<'_>, d: &str) -> Result<(Endpoint, u16), String> {
    let (alias, port) = split_alias_ports(d)?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{d:?}: port must be a single number"))?;
    Ok((endpoint(r, alias)?, port))
}

fn acl_test(c: &CompiledPolicy, r: &Resolver<'_>, t: &AclTest) -> Result<(), String> {
    let src = endpoint(r, t.src.as_deref().ok_or("missing src")?)?;
    let proto = proto_of(&t.proto)?;
    for d in &t.accept {
        let (dst, port) = test_dst(r, d)?;
        if !allowed(c, r, &t.src_posture_attrs, &src, &dst, port, &proto) {
            return Err(format!("{d:?} should be accepted"));
        }
    }
    for d in &t.deny {
        let (dst, port) = test_dst(r, d)?;
        if allowed(c, r, &t.src_posture_attrs, &src, &dst, port, &proto) {
            return Err(format!("{d:?} should be denied"));
        }
    }
    Ok(())
}

/// Whether the destination node's SSH rules let principal address `ip` log in as `user`:
/// through any rule (`.0`), and through a `check` rule (`.1`).
fn ssh_reach(c: &CompiledPolicy, n: usize, ip: IpAddr, user: &str) -> (bool, bool) {
    let ip = ip.to_string();
    let (mut any, mut check) = (false, false);
    for rule in c.ssh_rules(n) {
        if !rule.principals.contains(&ip) {
            continue;
        }
        let mapped = rule.ssh_users.get(user).or_else(|| rule.ssh_users.get("*"));
        if mapped.is_some_and(|m| !m.is_empty()) {
            any = true;
            check |= matches!(rule.action, SshAction::Check { .. });
        }
    }
    (any, check)
}

fn ssh_test(c: &CompiledPolicy, r: &Resolver<'_>, t: &SshTest) -> Result<(), String> {
    let src = endpoint(r, &t.src)?;
    let mut dst_nodes = Vec::new();
    for d in &t.dst {
        let e = endpoint(r, d)?;
        if matches!(e.alias, Alias::Addr(_)) && e.ips.iter().any(|ip| ip.is_ipv6()) {
            return Err(format!("{d:?}: IPv6 destinations are not supported"));
        }
        for (i, n) in c.nodes.iter().enumerate() {
            if n.ips().any(|ip| e.ips.contains(&ip)) {
                dst_nodes.push(i);
            }
        }
    }
    if dst_nodes.is_empty() {
        return Err("no destination node".into());
    }
    if src.ips.is_empty() {
        return Err(format!("source {:?} has no addresses", t.src));
    }
    // Every address of the source must agree: `accept` holds when each can log in (through
    // an accept or a check rule), `check` when each can through a check rule, `deny` when
    // none can.
    let check = |users: &[String], want: &dyn Fn((bool, bool)) -> bool| -> Result<(), String> {
        for u in users {
            if u.is_empty() {
                return Err("empty user".into());
            }
            for &n in &dst_nodes {
                if !src.ips.iter().all(|&ip| want(ssh_reach(c, n, ip, u))) {
                    return Err(format!("user {u:?} on {}", c.nodes[n].name));
                }
            }
        }
        Ok(())
    };
    check(&t.accept, &|(any, _)| any)?;
    check(&t.check, &|(_, check)| check)?;
    check(&t.deny, &|(any, _)| !any)?;
    Ok(())
}
