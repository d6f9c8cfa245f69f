//! Whole-policy checks that do not depend on one rule: tag names, group shapes, node
//! attributes. Messages are the hosted service's.

use crate::alias::{Alias, parse_addr};
use crate::ast::Policy;
use crate::error::{PolicyError, invalid};
use crate::input::PolicyUser;
use crate::resolve::Resolver;

fn valid_tag_name(tag: &str) -> bool {
    let Some(name) = tag.strip_prefix("tag:") else {
        return false;
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks that need only the policy and the user list.
pub(crate) fn validate(p: &Policy, _users: &[PolicyUser]) -> Result<(), PolicyError> {
    for tag in p.tag_owners.keys() {
        if !valid_tag_name(tag) {
            return Err(invalid(format!(
                "tagOwners[{tag:?}]: tag names must start with a letter, after 'tag:'"
            )));
        }
    }
    // A host that names no address would silently match nothing; refuse it by name.
    for (name, value) in &p.hosts {
        if parse_addr(value.trim()).is_none() {
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
    Ok(())
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
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names() {
        assert!(valid_tag_name("tag:server-1"));
        assert!(!valid_tag_name("tag:1server"));
        assert!(!valid_tag_name("tag:сервер"));
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
