//! The `ssh` section: validated, resolved, and cut per destination node into SSH rules.

use crate::alias::Alias;
use crate::ast::Policy;
use crate::bitset::NodeSet;
use crate::error::{PolicyError, invalid};
use crate::resolve::Resolver;
use std::collections::BTreeMap;

/// What an SSH rule lets a principal do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshAction {
    /// Accept, with agent and port forwarding allowed.
    Accept,
    /// Hold and delegate to the control server for a check (re-authentication).
    Check {
        /// Seconds a successful check stays valid: `None` when the rule sets no
        /// `checkPeriod` (the control server's default, 12 hours), `Some(0)` for `"always"`.
        period_secs: Option<u64>,
    },
}

/// One SSH rule for a destination node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshRuleOut {
    /// Principal node addresses.
    pub principals: Vec<String>,
    /// Login user → local user (`""` denies, `"="` maps to the same name).
    pub ssh_users: BTreeMap<String, String>,
    /// The action.
    pub action: SshAction,
    /// Environment variable patterns the client may send.
    pub accept_env: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum SshDst {
    Nodes(NodeSet),
    SelfNodes,
}

/// A resolved ssh rule.
#[derive(Debug, Clone)]
pub(crate) struct CSsh {
    pub src_nodes: NodeSet,
    pub dsts: Vec<SshDst>,
    pub users: Vec<String>,
    /// Sources include autogroup:tagged (a node is listed once per tag).
    pub tagged_dup: bool,
    pub action: SshAction,
    pub accept_env: Vec<String>,
}

/// Parses a Go duration (`12h`, `1h30m`, `-1m`, `90s`) into signed seconds, refusing what
/// Go's `time.ParseDuration` refuses with its words: a number without a unit
/// (`time: missing unit in duration "12"`), a unit Go does not know
/// (`time: unknown unit "d" in duration "1d"`), anything else malformed
/// (`time: invalid duration "abc"`).
pub(crate) fn parse_go_duration(s: &str) -> Result<i64, String> {
    let err = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        // The next thing is digits with at most one '.', and at least one digit.
        if number.is_empty()
            || number.matches('.').count() > 1
            || !number.bytes().any(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let n: f64 = if number.ends_with('.') {
            number.trim_end_matches('.').parse()
        } else if number.starts_with('.') {
            format!("0{number}").parse()
        } else {
            number.parse()
        }
        .map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if unit_end == 0 {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let unit = &rest[..unit_end];
        let mult = match unit {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    // Go's durations are int64 nanoseconds: about 2,562,047 hours.
    if total > 9_223_372_036.854_775 {
        return Err(err());
    }
    let secs = total as i64;
    Ok(if neg { -secs } else { secs })
}

/// Formats seconds the way Go prints a duration (`168h0m1s`, `-1m0s`).
pub(crate) fn fmt_go_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, (a % 3600) / 60, a % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// The tailnet's own domain is its first (owning) user's email domain; only it may be used in
/// `user:*@domain` and `localpart:*@domain`.
fn domain_known(r: &Resolver<'_>, domain: &str) -> bool {
    r.users
        .iter()
        .min_by_key(|u| u.id)
        .and_then(|u| u.email.rsplit_once('@'))
        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
}

const NOT_ASSOC: &str =
    "is not associated with this Tailnet and cannot be used in user:*@<domain> expressions";

/// The `user:*@domain` and `localpart:*@domain` expressions of the `ssh` section must name the
/// tailnet's domain. That depends on the users, so it is judged when an operator writes the
/// policy (with its tests), never when the tailnet changes under a policy in force; meanwhile
/// an expression for another domain matches nobody.
pub(crate) fn check_domains(r: &Resolver<'_>, p: &Policy) -> Result<(), PolicyError> {
    for rule in &p.ssh {
        for u in rule.users.as_deref().unwrap_or(&[]) {
            if let Some(rest) = u.trim().strip_prefix("localpart:*@")
                && !rest.is_empty()
                && !domain_known(r, rest)
            {
                return Err(invalid(format!("{rest} {NOT_ASSOC}")));
            }
        }
        // Sources and destinations alike: a domain expression anywhere in an SSH rule.
        for s in rule.src.iter().chain(&rule.dst) {
            if let Some(domain) = s.trim().strip_prefix("user:*@")
                && !domain_known(r, domain)
            {
                return Err(invalid(format!("[ssh] {domain} {NOT_ASSOC}")));
            }
        }
    }
    Ok(())
}

/// Tailscale's SSH model: tagged sources never reach user-owned devices, and a user's own
/// devices are reached only by that user (others use `autogroup:self` or tags).
fn check_src_dst(r: &Resolver<'_>, rule: &crate::ast::SshRule) -> Result<(), PolicyError> {
    let srcs: Vec<Alias> = rule.src.iter().filter_map(|s| r.parse(s).ok()).collect();
    let tagged = srcs
        .iter()
        .any(|a| matches!(a, Alias::Tag(_) | Alias::Tagged));
    for d in &rule.dst {
        match r.parse(d) {
            Ok(Alias::User(u)) => {
                if tagged {
                    return Err(invalid(format!(
                        "dst={d:?}: tags in SSH source cannot access user-owned devices"
                    )));
                }
                let only_that_user = matches!(srcs.as_slice(), [Alias::User(s)] if *s == u);
                if !only_that_user {
                    return Err(invalid(format!(
                        "dst={d:?}: user destination requires source to contain only that same user"
                    )));
                }
            }
            Ok(Alias::Member | Alias::SelfNodes | Alias::UserDomain(_)) if tagged => {
                return Err(invalid(format!(
                    "dst={d:?}: tags in SSH source cannot access user-owned devices"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates and resolves the `ssh` section.
pub(crate) fn compile_ssh(r: &Resolver<'_>, p: &Policy) -> Result<Vec<CSsh>, PolicyError> {
    let mut out = Vec::new();
    for rule in &p.ssh {
        let action = match rule.action.as_deref() {
            None | Some("") => return Err(invalid("action must be specified")),
            Some("accept") if rule.check_period.is_some() => {
                return Err(invalid("checkPeriod is only valid with action \"check\""));
            }
            Some("accept") => SshAction::Accept,
            Some("check") => {
                let period_secs = match rule.check_period.as_deref() {
                    None => None,
                    Some("always") => Some(0),
                    Some(cp) => {
                        let secs = parse_go_duration(cp).map_err(invalid)?;
                        if secs < 0 {
                            return Err(invalid(format!(
                                "checkPeriod {} must be a positive duration",
                                fmt_go_duration(secs)
                            )));
                        }
                        if secs > 168 * 3600 {
                            return Err(invalid(format!(
                                "checkPeriod {} is above the max (168h)",
                                fmt_go_duration(secs)
                            )));
                        }
                        Some(secs as u64)
                    }
                };
                SshAction::Check { period_secs }
            }
            Some(other) => return Err(invalid(format!("{other:?} is not a valid action"))),
        };
        let users = match &rule.users {
            Some(u) if !u.is_empty() => u.iter().map(|x| x.trim().to_string()).collect::<Vec<_>>(),
            _ => return Err(invalid("users must be specified")),
        };
        for u in &users {
            if u.is_empty() || u == "*" {
                return Err(invalid(format!("user {u:?} is not valid")));
            }
        }
        if let Some(env) = &rule.accept_env
            && env.iter().any(|e| e.is_empty())
        {
            return Err(invalid("acceptEnv values cannot be empty"));
        }
        let mut src_nodes = NodeSet::new(r.nodes.len());
        for s in &rule.src {
            if let Some(domain) = s.trim().strip_prefix("user:*@") {
                for u in r.users.iter().filter(|u| {
                    u.email
                        .rsplit_once('@')
                        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
                }) {
                    src_nodes.union_with(&r.identity_nodes(&Alias::User(u.email.clone())));
                }
                continue;
            }
            let a = r.parse(s).map_err(invalid)?;
            match &a {
                Alias::Tag(t) if !r.tag_defined(t) => {
                    return Err(invalid(format!("src=tag not found: {t:?}")));
                }
                Alias::Group(g) if !r.policy.groups.contains_key(g) => {
                    return Err(invalid(format!("src=group not found: {g:?}")));
                }
                // SSH comes from people and tagged devices: users, groups, tags,
                // autogroup:member and autogroup:tagged. Not from addresses, hosts, `*`, the
                // internet, or autogroups that only mean something elsewhere.
                Alias::User(_)
                | Alias::Group(_)
                | Alias::Tag(_)
                | Alias::Member
                | Alias::Tagged => {}
                _ => return Err(invalid(format!("invalid src {s:?}"))),
            }
            // SSH sources are identity aliases: their nodes, without building addresses.
            src_nodes.union_with(&r.identity_nodes(&a));
        }
        check_src_dst(r, rule)?;
        let mut dsts = Vec::new();
        for d in &rule.dst {
            let a = r.parse(d).map_err(invalid)?;
            match a {
                Alias::SelfNodes => dsts.push(SshDst::SelfNodes),
                Alias::Tag(ref t) if !r.tag_defined(t) => {
                    return Err(invalid(format!("dst={d:?}: tag not found: {t:?}")));
                }
                // SSH reaches devices, named by their owner or tags: a user, a tag,
                // autogroup:member or autogroup:tagged (and autogroup:self above). Not
                // addresses or hosts, not everything, not the internet, not groups.
                other @ (Alias::User(_)
                | Alias::UserDomain(_)
                | Alias::Tag(_)
                | Alias::Member
                | Alias::Tagged) => dsts.push(SshDst::Nodes(r.identity_nodes(&other))),
                _ => return Err(invalid(format!("invalid dst {d:?}"))),
            }
        }
        // No device meets a posture here: a posture-conditioned rule grants nothing.
        if crate::posture::gated(p, &rule.src_posture) {
            continue;
        }
        out.push(CSsh {
            tagged_dup: rule.src.iter().any(|s| s.trim() == "autogroup:tagged"),
            src_nodes,
            dsts,
            users,
            action,
            accept_env: rule.accept_env.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

impl crate::engine::CompiledPolicy {
    /// The SSH rules node `n` enforces as a destination.
    pub fn ssh_rules(&self, n: usize) -> Vec<SshRuleOut> {
        let node = &self.nodes[n];
        let mut out = Vec::new();
        for rule in &self.ssh {
            let mut principals = NodeSet::new(self.nodes.len());
            for d in &rule.dsts {
                match d {
                    SshDst::Nodes(s) if s.contains(n) => principals.union_with(&rule.src_nodes),
                    SshDst::SelfNodes if !node.is_tagged() && node.user.is_some() => {
                        for i in rule.src_nodes.iter() {
                            let m = &self.nodes[i];
                            if !m.is_tagged() && m.user == node.user {
                                principals.insert(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // A rule with localpart users is also installed on each of its source nodes, with
            // that node's own kind of sources (its user's nodes, or the tagged sources) as
            // principals: the hosted service behaves this way.
            let localpart = rule.users.iter().any(|u| {
                u.strip_prefix("localpart:*@")
                    .is_some_and(|d| !d.is_empty())
            });
            if localpart && rule.src_nodes.contains(n) {
                for i in rule.src_nodes.iter() {
                    let m = &self.nodes[i];
                    let same = if node.is_tagged() {
                        m.is_tagged()
                    } else {
                        !m.is_tagged() && m.user == node.user
                    };
                    if same {
                        principals.insert(i);
                    }
                }
            }
            if principals.is_empty() {
                continue;
            }
            // autogroup:tagged lists a node once per tag, as the hosted service does.
            let ips = |set: &NodeSet| -> Vec<String> {
                set.iter()
                    .flat_map(|i| {
                        let m = &self.nodes[i];
                        let times = if rule.tagged_dup && m.is_tagged() {
                            m.tags.len()
                        } else {
                            1
                        };
                        let one: Vec<String> = m.ips().map(|ip| ip.to_string()).collect();
                        std::iter::repeat_n(one, times).flatten()
                    })
                    .collect()
            };
            let mut users = BTreeMap::new();
            let mut localpart_domains = Vec::new();
            for u in &rule.users {
                if u == "autogroup:nonroot" {
                    users.insert("*".to_string(), "=".to_string());
                } else if let Some(d) = u.strip_prefix("localpart:*@").filter(|d| !d.is_empty()) {
                    localpart_domains.push(d.to_string());
                } else {
                    users.insert(u.clone(), u.clone());
                }
            }
            users.entry("root".to_string()).or_insert_with(String::new);
            let mk = |principals: Vec<String>, ssh_users| SshRuleOut {
                principals,
                ssh_users,
                action: rule.action.clone(),
                accept_env: rule.accept_env.clone(),
            };
            if localpart_domains.is_empty() {
                out.push(mk(ips(&principals), users));
                continue;
            }
            // With localpart users, each source user gets its own rule (plus one mapping its
            // local part when its email is in a listed domain); tagged sources share one.
            for u in &self.users {
                let mut mine = NodeSet::new(self.nodes.len());
                for i in principals.iter() {
                    let m = &self.nodes[i];
                    if !m.is_tagged() && m.user == Some(u.id) {
                        mine.insert(i);
                    }
                }
                if mine.is_empty() {
                    continue;
                }
                out.push(mk(ips(&mine), users.clone()));
                if let Some((local, domain)) = u.email.rsplit_once('@')
                    && localpart_domains
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(domain))
                {
                    let mut lp = BTreeMap::new();
                    lp.insert(local.to_string(), local.to_string());
                    out.push(mk(ips(&mine), lp));
                }
            }
            let mut tagged = NodeSet::new(self.nodes.len());
            for i in principals.iter() {
                if self.nodes[i].is_tagged() {
                    tagged.insert(i);
                }
            }
            if !tagged.is_empty() {
                out.push(mk(ips(&tagged), users.clone()));
            }
        }
        // The hosted service puts check rules ahead of accept rules.
        out.sort_by_key(|r| !matches!(r.action, SshAction::Check { .. }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("168h0m1s").unwrap(), 168 * 3600 + 1);
        assert_eq!(parse_go_duration("-1m").unwrap(), -60);
        assert_eq!(fmt_go_duration(-60), "-1m0s");
        assert_eq!(fmt_go_duration(168 * 3600 + 1), "168h0m1s");
        assert_eq!(
            parse_go_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_go_duration("1d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            parse_go_duration("12").unwrap_err(),
            "time: missing unit in duration \"12\""
        );
        assert_eq!(parse_go_duration("1.5h").unwrap(), 5400);
        assert_eq!(parse_go_duration(".5m").unwrap(), 30);
    }
}
