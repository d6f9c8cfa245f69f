//! Network rules (`acls` and `grants`) validated and resolved into a rule list that is
//! independent of any one destination node; per-node filters are cut from it in `engine`.

use crate::alias::{Alias, Ports, parse_port_range, parse_ports, parse_proto, split_alias_ports};
use crate::ast::Policy;
use crate::bitset::NodeSet;
use crate::error::{PolicyError, invalid};
use crate::ipset::IpSet;
use crate::memo::Sources;
use crate::resolve::Resolver;
use ipnet::IpNet;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A destination of a resolved rule.
#[derive(Debug, Clone)]
pub(crate) enum DstKind {
    /// `*`: every node, spelled `*`.
    Any,
    /// Identity alias: these nodes, spelled by their own addresses.
    Nodes(NodeSet),
    /// Literal addresses (hosts, prefixes): nodes inside or routing them get the literal.
    Addr(IpSet),
    /// `autogroup:internet`: exit nodes get the internet ranges.
    Internet,
    /// `autogroup:self`: each user node gets its own user's sources.
    SelfNodes,
}

/// One destination with its ports.
#[derive(Debug, Clone)]
pub(crate) struct Dst {
    pub kind: DstKind,
    pub ports: Vec<Ports>,
}

/// A rule after alias resolution.
#[derive(Debug, Clone)]
pub(crate) struct CRule {
    /// Source nodes (for peer visibility and autogroup:self).
    pub src_nodes: NodeSet,
    /// Source addresses, as the hosted service spells them.
    pub src_strings: Arc<[String]>,
    /// Source addresses.
    pub src_ips: IpSet,
    /// IP protocols; empty means the client default.
    pub protos: Vec<u8>,
    /// Destinations.
    pub dsts: Vec<Dst>,
    /// Application capabilities (a CapGrant rule) instead of ports.
    pub caps: Option<BTreeMap<String, Vec<Value>>>,
    /// Only nodes carrying one of these tags apply the rule (grant `via`).
    pub via: Option<Vec<String>>,
    /// Index of the first rule with the same sources and protocols: per-node filters list
    /// rules in this order and merge rules of one group.
    pub group: usize,
    /// The autogroup:self part of a mixed rule comes before the plain part (see the
    /// function `self_first`).
    pub self_first: bool,
    /// For a capability grant with a companion capability (drive → drive-sharer, relay →
    /// relay-target): the companion goes the other way, installed on each source node with
    /// the destinations as its sources.
    pub reverse: Option<Reverse>,
}

/// Where the hosted service puts the autogroup:self part of a rule that also has other
/// destinations. It resolves user-scoped destinations (autogroup:self, autogroup:member)
/// after all others, each merged into the first entry with the same sources: so the self part
/// comes first only when every destination is self or member and self is listed before
/// member (acl-s08); otherwise the plain part does (acl-a17, acl-c05, acl-sf11).
fn self_first(dsts: &[Alias]) -> bool {
    let pos = |f: fn(&Alias) -> bool| dsts.iter().position(f);
    dsts.iter()
        .all(|a| matches!(a, Alias::SelfNodes | Alias::Member))
        && match (
            pos(|a| matches!(a, Alias::SelfNodes)),
            pos(|a| matches!(a, Alias::Member)),
        ) {
            (Some(s), Some(m)) => s < m,
            _ => false,
        }
}

/// The reversed side of a companion capability grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reverse {
    /// The companion capability names, in name order.
    pub caps: Vec<&'static str>,
    /// The grant's destinations spelled as sources (autogroup:self excluded).
    pub srcs: Arc<[String]>,
    /// The destinations include autogroup:self: a source node also gets its own user's
    /// nodes as sources.
    pub self_dst: bool,
    /// The grant's sources written as addresses or hosts: a subnet router of part of them
    /// gets the companion on those prefixes, as a router of a destination gets the grant.
    pub src_literals: IpSet,
}

/// The capability the hosted service grants in the opposite direction next to a granted one.
pub(crate) fn companion_cap(name: &str) -> Option<&'static str> {
    match name {
        "tailscale.com/cap/drive" => Some("tailscale.com/cap/drive-sharer"),
        "tailscale.com/cap/relay" => Some("tailscale.com/cap/relay-target"),
        _ => None,
    }
}

/// The reversed companion of an app grant, if any of its capabilities has one.
fn reverse_of(
    r: &Resolver<'_>,
    app: &BTreeMap<String, Vec<Value>>,
    src_aliases: &[Alias],
    dsts: &[String],
) -> Option<Reverse> {
    let caps: Vec<&'static str> = app.keys().filter_map(|k| companion_cap(k)).collect();
    if caps.is_empty() {
        return None;
    }
    let mut spelled = std::collections::BTreeSet::new();
    let mut self_dst = false;
    for d in dsts {
        match r.parse(d) {
            Ok(Alias::SelfNodes) => self_dst = true,
            Ok(a) => {
                let (_, words, _) = r.source_spelled(&a);
                spelled.extend(words.iter().cloned());
            }
            Err(_) => {}
        }
    }
    Some(Reverse {
        caps,
        srcs: spelled.into_iter().collect::<Vec<_>>().into(),
        self_dst,
        src_literals: {
            let mut set = IpSet::new();
            for a in src_aliases {
                match a {
                    Alias::Host(h) => set.extend(&r.host_set(h)),
                    Alias::Addr(x) => set.extend(x),
                    _ => {}
                }
            }
            set
        },
    })
}

fn src_error(r: &Resolver<'_>, field: &str, a: &Alias) -> Result<(), PolicyError> {
    match a {
        Alias::Tag(t) if !r.tag_defined(t) => Err(invalid(format!("{field}=tag not found: {t:?}"))),
        Alias::Group(g) if !r.policy.groups.contains_key(g) => {
            Err(invalid(format!("{field}=group not found: {g:?}")))
        }
        // The internet is somewhere traffic goes (through an exit node), never where it
        // comes from; autogroup:self means "the destination's own user": it needs a
        // destination to be relative to. Worded as Go Headscale words the latter (aligned with
        // the hosted service).
        Alias::Internet | Alias::SelfNodes => {
            let name = if matches!(a, Alias::Internet) {
                "autogroup:internet"
            } else {
                "autogroup:self"
            };
            Err(invalid(format!(
                "{name:?} not valid on the {field} side of a rule"
            )))
        }
        Alias::NonRoot => Err(invalid(format!("{field}={NONROOT_ERR}"))),
        _ => Ok(()),
    }
}

const NONROOT_ERR: &str = "\"autogroup:nonroot\": autogroup:nonroot can only be used in SSH users";

/// What a network rule's destination may not be, whatever the rule: an undefined tag or
/// group, every address outside the tailnet (`autogroup:danger-all`), or the SSH-only
/// `autogroup:nonroot`. `d` is the destination as written (without its ports).
fn dst_error(r: &Resolver<'_>, d: &str, a: &Alias) -> Result<(), PolicyError> {
    match a {
        Alias::Tag(t) if !r.tag_defined(t) => {
            Err(invalid(format!("dst={d:?}: tag not found: {t:?}")))
        }
        Alias::Group(g) if !r.policy.groups.contains_key(g) => {
            Err(invalid(format!("dst={d:?}: group not found: {g:?}")))
        }
        Alias::DangerAll => Err(invalid("cannot use autogroup:danger-all as a dst")),
        Alias::NonRoot => Err(invalid(format!("dst={NONROOT_ERR}"))),
        _ => Ok(()),
    }
}

/// Many rules share a source list (`autogroup:member`, a group): resolve each list once.
pub(crate) type SrcCache = HashMap<Vec<String>, Sources>;

fn resolve_srcs_cached(
    r: &Resolver<'_>,
    cache: &mut SrcCache,
    srcs: &[String],
) -> Result<Sources, PolicyError> {
    if let Some(hit) = cache.get(srcs) {
        return Ok(hit.clone());
    }
    let res = resolve_srcs(r, srcs)?;
    r.record_list(srcs, &res);
    cache.insert(srcs.to_vec(), res.clone());
    Ok(res)
}

/// Aliases that stand for nodes by who they are (resolved to those nodes' addresses).
fn is_identity(a: &Alias) -> bool {
    matches!(
        a,
        Alias::User(_)
            | Alias::Group(_)
            | Alias::UserDomain(_)
            | Alias::Tag(_)
            | Alias::Member
            | Alias::Tagged
    )
}

/// Resolves a source list: identity aliases together (their nodes' addresses, each spelled
/// once), every other alias by its own spelling.
fn resolve_srcs(r: &Resolver<'_>, srcs: &[String]) -> Result<Sources, PolicyError> {
    let len = r.nodes.len();
    let mut aliases = Vec::new();
    let mut ident = NodeSet::new(len);
    let mut nodes = NodeSet::new(len);
    let mut others: Vec<(IpSet, Arc<[String]>)> = Vec::new();
    let mut others_reused = true;
    for s in srcs {
        let a = r.parse(s).map_err(invalid)?;
        src_error(r, "src", &a)?;
        if is_identity(&a) {
            ident.union_with(&r.identity_nodes(&a));
        } else {
            let (res, spelled, reused) = r.source_spelled(&a);
            others_reused &= reused;
            nodes.union_with(&res.nodes);
            others.push((res.ips, spelled));
        }
        aliases.push(a);
    }
    nodes.union_with(&ident);
    if others_reused && let (Some(c), Some((_, _, ips, spelled))) = (r.changed(), r.prev_list(srcs))
    {
        let new = &r.nodes[c.x];
        let was = c.old.is_some_and(|o| {
            aliases
                .iter()
                .any(|a| is_identity(a) && r.identity_member(a, o))
        });
        let is = ident.contains(c.x);
        let same_ips = c.old.is_some_and(|o| o.ips().eq(new.ips()));
        if (!was && !is) || (was && is && same_ips) {
            return Ok((aliases, nodes, ips.clone(), Arc::clone(spelled)));
        }
        // Only the changed node's addresses moved in or out: patch them in the previous
        // spelling, keeping an address another member or another alias still stands for.
        let mut words = spelled.to_vec();
        let mut ips = ips.clone();
        let held_by_other = |ip: std::net::IpAddr| {
            r.nodes
                .iter()
                .enumerate()
                .any(|(i, n)| i != c.x && ident.contains(i) && n.ips().any(|y| y == ip))
        };
        if was && let Some(old) = c.old {
            for ip in old.ips() {
                if held_by_other(ip) {
                    continue;
                }
                let word = ip.to_string();
                if !others.iter().any(|(_, sp)| sp.contains(&word))
                    && let Ok(i) = words.binary_search(&word)
                {
                    words.remove(i);
                }
                if !others.iter().any(|(set, _)| set.contains_ip(ip)) {
                    ips.subtract(&IpSet::from_ips([ip]));
                }
            }
        }
        if is {
            for ip in new.ips() {
                let word = ip.to_string();
                if let Err(i) = words.binary_search(&word) {
                    words.insert(i, word);
                }
                ips.add_ip(ip);
            }
        }
        return Ok((aliases, nodes, ips, words.into()));
    }
    let members = || ident.iter().flat_map(|i| r.nodes[i].ips());
    let mut ips = IpSet::from_ips(members());
    let mut words: Vec<String> = members().map(|ip| ip.to_string()).collect();
    for (set, spelled) in &others {
        ips.extend(set);
        words.extend(spelled.iter().cloned());
    }
    words.sort_unstable();
    words.dedup();
    Ok((aliases, nodes, ips, words.into()))
}

const SELF_ERR: &str =
    "autogroup:self can only be used with users, groups, or supported autogroups";

fn dst_kind(r: &Resolver<'_>, a: &Alias) -> DstKind {
    match a {
        Alias::Wildcard | Alias::DangerAll => DstKind::Any,
        Alias::Host(h) => DstKind::Addr(r.host_set(h)),
        Alias::Addr(s) => DstKind::Addr(s.clone()),
        Alias::Internet => DstKind::Internet,
        Alias::SelfNodes => DstKind::SelfNodes,
        other => DstKind::Nodes(r.identity_nodes(other)),
    }
}

/// Resolves the `acls` section.
pub(crate) fn compile_acls(
    r: &Resolver<'_>,
    p: &Policy,
    cache: &mut SrcCache,
) -> Result<Vec<CRule>, PolicyError> {
    let mut out = Vec::new();
    // With neither `acls` nor `grants` the hosted service allows everything.
    let default_allow = [crate::ast::Acl {
        action: "accept".into(),
        src: vec!["*".into()],
        dst: vec!["*:*".into()],
        ..Default::default()
    }];
    let acls: &[crate::ast::Acl] = match (&p.acls, &p.grants) {
        (Some(a), _) => a,
        (None, None) => &default_allow,
        (None, Some(_)) => &[],
    };
    for acl in acls {
        if acl.action != "accept" {
            return Err(invalid(format!("action={:?} is not supported", acl.action)));
        }
        let (src_aliases, src_nodes, src_ips, src_strings) =
            resolve_srcs_cached(r, cache, &acl.src)?;
        let protos = match &acl.proto {
            None => vec![],
            Some(Value::String(s)) => parse_proto(s).map_err(acl_proto_error)?,
            Some(Value::Number(n)) => parse_proto(&n.to_string()).map_err(acl_proto_error)?,
            Some(other) => return Err(invalid(format!("proto {other} is not valid"))),
        };
        let mut dsts = Vec::new();
        let mut dst_aliases = Vec::new();
        for d in &acl.dst {
            let (alias, ports) = split_alias_ports(d).map_err(invalid)?;
            let ports = parse_ports(ports).map_err(|e| invalid(format!("dst={d:?}: {e}")))?;
            check_ports_allowed(acl.proto.as_ref(), &protos, &ports)?;
            let a = r
                .parse(alias)
                .map_err(|e| invalid(format!("dst={alias:?}: {e}")))?;
            dst_error(r, alias, &a)?;
            if matches!(a, Alias::SelfNodes)
                && src_aliases.iter().any(|s| {
                    !matches!(
                        s,
                        Alias::User(_)
                            | Alias::UserDomain(_)
                            | Alias::Group(_)
                            | Alias::Member
                            | Alias::Wildcard
                    )
                })
            {
                return Err(invalid(SELF_ERR));
            }
            dsts.push(Dst {
                kind: dst_kind(r, &a),
                ports,
            });
            dst_aliases.push(a);
        }
        // No device meets a posture here: a posture-conditioned rule grants nothing.
        if crate::posture::gated(p, &acl.src_posture) {
            continue;
        }
        out.push(CRule {
            src_nodes,
            src_strings,
            src_ips,
            protos,
            dsts,
            caps: None,
            via: None,
            group: 0,
            self_first: self_first(&dst_aliases),
            reverse: None,
        });
    }
    Ok(out)
}

/// An `acls` entry's unknown `proto` name, in the hosted service's words for that field: the
/// protocol-name refusal (as a grant's `ip` words it) pointing at names as well as numbers.
fn acl_proto_error(e: String) -> PolicyError {
    if e.starts_with("proto name ") {
        invalid(format!("{e} or protocol name (icmp, tcp, udp, etc.)"))
    } else {
        invalid(e)
    }
}

/// Capability names in the tailscale.com domain a policy may grant.
const ALLOWED_TS_CAPS: &[&str] = &[
    "tailscale.com/cap/drive",
    "tailscale.com/cap/kubernetes",
    "tailscale.com/cap/webui",
    "tailscale.com/cap/relay",
    "tailscale.com/cap/tsidp",
    "tailscale.com/cap/golink",
    // Tailscale's setec and tailsql read these; their documentation grants them in the
    // policy file.
    "tailscale.com/cap/secrets",
    "tailscale.com/cap/tailsql",
];

/// Only TCP, UDP and SCTP have ports: another protocol's rule must use `*`.
fn check_ports_allowed(
    written: Option<&Value>,
    protos: &[u8],
    ports: &[Ports],
) -> Result<(), PolicyError> {
    const WITH_PORTS: [u8; 3] = [6, 17, 132];
    let all_ports = ports.iter().all(|p| *p == (0, 65535));
    if protos.is_empty() || all_ports || protos.iter().all(|p| WITH_PORTS.contains(p)) {
        return Ok(());
    }
    let shown = match written {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Err(invalid(format!(
        "protocol does not support specific ports: {shown:?}, only \"*\" is allowed"
    )))
}

/// One `ip` entry of a grant, read as Tailscale's `tailcfg.ProtoPortRange` reads it (and
/// worded as it words its refusals): `*`, `ports` or `proto:ports`, lower-cased, the ports
/// after the last colon and read first. `ports` is `*` or one port or range: a list
/// (`22,80`) is two entries. The protocol may be `*` (every protocol); an empty entry or an
/// empty protocol is refused.
pub(crate) fn parse_ip_cap(s: &str) -> Result<(Vec<u8>, Vec<Ports>), String> {
    if s.is_empty() {
        return Err("empty string".to_owned());
    }
    if s == "*" {
        return Ok((vec![], vec![(0, 65535)]));
    }
    let s = s.to_ascii_lowercase();
    let (proto, ports) = s.rsplit_once(':').unwrap_or(("*", &s));
    if proto.contains(',') {
        return Err("host cannot contain a comma (\",\")".to_owned());
    }
    let ports = match ports {
        "*" => vec![(0, 65535)],
        "" => return Err("invalid port list: \"\"".to_owned()),
        one => vec![parse_port_range(one)?],
    };
    match proto {
        "" => Err("empty protocol".to_owned()),
        "*" => Ok((vec![], ports)),
        p => Ok((parse_proto(p)?, ports)),
    }
}

/// `Some(canonical spelling)` when `d` is written as a prefix of length 0.
fn zero_length_prefix(d: &str) -> Option<String> {
    let net = d.trim().parse::<IpNet>().ok()?;
    (net.prefix_len() == 0).then(|| net.trunc().to_string())
}

/// Resolves the `grants` section.
pub(crate) fn compile_grants(
    r: &Resolver<'_>,
    p: &Policy,
    cache: &mut SrcCache,
) -> Result<Vec<CRule>, PolicyError> {
    let mut out = Vec::new();
    for g in p.grants.iter().flatten() {
        if g.ip.is_empty() && g.app.is_empty() {
            return Err(invalid("ip and app can not both be empty"));
        }
        for name in g.app.keys() {
            // A capability name is `{domain}/{path}`: not a URL, not a bare word, neither
            // part empty. (The hosted service words this like its tailscale.com-domain
            // refusal, without the name.)
            let (domain, path) = name.split_once('/').unwrap_or((name, ""));
            if name.contains("://") || domain.is_empty() || path.is_empty() {
                return Err(invalid(
                    "capability name must have the form {domain}/{path}",
                ));
            }
            let bare = name.split('?').next().unwrap_or(name);
            if (bare.starts_with("tailscale.com/") || bare.contains(".tailscale.com/"))
                && !ALLOWED_TS_CAPS.contains(&bare)
            {
                return Err(invalid(
                    "capability name must not be in the tailscale.com domain",
                ));
            }
        }
        let (src_aliases, src_nodes, src_ips, src_strings) = resolve_srcs_cached(r, cache, &g.src)?;
        let mut via = None;
        if !g.via.is_empty() {
            let mut tags = Vec::new();
            for v in &g.via {
                if !v.starts_with("tag:") {
                    return Err(invalid("via can only be a tag"));
                }
                if !r.tag_defined(v) {
                    return Err(invalid(format!("tag {v:?} not found")));
                }
                tags.push(v.clone());
            }
            via = Some(tags);
        }
        let mut kinds = Vec::new();
        let mut dst_aliases = Vec::new();
        for d in &g.dst {
            let a = r.parse(d).map_err(|e| invalid(format!("dst={d:?}: {e}")))?;
            dst_error(r, d, &a)?;
            match &a {
                Alias::Internet if !g.app.is_empty() => {
                    return Err(invalid("cannot use app grants with autogroup:internet"));
                }
                Alias::SelfNodes
                    if src_aliases.iter().any(|s| {
                        !matches!(
                            s,
                            Alias::User(_) | Alias::UserDomain(_) | Alias::Group(_) | Alias::Member
                        )
                    }) =>
                {
                    return Err(invalid(SELF_ERR));
                }
                // A prefix of length 0 (however its address is written: `0.0.0.0/0`,
                // `::/0`, `0::/0`) is every address of a family, which grants write as `*`
                // or `autogroup:internet`. Named in its canonical form.
                Alias::Addr(_) if zero_length_prefix(d).is_some() => {
                    let net = zero_length_prefix(d).unwrap_or_default();
                    return Err(invalid(format!(
                        "dst {net:?}: to allow all IP addresses, use \"*\" or \"autogroup:internet\""
                    )));
                }
                _ => {}
            }
            kinds.push(dst_kind(r, &a));
            dst_aliases.push(a);
        }
        let self_first = self_first(&dst_aliases);
        // One rule per protocol set, in order of first appearance.
        let mut by_proto: Vec<(Vec<u8>, Vec<Ports>)> = Vec::new();
        for ip in &g.ip {
            let (protos, ports) = parse_ip_cap(ip).map_err(invalid)?;
            if let Some((written, _)) = ip.rsplit_once(':') {
                check_ports_allowed(Some(&Value::String(written.to_owned())), &protos, &ports)?;
            }
            match by_proto.iter_mut().find(|(p, _)| *p == protos) {
                Some((_, ps)) => ps.extend(ports),
                None => by_proto.push((protos, ports)),
            }
        }
        // No device meets a posture here: a posture-conditioned grant grants nothing.
        if crate::posture::gated(p, &g.src_posture) {
            continue;
        }
        for (protos, ports) in by_proto {
            out.push(CRule {
                src_nodes: src_nodes.clone(),
                src_strings: src_strings.clone(),
                src_ips: src_ips.clone(),
                protos,
                dsts: kinds
                    .iter()
                    .map(|k| Dst {
                        kind: k.clone(),
                        ports: ports.clone(),
                    })
                    .collect(),
                caps: None,
                via: via.clone(),
                group: 0,
                self_first,
                reverse: None,
            });
        }
        if !g.app.is_empty() {
            out.push(CRule {
                src_nodes: src_nodes.clone(),
                src_strings,
                src_ips: src_ips.clone(),
                protos: vec![],
                dsts: kinds
                    .iter()
                    .map(|k| Dst {
                        kind: k.clone(),
                        ports: vec![],
                    })
                    .collect(),
                caps: Some(g.app.clone()),
                via: via.clone(),
                group: 0,
                self_first,
                reverse: reverse_of(r, &g.app, &src_aliases, &g.dst),
            });
        }
    }
    Ok(out)
}
