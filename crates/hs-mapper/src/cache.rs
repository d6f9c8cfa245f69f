//! Serialised peer entries, shared across viewers and across messages.
//!
//! A node renders the same JSON for every viewer allowed the same of its routes, so it is
//! serialised once per version of its snapshot entry and per distinct route set (almost
//! always one: a node without routes, or routes every viewer may use), and the bytes are
//! spliced into every map that lists it. A cached entry is valid while the snapshot still
//! holds the very same `Arc<NodeEntry>` (entries are replaced, never mutated), the same
//! policy (node attributes come from it) and the key-expired flag it was rendered with
//! still holds.
//!
//! The policy is remembered by a `Weak`: an entry must not keep the view it was rendered
//! under alive. Every registration recompiles the policy, and entries rendered under older
//! views kept each of those views (per-viewer peer sets and packet filters, megabytes at
//! 2,000 nodes) resident long after the snapshot had moved on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use chrono::{DateTime, Utc};
use hs_nodestore::{NodeEntry, PolicyView};
use hs_types::NodeId;
use ipnet::IpNet;

use crate::config::MapperConfig;
use crate::error::Error;
use crate::render;

/// Shards keep concurrent map builds (a reconnect storm on several threads) from
/// serialising on one lock; 16 is plenty for the core counts a control server runs on.
const SHARDS: usize = 16;

/// A policy that splits viewers into more route sets than this is unusual; past it the
/// oldest variant is dropped so a node's cache stays small.
const MAX_VARIANTS: usize = 8;

type Variant = (bool, Vec<IpNet>);

struct Cached {
    entry: Arc<NodeEntry>,
    /// Compared by address only. The `Weak` keeps the view's allocation (not what the view
    /// owns), so the address cannot be reused by a later view while this entry exists.
    policy: Weak<dyn PolicyView>,
    expired: bool,
    /// Rendered bytes per (rendered for the node itself, visible route set); the first is
    /// the most recently rendered.
    variants: Vec<(Variant, Arc<[u8]>)>,
}

/// Whether `cached` is `current` (by address; see [`Cached::policy`]).
fn same_policy(cached: &Weak<dyn PolicyView>, current: &Arc<dyn PolicyView>) -> bool {
    std::ptr::addr_eq(cached.as_ptr(), Arc::as_ptr(current))
}

/// The per-node JSON cache.
pub struct PeerCache {
    shards: Vec<Mutex<HashMap<NodeId, Cached>>>,
}

impl std::fmt::Debug for PeerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCache")
            .field("len", &self.len())
            .finish()
    }
}

impl Default for PeerCache {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: NodeId) -> &Mutex<HashMap<NodeId, Cached>> {
        &self.shards[(id.get() as usize) % SHARDS]
    }

    /// Number of cached nodes.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops a node's bytes (it was deleted).
    pub fn forget(&self, id: NodeId) {
        self.shard(id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// The last bytes rendered for a node with the given visible routes (for itself or for
    /// a peer), whatever entry and policy they were rendered from.
    pub fn peek(&self, id: NodeId, routes: &[IpNet], as_self: bool) -> Option<Arc<[u8]>> {
        self.shard(id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .and_then(|c| {
                c.variants
                    .iter()
                    .find(|((s, r), _)| *s == as_self && r == routes)
            })
            .map(|(_, j)| Arc::clone(j))
    }

    /// The JSON of `e` as a `tailcfg.Node` for itself (`as_self`) or for a peer shown
    /// `routes` of it (see `hs_nodestore::Snapshot::visible_routes`), from the cache or
    /// freshly rendered.
    pub fn node_json(
        &self,
        e: &Arc<NodeEntry>,
        cfg: &MapperConfig,
        policy: &Arc<dyn PolicyView>,
        routes: &[IpNet],
        as_self: bool,
        now: DateTime<Utc>,
    ) -> Result<Arc<[u8]>, Error> {
        let id = e.node.id;
        let expired = e.node.is_expired(now);
        {
            let shard = self
                .shard(id)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = shard.get(&id)
                && Arc::ptr_eq(&c.entry, e)
                && same_policy(&c.policy, policy)
                && c.expired == expired
                && let Some((_, j)) = c
                    .variants
                    .iter()
                    .find(|((s, r), _)| *s == as_self && r == routes)
            {
                return Ok(Arc::clone(j));
            }
        }
        // Render outside the lock: serialisation is the expensive part.
        let json: Arc<[u8]> =
            serde_json::to_vec(&render::node(e, cfg, &**policy, routes, as_self, now))?.into();
        let mut shard = self
            .shard(id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = |json: Arc<[u8]>| Cached {
            entry: Arc::clone(e),
            policy: Arc::downgrade(policy),
            expired,
            variants: vec![((as_self, routes.to_vec()), json)],
        };
        match shard.get_mut(&id) {
            Some(c)
                if Arc::ptr_eq(&c.entry, e)
                    && same_policy(&c.policy, policy)
                    && c.expired == expired =>
            {
                c.variants
                    .retain(|((s, r), _)| !(*s == as_self && r == routes));
                c.variants
                    .insert(0, ((as_self, routes.to_vec()), Arc::clone(&json)));
                c.variants.truncate(MAX_VARIANTS);
            }
            _ => {
                shard.insert(id, fresh(Arc::clone(&json)));
            }
        }
        Ok(json)
    }
}
