//! The engine's view of the tailnet: the few facts about users and nodes a policy needs.
//! The control plane maps its own model into these.

use hs_types::{NodeId, UserId};
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A user as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyUser {
    /// Database id.
    pub id: UserId,
    /// Login name (`odin`); a policy may write it as `odin@`.
    pub name: String,
    /// Email (`odin@example.com`); may be empty.
    pub email: String,
    /// The identity provider's groups from the user's last OIDC login (its `groups`
    /// claim). A policy group takes their members with an `idp-group:<name>` member.
    pub groups: Vec<String>,
}

/// How a policy group names an identity provider's group among its members:
/// `"group:eng": ["idp-group:engineering", "alice@example.com"]`.
pub const IDP_GROUP_PREFIX: &str = "idp-group:";

/// A node as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyNode {
    /// Database id.
    pub id: NodeId,
    /// Hostname / given name, used in reports.
    pub name: String,
    /// Tailscale IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// Tailscale IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// Owning user; `None` for tagged nodes.
    pub user: Option<UserId>,
    /// Tags (`tag:server`); non-empty means the node is tagged and not owned by a user.
    pub tags: Vec<String>,
    /// Routes the node announces.
    pub announced_routes: Vec<IpNet>,
    /// Routes approved for the node (by an admin or auto-approval).
    pub approved_routes: Vec<IpNet>,
    /// Subnet routes this node is currently primary for. Which of several routers serving the
    /// same prefix is primary is high-availability state the control plane decides (first
    /// online wins), not a policy decision, so it is an input here.
    pub primary_routes: Vec<IpNet>,
}

impl PolicyNode {
    /// True when the node is tagged.
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// The node's Tailscale addresses.
    pub fn ips(&self) -> impl Iterator<Item = std::net::IpAddr> + '_ {
        self.ipv4
            .map(std::net::IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(std::net::IpAddr::V6))
    }

    /// Approved and announced routes that are not exit routes (subnet routes in use).
    pub fn subnet_routes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.served_routes().filter(|r| r.prefix_len() != 0)
    }

    /// Approved and announced routes, exit routes included.
    pub fn served_routes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.approved_routes
            .iter()
            .filter(|r| self.announced_routes.contains(r))
            .copied()
    }

    /// True when the node serves an approved exit route.
    pub fn is_exit_node(&self) -> bool {
        self.served_routes().any(|r| r.prefix_len() == 0)
    }
}

/// Admin-console roles of users, which `autogroup:admin` and `autogroup:owner` name (in
/// `nodeAttrs` targets). They are tailnet state, not policy; Headscale has no roles, so by
/// default nobody holds one and those autogroups match no node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    /// Users with the admin role.
    pub admins: Vec<UserId>,
    /// The tailnet owner(s).
    pub owners: Vec<UserId>,
}
