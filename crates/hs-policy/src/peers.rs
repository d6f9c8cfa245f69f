//! Peer visibility: which nodes a viewer sees and how each is shown to it (its addresses,
//! and the routes the viewer may use through it, with per-viewer primaries under `via`).

use crate::bitset::NodeSet;
use crate::engine::{CompiledPolicy, PeerView, host_net};
use crate::rules::DstKind;
use ipnet::IpNet;

impl CompiledPolicy {
    /// True when `a` and `b` see each other as peers.
    pub fn can_see(&self, a: usize, b: usize) -> bool {
        a != b && self.peer_set(a).contains(b)
    }

    /// The peers node `n` sees, in node order.
    pub fn peers(&self, n: usize) -> Vec<PeerView> {
        self.peer_set(n)
            .iter()
            .map(|i| self.shown_peer(n, i))
            .collect()
    }

    /// How peer `i` is shown to `viewer` (which must see it): [`CompiledPolicy::peer_view`],
    /// shown by its IPv6 address only when either side has the `disable-ipv4` attribute.
    pub fn shown_peer(&self, viewer: usize, i: usize) -> PeerView {
        let attr_used = self
            .policy
            .node_attrs
            .iter()
            .any(|na| na.attr.iter().any(|a| a == "disable-ipv4"));
        let has_attr = |i: usize| attr_used && self.self_cap_map(i).contains_key("disable-ipv4");
        let mut v = self.peer_view(viewer, i);
        if has_attr(viewer) || has_attr(i) {
            v.allowed_ips
                .retain(|a| !(a.addr().is_ipv4() && a.prefix_len() == 32));
        }
        v
    }

    /// Which nodes `n` sees, as a bit set over node indices: a few hundred bytes however
    /// many peers, where [`CompiledPolicy::peers`] allocates a view per peer. Holders of
    /// every viewer's peers (a whole tailnet's worth) keep these.
    pub fn peer_set(&self, n: usize) -> NodeSet {
        let mut set = NodeSet::new(self.nodes.len());
        let me = &self.nodes[n];
        let mine = |i: usize| {
            let m = &self.nodes[i];
            !me.is_tagged() && me.user.is_some() && !m.is_tagged() && m.user == me.user
        };
        for (ri, rule) in self.rules.iter().enumerate() {
            let dst = &self.rule_dst_nodes[ri];
            if rule.src_nodes.contains(n) {
                set.union_with(dst);
            }
            if dst.contains(n) {
                set.union_with(&rule.src_nodes);
            }
            // autogroup:self links only nodes of the same user.
            let selfd = &self.rule_self_nodes[ri];
            if !selfd.is_empty() && !me.is_tagged() {
                if rule.src_nodes.contains(n) {
                    selfd
                        .iter()
                        .filter(|&i| mine(i))
                        .for_each(|i| set.insert(i));
                }
                if selfd.contains(n) {
                    rule.src_nodes
                        .iter()
                        .filter(|&i| mine(i))
                        .for_each(|i| set.insert(i));
                }
            }
        }
        set.remove(n);
        set
    }

    /// True when some rule lets `viewer` reach `route` through router `p`.
    fn route_visible(&self, viewer: usize, p: usize, route: &IpNet) -> bool {
        let exit = route.prefix_len() == 0;
        // A standby router of the same prefix is shown the primary's route (high
        // availability: it must know where the prefix is served).
        if !exit && self.nodes[viewer].subnet_routes().any(|r| r == *route) {
            return true;
        }
        let internet = crate::alias::internet();
        self.rules.iter().enumerate().any(|(ri, rule)| {
            // Traffic from the route towards the viewer needs the route too.
            let inbound = self.rule_dst_nodes[ri].contains(viewer)
                && rule.src_nodes.contains(p)
                && if exit {
                    rule.src_ips.overlaps(&internet)
                } else {
                    rule.src_ips.overlaps_net(route)
                };
            inbound
                || rule.src_nodes.contains(viewer)
                    && self.rule_dst_nodes[ri].contains(p)
                    && rule.dsts.iter().any(|d| match &d.kind {
                        DstKind::Any => true,
                        DstKind::Addr(s) => !exit && s.overlaps_net(route),
                        DstKind::Internet => exit,
                        _ => false,
                    })
        })
    }

    /// How node `i` appears to `viewer`: routes show only where the viewer may use them.
    pub fn peer_view(&self, viewer: usize, i: usize) -> PeerView {
        let node = &self.nodes[i];
        let mut allowed: Vec<IpNet> = node.ips().map(host_net).collect();
        let primary_routes: Vec<IpNet> = node
            .subnet_routes()
            .filter(|r| match self.via_router(viewer, r) {
                Some(router) => router == i,
                None => node.primary_routes.contains(r),
            })
            .filter(|r| self.route_visible(viewer, i, r))
            .collect();
        allowed.extend(&primary_routes);
        allowed.extend(
            node.served_routes()
                .filter(|r| r.prefix_len() == 0 && self.route_visible(viewer, i, r)),
        );
        PeerView {
            index: i,
            allowed_ips: allowed,
            primary_routes,
        }
    }
}
