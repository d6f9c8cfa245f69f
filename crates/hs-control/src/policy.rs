//! The operator's policy as the NodeStore sees it: an `hs-policy` [`CompiledPolicy`] compiled
//! against the current users and nodes, answering the [`PolicyView`] questions, and
//! `hs_nodestore::DenyAll` stands in when a configured policy cannot be evaluated (never
//! allow-all).
//!
//! Per-node answers (visible peers, filter JSON, SSH JSON) are computed on first use and kept:
//! a compile is redone on every identity change, and most nodes are asked about only when a
//! map is built for them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use hs_nodestore::{NodeAttr, NodeEntry, PolicyView, Snapshot};
use hs_policy::bitset::NodeSet;
use hs_policy::{CompiledPolicy, Policy, PolicyError, PolicyNode, PolicyUser};
use hs_types::NodeId;
use hs_types::model::Node;
use ipnet::IpNet;

/// The packet filter that lets nothing in.
use hs_nodestore::DENY_ALL_FILTER_JSON as DENY_FILTER_JSON;

/// The policy's inputs from a NodeStore snapshot: every user, every node with its announced
/// and approved routes and the primary routes it holds in that snapshot. A primary move
/// always comes with a recompile (it is a node change), so per-viewer routes follow it.
pub fn policy_inputs(snap: &Snapshot) -> (Vec<PolicyUser>, Vec<PolicyNode>) {
    let users = snap
        .users()
        .map(|u| PolicyUser {
            id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            groups: u.groups.clone(),
        })
        .collect();
    let nodes = snap.nodes().map(|e| policy_node(e)).collect();
    (users, nodes)
}

/// One node as the policy sees it (see [`policy_inputs`]).
pub fn policy_node(e: &NodeEntry) -> PolicyNode {
    PolicyNode {
        id: e.node.id,
        name: e.node.given_name.clone(),
        ipv4: e.node.ipv4,
        ipv6: e.node.ipv6,
        user: if e.node.tags.is_empty() {
            e.node.user_id
        } else {
            None
        },
        tags: e.node.tags.clone(),
        announced_routes: e.announced_routes.clone(),
        approved_routes: e.node.approved_routes.clone(),
        primary_routes: e.primary_routes.clone(),
    }
}

/// Views are numbered so that a view can say which one it was derived from.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// How many changed nodes are applied one by one onto the previous compile before a
/// compile from scratch is cheaper.
pub const MAX_INCREMENTAL_NODES: usize = 32;

/// A compiled policy answering the NodeStore's questions. Nodes it was not compiled with see
/// nothing and are let in by nobody.
pub struct CompiledView {
    compiled: CompiledPolicy,
    index: HashMap<NodeId, usize>,
    /// Per viewer, which nodes it sees: a bit set, so a whole tailnet's worth is N² bits
    /// (500 kB at 2,000 nodes) rather than a view per pair. How a router is shown to a
    /// viewer is worked out when asked, since only routers need it.
    peers: Vec<OnceLock<Arc<NodeSet>>>,
    filters: Vec<OnceLock<Arc<str>>>,
    ssh: Vec<OnceLock<Option<Arc<str>>>>,
    /// Equal filter texts share one `Arc` so the mapper sees "unchanged" by pointer.
    interned: Mutex<HashSet<Arc<str>>>,
    deny: Arc<str>,
    generation: u64,
    /// For a view made by [`CompiledView::updated`]: the view it was derived from and the
    /// viewers whose answers may differ from that view's.
    derived: Option<(u64, HashSet<NodeId>)>,
}

impl fmt::Debug for CompiledView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledView")
            .field("nodes", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl CompiledView {
    /// Compiles `policy` against the users and nodes of `snap`.
    pub fn compile(policy: &Policy, snap: &Snapshot) -> Result<Self, PolicyError> {
        let (users, nodes) = policy_inputs(snap);
        Ok(Self::new(CompiledPolicy::compile_owned(
            policy, &users, nodes,
        )?))
    }

    /// Runs the policy's `tests` and `sshTests` (see [`CompiledPolicy::check_tests`]).
    pub fn check_tests(&self) -> Result<(), PolicyError> {
        self.compiled.check_tests()
    }

    /// Wraps a policy already compiled.
    pub fn new(compiled: CompiledPolicy) -> Self {
        let n = compiled.nodes().len();
        let index = compiled
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        Self {
            compiled,
            index,
            peers: (0..n).map(|_| OnceLock::new()).collect(),
            filters: (0..n).map(|_| OnceLock::new()).collect(),
            ssh: (0..n).map(|_| OnceLock::new()).collect(),
            interned: Mutex::new(HashSet::new()),
            deny: Arc::from(DENY_FILTER_JSON),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            derived: None,
        }
    }

    /// This view after `nodes` changed (each replaced, or added when its ID is new; users
    /// and the policy unchanged), compiled onto this one's resolutions, keeping the
    /// per-viewer answers (visible peers, filter and SSH texts) of every viewer the changes
    /// do not affect. `None` when that is not possible (more than
    /// [`MAX_INCREMENTAL_NODES`] nodes, or `via` grants, whose per-viewer route steering
    /// depends on every router): compile from scratch then.
    pub fn updated(&self, nodes: Vec<PolicyNode>) -> Result<Option<Self>, PolicyError> {
        if nodes.len() > MAX_INCREMENTAL_NODES || self.compiled.has_via() {
            return Ok(None);
        }
        let mut compiled: Option<CompiledPolicy> = None;
        let mut filters_changed = HashSet::new();
        let mut peers_changed = HashSet::new();
        for node in nodes {
            let base = compiled.as_ref().unwrap_or(&self.compiled);
            let (next, delta) = base.with_node(node)?;
            filters_changed.extend(delta.filters_changed);
            peers_changed.extend(delta.peers_changed);
            compiled = Some(next);
        }
        let Some(compiled) = compiled else {
            return Ok(None);
        };
        let mut view = Self::new(compiled);
        let ids: Vec<NodeId> = view.compiled.nodes().iter().map(|n| n.id).collect();
        let old_len = self.peers.len();
        for (i, id) in ids.iter().enumerate().take(old_len) {
            if !peers_changed.contains(id)
                && let Some(set) = self.peers[i].get()
            {
                let _ = view.peers[i].set(Arc::clone(set));
            }
            if !filters_changed.contains(id) {
                if let Some(f) = self.filters[i].get() {
                    let _ = view.filters[i].set(Arc::clone(f));
                }
                if let Some(ssh) = self.ssh[i].get() {
                    let _ = view.ssh[i].set(ssh.clone());
                }
            }
        }
        *view
            .interned
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = self
            .interned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        filters_changed.extend(peers_changed);
        view.derived = Some((self.generation, filters_changed));
        Ok(Some(view))
    }

    fn slot(&self, node: &Node) -> Option<usize> {
        self.index.get(&node.id).copied()
    }

    /// Whether `viewer` sees the node at slot `p`.
    fn sees(&self, viewer: usize, p: usize) -> bool {
        self.peers[viewer]
            .get_or_init(|| Arc::new(self.compiled.peer_set(viewer)))
            .contains(p)
    }

    fn intern(&self, text: String) -> Arc<str> {
        let mut set = self.interned.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(a) = set.get(text.as_str()) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(text);
        set.insert(Arc::clone(&a));
        a
    }
}

/// How long an SSH check stays approved when its rule sets no `checkPeriod` (Tailscale's and
/// Go Headscale's 12 hours).
const DEFAULT_CHECK_PERIOD_SECS: u64 = 12 * 3600;

impl PolicyView for CompiledView {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn viewers_of(&self, node: &Node) -> Option<Vec<NodeId>> {
        // Peer sets are built from both directions of every rule (`CompiledPolicy::peer_set`):
        // whoever `node` sees sees `node`.
        self.visible_ids(node)
    }

    fn affected_since(&self, base: &dyn PolicyView) -> Option<&HashSet<NodeId>> {
        match &self.derived {
            Some((g, affected)) if *g == base.generation() => Some(affected),
            _ => None,
        }
    }

    fn ssh_check_period(&self, src: &Node, dst: &Node) -> Option<std::time::Duration> {
        let d = self.slot(dst)?;
        let addrs: Vec<String> = src.ips().iter().map(ToString::to_string).collect();
        self.compiled
            .ssh_rules(d)
            .into_iter()
            .find_map(|r| match r.action {
                hs_policy::SshAction::Check { period_secs }
                    if r.principals.iter().any(|p| p == "*" || addrs.contains(p)) =>
                {
                    Some(std::time::Duration::from_secs(
                        period_secs.unwrap_or(DEFAULT_CHECK_PERIOD_SECS),
                    ))
                }
                _ => None,
            })
    }

    fn can_see(&self, viewer: &Node, peer: &Node) -> bool {
        let (Some(v), Some(p)) = (self.slot(viewer), self.slot(peer)) else {
            return false;
        };
        self.sees(v, p)
    }

    fn visible_routes(&self, viewer: &Node, peer: &NodeEntry) -> Vec<IpNet> {
        let (Some(v), Some(p)) = (self.slot(viewer), self.slot(&peer.node)) else {
            return Vec::new();
        };
        if peer.served_routes().next().is_none() || !self.sees(v, p) {
            return Vec::new();
        }
        let view = self.compiled.shown_peer(v, p);
        // The view's AllowedIPs are the peer's addresses plus the routes (primary for this
        // viewer, via grants included, and exit) the viewer may use through it.
        let mut routes: Vec<IpNet> = view
            .allowed_ips
            .iter()
            .filter(|a| peer.served_routes().any(|s| s == *a))
            .copied()
            .collect();
        routes.sort();
        routes.dedup();
        routes
    }

    fn visible_ids(&self, viewer: &Node) -> Option<Vec<NodeId>> {
        let Some(v) = self.slot(viewer) else {
            return Some(Vec::new());
        };
        let nodes = self.compiled.nodes();
        let mut ids: Vec<NodeId> = self.peers[v]
            .get_or_init(|| Arc::new(self.compiled.peer_set(v)))
            .iter()
            .map(|i| nodes[i].id)
            .collect();
        // The compiled nodes come in snapshot (ID) order; sort only if that ever changes.
        if !ids.is_sorted() {
            ids.sort_unstable();
        }
        Some(ids)
    }

    fn packet_filter(&self, viewer: &Node) -> Arc<str> {
        let Some(v) = self.slot(viewer) else {
            return Arc::clone(&self.deny);
        };
        Arc::clone(self.filters[v].get_or_init(|| {
            match serde_json::to_string(&self.compiled.filter_rules(v)) {
                Ok(text) => self.intern(text),
                Err(e) => {
                    tracing::error!(error = %e, node = viewer.id.get(), "cannot encode a packet filter; the node gets deny-all");
                    Arc::clone(&self.deny)
                }
            }
        }))
    }

    fn ssh_policy(&self, viewer: &Node) -> Option<Arc<str>> {
        let v = self.slot(viewer)?;
        self.ssh[v]
            .get_or_init(|| {
                let p = self.compiled.ssh_policy(v);
                if p.rules.is_empty() {
                    return None;
                }
                match serde_json::to_string(&p) {
                    Ok(text) => Some(Arc::from(text)),
                    Err(e) => {
                        tracing::error!(error = %e, node = viewer.id.get(), "cannot encode an SSH policy; the node gets none");
                        None
                    }
                }
            })
            .clone()
    }

    fn auto_approved_routes(&self, node: &Node) -> Vec<IpNet> {
        let Some(n) = self.slot(node) else {
            return Vec::new();
        };
        // The compile counts auto-approved announcements as approved, so what it serves
        // beyond the stored approval is exactly what autoApprovers add.
        let mut v: Vec<IpNet> = self
            .compiled
            .approved_routes(n)
            .into_iter()
            .filter(|r| !node.approved_routes.contains(r))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn node_attrs(&self, node: &Node) -> Vec<NodeAttr> {
        let Some(n) = self.slot(node) else {
            return Vec::new();
        };
        self.compiled
            .self_cap_map(n)
            .into_iter()
            .map(|(cap, values)| NodeAttr {
                cap,
                values: values
                    .unwrap_or_default()
                    .iter()
                    .map(serde_json::Value::to_string)
                    .collect(),
            })
            .collect()
    }
}
