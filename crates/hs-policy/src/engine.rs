//! The compiled policy: validated once against the tailnet, then asked per node for its packet
//! filter, visible peers, SSH policy and capabilities.

use crate::ast::Policy;
use crate::bitset::NodeSet;
use crate::error::PolicyError;
use crate::input::{PolicyNode, PolicyUser};
use crate::ipset::IpSet;
use crate::memo::{Changed, Memo};
use crate::resolve::Resolver;
use crate::rules::{CRule, DstKind, Reverse, compile_acls, compile_grants};
use hs_types::UserId;
use ipnet::IpNet;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// Application capabilities: name → values, as written in a grant's `app`.
pub type AppCaps = BTreeMap<String, Vec<Value>>;

/// One packet filter rule as the engine decided it (the wire form is `tailcfg::FilterRule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Source addresses in the hosted service's spelling (`*`, IPs, prefixes, `a-b` ranges).
    pub src_ips: Arc<[String]>,
    /// Destinations: address spelling and inclusive port range.
    pub dst_ports: Vec<(String, u16, u16)>,
    /// IP protocol numbers; empty means the client's default (TCP, UDP, ICMP).
    pub ip_proto: Vec<u8>,
    /// Capability grants (destination prefixes → capability map).
    pub cap_grant: Vec<(Vec<IpNet>, AppCaps)>,
}

/// A peer as a viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// Index of the peer in the node slice given to [`CompiledPolicy::compile`].
    pub index: usize,
    /// The addresses the viewer routes to the peer: its own addresses, its primary subnet
    /// routes and, for an exit node, its exit routes.
    pub allowed_ips: Vec<IpNet>,
    /// The subnet routes the peer is primary for *for this viewer*: the global primary
    /// (HA state, [`PolicyNode::primary_routes`]) unless a `via` grant steers the viewer to
    /// another router of the prefix. Only routes the viewer may use are listed.
    pub primary_routes: Vec<IpNet>,
}

/// A policy compiled against one tailnet.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) policy: Policy,
    pub(crate) users: Vec<PolicyUser>,
    pub(crate) nodes: Vec<PolicyNode>,
    pub(crate) rules: Vec<CRule>,
    /// Per rule, the nodes whose filter carries it through a destination other than
    /// autogroup:self.
    pub(crate) rule_dst_nodes: Vec<NodeSet>,
    /// Per rule, the nodes whose filter carries it through autogroup:self.
    pub(crate) rule_self_nodes: Vec<NodeSet>,
    pub(crate) ssh: Vec<crate::ssh::CSsh>,
    /// User → indices of the user's untagged nodes.
    pub(crate) by_user: HashMap<UserId, Vec<usize>>,
    /// Subnet routers per prefix (for per-viewer primaries under `via`).
    pub(crate) routers: crate::via::Routers,
    /// Some rule is a `via` grant.
    pub(crate) has_via: bool,
    /// User roles (see [`CompiledPolicy::set_roles`]).
    pub(crate) roles: crate::input::Roles,
    /// What this compile resolved, for the next one after a one-node change.
    pub(crate) memo: Arc<Memo>,
}

/// Whether two rules are listed as one in a filter: same sources, protocols and via tags.
fn same_group(a: &CRule, b: &CRule) -> bool {
    a.protos == b.protos
        && a.via == b.via
        && (Arc::ptr_eq(&a.src_strings, &b.src_strings) || a.src_strings == b.src_strings)
}

/// `autogroup:internet`'s addresses, computed once.
fn internet_set() -> &'static IpSet {
    static SET: std::sync::OnceLock<IpSet> = std::sync::OnceLock::new();
    SET.get_or_init(crate::alias::internet)
}

pub(crate) fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

impl CompiledPolicy {
    /// Validates `policy` against the tailnet and resolves every rule.
    ///
    /// ```
    /// use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser};
    /// use hs_types::{NodeId, UserId};
    /// let policy = Policy::parse(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#).unwrap();
    /// let users = vec![PolicyUser { id: UserId(1), name: "odin".into(), email: "odin@example.com".into(), groups: vec![] }];
    /// let node = |id: u64, ip: &str| PolicyNode {
    ///     id: NodeId(id), name: format!("n{id}"), ipv4: Some(ip.parse().unwrap()), ipv6: None,
    ///     user: Some(UserId(1)), tags: vec![], announced_routes: vec![], approved_routes: vec![],
    ///     primary_routes: vec![],
    /// };
    /// let nodes = vec![node(1, "100.64.0.1"), node(2, "100.64.0.2")];
    /// let compiled = CompiledPolicy::compile(&policy, &users, &nodes).unwrap();
    /// assert_eq!(compiled.filter(0)[0].dst_ports[0].0, "*");
    /// assert_eq!(compiled.peers(0).len(), 1);
    /// ```
    pub fn compile(
        policy: &Policy,
        users: &[PolicyUser],
        nodes: &[PolicyNode],
    ) -> Result<Self, PolicyError> {
        Self::compile_owned(policy, users, nodes.to_vec())
    }

    /// [`CompiledPolicy::compile`] taking the nodes by value: a caller that builds the node
    /// list only to compile it saves a copy of the tailnet (a tenth of a 10,000-node compile).
    pub fn compile_owned(
        policy: &Policy,
        users: &[PolicyUser],
        nodes: Vec<PolicyNode>,
    ) -> Result<Self, PolicyError> {
        Self::build(policy, users, nodes, None)
    }

    /// Compiles `policy` against `nodes`; with `prev`, `nodes` is `prev`'s tailnet (already
    /// validated against the same policy and users) with only node `x` replaced or appended,
    /// and what `prev` resolved is reused where `x` cannot have changed it.
    pub(crate) fn build(
        policy: &Policy,
        users: &[PolicyUser],
        mut nodes: Vec<PolicyNode>,
        prev: Option<(&CompiledPolicy, usize)>,
    ) -> Result<Self, PolicyError> {
        if prev.is_none() {
            crate::validate::validate(policy, users)?;
        }
        // Routes the policy auto-approves count as approved from here on (`prev`'s nodes
        // already carry theirs).
        let todo = match prev {
            Some((_, x)) => x..x + 1,
            None => 0..nodes.len(),
        };
        for i in todo {
            let extra = crate::routes::auto_approved(policy, users, &nodes, i);
            for route in extra {
                if !nodes[i].approved_routes.contains(&route) {
                    nodes[i].approved_routes.push(route);
                }
            }
        }
        let changed = prev.map(|(p, x)| {
            let c = Changed {
                x,
                old: p.nodes.get(x),
            };
            (&*p.memo, c)
        });
        let r = Resolver::for_compile(policy, users, &nodes, changed);
        // The hosted service orders grants ahead of acls.
        let mut cache = crate::rules::SrcCache::new();
        let mut rules = compile_grants(&r, policy, &mut cache)?;
        rules.extend(compile_acls(&r, policy, &mut cache)?);
        // Rules with the same sources and protocols are merged at the first one's position;
        // `via` grants are grouped apart from plain rules (and by their via tags). Rules are
        // few and sources long: compare sources only between rules that agree on the rest.
        let mut leaders: Vec<usize> = Vec::new();
        for i in 0..rules.len() {
            let g = if rules[i].caps.is_some() {
                i
            } else if let Some(&l) = leaders.iter().find(|&&l| same_group(&rules[l], &rules[i])) {
                l
            } else {
                leaders.push(i);
                i
            };
            rules[i].group = g;
        }
        let ssh = crate::ssh::compile_ssh(&r, policy)?;
        if prev.is_none() {
            crate::validate::validate_node_attrs(&r, policy)?;
        }
        let memo = Arc::new(r.into_memo());
        let mut c = Self {
            policy: policy.clone(),
            users: users.to_vec(),
            nodes,
            rules,
            rule_dst_nodes: Vec::new(),
            rule_self_nodes: Vec::new(),
            ssh,
            by_user: HashMap::new(),
            routers: crate::via::Routers::default(),
            has_via: false,
            roles: crate::input::Roles::default(),
            memo,
        };
        c.has_via = c.rules.iter().any(|r| r.via.is_some());
        if c.has_via {
            c.routers = crate::via::Routers::new(&c.nodes);
        }
        for (i, n) in c.nodes.iter().enumerate() {
            if let (false, Some(u)) = (n.is_tagged(), n.user) {
                c.by_user.entry(u).or_default().push(i);
            }
        }
        match prev {
            Some((p, x)) if p.rules.len() == c.rules.len() => c.patch_dst_nodes(p, x),
            _ => {
                c.rule_dst_nodes = c
                    .rules
                    .iter()
                    .map(|rule| c.dst_nodes_of(rule, false))
                    .collect();
                c.rule_self_nodes = c
                    .rules
                    .iter()
                    .map(|rule| c.dst_nodes_of(rule, true))
                    .collect();
            }
        }
        Ok(c)
    }

    /// Each rule's destination nodes after only node `x` changed since `prev`: whether a
    /// rule applies to a node depends on that node, and for autogroup:self on its user's
    /// nodes, so only `x` and the nodes of its old and new user are decided again.
    fn patch_dst_nodes(&mut self, prev: &CompiledPolicy, x: usize) {
        let len = self.nodes.len();
        let owner = |n: Option<&PolicyNode>| n.filter(|n| !n.is_tagged()).and_then(|n| n.user);
        let mut touched = vec![x];
        for u in [owner(prev.nodes.get(x)), owner(self.nodes.get(x))]
            .into_iter()
            .flatten()
        {
            touched.extend(self.by_user.get(&u).into_iter().flatten().copied());
        }
        touched.sort_unstable();
        touched.dedup();
        let patch = |old: &NodeSet, rule: &CRule, self_part: bool| {
            let mut set = old.patched(len, x, false);
            for &i in &touched {
                if self.rule_applies(rule, i, self_part) {
                    set.insert(i);
                } else {
                    set.remove(i);
                }
            }
            set
        };
        let dst = (self.rules.iter().zip(&prev.rule_dst_nodes))
            .map(|(rule, old)| patch(old, rule, false))
            .collect();
        let own = (self.rules.iter().zip(&prev.rule_self_nodes))
            .map(|(rule, old)| patch(old, rule, true))
            .collect();
        self.rule_dst_nodes = dst;
        self.rule_self_nodes = own;
    }

    /// The checks that depend on the tailnet as well as the policy: the SSH section's
    /// `user:*@domain` expressions must name the tailnet's domain, and the `tests` and
    /// `sshTests` must pass (a failure is [`PolicyError::TestsFailed`] naming each entry).
    ///
    /// Separate from [`CompiledPolicy::compile`] on purpose: they judge an operator's write
    /// (a `policy set`, a reload, `policy check`), as in Tailscale and Go Headscale. A
    /// recompile because a node or user changed must not run them, or deleting the last node
    /// an `sshTests` entry names would take the policy out of force. Whether `compile`
    /// accepts a policy depends on the policy alone.
    pub fn check_tests(&self) -> Result<(), PolicyError> {
        let r = Resolver::new(&self.policy, &self.users, &self.nodes);
        crate::ssh::check_domains(&r, &self.policy)?;
        crate::tests::run_tests(self)
    }

    /// [`CompiledPolicy::compile`] then [`CompiledPolicy::check_tests`]: what an operator's
    /// write of `policy` must pass.
    pub fn compile_and_test(
        policy: &Policy,
        users: &[PolicyUser],
        nodes: &[PolicyNode],
    ) -> Result<Self, PolicyError> {
        let c = Self::compile(policy, users, nodes)?;
        c.check_tests()?;
        Ok(c)
    }

    /// The nodes, in the order given to [`CompiledPolicy::compile`].
    pub fn nodes(&self) -> &[PolicyNode] {
        &self.nodes
    }

    /// Whether some rule is a `via` grant (which steers routes per viewer).
    pub fn has_via(&self) -> bool {
        self.has_via
    }

    /// The users given to [`CompiledPolicy::compile`].
    pub fn users(&self) -> &[PolicyUser] {
        &self.users
    }

    /// The parsed policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sets which users hold admin-console roles, for `autogroup:admin` and
    /// `autogroup:owner` in `nodeAttrs` targets (kept across [`CompiledPolicy::update_node`]).
    ///
    /// ```
    /// use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser, Roles};
    /// use hs_types::{NodeId, UserId};
    /// let policy = Policy::parse(r#"{"nodeAttrs": [{"target": ["autogroup:admin"], "attr": ["funnel"]}]}"#).unwrap();
    /// let users = vec![PolicyUser { id: UserId(1), name: "odin".into(), email: "odin@example.com".into(), groups: vec![] }];
    /// let node = PolicyNode {
    ///     id: NodeId(1), name: "n1".into(), ipv4: Some("100.64.0.1".parse().unwrap()), ipv6: None,
    ///     user: Some(UserId(1)), tags: vec![], announced_routes: vec![], approved_routes: vec![],
    ///     primary_routes: vec![],
    /// };
    /// let mut c = CompiledPolicy::compile(&policy, &users, &[node]).unwrap();
    /// assert!(!c.self_cap_map(0).contains_key("funnel"));
    /// c.set_roles(Roles { admins: vec![UserId(1)], owners: vec![] });
    /// assert!(c.self_cap_map(0).contains_key("funnel"));
    /// ```
    pub fn set_roles(&mut self, roles: crate::input::Roles) {
        self.roles = roles;
    }

    fn dst_nodes_of(&self, rule: &CRule, self_part: bool) -> NodeSet {
        let mut set = NodeSet::new(self.nodes.len());
        for i in 0..self.nodes.len() {
            if self.rule_applies(rule, i, self_part) {
                set.insert(i);
            }
        }
        set
    }

    fn via_ok(&self, rule: &CRule, n: usize) -> bool {
        match &rule.via {
            None => true,
            Some(tags) => self.nodes[n].tags.iter().any(|t| tags.contains(t)),
        }
    }

    /// Routes the node serves that a destination address set may reach through it.
    fn routes_overlap(&self, n: usize, set: &IpSet) -> bool {
        self.nodes[n].served_routes().any(|r| set.overlaps_net(&r))
    }

    /// Subnet routes (not exit routes) the node serves that overlap a destination.
    fn subnet_overlap(&self, n: usize, set: &IpSet) -> bool {
        self.nodes[n].subnet_routes().any(|r| set.overlaps_net(&r))
    }

    /// A node is a destination of literal addresses through its own addresses, the subnet
    /// routes it serves, or, for an exit node, when every address lies in the public
    /// internet (`autogroup:internet`'s set): traffic to tailnet and private addresses never
    /// leaves through an exit node.
    fn addr_hits(&self, n: usize, set: &IpSet) -> bool {
        let node = &self.nodes[n];
        node.ips().any(|ip| set.contains_ip(ip))
            || self.subnet_overlap(n, set)
            || (node.is_exit_node() && {
                let mut outside = set.clone();
                outside.subtract(internet_set());
                outside.is_empty()
            })
    }

    fn self_srcs(&self, rule: &CRule, n: usize) -> Option<IpSet> {
        let node = &self.nodes[n];
        if node.is_tagged() {
            return None;
        }
        let user = node.user?;
        let mut ips = IpSet::new();
        for &i in self.by_user.get(&user).map_or(&[][..], Vec::as_slice) {
            if rule.src_nodes.contains(i) {
                for ip in self.nodes[i].ips() {
                    ips.add_ip(ip);
                }
            }
        }
        (!ips.is_empty()).then_some(ips)
    }

    /// Whether [`Self::self_srcs`] is `Some`, without building the set: asked for every node
    /// of every autogroup:self rule at compile, where building it made compile quadratic in
    /// the size of a user's fleet.
    fn has_self_srcs(&self, rule: &CRule, n: usize) -> bool {
        let node = &self.nodes[n];
        match (node.is_tagged(), node.user) {
            (false, Some(user)) => self.by_user.get(&user).is_some_and(|v| {
                v.iter()
                    .any(|&i| rule.src_nodes.contains(i) && self.nodes[i].ips().next().is_some())
            }),
            _ => false,
        }
    }

    fn rule_applies(&self, rule: &CRule, n: usize, self_part: bool) -> bool {
        if !self.via_ok(rule, n) {
            return false;
        }
        rule.dsts.iter().any(|d| match &d.kind {
            DstKind::SelfNodes => self_part && self.has_self_srcs(rule, n),
            _ if self_part => false,
            DstKind::Any => true,
            DstKind::Nodes(s) => s.contains(n),
            // Capability grants reach a node through its own addresses, or through the
            // subnet routes it serves (not its exit routes). A `via` router of such a
            // subnet becomes the sources' peer but is sent no filter rule (grant-k12).
            DstKind::Addr(s) if rule.caps.is_some() => {
                self.nodes[n].ips().any(|ip| s.contains_ip(ip))
                    || if rule.via.is_some() {
                        self.routes_overlap(n, s)
                    } else {
                        self.subnet_overlap(n, s)
                    }
            }
            DstKind::Addr(s) => self.addr_hits(n, s),
            DstKind::Internet => self.nodes[n].is_exit_node(),
        })
    }

    /// The packet filter for node `n` (an index into [`CompiledPolicy::nodes`]).
    pub fn filter(&self, n: usize) -> Vec<Rule> {
        let node = &self.nodes[n];
        // (merge group, part: 1 plain, 2 autogroup:self, rule)
        let mut items: Vec<(usize, u8, Rule)> = Vec::new();
        // Companion capabilities granted back to the sources; they follow the forward grant
        // of the same rule (the sort below is stable).
        let mut reverse_items: Vec<(usize, u8, Rule)> = Vec::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            if let Some(rev) = &rule.reverse
                && rule.src_nodes.contains(n)
            {
                reverse_items.extend(
                    self.reverse_rules(rev, &rule.src_ips, n)
                        .into_iter()
                        .map(|r| (rule.group, 1, r)),
                );
            }
            if !self.rule_dst_nodes[ri].contains(n) && !self.rule_self_nodes[ri].contains(n) {
                continue;
            }
            // A rule whose sources resolve to nothing (an empty group) is not sent.
            if rule.src_strings.is_empty() {
                continue;
            }
            let mut cap_dsts: Vec<IpNet> = Vec::new();
            // The autogroup:self part of a capability grant: its sources are the node's own
            // user's, as for the self part of a network rule.
            let mut self_cap_dsts: Vec<IpNet> = Vec::new();
            let mut dst_ports = Vec::new();
            let mut self_ports = Vec::new();
            for d in &rule.dsts {
                let spelled: Vec<String> = match &d.kind {
                    DstKind::Any => {
                        cap_dsts.extend(node.ips().map(host_net));
                        vec!["*".to_string()]
                    }
                    DstKind::Nodes(s) if s.contains(n) => {
                        cap_dsts.extend(node.ips().map(host_net));
                        node.ips().map(|ip| ip.to_string()).collect()
                    }
                    // A capability is granted on the node's own addresses the destination
                    // covers (as for `*` and identity aliases), and, on a router of part of
                    // it, on the destination as written: a capability is the destination's
                    // to check, so no address beyond those goes with it.
                    DstKind::Addr(s) if rule.caps.is_some() => {
                        cap_dsts.extend(node.ips().filter(|ip| s.contains_ip(*ip)).map(host_net));
                        if rule.via.is_none() && self.subnet_overlap(n, s) {
                            cap_dsts.extend(s.to_prefixes());
                        }
                        continue;
                    }
                    DstKind::Addr(s) if self.addr_hits(n, s) => {
                        cap_dsts.extend(s.to_prefixes());
                        s.to_strings()
                    }
                    DstKind::Internet if node.is_exit_node() => {
                        crate::alias::internet().to_range_strings()
                    }
                    DstKind::SelfNodes => {
                        for p in &d.ports {
                            for ip in node.ips() {
                                self_ports.push((ip.to_string(), p.0, p.1));
                            }
                        }
                        if rule.caps.is_some() {
                            self_cap_dsts.extend(node.ips().map(host_net));
                        }
                        continue;
                    }
                    _ => continue,
                };
                for s in spelled {
                    for p in &d.ports {
                        dst_ports.push((s.clone(), p.0, p.1));
                    }
                }
            }
            if let Some(caps) = &rule.caps {
                // A node reached through the plain destinations gets the grant from every
                // source; one reached through autogroup:self gets it from its own user's
                // sources only. Both parts are sent when both apply.
                let mut parts: Vec<(Arc<[String]>, Vec<IpNet>)> = Vec::new();
                if !cap_dsts.is_empty() {
                    parts.push((rule.src_strings.clone(), cap_dsts));
                }
                if !self_cap_dsts.is_empty()
                    && let Some(srcs) = self.self_srcs(rule, n)
                {
                    parts.push((srcs.to_strings().into(), self_cap_dsts));
                }
                for (src_ips, mut dsts) in parts {
                    dsts.sort_unstable();
                    dsts.dedup();
                    items.push((
                        rule.group,
                        1,
                        Rule {
                            src_ips,
                            dst_ports: vec![],
                            ip_proto: vec![],
                            cap_grant: vec![(dsts, caps.clone())],
                        },
                    ));
                }
                continue;
            }
            if !dst_ports.is_empty() {
                items.push((
                    rule.group,
                    1,
                    Rule {
                        src_ips: rule.src_strings.clone(),
                        dst_ports,
                        ip_proto: rule.protos.clone(),
                        cap_grant: vec![],
                    },
                ));
            }
            if !self_ports.is_empty()
                && let Some(srcs) = self.self_srcs(rule, n)
            {
                // A rule whose only destination is autogroup:self keeps its own position;
                // the self part of a mixed rule follows the plain part unless the rule
                // lists self first among only user-scoped destinations.
                let self_only = rule
                    .dsts
                    .iter()
                    .all(|d| matches!(d.kind, DstKind::SelfNodes));
                let (key, part) = if self_only || rule.self_first {
                    (ri, 0)
                } else {
                    (rule.group, 2)
                };
                items.push((
                    key,
                    part,
                    Rule {
                        src_ips: srcs.to_strings().into(),
                        dst_ports: self_ports,
                        ip_proto: rule.protos.clone(),
                        cap_grant: vec![],
                    },
                ));
            }
        }
        items.extend(reverse_items);
        items.sort_by_key(|(group, part, _)| (*group, *part));
        let mut out: Vec<Rule> = Vec::new();
        for (_, _, r) in items {
            push_merged(&mut out, r);
        }
        out
    }
}

impl CompiledPolicy {
    /// The companion rules source node `n` of a drive/relay grant receives: the grant's
    /// destinations may use the companion capability towards `n`.
    fn reverse_rules(&self, rev: &Reverse, grant_srcs: &IpSet, n: usize) -> Vec<Rule> {
        let node = &self.nodes[n];
        let srcs: Arc<[String]> = match (rev.self_dst, node.user) {
            (true, Some(u)) if !node.is_tagged() => {
                let mut srcs: BTreeSet<String> = rev.srcs.iter().cloned().collect();
                for &i in self.by_user.get(&u).map_or(&[][..], Vec::as_slice) {
                    srcs.extend(self.nodes[i].ips().map(|ip| ip.to_string()));
                }
                srcs.into_iter().collect::<Vec<_>>().into()
            }
            // Shared by every source node: no copy.
            _ => rev.srcs.clone(),
        };
        // As for the forward grant: the node's own addresses the grant's sources cover
        // (a source written as the node's IPv4 address reverses onto that address only).
        let mut dsts: Vec<IpNet> = node
            .ips()
            .filter(|ip| grant_srcs.contains_ip(*ip))
            .map(host_net)
            .collect();
        dsts.extend(rev.src_literals.to_prefixes().into_iter().filter(|p| {
            node.subnet_routes()
                .any(|r| p.contains(&r) || r.contains(p))
        }));
        if srcs.is_empty() || dsts.is_empty() {
            return Vec::new();
        }
        rev.caps
            .iter()
            .map(|name| Rule {
                src_ips: srcs.clone(),
                dst_ports: vec![],
                ip_proto: vec![],
                cap_grant: vec![(
                    dsts.clone(),
                    AppCaps::from([(name.to_string(), Vec::new())]),
                )],
            })
            .collect()
    }
}

/// Appends `r`, merging it into an earlier rule with the same sources and protocols as the
/// hosted service does.
fn push_merged(out: &mut Vec<Rule>, r: Rule) {
    if let Some(prev) = out.iter_mut().find(|p| {
        r.cap_grant.is_empty()
            && p.cap_grant.is_empty()
            && (Arc::ptr_eq(&p.src_ips, &r.src_ips) || p.src_ips == r.src_ips)
            && p.ip_proto == r.ip_proto
    }) {
        prev.dst_ports.extend(r.dst_ports);
        return;
    }
    out.push(r);
}

impl CompiledPolicy {
    /// True when node `n`'s packet filter accepts a packet from `src` to one of `n`'s own
    /// addresses on `port` with IP protocol `proto` (an empty rule protocol list means TCP,
    /// UDP and ICMP, as clients read it).
    pub fn allows(&self, n: usize, src: IpAddr, proto: u8, port: u16) -> bool {
        let node = &self.nodes[n];
        self.filter(n).iter().any(|r| {
            r.cap_grant.is_empty()
                && (if r.ip_proto.is_empty() {
                    [6, 17, 1, 58].contains(&proto)
                } else {
                    r.ip_proto.contains(&proto)
                })
                && r.src_ips.iter().any(|s| {
                    s == "*" || crate::alias::parse_addr(s).is_some_and(|set| set.contains_ip(src))
                })
                && r.dst_ports.iter().any(|(ip, a, b)| {
                    *a <= port
                        && port <= *b
                        && (ip == "*"
                            || crate::alias::parse_addr(ip)
                                .is_some_and(|set| node.ips().any(|own| set.contains_ip(own))))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    //! Rules found by running generated policies through this engine and Go Headscale
    //! 0.29.3's (see docs/policy.md, "Checked against Go Headscale").
    use super::*;
    use crate::ast::Policy;
    use hs_types::NodeId;

    fn user(id: u64, name: &str) -> PolicyUser {
        PolicyUser {
            id: UserId(id),
            name: name.into(),
            email: format!("{name}@example.com"),
            groups: vec![],
        }
    }

    fn node(id: u64, user: Option<u64>, tags: &[&str], routes: &[&str]) -> PolicyNode {
        let routes: Vec<IpNet> = routes.iter().map(|r| r.parse().unwrap()).collect();
        PolicyNode {
            id: NodeId(id),
            name: format!("n{id}"),
            ipv4: Some(format!("100.64.{id}.{}", id * 7).parse().unwrap()),
            ipv6: Some(format!("fd7a:115c:a1e0::{id}:{id}").parse().unwrap()),
            user: user.map(UserId),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            announced_routes: routes.clone(),
            approved_routes: routes.clone(),
            primary_routes: routes,
        }
    }

    fn compile(policy: &str, nodes: &[PolicyNode]) -> CompiledPolicy {
        let users = vec![user(1, "odin"), user(2, "thor")];
        CompiledPolicy::compile(&Policy::parse(policy).unwrap(), &users, nodes).unwrap()
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn icmp_is_icmpv4() {
        let nodes = [node(1, Some(1), &[], &[]), node(2, None, &["tag:s"], &[])];
        let c = compile(
            r#"{"tagOwners": {"tag:s": ["odin@example.com"]},
                "acls": [{"action": "accept", "src": ["*"], "proto": "icmp", "dst": ["tag:s:*"]}]}"#,
            &nodes,
        );
        assert_eq!(c.filter(1)[0].ip_proto, vec![1]);
    }

    #[test]
    fn capability_to_an_address_goes_with_the_nodes_own_addresses() {
        // n1 is inside 100.64.0.0/16 (its IPv4 only); n2 routes 10.1.0.0/16, which the
        // grant names: the router gets the capability on the prefix as written.
        let nodes = [
            node(1, None, &["tag:s"], &[]),
            node(2, None, &["tag:r"], &["10.1.0.0/16"]),
            node(3, Some(1), &[], &[]),
        ];
        let c = compile(
            r#"{"tagOwners": {"tag:s": ["odin@example.com"], "tag:r": ["odin@example.com"]},
                "grants": [{"src": ["autogroup:member"], "dst": ["100.64.1.0/24", "10.1.0.0/16"],
                            "app": {"example.com/cap/x": [{}]}}]}"#,
            &nodes,
        );
        let f = c.filter(0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].cap_grant[0].0, nets(&["100.64.1.7/32"]));
        let f = c.filter(1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].cap_grant[0].0, nets(&["10.1.0.0/16"]));
        assert!(c.filter(2).is_empty());
    }

    #[test]
    fn capability_through_autogroup_self_comes_from_the_own_user_only() {
        // odin's n1 is reached only through autogroup:self: thor's n3 is no source there;
        // the tagged n2 is reached through autogroup:tagged from every member.
        let nodes = [
            node(1, Some(1), &[], &[]),
            node(2, None, &["tag:s"], &[]),
            node(3, Some(2), &[], &[]),
        ];
        let c = compile(
            r#"{"tagOwners": {"tag:s": ["odin@example.com"]},
                "grants": [{"src": ["autogroup:member"], "dst": ["autogroup:tagged", "autogroup:self"],
                            "app": {"example.com/cap/x": [{}]}}]}"#,
            &nodes,
        );
        let own: Vec<String> = nodes[0].ips().map(|ip| ip.to_string()).collect();
        let f = c.filter(0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].src_ips.to_vec(), own);
        let f = c.filter(1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].src_ips.len(), 4);
    }

    #[test]
    fn companion_capability_lands_on_the_source_addresses_the_grant_names() {
        // The grant's source is n1's IPv4 address: the relay-target companion sent back to
        // n1 is on that address only.
        let nodes = [node(1, Some(1), &[], &[]), node(2, None, &["tag:s"], &[])];
        let c = compile(
            r#"{"tagOwners": {"tag:s": ["odin@example.com"]},
                "grants": [{"src": ["100.64.1.7"], "dst": ["tag:s"],
                            "app": {"tailscale.com/cap/relay": []}}]}"#,
            &nodes,
        );
        let back: Vec<_> = c
            .filter(0)
            .into_iter()
            .filter(|r| {
                r.cap_grant
                    .iter()
                    .any(|(_, m)| m.contains_key("tailscale.com/cap/relay-target"))
            })
            .collect();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].cap_grant[0].0, nets(&["100.64.1.7/32"]));
    }

    #[test]
    fn exit_node_is_a_destination_of_internet_addresses_only() {
        let nodes = [
            node(1, Some(1), &[], &[]),
            node(2, None, &["tag:e"], &["0.0.0.0/0", "::/0"]),
        ];
        let c = compile(
            r#"{"tagOwners": {"tag:e": ["odin@example.com"]},
                "acls": [{"action": "accept", "src": ["autogroup:member"],
                          "dst": ["8.8.8.0/24:53", "10.1.0.0/16:22", "100.64.1.7:22"]}]}"#,
            &nodes,
        );
        let f = c.filter(1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dst_ports, vec![("8.8.8.0/24".to_string(), 53, 53)]);
    }

    #[test]
    fn subnet_router_of_a_source_gets_the_companion_on_the_source_prefix() {
        // The drive grant comes from 10.1.0.0/16, which n1 routes: the drive-sharer
        // companion goes to n1 on that prefix.
        let nodes = [
            node(1, None, &["tag:r"], &["10.1.0.0/16"]),
            node(2, None, &["tag:s"], &[]),
        ];
        let c = compile(
            r#"{"tagOwners": {"tag:r": ["odin@example.com"], "tag:s": ["odin@example.com"]},
                "grants": [{"src": ["10.1.0.0/16"], "dst": ["tag:s"],
                            "app": {"tailscale.com/cap/drive": []}}]}"#,
            &nodes,
        );
        let f = c.filter(0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].cap_grant[0].0, nets(&["10.1.0.0/16"]));
        assert!(
            f[0].cap_grant[0]
                .1
                .contains_key("tailscale.com/cap/drive-sharer")
        );
    }
}
