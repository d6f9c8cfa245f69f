//! One node as the snapshot holds it: the stored [`Node`] plus the runtime facts that are not
//! in the database (online state, home DERP region) and the derived route facts the mapper
//! needs (announced routes, the prefixes this node is primary for).

use ipnet::IpNet;

use hs_types::model::{Hostinfo, Node};

/// A node in the snapshot. Entries are immutable and shared (`Arc`); a write replaces the
/// entry, so the mapper can cache anything derived from one entry by pointer identity.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeEntry {
    /// The node as stored.
    pub node: Node,
    /// Whether the node holds at least one map session right now.
    pub online: bool,
    /// Home DERP region (`Hostinfo.NetInfo.PreferredDERP`, or the last endpoint update);
    /// 0 when unknown.
    pub home_derp: i32,
    /// Routes the client announces (`Hostinfo.RoutableIPs`), sorted, deduplicated.
    pub announced_routes: Vec<IpNet>,
    /// Subnet prefixes for which this node is the elected primary router, sorted.
    pub primary_routes: Vec<IpNet>,
    /// The snapshot version in which this entry last changed.
    pub changed_in: u64,
    /// The client logged out (`RegisterRequest` with a past expiry): the node is kept but
    /// hidden from every peer until it logs in again.
    pub logged_out: bool,
    /// Failed its last HA health probe (a subnet router that did not answer a ping in
    /// time); runtime only, cleared when the node answers or reconnects. An unhealthy
    /// router loses its primary routes to a healthy one when there is one.
    pub unhealthy: bool,
}

impl NodeEntry {
    /// A fresh entry for `node`, offline, with facts read from its Hostinfo.
    pub fn new(node: Node) -> Self {
        let home_derp = preferred_derp(node.hostinfo.as_ref());
        let announced_routes = routable_ips(node.hostinfo.as_ref());
        Self {
            node,
            online: false,
            home_derp,
            announced_routes,
            primary_routes: Vec::new(),
            changed_in: 0,
            logged_out: false,
            unhealthy: false,
        }
    }

    /// Routes that are both announced and approved: the ones the node may serve.
    pub fn served_routes(&self) -> impl Iterator<Item = &IpNet> {
        self.announced_routes
            .iter()
            .filter(|r| self.node.approved_routes.contains(r))
    }

    /// Served exit routes (`0.0.0.0/0`, `::/0`): not subject to primary election.
    pub fn exit_routes(&self) -> impl Iterator<Item = &IpNet> {
        self.served_routes().filter(|r| is_exit_route(r))
    }

    /// The node's `AllowedIPs` as a viewer allowed every route sees them: its own
    /// addresses, the subnet routes it is primary for and its served exit routes, sorted.
    pub fn allowed_ips(&self) -> Vec<IpNet> {
        self.allowed_ips_with(&self.offered_routes())
    }

    /// The routes this node offers its peers: the subnet routes it is primary for and its
    /// served exit routes, sorted. A viewer gets the subset its policy lets it use.
    pub fn offered_routes(&self) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = self.primary_routes.clone();
        v.extend(self.exit_routes().copied());
        v.sort();
        v.dedup();
        v
    }

    /// The node's `AllowedIPs` for a viewer that may use `routes` (a subset of
    /// [`NodeEntry::offered_routes`]): its own addresses plus those routes, sorted.
    pub fn allowed_ips_with(&self, routes: &[IpNet]) -> Vec<IpNet> {
        let mut v = self.node.prefixes();
        v.extend(routes.iter().copied());
        v.sort();
        v.dedup();
        v
    }
}

/// Whether `r` is an exit route (a default route of either family).
pub fn is_exit_route(r: &IpNet) -> bool {
    r.prefix_len() == 0
}

/// `Hostinfo.NetInfo.PreferredDERP`, 0 when absent or malformed.
pub fn preferred_derp(hostinfo: Option<&Hostinfo>) -> i32 {
    hostinfo
        .and_then(|h| h.get("NetInfo"))
        .and_then(|n| n.get("PreferredDERP"))
        .and_then(serde_json::Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

/// `Hostinfo.RoutableIPs`, sorted and deduplicated; unparsable entries are skipped (the
/// control plane validates announcements before they get here).
pub fn routable_ips(hostinfo: Option<&Hostinfo>) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = hostinfo
        .and_then(|h| h.get("RoutableIPs"))
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str()?.parse::<IpNet>().ok())
                .map(|p| p.trunc())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}
