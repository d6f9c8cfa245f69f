//! The single writer: applies a batch of operations to the current snapshot and publishes the
//! result at once. There is no batching timer: the caller (a task in the control plane)
//! drains whatever writes are queued, hands them over as one batch and gets back what changed.
//!
//! Each operation costs time proportional to what it touches: index updates are O(log N) in
//! the persistent maps, given-name collisions are resolved through the name index, and a
//! route election only looks at the prefixes whose candidates changed.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use hs_types::model::{Node, User};
use hs_types::{DiscoPublic, NodeId, NodePublic, UserId};

use crate::change::{Change, PatchFields};
use crate::entry::NodeEntry;
use crate::error::Error;
use crate::names::{is_valid_label, resolve_given_name, sanitize_hostname};
use crate::policy::PolicyView;
use crate::routes;
use crate::snapshot::Snapshot;

/// A partial update of a node's fast-changing fields; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodePatch {
    /// New endpoints (from a map request).
    pub endpoints: Option<Vec<SocketAddr>>,
    /// New disco key.
    pub disco_key: Option<DiscoPublic>,
    /// New node key (key rotation).
    pub node_key: Option<NodePublic>,
    /// New home DERP region.
    pub home_derp: Option<i32>,
    /// New key expiry (`Some(None)` = never expires).
    pub expiry: Option<Option<DateTime<Utc>>>,
    /// Connected or not.
    pub online: Option<bool>,
    /// Last time the node was seen.
    pub last_seen: Option<DateTime<Utc>>,
    /// Logged out (hidden from peers) or back.
    pub logged_out: Option<bool>,
    /// Failed (or passed) an HA health probe. Coming online also clears it.
    pub unhealthy: Option<bool>,
}

/// One write.
#[derive(Clone, Debug)]
pub enum Op {
    /// Insert or replace a node. Its given name is made unique (sanitised hostname when the
    /// given name is empty, then `-1`, `-2`… on collision). Runtime state (online, home
    /// DERP when the new Hostinfo has none) is carried over from the previous entry.
    Upsert(Box<Node>),
    /// Delete a node.
    Remove(NodeId),
    /// Update fast-changing fields of a node.
    Patch(NodeId, NodePatch),
    /// Admin rename: the name must be a valid DNS label not held by another node.
    Rename(NodeId, String),
    /// Insert or replace a user.
    UpsertUser(Box<User>),
    /// Delete a user (its nodes must be removed by separate ops).
    RemoveUser(UserId),
    /// Replace the policy.
    SetPolicy(Arc<dyn PolicyView>),
}

/// What a batch did: the snapshots before and after, the changes for the mapper, and one
/// result per op in input order.
#[derive(Debug)]
pub struct Applied {
    /// The snapshot the batch started from.
    pub prev: Arc<Snapshot>,
    /// The published snapshot.
    pub next: Arc<Snapshot>,
    /// What changed, in application order.
    pub changes: Vec<Change>,
    /// Per-op outcome; a failed op changed nothing.
    pub results: Vec<Result<(), Error>>,
}

/// The read side: clone it freely; loads are lock-free.
#[derive(Clone, Debug)]
pub struct NodeStore {
    shared: Arc<ArcSwap<Snapshot>>,
}

impl NodeStore {
    /// A store with an empty tailnet under `policy`, and its only writer.
    pub fn new(policy: Arc<dyn PolicyView>) -> (Self, Writer) {
        let snap = Arc::new(Snapshot::empty(policy));
        let shared = Arc::new(ArcSwap::new(Arc::clone(&snap)));
        (
            Self {
                shared: Arc::clone(&shared),
            },
            Writer {
                shared,
                current: snap,
            },
        )
    }

    /// The current snapshot, for short synchronous reads.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.shared.load()
    }

    /// The current snapshot as an owned `Arc`, to hold across an `.await`.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.shared.load_full()
    }
}

/// The single writer. Not `Clone`: whoever owns it serialises all writes.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<ArcSwap<Snapshot>>,
    current: Arc<Snapshot>,
}

impl Writer {
    /// The last snapshot this writer published.
    pub fn current(&self) -> &Arc<Snapshot> {
        &self.current
    }

    /// Applies `ops` in order and publishes the result as one new snapshot (even when every
    /// op failed, so versions stay a simple counter of batches).
    pub fn apply(&mut self, ops: impl IntoIterator<Item = Op>) -> Applied {
        let prev = Arc::clone(&self.current);
        let mut snap: Snapshot = (*prev).clone();
        snap.version = prev.version + 1;
        let mut changes = Vec::new();
        let mut results = Vec::new();
        for op in ops {
            results.push(apply_op(&mut snap, op, &mut changes));
        }
        let next = Arc::new(snap);
        self.shared.store(Arc::clone(&next));
        self.current = Arc::clone(&next);
        Applied {
            prev,
            next,
            changes,
            results,
        }
    }
}

fn apply_op(snap: &mut Snapshot, op: Op, changes: &mut Vec<Change>) -> Result<(), Error> {
    match op {
        Op::Upsert(node) => {
            upsert(snap, *node, changes);
            Ok(())
        }
        Op::Remove(id) => remove(snap, id, changes),
        Op::Patch(id, patch) => patch_node(snap, id, patch, changes),
        Op::Rename(id, name) => rename(snap, id, name, changes),
        Op::UpsertUser(user) => {
            let id = user.id;
            snap.users.insert(id, Arc::new(*user));
            changes.push(Change::UserChanged(id));
            Ok(())
        }
        Op::RemoveUser(id) => {
            if snap.users.remove(&id).is_none() {
                return Err(Error::UnknownUser(id));
            }
            changes.push(Change::UserRemoved(id));
            Ok(())
        }
        Op::SetPolicy(policy) => {
            snap.policy = policy;
            changes.push(Change::PolicyChanged);
            Ok(())
        }
    }
}

fn unindex(snap: &mut Snapshot, e: &NodeEntry) {
    let n = &e.node;
    if snap.by_node_key.get(&n.node_key) == Some(&n.id) {
        snap.by_node_key.remove(&n.node_key);
    }
    if let Some(set) = snap.by_machine_key.get_mut(&n.machine_key) {
        set.remove(&n.id);
        if set.is_empty() {
            snap.by_machine_key.remove(&n.machine_key);
        }
    }
    if let Some(uid) = n.user_id
        && let Some(set) = snap.by_user.get_mut(&uid)
    {
        set.remove(&n.id);
        if set.is_empty() {
            snap.by_user.remove(&uid);
        }
    }
    if snap.by_given_name.get(&n.given_name) == Some(&n.id) {
        snap.by_given_name.remove(&n.given_name);
    }
}

fn same_index_keys(a: &Node, b: &Node) -> bool {
    a.node_key == b.node_key
        && a.machine_key == b.machine_key
        && a.user_id == b.user_id
        && a.given_name == b.given_name
}

fn index(snap: &mut Snapshot, e: &NodeEntry) {
    let n = &e.node;
    snap.by_node_key.insert(n.node_key, n.id);
    snap.by_machine_key
        .entry(n.machine_key)
        .or_default()
        .insert(n.id);
    if let Some(uid) = n.user_id {
        snap.by_user.entry(uid).or_default().insert(n.id);
    }
    snap.by_given_name.insert(n.given_name.clone(), n.id);
}

/// Replaces `id`'s entry (indexes included) and re-runs the route election for prefixes
/// whose candidacy changed; records which nodes' primary routes moved.
fn replace(
    snap: &mut Snapshot,
    old: Option<&Arc<NodeEntry>>,
    mut new: NodeEntry,
    changes: &mut Vec<Change>,
) -> Vec<NodeId> {
    new.changed_in = snap.version;
    match old {
        // Most writes (endpoints, online, keys' holders unchanged) leave every index alone.
        Some(old) if same_index_keys(&old.node, &new.node) => {}
        Some(old) => {
            unindex(snap, old);
            index(snap, &new);
        }
        None => index(snap, &new),
    }
    let id = new.node.id;
    snap.nodes.insert(id, Arc::new(new));
    let moved = routes::reelect(snap, old.map(|o| &**o), id);
    for m in &moved {
        if *m != id {
            changes.push(Change::NodeChanged(*m));
        }
    }
    moved
}

fn upsert(snap: &mut Snapshot, mut node: Node, changes: &mut Vec<Change>) {
    let id = node.id;
    let old = snap.nodes.get(&id).cloned();
    let base = if node.given_name.is_empty() {
        sanitize_hostname(&node.hostname)
    } else {
        node.given_name.clone()
    };
    node.given_name = resolve_given_name(&base, |name| {
        snap.by_given_name
            .get(name)
            .is_some_and(|holder| *holder != id)
    });
    let mut entry = NodeEntry::new(node);
    if let Some(old) = &old {
        entry.online = old.online;
        if entry.home_derp == 0 {
            entry.home_derp = old.home_derp;
        }
        entry.primary_routes = old.primary_routes.clone();
        entry.unhealthy = old.unhealthy;
        // Still logged out unless this write is a new login (new node key or expiry).
        entry.logged_out = old.logged_out
            && old.node.node_key == entry.node.node_key
            && old.node.expiry == entry.node.expiry;
    }
    replace(snap, old.as_ref(), entry, changes);
    changes.push(Change::NodeChanged(id));
}

fn remove(snap: &mut Snapshot, id: NodeId, changes: &mut Vec<Change>) -> Result<(), Error> {
    let old = snap.nodes.remove(&id).ok_or(Error::UnknownNode(id))?;
    unindex(snap, &old);
    let moved = routes::reelect_removed(snap, &old);
    for m in moved {
        changes.push(Change::NodeChanged(m));
    }
    changes.push(Change::NodeRemoved(id));
    Ok(())
}

fn patch_node(
    snap: &mut Snapshot,
    id: NodeId,
    p: NodePatch,
    changes: &mut Vec<Change>,
) -> Result<(), Error> {
    let old = snap.nodes.get(&id).cloned().ok_or(Error::UnknownNode(id))?;
    if let Some(k) = p.node_key
        && let Some(holder) = snap.by_node_key.get(&k)
        && *holder != id
    {
        return Err(Error::NodeKeyInUse {
            node: id,
            holder: *holder,
        });
    }
    let mut e = (*old).clone();
    let mut fields = PatchFields::default();
    if let Some(v) = p.endpoints
        && v != e.node.endpoints
    {
        e.node.endpoints = v;
        fields.endpoints = true;
    }
    if let Some(v) = p.disco_key
        && v != e.node.disco_key
    {
        e.node.disco_key = v;
        fields.disco_key = true;
    }
    if let Some(v) = p.node_key
        && v != e.node.node_key
    {
        e.node.node_key = v;
        fields.node_key = true;
    }
    if let Some(v) = p.home_derp
        && v != e.home_derp
    {
        e.home_derp = v;
        fields.home_derp = true;
    }
    if let Some(v) = p.expiry
        && v != e.node.expiry
    {
        e.node.expiry = v;
        fields.expiry = true;
    }
    if let Some(v) = p.online
        && v != e.online
    {
        e.online = v;
        fields.online = true;
    }
    if let Some(v) = p.last_seen
        && Some(v) != e.node.last_seen
    {
        e.node.last_seen = Some(v);
        fields.last_seen = true;
    }
    // Visibility changes: peers must add or drop the node, so it is a full change.
    let visibility = p.logged_out.is_some_and(|v| v != e.logged_out);
    if let Some(v) = p.logged_out {
        e.logged_out = v;
    }
    // Health is not on the wire: it only matters through the route election.
    let mut health = false;
    if let Some(v) = p.unhealthy
        && v != e.unhealthy
    {
        e.unhealthy = v;
        health = true;
    }
    if fields.online && e.online && e.unhealthy {
        // A fresh connection is a fresh chance, as in Headscale.
        e.unhealthy = false;
        health = true;
    }
    if fields.is_empty() && !visibility && !health {
        return Ok(());
    }
    let moved = replace(snap, Some(&old), e, changes);
    if visibility || moved.contains(&id) {
        changes.push(Change::NodeChanged(id));
    } else if !fields.is_empty() {
        changes.push(Change::NodePatched { id, fields });
    }
    Ok(())
}

fn rename(
    snap: &mut Snapshot,
    id: NodeId,
    name: String,
    changes: &mut Vec<Change>,
) -> Result<(), Error> {
    let old = snap.nodes.get(&id).cloned().ok_or(Error::UnknownNode(id))?;
    if !is_valid_label(&name) {
        return Err(Error::InvalidGivenName(name));
    }
    if let Some(holder) = snap.by_given_name.get(&name)
        && *holder != id
    {
        return Err(Error::GivenNameTaken {
            name,
            holder: *holder,
        });
    }
    if old.node.given_name == name {
        return Ok(());
    }
    let mut e = (*old).clone();
    e.node.given_name = name;
    replace(snap, Some(&old), e, changes);
    changes.push(Change::NodeChanged(id));
    Ok(())
}
