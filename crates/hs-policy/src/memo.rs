//! What a compile resolved, kept so that the compile after a one-node change can reuse it.
//!
//! Every alias's membership is decided node by node (a node's user, tags, addresses and
//! routes, against the policy and the users), so after node `x` changed, an alias's member set
//! is the old one with only `x`'s bit decided again. Its addresses and spelling change only
//! when `x` is or was a member (or, for `*`, when `x`'s subnet routes moved): only then is the
//! alias resolved again, which is work for the rules that name `x`, that is, for the nodes
//! the change affects.

use crate::alias::Alias;
use crate::bitset::NodeSet;
use crate::input::PolicyNode;
use crate::ipset::IpSet;
use crate::resolve::Resolved;
use std::collections::HashMap;
use std::sync::Arc;

/// A source list resolved: its aliases, member nodes, addresses and spelling.
pub(crate) type Sources = (Vec<Alias>, NodeSet, IpSet, Arc<[String]>);

/// One compile's resolutions.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    /// Identity aliases (users, groups, tags, member, tagged) → their nodes.
    pub(crate) identity: HashMap<Alias, NodeSet>,
    /// Source aliases → what they resolve to and how they are spelled.
    pub(crate) source: HashMap<Alias, (Resolved, Arc<[String]>)>,
    /// Source lists as written → their resolution.
    pub(crate) lists: HashMap<Vec<String>, Sources>,
}

/// The one node that differs from the compile a [`Memo`] was recorded in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Changed<'a> {
    /// Its index (the same in both compiles; a new node is appended).
    pub(crate) x: usize,
    /// The node as the previous compile had it; `None` for a new node.
    pub(crate) old: Option<&'a PolicyNode>,
}
