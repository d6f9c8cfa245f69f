//! The `ipsets` section: named network segments, as Tailscale's IP sets documentation
//! (kb/1387, "IP sets") defines them.
//!
//! Each `ipset:<name>` is a list of operations processed in order: `add <target>` or
//! `remove <target>`; a set that only adds may leave the word `add` out. A target is an IP
//! address, a prefix, an address range (`192.0.2.50-192.0.2.100`), a host (`host:<name>`,
//! from `hosts`), `autogroup:internet`, or another IP set (`ipset:<name>`, no cycles). Tags,
//! users, groups and other autogroups are refused: an IP set is addresses only.
//!
//! Acls and grants name an IP set in `src` and `dst` (`ipset:<name>`, with `:ports` in an
//! acl destination), where it stands for its addresses as a written prefix would. The other
//! sections (SSH, `tests`, `sshTests`, `nodeAttrs`, `autoApprovers`, `tagOwners`) do not
//! take IP sets, as the documentation lists them.

use crate::alias::parse_addr;
use crate::ast::Policy;
use crate::error::{PolicyError, invalid};
use crate::ipset::IpSet;
use std::collections::BTreeMap;

/// The prefix of an IP set's name.
pub(crate) const PREFIX: &str = "ipset:";

/// Every IP set of the policy, resolved to its addresses; the error names the IP set and
/// the entry at fault.
pub(crate) fn resolve_all(p: &Policy) -> Result<BTreeMap<String, IpSet>, PolicyError> {
    let mut done = BTreeMap::new();
    for name in p.ipsets.keys() {
        let rest = name.strip_prefix(PREFIX).unwrap_or_default();
        if !name.starts_with(PREFIX) || rest.is_empty() || !valid_name(rest) {
            return Err(invalid(format!(
                "ipsets[{name:?}]: IP set names are 'ipset:' and a name of letters, digits, \
                 '-', '_' or '.'"
            )));
        }
        resolve(p, name, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

fn valid_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Resolves one IP set (and, first, the IP sets it names). `path` holds the sets being
/// resolved, to refuse a cycle.
fn resolve(
    p: &Policy,
    name: &str,
    done: &mut BTreeMap<String, IpSet>,
    path: &mut Vec<String>,
) -> Result<IpSet, PolicyError> {
    if let Some(s) = done.get(name) {
        return Ok(s.clone());
    }
    let entries = &p.ipsets[name];
    path.push(name.to_owned());
    let removes = entries
        .iter()
        .any(|e| e.split_whitespace().next() == Some("remove"));
    let mut set = IpSet::new();
    for entry in entries {
        let at = |why: String| invalid(format!("ipsets[{name:?}]: {entry:?}: {why}"));
        let e = entry.trim();
        let (remove, target) = match e.split_once(char::is_whitespace) {
            Some(("add", t)) => (false, t.trim()),
            Some(("remove", t)) => (true, t.trim()),
            _ if e == "add" || e == "remove" => return Err(at("no target".into())),
            _ if removes => {
                return Err(at(
                    "an IP set that removes targets writes \"add\" or \"remove\" before each one"
                        .into(),
                ));
            }
            _ => (false, e),
        };
        let addrs = match target {
            t if t.starts_with(PREFIX) => {
                if !p.ipsets.contains_key(t) {
                    return Err(at(format!("IP set {t:?} not found")));
                }
                if path.iter().any(|x| x == t) {
                    return Err(at(format!(
                        "circular reference: {} -> {t}",
                        path.join(" -> ")
                    )));
                }
                resolve(p, t, done, path)?
            }
            t if t.starts_with("host:") => {
                let h = &t["host:".len()..];
                let Some(v) = p.hosts.get(h) else {
                    return Err(at(format!("host {h:?} not found")));
                };
                parse_addr(v.trim()).unwrap_or_default()
            }
            "autogroup:internet" => crate::alias::internet(),
            t => parse_addr(t).ok_or_else(|| {
                at("a target is an IP address, prefix, range, host:<name>, \
                    autogroup:internet or ipset:<name> (not a tag, user, group or other \
                    autogroup)"
                    .into())
            })?,
        };
        if remove {
            set.subtract(&addrs);
        } else {
            set.extend(&addrs);
        }
    }
    path.pop();
    done.insert(name.to_owned(), set.clone());
    Ok(set)
}

/// Refuses an IP set named where the documentation does not allow one (every section but
/// acls, grants and IP sets), naming the place.
pub(crate) fn check_not_used_outside_rules(p: &Policy) -> Result<(), PolicyError> {
    let refuse = |place: String, s: &str| -> Result<(), PolicyError> {
        if s.trim().starts_with(PREFIX) {
            return Err(invalid(format!(
                "{place}: {s:?}: IP sets can be named only in acls and grants (src and dst) \
                 and in other IP sets"
            )));
        }
        Ok(())
    };
    for (i, r) in p.ssh.iter().enumerate() {
        for s in r.src.iter().chain(&r.dst) {
            refuse(format!("ssh[{i}]"), s)?;
        }
    }
    for (i, t) in p.tests.iter().enumerate() {
        for s in t.src.iter().chain(&t.accept).chain(&t.deny) {
            refuse(format!("tests[{i}]"), s)?;
        }
    }
    for (i, t) in p.ssh_tests.iter().enumerate() {
        for s in std::iter::once(&t.src).chain(&t.dst) {
            refuse(format!("sshTests[{i}]"), s)?;
        }
    }
    for (i, na) in p.node_attrs.iter().enumerate() {
        for s in &na.target {
            refuse(format!("nodeAttrs[{i}]"), s)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
        let p = Policy::parse(text).map_err(|e| e.to_string())?;
        let all = resolve_all(&p).map_err(|e| e.to_string())?;
        Ok(all.into_iter().map(|(k, v)| (k, v.to_strings())).collect())
    }

    #[test]
    fn operations_run_in_order() {
        let got = sets(
            r#"{"hosts": {"db": "10.0.0.5"}, "ipsets": {
                "ipset:dev": ["host:db"],
                "ipset:prod": ["add 10.0.0.0/29", "add 10.0.1.1-10.0.1.2", "remove ipset:dev", "remove 10.0.0.0"],
                "ipset:again": ["add 10.9.0.0/30", "remove 10.9.0.0/30", "add 10.9.0.1"]}}"#,
        )
        .unwrap();
        assert_eq!(got["ipset:dev"], ["10.0.0.5"]);
        assert_eq!(
            got["ipset:prod"],
            ["10.0.0.1-10.0.0.4", "10.0.0.6/31", "10.0.1.1-10.0.1.2"]
        );
        assert_eq!(got["ipset:again"], ["10.9.0.1"]);
    }

    #[test]
    fn internet_can_be_trimmed() {
        let got =
            sets(r#"{"ipsets": {"ipset:i": ["add autogroup:internet", "remove 8.0.0.0/8"]}}"#)
                .unwrap();
        let mut want = crate::alias::internet();
        want.subtract(&parse_addr("8.0.0.0/8").unwrap());
        assert_eq!(got["ipset:i"], want.to_strings());
    }

    #[test]
    fn malformed_sets_are_refused_by_name_and_entry() {
        for (sets_json, want) in [
            (
                r#"{"office": ["10.0.0.0/8"]}"#,
                r#"ipsets["office"]: IP set names"#,
            ),
            (
                r#"{"ipset:a": ["tag:x"]}"#,
                r#"ipsets["ipset:a"]: "tag:x": a target is"#,
            ),
            (r#"{"ipset:a": ["group:x"]}"#, "a target is"),
            (r#"{"ipset:a": ["autogroup:member"]}"#, "a target is"),
            (r#"{"ipset:a": ["10.0.0.0/33"]}"#, "a target is"),
            (
                r#"{"ipset:a": ["add ipset:b"]}"#,
                r#"IP set "ipset:b" not found"#,
            ),
            (r#"{"ipset:a": ["host:nope"]}"#, r#"host "nope" not found"#),
            (
                r#"{"ipset:a": ["add ipset:b"], "ipset:b": ["ipset:a"]}"#,
                "circular reference",
            ),
            (r#"{"ipset:a": ["remove ipset:a"]}"#, "circular reference"),
            (
                r#"{"ipset:a": ["10.0.0.0/8", "remove 10.0.0.1"]}"#,
                r#""10.0.0.0/8": an IP set that removes targets"#,
            ),
            (r#"{"ipset:a": ["delete 10.0.0.1"]}"#, "a target is"),
            (r#"{"ipset:a": ["add"]}"#, "no target"),
        ] {
            let err = sets(&format!(r#"{{"ipsets": {sets_json}}}"#)).unwrap_err();
            assert!(err.contains(want), "{sets_json}: {err}");
        }
    }
}
