//! Device postures (`postures`, `srcPosture`, `defaultSrcPosture`), as Tailscale's device
//! posture documentation (kb/1288, "Device posture conditions") defines them.
//!
//! A posture `posture:<name>` is a list of conditions on device attributes, all of which a
//! device must meet: `<namespace>:<key> <operator> <value>`, for instance
//! `node:os == 'linux'`, `node:os IN ['macos', 'linux']`, `node:tsVersion >= '1.40'`,
//! `custom:tier IS SET`, or a bare attribute (`node:tsAutoUpdate`, a boolean that must be
//! true). Operators: `==`, `!=`, `IN`, `NOT IN`, `IS SET`, `NOT SET` (any case), and `<`,
//! `<=`, `>=`, `>` for numbers and the version attributes `node:osVersion` and
//! `node:tsVersion`. Values are quoted strings, numbers, `true` or `false`; `IN` and
//! `NOT IN` take a bracketed list of them.
//!
//! A rule's `srcPosture` (acls, grants, ssh) lists postures a source device must meet (any
//! one); `defaultSrcPosture` applies to every rule without its own. This server has no
//! device posture attributes (clients' host information is not collected as posture data),
//! so no device meets a posture: a rule with a posture condition grants nothing, which is
//! the deny-by-default reading of a condition that cannot be shown to hold. The policy's
//! `tests` judge conditions on the attributes an entry's `srcPostureAttrs` gives its source
//! device ([`met_by`]), as the hosted service judges them.

use crate::ast::Policy;
use crate::error::{PolicyError, invalid};
use serde_json::Value;
use std::collections::BTreeMap;

/// The prefix of a posture's name.
const PREFIX: &str = "posture:";

/// True when the rule with these `srcPosture` entries requires a posture (its own, or the
/// policy's default): no device meets one here, so the rule grants nothing.
pub(crate) fn gated(p: &Policy, src_posture: &[String]) -> bool {
    !src_posture.is_empty() || !p.default_src_posture.is_empty()
}

/// Checks the `postures` section and every reference to a posture.
pub(crate) fn validate(p: &Policy) -> Result<(), PolicyError> {
    for (name, conditions) in &p.postures {
        let rest = name.strip_prefix(PREFIX).unwrap_or_default();
        if !name.starts_with(PREFIX) || rest.is_empty() || !rest.bytes().all(word_byte) {
            return Err(invalid(format!(
                "postures[{name:?}]: posture names are 'posture:' and a name of letters, \
                 digits, '-' or '_'"
            )));
        }
        for c in conditions {
            check_condition(c.trim())
                .map_err(|why| invalid(format!("postures[{name:?}]: {c:?}: {why}")))?;
        }
    }
    let refs = |place: String, names: &[String]| -> Result<(), PolicyError> {
        for n in names {
            if !p.postures.contains_key(n.trim()) {
                return Err(invalid(format!(
                    "{place}: srcPosture {n:?}: posture not found (define it in \"postures\")"
                )));
            }
        }
        Ok(())
    };
    refs("defaultSrcPosture".into(), &p.default_src_posture)?;
    for (i, a) in p.acls.iter().flatten().enumerate() {
        refs(format!("acls[{i}]"), &a.src_posture)?;
    }
    for (i, g) in p.grants.iter().flatten().enumerate() {
        refs(format!("grants[{i}]"), &g.src_posture)?;
    }
    for (i, s) in p.ssh.iter().enumerate() {
        refs(format!("ssh[{i}]"), &s.src_posture)?;
    }
    Ok(())
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The attributes compared as versions.
const VERSION_ATTRS: [&str; 2] = ["node:osVersion", "node:tsVersion"];

/// A condition's operator.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Ge,
    Gt,
    In,
    NotIn,
    IsSet,
    NotSet,
    /// A bare attribute: a boolean that must be true.
    True,
}

/// A value in a condition.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// One parsed condition.
#[derive(Debug)]
struct Condition<'a> {
    attr: &'a str,
    op: Op,
    values: Vec<Val>,
}

/// One condition, parsed (attribute, operator, value) or refused with the reason.
fn parse_condition(c: &str) -> Result<Condition<'_>, String> {
    let attr_len = c
        .find(|ch: char| ch.is_whitespace() || "=!<>".contains(ch))
        .unwrap_or(c.len());
    let (attr, rest) = c.split_at(attr_len);
    let (ns, key) = attr.split_once(':').unwrap_or(("", ""));
    let ns_ok =
        ns.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) && ns.bytes().all(word_byte);
    let key_ok = !key.is_empty() && key.bytes().all(|b| word_byte(b) || b == b'.');
    if !ns_ok || !key_ok {
        return Err("a condition starts with an attribute <namespace>:<key> (node:os)".into());
    }
    let cond = |op, values| Ok(Condition { attr, op, values });
    let rest = rest.trim();
    if rest.is_empty() {
        return cond(Op::True, vec![]);
    }
    let upper = rest.to_ascii_uppercase();
    // A keyword operator, followed by a space, a bracket or nothing.
    let keyword = |w: &str| {
        (upper.starts_with(w)
            && rest[w.len()..]
                .chars()
                .next()
                .is_none_or(|ch| ch.is_whitespace() || ch == '['))
        .then(|| rest[w.len()..].trim())
    };
    for (w, op) in [("IS SET", Op::IsSet), ("NOT SET", Op::NotSet)] {
        if let Some(tail) = keyword(w) {
            if !tail.is_empty() {
                return Err("IS SET and NOT SET take no value".into());
            }
            return cond(op, vec![]);
        }
    }
    for (w, op) in [("NOT IN", Op::NotIn), ("IN", Op::In)] {
        if let Some(list) = keyword(w) {
            return cond(op, parse_list(list)?);
        }
    }
    let (op, len) = match rest.get(..2) {
        Some("==") => (Op::Eq, 2),
        Some("!=") => (Op::Ne, 2),
        Some("<=") => (Op::Le, 2),
        Some(">=") => (Op::Ge, 2),
        _ if rest.starts_with('<') => (Op::Lt, 1),
        _ if rest.starts_with('>') => (Op::Gt, 1),
        _ => {
            return Err(
                "unknown operator: use ==, !=, IN, NOT IN, IS SET, NOT SET, <, <=, >=, >".into(),
            );
        }
    };
    let value = scalar(rest[len..].trim())?;
    if !matches!(op, Op::Eq | Op::Ne)
        && !matches!(value, Val::Number(_))
        && !VERSION_ATTRS.contains(&attr)
    {
        return Err(format!(
            "{} compares numbers and the version attributes {} only",
            &rest[..len],
            VERSION_ATTRS.join(" and ")
        ));
    }
    cond(op, vec![value])
}

/// A value: a quoted string, a number, `true` or `false`.
fn scalar(v: &str) -> Result<Val, String> {
    let quoted = |q: char| {
        v.len() >= 2 && v.starts_with(q) && v.ends_with(q) && !v[1..v.len() - 1].contains(q)
    };
    if quoted('\'') || quoted('"') {
        Ok(Val::Text(v[1..v.len() - 1].to_owned()))
    } else if v == "true" || v == "false" {
        Ok(Val::Bool(v == "true"))
    } else if let Ok(n) = v.parse::<f64>()
        && n.is_finite()
    {
        Ok(Val::Number(n))
    } else {
        Err(format!(
            "value {v:?}: write a quoted string ('linux'), a number, true or false"
        ))
    }
}

/// A bracketed list of values, for IN and NOT IN.
fn parse_list(l: &str) -> Result<Vec<Val>, String> {
    let Some(inner) = l.strip_prefix('[').and_then(|x| x.strip_suffix(']')) else {
        return Err("IN and NOT IN take a list: ['macos', 'linux']".into());
    };
    if inner.trim().is_empty() {
        return Err("IN and NOT IN take a list that is not empty".into());
    }
    inner.split(',').map(|item| scalar(item.trim())).collect()
}

fn check_condition(c: &str) -> Result<(), String> {
    parse_condition(c).map(drop)
}

/// Whether a device with these posture attributes (a test's `srcPostureAttrs`) meets one of
/// the rule's postures (its `srcPosture`, else the policy's `defaultSrcPosture`). A rule
/// without a posture condition is met by every device.
pub(crate) fn met_by(p: &Policy, src_posture: &[String], attrs: &BTreeMap<String, Value>) -> bool {
    let names = if src_posture.is_empty() {
        &p.default_src_posture
    } else {
        src_posture
    };
    names.is_empty()
        || names.iter().any(|n| {
            p.postures.get(n.trim()).is_some_and(|conds| {
                conds
                    .iter()
                    .all(|c| parse_condition(c.trim()).is_ok_and(|c| holds(&c, attrs)))
            })
        })
}

/// One condition on one device's attributes. An attribute the device lacks fails every
/// condition but `NOT SET` (kb/1288: an unset attribute does not match "irrespective of the
/// operator used").
fn holds(c: &Condition<'_>, attrs: &BTreeMap<String, Value>) -> bool {
    let Some(have) = attrs.get(c.attr).and_then(value_of) else {
        return c.op == Op::NotSet;
    };
    let version = VERSION_ATTRS.contains(&c.attr);
    let order = |want: &Val| match (&have, want) {
        (Val::Number(a), Val::Number(b)) => a.partial_cmp(b),
        (Val::Text(a), Val::Text(b)) if version => Some(compare_versions(a, b)),
        (Val::Text(a), Val::Number(b)) if version => Some(compare_versions(a, &b.to_string())),
        _ => None,
    };
    let first = c.values.first();
    use std::cmp::Ordering::{Equal, Greater, Less};
    match c.op {
        Op::IsSet => true,
        Op::NotSet => false,
        Op::True => have == Val::Bool(true),
        Op::Eq => first == Some(&have),
        Op::Ne => first.is_some_and(|w| *w != have),
        Op::In => c.values.contains(&have),
        Op::NotIn => !c.values.contains(&have),
        Op::Lt => first.and_then(order) == Some(Less),
        Op::Le => matches!(first.and_then(order), Some(Less | Equal)),
        Op::Ge => matches!(first.and_then(order), Some(Greater | Equal)),
        Op::Gt => first.and_then(order) == Some(Greater),
    }
}

fn value_of(v: &Value) -> Option<Val> {
    match v {
        Value::String(s) => Some(Val::Text(s.clone())),
        Value::Number(n) => n.as_f64().map(Val::Number),
        Value::Bool(b) => Some(Val::Bool(*b)),
        _ => None,
    }
}

/// Versions compared field by field, as Tailscale's `cmpver` does: runs of digits as
/// numbers, other runs as text, a missing field below a present one.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn fields(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = None;
        let mut digit = false;
        for (i, ch) in s.char_indices() {
            let alnum = ch.is_ascii_alphanumeric();
            if let Some(st) = start
                && (!alnum || ch.is_ascii_digit() != digit)
            {
                out.push(&s[st..i]);
                start = None;
            }
            if alnum && start.is_none() {
                start = Some(i);
                digit = ch.is_ascii_digit();
            }
        }
        if let Some(st) = start {
            out.push(&s[st..]);
        }
        out
    }
    let (fa, fb) = (fields(a), fields(b));
    for i in 0..fa.len().max(fb.len()) {
        let ord = match (fa.get(i), fb.get(i)) {
            (Some(x), Some(y)) => match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(m), Ok(n)) => m.cmp(&n),
                _ => x.cmp(y),
            },
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if ord.is_ne() {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_conditions_are_accepted() {
        for c in [
            "node:os == 'linux'",
            "node:os IN ['macos', 'linux']",
            "ip:country in ['CA', 'US', 'GB', 'NL']",
            "node:osVersion == '13.4.0'",
            "node:tsAutoUpdate == true",
            "node:tsAutoUpdate",
            "node:tsReleaseTrack == 'stable'",
            "node:tsVersion >= '1.42.2'",
            "node:tsVersion<'1.50'",
            "custom:attr IS SET",
            "custom:tier NOT SET",
            "custom:tier != 'prod'",
            "custom:score > 7",
            "falcon:ztaScore >= 80",
            "kolide:authState != 'Blocked'",
            "node:os NOT IN ['windows']",
        ] {
            assert_eq!(check_condition(c), Ok(()), "{c}");
        }
    }

    #[test]
    fn conditions_hold_on_a_tests_attributes() {
        let attrs: BTreeMap<String, Value> = serde_json::from_str(
            r#"{"node:os": "linux", "node:tsVersion": "1.42.2", "node:tsAutoUpdate": true, "custom:score": 8}"#,
        )
        .unwrap_or_default();
        for (c, want) in [
            ("node:os == 'linux'", true),
            ("node:os != 'linux'", false),
            ("node:os IN ['macos', 'linux']", true),
            ("node:os NOT IN ['macos', 'linux']", false),
            ("node:tsVersion >= '1.40'", true),
            ("node:tsVersion >= '1.42.10'", false),
            ("node:tsVersion < '1.100'", true),
            ("node:tsAutoUpdate", true),
            ("node:tsAutoUpdate == false", false),
            ("custom:score > 7", true),
            ("custom:tier != 'prod'", false),
            ("custom:tier NOT SET", true),
            ("custom:tier IS SET", false),
            ("node:os IS SET", true),
        ] {
            let cond = parse_condition(c).unwrap_or_else(|e| panic!("{c}: {e}"));
            assert_eq!(holds(&cond, &attrs), want, "{c}");
        }
    }

    #[test]
    fn malformed_conditions_are_refused() {
        for (c, want) in [
            ("os == 'linux'", "starts with an attribute"),
            ("node:os ~ 'linux'", "unknown operator"),
            ("node:os == linux", "value \"linux\""),
            (
                "node:os >= 'linux'",
                "compares numbers and the version attributes",
            ),
            ("node:os IN 'linux'", "take a list"),
            ("node:os IN []", "not empty"),
            ("custom:x IS SET 'y'", "take no value"),
            ("node:os == 'li'nux'", "value"),
        ] {
            let got = check_condition(c).unwrap_err();
            assert!(got.contains(want), "{c}: {got}");
        }
    }
}
