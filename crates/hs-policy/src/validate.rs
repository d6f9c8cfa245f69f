//! Whole-policy checks that do not depend on one rule: tag names, group shapes, node
//! attributes. Messages are the hosted service's.

use crate::alias::{Alias, parse_addr, parse_ip_or_prefix};
use crate::ast::Policy;
use crate::error::{PolicyError, invalid};
use crate::input::PolicyUser;
use crate::resolve::Resolver;

/// Tailscale's tag name rule: `tag:` then a letter, then letters, digits and dashes (ASCII
/// only). The reason is the hosted service's wording.
fn check_tag_name(tag: &str) -> Result<(), &'static str> {
    let Some(name) = tag.strip_prefix("tag:") else {
        return Err("tags must start with 'tag:'");
    };
    let Some(first) = name.bytes().next() else {
        return Err("tag names must not be empty");
    };
    if !first.is_ascii_alphabetic() {
        return Err("tag names must start with a letter, after 'tag:'");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("tag names can only contain numbers, letters, or dashes");
    }
    Ok(())
}

/// Checks that need only the policy and the user list.
pub(crate) fn validate(p: &Policy, _users: &[PolicyUser]) -> Result<(), PolicyError> {
    crate::ipsets::resolve_all(p)?;
    crate::ipsets::check_not_used_outside_rules(p)?;
    crate::posture::validate(p)?;
    for tag in p.tag_owners.keys() {
        if let Err(why) = check_tag_name(tag) {
            return Err(invalid(format!("tagOwners[{tag:?}]: {why}")));
        }
    }
    // A host that names no address would silently match nothing; refuse it by name.
    for (name, value) in &p.hosts {
        if parse_ip_or_prefix(value.trim()).is_none() {
            return Err(invalid(format!(
                "hosts[{name:?}]: {value:?} is not an IP address or prefix"
            )));
        }
    }
    // Reported like the hosted service: the last group (in name order) holding a group.
    for (name, members) in p.groups.iter().rev() {
        for m in members.as_deref().unwrap_or(&[]) {
            if m.starts_with("group:") {
                return Err(invalid(format!(
                    "groups[{name:?}]: {m:?}: group members cannot be recursive"
                )));
            }
        }
    }
    for (name, members) in &p.groups {
        if !name.starts_with("group:") || name.len() == "group:".len() {
            return Err(invalid(format!(
                "groups[{name:?}]: group names must start with 'group:'"
            )));
        }
        // Groups hold users (by login or email, or the members of an identity provider's
        // group); tags and autogroups are not people.
        for m in members.as_deref().unwrap_or(&[]) {
            if !is_user(m.trim()) && !is_idp_group(m.trim()) {
                return Err(invalid(format!(
                    "groups[{name:?}]: {m:?}: group members must be users (user@domain) or idp-group:<name>"
                )));
            }
        }
    }
    for name in p.hosts.keys() {
        if !valid_host_name(name) {
            return Err(invalid(format!(
                "hosts[{name:?}]: invalid host name: a host name is a word without ':' or '@'"
            )));
        }
    }
    for (tag, owners) in &p.tag_owners {
        for o in owners.as_deref().unwrap_or(&[]) {
            check_owner(p, &format!("tagOwners[{tag:?}]"), o.trim())?;
        }
    }
    for (route, approvers) in &p.auto_approvers.routes {
        if route.trim().parse::<ipnet::IpNet>().is_err() {
            return Err(invalid(format!(
                "autoApprovers.routes[{route:?}]: invalid prefix"
            )));
        }
        for a in approvers {
            check_owner(p, &format!("autoApprovers.routes[{route:?}]"), a.trim())?;
        }
    }
    for a in &p.auto_approvers.exit_node {
        check_owner(p, "autoApprovers.exitNode", a.trim())?;
    }
    Ok(())
}

/// A user: a login (`odin@`) or an email, not a tag, group or autogroup.
fn is_user(s: &str) -> bool {
    s.contains('@') && !s.contains(':') && !s.chars().any(char::is_whitespace)
}

/// `idp-group:<name>`: the members of an identity provider's group, as of their last login.
fn is_idp_group(s: &str) -> bool {
    s.strip_prefix(crate::input::IDP_GROUP_PREFIX)
        .is_some_and(|g| !g.is_empty() && !g.chars().any(char::is_whitespace))
}

fn valid_host_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(':') && !s.contains('@') && !s.chars().any(char::is_whitespace)
}

/// Who may own a tag or approve a route: a user, a defined group, a defined tag, or one of
/// the role autogroups. Anything else (a host, an address, an undefined name) is refused by
/// name instead of matching nobody.
fn check_owner(p: &Policy, place: &str, o: &str) -> Result<(), PolicyError> {
    if o.starts_with("group:") {
        if !p.groups.contains_key(o) {
            return Err(invalid(format!("{place}: group not found: {o:?}")));
        }
        return Ok(());
    }
    if o.starts_with("tag:") {
        if !p.tag_owners.contains_key(o) {
            return Err(invalid(format!("{place}: tag not found: {o:?}")));
        }
        return Ok(());
    }
    if matches!(
        o,
        "autogroup:admin"
            | "autogroup:owner"
            | "autogroup:it-admin"
            | "autogroup:network-admin"
            | "autogroup:member"
            | "autogroup:tagged"
    ) || is_user(o)
    {
        return Ok(());
    }
    Err(invalid(format!(
        "{place}: {o:?} is not a user, group, tag or role autogroup"
    )))
}

/// Checks `nodeAttrs` targets and pools.
pub(crate) fn validate_node_attrs(r: &Resolver<'_>, p: &Policy) -> Result<(), PolicyError> {
    for na in &p.node_attrs {
        for t in &na.target {
            if t == "autogroup:admin" || t == "autogroup:owner" || t == "autogroup:it-admin" {
                continue;
            }
            match r.parse(t) {
                Ok(Alias::SelfNodes) => return Err(invalid("internal server error")),
                Ok(Alias::Tag(tag)) if !r.tag_defined(&tag) => {
                    return Err(invalid(format!("tag not found: {tag:?}")));
                }
                Ok(Alias::Group(g)) if !r.policy.groups.contains_key(&g) => {
                    return Err(invalid(format!("group not found: {g:?}")));
                }
                // Attributes belong to devices; the internet is none.
                Ok(Alias::Internet | Alias::DangerAll | Alias::NonRoot) => {
                    return Err(invalid(format!("{t:?}: not a valid nodeAttrs target")));
                }
                Ok(_) => {}
                Err(e) => return Err(invalid(e)),
            }
        }
        for pool in &na.ip_pool {
            let Some(set) = parse_addr(pool) else {
                return Err(invalid(format!("{pool:?}: invalid address")));
            };
            let mut reserved = crate::ipset::IpSet::new();
            if let Some(s) = parse_addr("100.100.100.0/24") {
                reserved.extend(&s);
            }
            if let Some(s) = parse_addr("100.115.92.0/23") {
                reserved.extend(&s);
            }
            if set.overlaps(&reserved) {
                return Err(invalid(format!(
                    "IPPool({pool}): network within reserved range"
                )));
            }
            // A pool hands out Tailscale addresses, which come from 100.64.0.0/10.
            let mut cgnat = crate::ipset::IpSet::new();
            if let Some(s) = parse_addr("100.64.0.0/10") {
                cgnat.extend(&s);
            }
            let mut outside = set.clone();
            outside.subtract(&cgnat);
            if !outside.is_empty() {
                return Err(invalid(format!(
                    "IPPool({pool}): network not within 100.64.0.0/10"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names() {
        assert!(check_tag_name("tag:server-1").is_ok());
        assert!(check_tag_name("tag:1server").is_err());
        assert!(check_tag_name("tag:сервер").is_err());
    }

    fn refusal(text: &str) -> String {
        let p = Policy::parse(text).unwrap();
        validate(&p, &[]).unwrap_err().to_string()
    }

    #[test]
    fn groups_hold_users_under_group_names() {
        let m = refusal(r#"{"groups": {"eng": ["a@example.com"]}}"#);
        assert!(
            m.contains("groups[\"eng\"]") && m.contains("'group:'"),
            "{m}"
        );
        for member in ["tag:x", "alice", "autogroup:member"] {
            let m = refusal(&format!(r#"{{"groups": {{"group:eng": ["{member}"]}}}}"#));
            assert!(m.contains(member) && m.contains("must be users"), "{m}");
        }
        let ok = r#"{"groups": {"group:eng": ["alice@", "bob@example.com"]}}"#;
        validate(&Policy::parse(ok).unwrap(), &[]).unwrap();
    }

    #[test]
    fn host_names_are_words() {
        for name in ["a:b", "tag:z", "a@b", ""] {
            let m = refusal(&format!(r#"{{"hosts": {{"{name}": "10.0.0.1"}}}}"#));
            assert!(m.contains("invalid host name"), "{name}: {m}");
        }
    }

    #[test]
    fn owners_and_approvers_must_exist() {
        let cases = [
            (
                r#"{"tagOwners": {"tag:x": ["group:nope"]}}"#,
                "group not found: \"group:nope\"",
            ),
            (
                r#"{"tagOwners": {"tag:x": ["tag:nope"]}}"#,
                "tag not found: \"tag:nope\"",
            ),
            (
                r#"{"autoApprovers": {"routes": {"10.0.0.0/8": ["tag:nope"]}}}"#,
                "tag not found",
            ),
            (
                r#"{"autoApprovers": {"exitNode": ["group:nope"]}}"#,
                "group not found",
            ),
            (
                r#"{"hosts": {"web": "10.0.0.1"}, "autoApprovers": {"exitNode": ["web"]}}"#,
                "\"web\" is not a user",
            ),
            (
                r#"{"autoApprovers": {"routes": {"banana": ["a@b.c"]}}}"#,
                "invalid prefix",
            ),
            (
                r#"{"autoApprovers": {"routes": {"10.0.0.0/33": ["a@b.c"]}}}"#,
                "invalid prefix",
            ),
        ];
        for (text, want) in cases {
            let m = refusal(text);
            assert!(m.contains(want), "{text}: {m}");
        }
        let ok = r#"{"groups": {"group:ops": ["a@b.c"]}, "tagOwners": {"tag:x": ["group:ops", "autogroup:admin"], "tag:y": ["tag:x"]},
            "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:x", "a@b.c"]}, "exitNode": ["group:ops", "autogroup:member"]}}"#;
        validate(&Policy::parse(ok).unwrap(), &[]).unwrap();
    }

    #[test]
    fn hosts_must_name_addresses() {
        for bad in ["10.0.0.300", "banana", "::/129", "10.0.0.1/33", ""] {
            let text = format!(r#"{{"hosts": {{"h": "{bad}"}}}}"#);
            let err = Policy::parse(&text)
                .and_then(|p| validate(&p, &[]).map(|()| p))
                .unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("hosts[\"h\"]") && msg.contains(bad), "{msg}");
        }
        for good in ["10.0.0.1", "10.0.0.0/8", "fd7a::/48", "::1"] {
            let text = format!(r#"{{"hosts": {{"h": "{good}"}}}}"#);
            validate(&Policy::parse(&text).unwrap(), &[]).unwrap();
        }
    }
}
