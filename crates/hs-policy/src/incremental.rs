//! Re-evaluation after one node changes, reporting which viewers are affected.
//!
//! A change to one node re-resolves each rule's sources and destinations (linear in the number
//! of nodes per rule) and then compares per-rule node sets as bit sets. No pair of nodes is
//! visited: the cost is O(rules × nodes / 64) for the comparison, not O(nodes²).

use crate::bitset::NodeSet;
use crate::engine::CompiledPolicy;
use crate::error::PolicyError;
use crate::input::PolicyNode;
use crate::ssh::SshDst;
use hs_types::NodeId;

/// What a change did to the tailnet's compiled state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Nodes whose packet filter (or SSH policy) may differ and must be resent.
    pub filters_changed: Vec<NodeId>,
    /// Nodes whose peer list (membership or how a peer is shown) may differ.
    pub peers_changed: Vec<NodeId>,
}

impl CompiledPolicy {
    /// Replaces (or adds, when its id is new) one node and compiles again, reusing what the
    /// previous compile resolved wherever the node cannot have changed it (see `memo`),
    /// returning which viewers' filters and peer lists are affected. The result is the same
    /// as compiling the changed tailnet from scratch.
    ///
    /// ```
    /// use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser};
    /// use hs_types::{NodeId, UserId};
    /// let policy = Policy::parse(r#"{"tagOwners": {"tag:web": []},
    ///   "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:443"]}]}"#).unwrap();
    /// let users = vec![PolicyUser { id: UserId(1), name: "odin".into(), email: "odin@example.com".into(), groups: vec![] }];
    /// let node = |id: u64, tags: Vec<String>| PolicyNode {
    ///     id: NodeId(id), name: format!("n{id}"), ipv4: Some(format!("100.64.0.{id}").parse().unwrap()),
    ///     ipv6: None, user: tags.is_empty().then_some(UserId(1)), tags,
    ///     announced_routes: vec![], approved_routes: vec![], primary_routes: vec![],
    /// };
    /// let mut c = CompiledPolicy::compile(&policy, &users, &[node(1, vec![]), node(2, vec![]), node(3, vec![])]).unwrap();
    /// // Node 3 becomes a web server: it now filters traffic, and the members now see it.
    /// let delta = c.update_node(node(3, vec!["tag:web".into()])).unwrap();
    /// assert_eq!(delta.filters_changed, vec![NodeId(3)]);
    /// assert_eq!(delta.peers_changed, vec![NodeId(1), NodeId(2), NodeId(3)]);
    /// ```
    pub fn update_node(&mut self, node: PolicyNode) -> Result<Delta, PolicyError> {
        let (new, delta) = self.with_node(node)?;
        *self = new;
        Ok(delta)
    }

    /// [`CompiledPolicy::update_node`] leaving `self` as it is: the tailnet with `node`
    /// replaced or added, compiled, and which viewers differ from `self`.
    pub fn with_node(&self, node: PolicyNode) -> Result<(CompiledPolicy, Delta), PolicyError> {
        let mut nodes = self.nodes.clone();
        let x = match nodes.iter().position(|n| n.id == node.id) {
            Some(i) => {
                nodes[i] = node;
                i
            }
            None => {
                nodes.push(node);
                nodes.len() - 1
            }
        };
        let mut new = CompiledPolicy::build(&self.policy, &self.users, nodes, Some((self, x)))?;
        new.roles = self.roles.clone();
        let delta = self.delta_to(&new, x);
        Ok((new, delta))
    }

    /// Which viewers differ between `self` and `new`, given that only node index `x` changed
    /// (indices of other nodes are the same in both).
    fn delta_to(&self, new: &CompiledPolicy, x: usize) -> Delta {
        let len = new.nodes.len();
        let grow = |s: &NodeSet| {
            let mut g = NodeSet::new(len);
            g.union_with(s);
            g
        };
        let mut filters = NodeSet::new(len);
        filters.insert(x);
        // autogroup:self pairs `x` with its user's nodes: a new owner changes both users'.
        let owner_changed = self.nodes.get(x).is_none_or(|o| {
            o.user != new.nodes[x].user || o.is_tagged() != new.nodes[x].is_tagged()
        });
        let x_differs = self.nodes.get(x) != Some(&new.nodes[x]);
        let owner = |n: &PolicyNode| n.user.filter(|_| !n.is_tagged());
        let users_of_x = [self.nodes.get(x).and_then(owner), owner(&new.nodes[x])];
        let owners_of_x = [self.nodes.get(x).and_then(|n| n.user), new.nodes[x].user];
        for (ri, (a, b)) in self.rules.iter().zip(&new.rules).enumerate() {
            // A companion capability is installed on the sources, spelled from the
            // destinations: a change to either side reaches every source.
            if b.reverse.is_some()
                && (a.reverse != b.reverse
                    || grow(&a.src_nodes) != b.src_nodes
                    || (self.nodes.get(x) != Some(&new.nodes[x])
                        && b.reverse.as_ref().is_some_and(|r| r.self_dst)))
            {
                filters.union_with(&grow(&a.src_nodes));
                filters.union_with(&b.src_nodes);
            }
            let (old_dst, new_dst) = (grow(&self.rule_dst_nodes[ri]), &new.rule_dst_nodes[ri]);
            let (old_self, new_self) = (grow(&self.rule_self_nodes[ri]), &new.rule_self_nodes[ri]);
            // An autogroup:self destination's sources are its own user's nodes: whatever `x`
            // changed, the filters of its old and new user's nodes may list it differently.
            if x_differs {
                for i in old_self.iter().chain(new_self.iter()) {
                    if users_of_x.contains(&new.nodes[i].user) {
                        filters.insert(i);
                    }
                }
            }
            // A rule whose merge group moved (another rule's sources now equal its own) is
            // listed at a different position in its destinations' filters.
            if a.src_strings != b.src_strings
                || a.group != b.group
                || grow(&a.src_nodes) != b.src_nodes
            {
                filters.union_with(&old_dst);
                filters.union_with(new_dst);
            } else {
                // Same sources: only nodes entering or leaving the destinations change.
                for i in old_dst.iter().chain(new_dst.iter()) {
                    if old_dst.contains(i) != new_dst.contains(i) {
                        filters.insert(i);
                    }
                }
            }
            // The autogroup:self part lists the destination's own user's sources, not the
            // rule's: other users' nodes change only if they enter or leave it, or if the
            // rule's position among the merged rules moved.
            if a.group != b.group {
                filters.union_with(&old_self);
                filters.union_with(new_self);
            } else {
                for i in old_self.iter().chain(new_self.iter()) {
                    if old_self.contains(i) != new_self.contains(i) {
                        filters.insert(i);
                    }
                }
            }
        }
        // SSH rules are cut per destination from their sources; when `x` enters or leaves a
        // rule's sources (or destinations), that rule's destinations change: every node of a
        // node destination, or for autogroup:self the nodes of `x`'s old and new user. Rules
        // using localpart users are also installed on their sources.
        for (a, b) in self.ssh.iter().zip(&new.ssh) {
            // Principals are addresses: any change of a source `x` changes them.
            let x_is_src = a.src_nodes.contains(x) || b.src_nodes.contains(x);
            let src_changed = grow(&a.src_nodes) != b.src_nodes || (x_is_src && x_differs);
            for (da, db) in a.dsts.iter().zip(&b.dsts) {
                match (da, db) {
                    (SshDst::Nodes(oa), SshDst::Nodes(ob)) => {
                        let oa = grow(oa);
                        if src_changed {
                            filters.union_with(&oa);
                            filters.union_with(ob);
                        } else if &oa != ob {
                            filters.insert(x);
                        }
                    }
                    _ if src_changed || owner_changed => {
                        for (i, n) in new.nodes.iter().enumerate() {
                            if !n.is_tagged() && n.user.is_some() && owners_of_x.contains(&n.user) {
                                filters.insert(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if src_changed && b.users.iter().any(|u| u.starts_with("localpart:")) {
                filters.union_with(&grow(&a.src_nodes));
                filters.union_with(&b.src_nodes);
            }
        }
        let mut peers = NodeSet::new(len);
        peers.insert(x);
        let old_of_x = if x < self.nodes.len() {
            grow(&self.peer_set(x))
        } else {
            NodeSet::new(len)
        };
        let new_of_x = new.peer_set(x);
        let shown_differently = x >= self.nodes.len() || self.nodes[x] != new.nodes[x];
        for i in old_of_x.iter().chain(new_of_x.iter()) {
            if old_of_x.contains(i) != new_of_x.contains(i) || shown_differently {
                peers.insert(i);
            }
        }
        let ids = |s: &NodeSet| s.iter().map(|i| new.nodes[i].id).collect();
        Delta {
            filters_changed: ids(&filters),
            peers_changed: ids(&peers),
        }
    }
}
