//! What a batch changed, in the terms the mapper needs to decide what each connected node
//! must be told.

use hs_types::{NodeId, UserId};

/// Which patchable fields of a node changed (`tailcfg.PeerChange` material).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatchFields {
    /// Endpoints changed.
    pub endpoints: bool,
    /// Disco key changed.
    pub disco_key: bool,
    /// Node key changed.
    pub node_key: bool,
    /// Home DERP region changed.
    pub home_derp: bool,
    /// Key expiry changed.
    pub expiry: bool,
    /// Online state changed.
    pub online: bool,
    /// Last-seen time changed.
    pub last_seen: bool,
}

impl PatchFields {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Field-wise union.
    pub fn union(self, o: Self) -> Self {
        Self {
            endpoints: self.endpoints || o.endpoints,
            disco_key: self.disco_key || o.disco_key,
            node_key: self.node_key || o.node_key,
            home_derp: self.home_derp || o.home_derp,
            expiry: self.expiry || o.expiry,
            online: self.online || o.online,
            last_seen: self.last_seen || o.last_seen,
        }
    }
}

/// One change produced by a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A node was added, or changed in a way that needs its whole peer entry resent
    /// (Hostinfo, name, tags, owner, addresses, routes); its visibility may have changed too.
    NodeChanged(NodeId),
    /// Only patchable fields of a node changed.
    NodePatched {
        /// The node.
        id: NodeId,
        /// What changed.
        fields: PatchFields,
    },
    /// A node was deleted (look it up in the previous snapshot).
    NodeRemoved(NodeId),
    /// A user was added or changed (its profile must reach the nodes that show it).
    UserChanged(UserId),
    /// A user was deleted.
    UserRemoved(UserId),
    /// The policy was replaced: visibility, filters and SSH policies may all differ.
    PolicyChanged,
}
