//! Route auto-approval: which announced routes the policy's `autoApprovers` approve for a
//! node (subnet routes through `routes`, exit routes through `exitNode`).

use crate::alias::Alias;
use crate::ast::Policy;
use crate::input::{PolicyNode, PolicyUser};
use crate::resolve::Resolver;
use ipnet::IpNet;

fn approver_matches(r: &Resolver<'_>, approver: &str, n: usize) -> bool {
    match r.parse(approver) {
        Ok(Alias::Wildcard) => true,
        Ok(
            a @ (Alias::User(_)
            | Alias::UserDomain(_)
            | Alias::Group(_)
            | Alias::Tag(_)
            | Alias::Member
            | Alias::Tagged),
        ) => r.identity_member(&a, &r.nodes[n]),
        _ => false,
    }
}

/// The routes node `i` announces that the policy approves automatically.
pub(crate) fn auto_approved(
    policy: &Policy,
    users: &[PolicyUser],
    nodes: &[PolicyNode],
    i: usize,
) -> Vec<IpNet> {
    let aa = &policy.auto_approvers;
    if nodes[i].announced_routes.is_empty() || (aa.routes.is_empty() && aa.exit_node.is_empty()) {
        return Vec::new();
    }
    let r = Resolver::new(policy, users, nodes);
    nodes[i]
        .announced_routes
        .iter()
        .filter(|route| {
            if route.prefix_len() == 0 {
                aa.exit_node.iter().any(|a| approver_matches(&r, a, i))
            } else {
                aa.routes.iter().any(|(prefix, approvers)| {
                    prefix.parse::<IpNet>().is_ok_and(|p| p.contains(*route))
                        && approvers.iter().any(|a| approver_matches(&r, a, i))
                })
            }
        })
        .copied()
        .collect()
}

impl crate::engine::CompiledPolicy {
    /// The routes node `n` announces that are approved, by an admin or by `autoApprovers`.
    pub fn approved_routes(&self, n: usize) -> Vec<IpNet> {
        self.nodes[n].served_routes().collect()
    }

    /// True when the policy's `autoApprovers` approve `route` for node `n` (whether or not the
    /// node announces it).
    pub fn auto_approves(&self, n: usize, route: IpNet) -> bool {
        let mut nodes = self.nodes.clone();
        nodes[n].announced_routes = vec![route];
        !auto_approved(&self.policy, &self.users, &nodes, n).is_empty()
    }
}
