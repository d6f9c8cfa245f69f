//! The immutable view of the tailnet that readers load: every node, its indexes, the users,
//! the primary-route table and the policy, all from the same write batch.
//!
//! Everything is held in persistent (structurally shared) maps, so the writer derives the next
//! snapshot from the previous one by touching only the entries a batch changes; cloning a
//! snapshot is O(1).

use std::fmt;
use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet};
use ipnet::IpNet;

use hs_types::model::User;
use hs_types::{MachinePublic, NodeId, NodePublic, UserId};

use crate::entry::NodeEntry;
use crate::policy::PolicyView;

/// The election state of one subnet prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteState {
    /// Online nodes serving the prefix (announced and approved).
    pub candidates: OrdSet<NodeId>,
    /// The elected primary, if any candidate exists.
    pub primary: Option<NodeId>,
}

/// One consistent view of the tailnet. Cheap to clone; never changes once published.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) version: u64,
    pub(crate) nodes: OrdMap<NodeId, Arc<NodeEntry>>,
    pub(crate) by_node_key: HashMap<NodePublic, NodeId>,
    pub(crate) by_machine_key: HashMap<MachinePublic, OrdSet<NodeId>>,
    pub(crate) by_user: HashMap<UserId, OrdSet<NodeId>>,
    pub(crate) by_given_name: HashMap<String, NodeId>,
    pub(crate) users: OrdMap<UserId, Arc<User>>,
    pub(crate) routes: OrdMap<IpNet, RouteState>,
    pub(crate) policy: Arc<dyn PolicyView>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("nodes", &self.nodes.len())
            .field("users", &self.users.len())
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// An empty tailnet under `policy`, version 0.
    pub fn empty(policy: Arc<dyn PolicyView>) -> Self {
        Self {
            version: 0,
            nodes: OrdMap::new(),
            by_node_key: HashMap::new(),
            by_machine_key: HashMap::new(),
            by_user: HashMap::new(),
            by_given_name: HashMap::new(),
            users: OrdMap::new(),
            routes: OrdMap::new(),
            policy,
        }
    }

    /// The version: incremented by every published batch.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tailnet has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node by id.
    pub fn node(&self, id: NodeId) -> Option<&Arc<NodeEntry>> {
        self.nodes.get(&id)
    }

    /// A node by its current node key.
    pub fn node_by_node_key(&self, key: &NodePublic) -> Option<&Arc<NodeEntry>> {
        self.by_node_key.get(key).and_then(|id| self.nodes.get(id))
    }

    /// The nodes registered with a machine key (one per owning user, or tagged), by id.
    pub fn nodes_by_machine_key(
        &self,
        key: &MachinePublic,
    ) -> impl Iterator<Item = &Arc<NodeEntry>> {
        self.by_machine_key
            .get(key)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.nodes.get(id))
    }

    /// The nodes owned by a user, by id.
    pub fn nodes_of_user(&self, user: UserId) -> impl Iterator<Item = &Arc<NodeEntry>> {
        self.by_user
            .get(&user)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.nodes.get(id))
    }

    /// The node holding a given name, if any.
    pub fn node_by_given_name(&self, name: &str) -> Option<&Arc<NodeEntry>> {
        self.by_given_name
            .get(name)
            .and_then(|id| self.nodes.get(id))
    }

    /// All nodes, sorted by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<NodeEntry>> {
        self.nodes.values()
    }

    /// A user by id.
    pub fn user(&self, id: UserId) -> Option<&Arc<User>> {
        self.users.get(&id)
    }

    /// All users, sorted by id.
    pub fn users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }

    /// The elected primary router for a subnet prefix.
    pub fn primary_route(&self, prefix: &IpNet) -> Option<NodeId> {
        self.routes.get(prefix).and_then(|r| r.primary)
    }

    /// The route election table, by prefix.
    pub fn routes(&self) -> impl Iterator<Item = (&IpNet, &RouteState)> {
        self.routes.iter()
    }

    /// The policy this snapshot was built under.
    pub fn policy(&self) -> &Arc<dyn PolicyView> {
        &self.policy
    }

    /// Whether `viewer` sees `peer` (never itself; a logged-out node sees and is seen by
    /// nobody).
    pub fn can_see(&self, viewer: &NodeEntry, peer: &NodeEntry) -> bool {
        viewer.node.id != peer.node.id
            && !viewer.logged_out
            && !peer.logged_out
            && self.policy.can_see(&viewer.node, &peer.node)
    }

    /// The routes of `peer` that `viewer` is shown (see [`PolicyView::visible_routes`]):
    /// its `PrimaryRoutes` and route `AllowedIPs` in the viewer's map. A node sees its own
    /// elected primaries and exit routes.
    pub fn visible_routes(&self, viewer: &NodeEntry, peer: &NodeEntry) -> Vec<IpNet> {
        if viewer.node.id == peer.node.id {
            return peer.offered_routes();
        }
        if peer.served_routes().next().is_none() {
            return Vec::new();
        }
        self.policy.visible_routes(&viewer.node, peer)
    }

    /// The peers `viewer` sees, sorted by id. Empty when the viewer is unknown.
    pub fn peers_of(&self, viewer: NodeId) -> impl Iterator<Item = &Arc<NodeEntry>> {
        let Some(v) = self.nodes.get(&viewer) else {
            return Vec::new().into_iter();
        };
        // A policy that lists a viewer's peers saves asking about every node of the tailnet
        // (a full map per reconnect would otherwise cost the whole tailnet each).
        let peers: Vec<&Arc<NodeEntry>> = match self.policy.visible_ids(&v.node) {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.nodes.get(id))
                .filter(|p| self.can_see(v, p))
                .collect(),
            None => self.nodes.values().filter(|p| self.can_see(v, p)).collect(),
        };
        peers.into_iter()
    }
}
