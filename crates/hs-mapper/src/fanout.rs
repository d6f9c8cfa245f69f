//! Incremental messages: for one NodeStore batch, the smallest correct message for every
//! connected node, in one pass and without a batching delay.
//!
//! The client's state is, by construction, what the snapshot of its session's version shows
//! it, so what to send is the difference between the previous and the next snapshot as the
//! viewer sees it: peers that became visible or changed wholesale go in `PeersChanged`,
//! peers that vanished in `PeersRemoved`, fast-changing fields in `PeersChangedPatch` /
//! `OnlineChange` / `PeerSeenChange`, and the packet filter and SSH policy only when they
//! differ from what this viewer was last sent. Viewers that need the same message share one
//! encoded, compressed frame.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hs_nodestore::{Change, NodeEntry, PatchFields, Snapshot};
use hs_types::tailcfg::{MapResponse, PeerChange};
use hs_types::{NodeId, UserId};
use ipnet::IpNet;

use crate::error::Error;
use crate::frame::encode_frame;
use crate::full::profiles;
use crate::mapper::Mapper;
use crate::message::{EMPTY_SSH_POLICY, Message};
use crate::render::{self, wire_user};
use crate::session::Session;

/// Why a stream must be closed rather than updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The session missed a batch or a reconfiguration; the client reconnects and gets a
    /// fresh full map.
    Desynced,
    /// The node no longer exists.
    NodeRemoved,
}

/// What to do with one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Write this frame (length-prefixed zstd) to the node's stream.
    Frame {
        /// The receiving node.
        node: NodeId,
        /// The framed message; clones share the bytes.
        frame: Bytes,
    },
    /// Close the node's stream.
    Close {
        /// The node.
        node: NodeId,
        /// Why.
        reason: CloseReason,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct Agg {
    full: bool,
    patch: PatchFields,
}

/// How a changed peer is told to its viewers; the same for every viewer.
enum PeerDelta {
    Full,
    Patch {
        change: Option<PeerChange>,
        online: Option<bool>,
        clear_seen: bool,
    },
}

/// Decides between a patch and a full resend: a patch cannot express a zero value (no
/// endpoints, no home DERP, a key expiry removed), and a key expiry change also flips the
/// `Expired`/`MachineAuthorized` flags, so those go out as `PeersChanged`.
fn peer_delta(e: &NodeEntry, f: PatchFields) -> PeerDelta {
    let n = &e.node;
    if f.expiry
        || (f.endpoints && n.endpoints.is_empty())
        || (f.home_derp && e.home_derp == 0)
        || (f.disco_key && n.disco_key.is_zero())
        || (f.node_key && n.node_key.is_zero())
    {
        return PeerDelta::Full;
    }
    let mut pc = PeerChange {
        node_id: n.id,
        ..PeerChange::default()
    };
    if f.endpoints {
        pc.endpoints = n.endpoints.clone();
    }
    if f.home_derp {
        pc.derp_region = i64::from(e.home_derp);
    }
    if f.node_key {
        pc.key = Some(n.node_key);
    }
    if f.disco_key {
        pc.disco_key = Some(n.disco_key);
    }
    // A full entry shows LastSeen only while offline: going online clears it, going (or
    // staying) offline sets it.
    let mut clear_seen = false;
    if f.online && e.online {
        clear_seen = true;
    }
    if (f.online || f.last_seen) && !e.online {
        pc.last_seen = n.last_seen;
    }
    let empty = pc
        == PeerChange {
            node_id: n.id,
            ..PeerChange::default()
        };
    PeerDelta::Patch {
        change: (!empty).then_some(pc),
        online: f.online.then_some(e.online),
        clear_seen,
    }
}

/// Everything that decides a viewer's message; viewers with equal plans share bytes.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
struct Plan {
    self_node: Option<NodeId>,
    /// Peers resent whole, each with the routes this viewer may use (the per-viewer part
    /// of a peer entry).
    changed: Vec<(NodeId, Vec<IpNet>)>,
    removed: Vec<NodeId>,
    patched: Vec<NodeId>,
    filter: Option<Arc<str>>,
    ssh: Option<Arc<str>>,
    profiles: Vec<UserId>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.self_node.is_none()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.patched.is_empty()
            && self.filter.is_none()
            && self.ssh.is_none()
            && self.profiles.is_empty()
    }
}

/// The elements in exactly one of two sorted lists.
fn sorted_difference(a: &[NodeId], b: &[NodeId]) -> Vec<NodeId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn visible(snap: &Snapshot, viewer: Option<&Arc<NodeEntry>>, peer: NodeId) -> bool {
    match (viewer, snap.node(peer)) {
        (Some(v), Some(p)) => snap.can_see(v, p),
        _ => false,
    }
}

impl Mapper {
    /// The messages one applied batch produces for the given sessions, which are advanced
    /// to `next`'s version. `prev`/`next`/`changes` are the fields of
    /// `hs_nodestore::Applied`. Sessions already at or past `next` are left alone; sessions
    /// behind `prev`, created under an older config, or whose node is gone get
    /// [`Outgoing::Close`].
    pub fn fanout<'s>(
        &self,
        prev: &Snapshot,
        next: &Snapshot,
        changes: &[Change],
        sessions: impl IntoIterator<Item = &'s mut Session>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outgoing>, Error> {
        let policy = next.policy();
        let mut agg: BTreeMap<NodeId, Agg> = BTreeMap::new();
        let mut users_changed = BTreeSet::new();
        let mut policy_changed = false;
        let mut structural = false;
        for c in changes {
            match *c {
                Change::NodeChanged(id) | Change::NodeRemoved(id) => {
                    agg.entry(id).or_default().full = true;
                    structural = true;
                }
                Change::NodePatched { id, fields } => {
                    let a = agg.entry(id).or_default();
                    a.patch = a.patch.union(fields);
                }
                Change::UserChanged(u) => {
                    users_changed.insert(u);
                    structural = true;
                }
                Change::UserRemoved(_) => structural = true,
                Change::PolicyChanged => {
                    policy_changed = true;
                    structural = true;
                }
            }
        }
        for id in agg.keys() {
            if next.node(*id).is_none() {
                self.cache().forget(*id);
            }
        }
        let affected = if policy_changed {
            policy.affected_since(&**prev.policy())
        } else {
            None
        };
        if policy_changed {
            // Node attributes are the only part of a rendered node the policy decides
            // (besides the per-viewer routes, compared per viewer below): resend the nodes
            // whose attributes moved.
            // Peers see only the exit-node suggestion among them; a node whose other
            // attributes moved is resent to itself alone.
            let old = prev.policy();
            // A view derived from the previous one by a few nodes' changes says whose
            // answers may differ: only those nodes' attributes can have moved.
            let attrs_may_differ: Box<dyn Iterator<Item = &Arc<NodeEntry>>> = match affected {
                Some(a) => Box::new(a.iter().filter_map(|id| next.node(*id))),
                None => Box::new(next.nodes()),
            };
            for e in attrs_may_differ {
                if old.node_attrs(&e.node) == policy.node_attrs(&e.node) {
                    continue;
                }
                let peers_too =
                    render::peer_cap_map(e, &**old) != render::peer_cap_map(e, &**policy);
                let a = agg.entry(e.node.id).or_default();
                a.full |= peers_too;
            }
        }
        let deltas: BTreeMap<NodeId, PeerDelta> = agg
            .iter()
            .filter_map(|(id, a)| {
                let e = next.node(*id)?;
                if !a.full && a.patch.is_empty() {
                    // Only the node itself needs telling (its own attributes).
                    return None;
                }
                let d = if a.full {
                    PeerDelta::Full
                } else {
                    peer_delta(e, a.patch)
                };
                Some((*id, d))
            })
            .collect();

        // Nodes serving routes before or after: which of their routes a viewer may use
        // depends on the policy, so a recompiled policy re-examines them for every viewer.
        let routers: Vec<NodeId> = if policy_changed {
            let mut r: Vec<NodeId> = prev
                .nodes()
                .chain(next.nodes())
                .filter(|e| e.served_routes().next().is_some())
                .map(|e| e.node.id)
                .collect();
            r.sort_unstable();
            r.dedup();
            r
        } else {
            Vec::new()
        };
        // Changes that move nobody's visibility (patches: endpoints, online, keys) concern
        // only the changed nodes and the nodes that see them; so does a policy compiled onto
        // the previous one, plus the viewers it names as affected.
        let interested: Option<HashSet<NodeId>> =
            if !users_changed.is_empty() || (structural && affected.is_none()) {
                None
            } else {
                let mut set = affected.cloned().unwrap_or_default();
                let mut listed = true;
                let before = [(prev, prev.policy())];
                let after = [(next, policy)];
                let views = if structural {
                    &[before[0], after[0]][..]
                } else {
                    &after[..]
                };
                for id in agg.keys() {
                    set.insert(*id);
                    for (snap, view) in views {
                        let Some(e) = snap.node(*id) else {
                            continue;
                        };
                        match view.viewers_of(&e.node) {
                            Some(ids) => set.extend(ids),
                            None => listed = false,
                        }
                    }
                }
                listed.then_some(set)
            };
        let mut memo: HashMap<Plan, Bytes> = HashMap::new();
        let mut out = Vec::new();
        for s in sessions {
            if s.version >= next.version() {
                continue;
            }
            let me = s.node;
            if s.version != prev.version() || s.cfg_gen != self.cfg_gen() {
                out.push(Outgoing::Close {
                    node: me,
                    reason: CloseReason::Desynced,
                });
                continue;
            }
            let Some(v) = next.node(me) else {
                out.push(Outgoing::Close {
                    node: me,
                    reason: CloseReason::NodeRemoved,
                });
                continue;
            };
            if interested.as_ref().is_some_and(|set| !set.contains(&me)) {
                s.version = next.version();
                continue;
            }
            let v_prev = prev.node(me);
            let mut plan = Plan::default();
            let mut users = BTreeSet::new();
            let self_full = agg.get(&me).is_some_and(|a| a.full);
            // Which of a peer's routes the viewer may use changes only with the policy (or
            // the viewer itself); otherwise an unchanged peer entry needs no resend.
            let routes_may_differ = policy_changed || self_full;
            let consider = |pid: NodeId, plan: &mut Plan, users: &mut BTreeSet<UserId>| {
                if pid == me {
                    return;
                }
                let was = visible(prev, v_prev, pid);
                let peer = next.node(pid).filter(|p| next.can_see(v, p));
                let routes_moved = |p: &Arc<NodeEntry>| {
                    routes_may_differ
                        && match (v_prev, prev.node(pid)) {
                            (Some(vp), Some(pp)) => {
                                prev.visible_routes(vp, pp) != next.visible_routes(v, p)
                            }
                            _ => true,
                        }
                };
                match (was, peer, deltas.get(&pid)) {
                    (_, Some(p), Some(PeerDelta::Full)) | (false, Some(p), _) => {
                        plan.changed.push((pid, next.visible_routes(v, p)));
                        users.insert(wire_user(p));
                    }
                    (true, Some(p), _) if routes_moved(p) => {
                        plan.changed.push((pid, next.visible_routes(v, p)));
                        users.insert(wire_user(p));
                    }
                    (true, Some(_), Some(PeerDelta::Patch { .. })) => plan.patched.push(pid),
                    (true, None, _) => plan.removed.push(pid),
                    _ => {}
                }
            };
            let unaffected = affected.is_some_and(|a| !a.contains(&me));
            let lists = match (policy_changed && !self_full && !unaffected, v_prev) {
                (true, Some(vp)) => prev
                    .policy()
                    .visible_ids(&vp.node)
                    .zip(policy.visible_ids(&v.node)),
                _ => None,
            };
            if unaffected && !self_full {
                // The recompile changed nothing this viewer is told: only the changed
                // nodes themselves can need sending.
                for pid in agg.keys() {
                    consider(*pid, &mut plan, &mut users);
                }
            } else if let Some((was, now)) = lists {
                // A recompiled policy: only peers whose visibility flipped, peers that
                // changed, and routers (whose routes this viewer may use can move) can need
                // telling. Both lists are sorted, so their difference is one merge.
                let mut pids = sorted_difference(&was, &now);
                pids.extend(agg.keys().copied());
                pids.extend(routers.iter().copied());
                pids.sort_unstable();
                pids.dedup();
                for pid in pids {
                    consider(pid, &mut plan, &mut users);
                }
            } else if policy_changed || self_full {
                // What this viewer may see can have changed wholesale.
                let ids: BTreeSet<NodeId> = prev
                    .nodes()
                    .chain(next.nodes())
                    .map(|e| e.node.id)
                    .collect();
                for pid in ids {
                    consider(pid, &mut plan, &mut users);
                }
            } else {
                for pid in agg.keys() {
                    consider(*pid, &mut plan, &mut users);
                }
            }
            if agg.contains_key(&me) {
                plan.self_node = Some(me);
                users.insert(wire_user(v));
            }
            if structural {
                // Unchanged texts are still adopted: the session then shares the view's
                // copy instead of keeping one from an older view alive beside it.
                let f = policy.packet_filter(&v.node);
                if f != s.filter {
                    plan.filter = Some(f);
                } else {
                    s.filter = f;
                }
                let ssh = policy
                    .ssh_policy(&v.node)
                    .unwrap_or_else(|| Arc::from(EMPTY_SSH_POLICY));
                if ssh != s.ssh {
                    plan.ssh = Some(ssh);
                } else {
                    s.ssh = ssh;
                }
            }
            for u in &users_changed {
                if wire_user(v) == *u
                    || next
                        .nodes_of_user(*u)
                        .any(|p| p.node.id != me && next.can_see(v, p))
                {
                    users.insert(*u);
                }
            }
            plan.profiles = users.into_iter().collect();
            s.version = next.version();
            if let Some(f) = &plan.filter {
                s.filter = Arc::clone(f);
            }
            if let Some(x) = &plan.ssh {
                s.ssh = Arc::clone(x);
            }
            if plan.is_empty() {
                continue;
            }
            let frame = match memo.get(&plan) {
                Some(b) => b.clone(),
                None => {
                    let b = self.encode_plan(&plan, next, &deltas, now)?;
                    memo.insert(plan, b.clone());
                    b
                }
            };
            out.push(Outgoing::Frame { node: me, frame });
        }
        Ok(out)
    }

    fn encode_plan(
        &self,
        plan: &Plan,
        next: &Snapshot,
        deltas: &BTreeMap<NodeId, PeerDelta>,
        now: DateTime<Utc>,
    ) -> Result<Bytes, Error> {
        let cfg = self.config();
        let policy = next.policy();
        let mut base = MapResponse {
            peers_removed: plan.removed.clone(),
            user_profiles: profiles(next, &plan.profiles.iter().copied().collect()),
            ..MapResponse::default()
        };
        for id in &plan.patched {
            if let Some(PeerDelta::Patch {
                change,
                online,
                clear_seen,
            }) = deltas.get(id)
            {
                if let Some(pc) = change {
                    base.peers_changed_patch.push(pc.clone());
                }
                if let Some(o) = online {
                    base.online_change.insert(*id, *o);
                }
                if *clear_seen {
                    base.peer_seen_change.insert(*id, false);
                }
            }
        }
        let mut msg = Message {
            base,
            packet_filter: plan.filter.clone(),
            ssh: plan.ssh.clone(),
            ..Message::default()
        };
        if let Some(me) = plan.self_node
            && let Some(v) = next.node(me)
        {
            msg.node =
                Some(
                    self.cache()
                        .node_json(v, cfg, policy, &v.offered_routes(), true, now)?,
                );
        }
        for (id, routes) in &plan.changed {
            if let Some(e) = next.node(*id) {
                msg.peers_changed
                    .push(self.cache().node_json(e, cfg, policy, routes, false, now)?);
            }
        }
        Ok(encode_frame(&msg.to_json()?)?.into())
    }
}
