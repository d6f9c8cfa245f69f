//! Alias resolution against the tailnet: which nodes and which addresses a name stands for.

use crate::alias::{Alias, parse_addr, parse_alias};
use crate::ast::Policy;
use crate::bitset::NodeSet;
use crate::input::{PolicyNode, PolicyUser};
use crate::ipset::IpSet;
use crate::memo::{Changed, Memo};
use std::cell::RefCell;
use std::sync::Arc;

/// What an alias resolves to: member nodes plus the address set it denotes.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// Nodes whose addresses are in the set (or, for identity aliases, the identity's nodes).
    pub(crate) nodes: NodeSet,
    /// The addresses.
    pub(crate) ips: IpSet,
}

/// Looks aliases up in a policy and a tailnet.
pub(crate) struct Resolver<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) users: &'a [PolicyUser],
    pub(crate) nodes: &'a [PolicyNode],
    /// `*`'s addresses, built when first asked (most resolvers never are).
    wildcard: std::sync::OnceLock<IpSet>,
    /// The policy's IP sets, resolved (validation refuses a policy whose sets do not resolve).
    ipsets: std::collections::BTreeMap<String, IpSet>,
    /// The previous compile's resolutions and the node that changed since.
    prev: Option<(&'a Memo, Changed<'a>)>,
    /// This compile's resolutions, recorded for the next one (compiles only).
    record: Option<RefCell<Memo>>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(
        policy: &'a Policy,
        users: &'a [PolicyUser],
        nodes: &'a [PolicyNode],
    ) -> Self {
        Self {
            policy,
            users,
            nodes,
            wildcard: std::sync::OnceLock::new(),
            ipsets: crate::ipsets::resolve_all(policy).unwrap_or_default(),
            prev: None,
            record: None,
        }
    }

    /// A resolver for a compile: it records what it resolves, and with `prev` reuses the
    /// previous compile's resolutions, knowing that only `prev.1` changed since.
    pub(crate) fn for_compile(
        policy: &'a Policy,
        users: &'a [PolicyUser],
        nodes: &'a [PolicyNode],
        prev: Option<(&'a Memo, Changed<'a>)>,
    ) -> Self {
        Self {
            prev,
            record: Some(RefCell::new(Memo::default())),
            ..Self::new(policy, users, nodes)
        }
    }

    /// What this resolver recorded (empty unless made by [`Resolver::for_compile`]).
    pub(crate) fn into_memo(self) -> Memo {
        self.record.map(RefCell::into_inner).unwrap_or_default()
    }

    /// The previous compile's source-list resolution, when the list must be resolved again
    /// only if one of its aliases was.
    pub(crate) fn prev_list(&self, srcs: &[String]) -> Option<&'a crate::memo::Sources> {
        self.prev.and_then(|(m, _)| m.lists.get(srcs))
    }

    /// The node that changed since the previous compile, when there is one.
    pub(crate) fn changed(&self) -> Option<Changed<'a>> {
        self.prev.map(|(_, c)| c)
    }

    pub(crate) fn record_list(&self, srcs: &[String], res: &crate::memo::Sources) {
        if let Some(rec) = &self.record {
            rec.borrow_mut().lists.insert(srcs.to_vec(), res.clone());
        }
    }

    /// `*`'s addresses: the tailnet's ranges and every subnet route in it.
    pub(crate) fn wildcard(&self) -> &IpSet {
        self.wildcard.get_or_init(|| {
            crate::alias::tailnet_wildcard(self.nodes.iter().flat_map(|n| n.subnet_routes()))
        })
    }

    pub(crate) fn parse(&self, s: &str) -> Result<Alias, String> {
        // The hosted service ignores surrounding whitespace in aliases.
        let s = s.trim();
        // An IP set stands for its addresses, as a written prefix does.
        if s.starts_with(crate::ipsets::PREFIX) {
            return match self.ipsets.get(s) {
                Some(set) => Ok(Alias::Addr(set.clone())),
                None => Err(format!("IP set {s:?} not found")),
            };
        }
        parse_alias(s, |h| self.policy.hosts.contains_key(h))
    }

    pub(crate) fn tag_defined(&self, tag: &str) -> bool {
        self.policy.tag_owners.contains_key(tag)
    }

    /// True when `token` (an email, `name@`, or a group member `idp-group:<name>`) names `u`.
    pub(crate) fn user_matches(token: &str, u: &PolicyUser) -> bool {
        if let Some(g) = token.strip_prefix(crate::input::IDP_GROUP_PREFIX) {
            return u.groups.iter().any(|x| x == g);
        }
        if let Some(name) = token.strip_suffix('@') {
            return u.name == name;
        }
        (!u.email.is_empty() && u.email.eq_ignore_ascii_case(token)) || u.name == token
    }

    fn user_nodes(&self, token: &str, set: &mut NodeSet) {
        let ids: Vec<_> = self
            .users
            .iter()
            .filter(|u| Self::user_matches(token, u))
            .map(|u| u.id)
            .collect();
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.is_tagged() && n.user.is_some_and(|u| ids.contains(&u)) {
                set.insert(i);
            }
        }
    }

    /// Group members (users only: the hosted service refuses nested groups at validation).
    pub(crate) fn group_members(&self, g: &str) -> &[String] {
        self.policy
            .groups
            .get(g)
            .and_then(|m| m.as_deref())
            .unwrap_or(&[])
    }

    pub(crate) fn host_set(&self, h: &str) -> IpSet {
        self.policy
            .hosts
            .get(h)
            .and_then(|v| parse_addr(v.trim()))
            .unwrap_or_default()
    }

    fn node_ips(&self, set: &NodeSet) -> IpSet {
        IpSet::from_ips(set.iter().flat_map(|i| self.nodes[i].ips()))
    }

    fn nodes_in(&self, ips: &IpSet) -> NodeSet {
        let mut set = NodeSet::new(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            // A subnet router stands for the addresses behind it.
            if n.ips().any(|ip| ips.contains_ip(ip))
                || n.subnet_routes().any(|r| ips.overlaps_net(&r))
            {
                set.insert(i);
            }
        }
        set
    }

    /// The nodes an identity alias names (users, groups, tags, member/tagged).
    pub(crate) fn identity_nodes(&self, a: &Alias) -> NodeSet {
        let set = match self.prev.and_then(|(m, c)| Some((m.identity.get(a)?, c))) {
            Some((old, c)) => old.patched(
                self.nodes.len(),
                c.x,
                self.identity_member(a, &self.nodes[c.x]),
            ),
            None => self.identity_nodes_of_all(a),
        };
        if let Some(rec) = &self.record {
            rec.borrow_mut().identity.insert(a.clone(), set.clone());
        }
        set
    }

    /// Whether `n` is one of [`Resolver::identity_nodes`]`(a)`, decided for that node alone.
    pub(crate) fn identity_member(&self, a: &Alias, n: &PolicyNode) -> bool {
        let owner = || {
            n.user
                .filter(|_| !n.is_tagged())
                .and_then(|id| self.users.iter().find(|u| u.id == id))
        };
        match a {
            Alias::User(t) => owner().is_some_and(|u| Self::user_matches(t, u)),
            Alias::Group(g) => owner().is_some_and(|u| {
                self.group_members(g)
                    .iter()
                    .any(|m| Self::user_matches(m, u))
            }),
            Alias::UserDomain(d) => owner().is_some_and(|owner| {
                self.users.iter().any(|u| {
                    u.email
                        .rsplit_once('@')
                        .is_some_and(|(_, x)| x.eq_ignore_ascii_case(d))
                        && Self::user_matches(&u.email, owner)
                })
            }),
            Alias::Tag(t) => n.tags.iter().any(|x| x == t),
            Alias::Member => !n.is_tagged() && n.user.is_some(),
            Alias::Tagged => n.is_tagged(),
            Alias::Wildcard | Alias::DangerAll => true,
            _ => false,
        }
    }

    /// Whether `n` is one of [`Resolver::source`]`(a).nodes`, decided for that node alone.
    pub(crate) fn source_member(&self, a: &Alias, n: &PolicyNode) -> bool {
        let inside = |ips: &IpSet| {
            n.ips().any(|ip| ips.contains_ip(ip)) || n.subnet_routes().any(|r| ips.overlaps_net(&r))
        };
        match a {
            Alias::Host(h) => inside(&self.host_set(h)),
            Alias::Addr(ips) => inside(ips),
            Alias::Internet => false,
            other => self.identity_member(other, n),
        }
    }

    /// [`Resolver::source`] and [`Resolver::spell_source`] together, reusing the previous
    /// compile's answer when the changed node cannot have changed it. The flag says whether
    /// it was reused (the addresses and spelling are then the previous ones).
    pub(crate) fn source_spelled(&self, a: &Alias) -> (Resolved, Arc<[String]>, bool) {
        let reused = self.prev.and_then(|(m, c)| {
            let (old, spelled) = m.source.get(a)?;
            let new = &self.nodes[c.x];
            let was = c.old.is_some_and(|o| self.source_member(a, o));
            let is = self.source_member(a, new);
            let same = match a {
                // `*` is spelled with every subnet route of the tailnet.
                Alias::Wildcard => c
                    .old
                    .map_or_else(Vec::new, |o| o.subnet_routes().collect::<Vec<_>>())
                    .eq(&new.subnet_routes().collect::<Vec<_>>()),
                Alias::Host(_) | Alias::Addr(_) | Alias::Internet | Alias::DangerAll => true,
                // Identity aliases are spelled with their members' addresses.
                _ => match (was, is, c.old) {
                    (false, false, _) => true,
                    (true, true, Some(o)) => o.ips().eq(new.ips()),
                    _ => false,
                },
            };
            same.then(|| {
                let res = Resolved {
                    nodes: old.nodes.patched(self.nodes.len(), c.x, is),
                    ips: old.ips.clone(),
                };
                (res, Arc::clone(spelled))
            })
        });
        let (res, spelled, hit) = match reused {
            Some((res, spelled)) => (res, spelled, true),
            None => {
                let res = self.source(a);
                let spelled: Arc<[String]> = self.spell_source(a, &res).into();
                (res, spelled, false)
            }
        };
        if let Some(rec) = &self.record {
            rec.borrow_mut()
                .source
                .insert(a.clone(), (res.clone(), Arc::clone(&spelled)));
        }
        (res, spelled, hit)
    }

    /// [`Resolver::identity_nodes`] computed over the whole tailnet.
    fn identity_nodes_of_all(&self, a: &Alias) -> NodeSet {
        let mut set = NodeSet::new(self.nodes.len());
        match a {
            Alias::User(u) => self.user_nodes(u, &mut set),
            Alias::Group(g) => {
                for m in self.group_members(g) {
                    self.user_nodes(m, &mut set);
                }
            }
            Alias::UserDomain(d) => {
                for u in self.users {
                    if u.email
                        .rsplit_once('@')
                        .is_some_and(|(_, x)| x.eq_ignore_ascii_case(d))
                    {
                        self.user_nodes(&u.email, &mut set);
                    }
                }
            }
            Alias::Tag(t) => {
                for (i, n) in self.nodes.iter().enumerate() {
                    if n.tags.iter().any(|x| x == t) {
                        set.insert(i);
                    }
                }
            }
            Alias::Member => {
                for (i, n) in self.nodes.iter().enumerate() {
                    if !n.is_tagged() && n.user.is_some() {
                        set.insert(i);
                    }
                }
            }
            Alias::Tagged => {
                for (i, n) in self.nodes.iter().enumerate() {
                    if n.is_tagged() {
                        set.insert(i);
                    }
                }
            }
            Alias::Wildcard | Alias::DangerAll => set = NodeSet::full(self.nodes.len()),
            _ => {}
        }
        set
    }

    /// How the hosted service spells a source alias: the union of these lists, de-duplicated,
    /// is a rule's `SrcIPs` (overlapping entries from different aliases are kept apart).
    pub(crate) fn spell_source(&self, a: &Alias, res: &Resolved) -> Vec<String> {
        match a {
            Alias::DangerAll => vec!["*".to_string()],
            Alias::Wildcard => {
                let mut out = crate::alias::tailnet_wildcard(std::iter::empty()).to_strings();
                for n in self.nodes {
                    for r in n.subnet_routes() {
                        out.push(r.to_string());
                    }
                }
                out
            }
            Alias::Internet => res.ips.to_range_strings(),
            Alias::Host(_) | Alias::Addr(_) => res.ips.to_strings(),
            _ => res
                .nodes
                .iter()
                .flat_map(|i| self.nodes[i].ips().map(|ip| ip.to_string()))
                .collect(),
        }
    }

    /// Resolves a source alias.
    pub(crate) fn source(&self, a: &Alias) -> Resolved {
        match a {
            Alias::Wildcard => Resolved {
                nodes: NodeSet::full(self.nodes.len()),
                ips: self.wildcard().clone(),
            },
            Alias::DangerAll => {
                let mut ips = IpSet::new();
                if let Some(all) = parse_addr("0.0.0.0/0") {
                    ips.extend(&all);
                }
                if let Some(all) = parse_addr("::/0") {
                    ips.extend(&all);
                }
                Resolved {
                    nodes: NodeSet::full(self.nodes.len()),
                    ips,
                }
            }
            Alias::Host(h) => {
                let ips = self.host_set(h);
                Resolved {
                    nodes: self.nodes_in(&ips),
                    ips,
                }
            }
            Alias::Addr(ips) => Resolved {
                nodes: self.nodes_in(ips),
                ips: ips.clone(),
            },
            Alias::Internet => {
                let ips = crate::alias::internet();
                Resolved {
                    nodes: NodeSet::new(self.nodes.len()),
                    ips,
                }
            }
            other => {
                let nodes = self.identity_nodes(other);
                let ips = self.node_ips(&nodes);
                Resolved { nodes, ips }
            }
        }
    }
}
