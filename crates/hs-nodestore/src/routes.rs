//! Primary subnet-route election, incremental: when a node's candidacy for some prefixes
//! (or its health) changes, only those prefixes are re-elected. The rule is Headscale's:
//! among the online nodes that announce and have approval for a prefix, keep the current
//! primary while it remains a healthy candidate, otherwise pick the lowest healthy node
//! id; when no candidate is healthy, keep the current primary if it is still a candidate
//! (a failing probe everywhere is more likely the prober's problem). A router that
//! recovers does not take its prefixes back. Exit routes are not elected.

use std::collections::BTreeSet;

use ipnet::IpNet;

use hs_types::NodeId;

use crate::entry::{NodeEntry, is_exit_route};
use crate::snapshot::{RouteState, Snapshot};

/// The subnet prefixes a node is a candidate for: served, non-exit, and only while online
/// and not logged out (a logged-out node is hidden from its peers, so a prefix it held
/// would be unreachable).
fn candidacy(e: &NodeEntry) -> BTreeSet<IpNet> {
    if !e.online || e.logged_out {
        return BTreeSet::new();
    }
    e.served_routes()
        .filter(|r| !is_exit_route(r))
        .copied()
        .collect()
}

/// Re-elects the prefixes whose candidacy changed between `old` and the entry now stored
/// for `id`. Returns every node whose primary routes changed (possibly including `id`).
pub(crate) fn reelect(snap: &mut Snapshot, old: Option<&NodeEntry>, id: NodeId) -> Vec<NodeId> {
    let new_c = snap
        .nodes
        .get(&id)
        .map(|e| candidacy(e))
        .unwrap_or_default();
    let old_c = old.map(candidacy).unwrap_or_default();
    let mut moved = BTreeSet::new();
    let health_changed = old.is_some_and(|o| {
        snap.nodes
            .get(&id)
            .is_some_and(|n| n.unhealthy != o.unhealthy)
    });
    if health_changed {
        for p in old_c.intersection(&new_c) {
            elect(snap, *p, &mut moved);
        }
    }
    for p in old_c.difference(&new_c) {
        if let Some(st) = snap.routes.get_mut(p) {
            st.candidates.remove(&id);
        }
        elect(snap, *p, &mut moved);
    }
    for p in new_c.difference(&old_c) {
        snap.routes
            .entry(*p)
            .or_insert_with(|| RouteState {
                candidates: Default::default(),
                primary: None,
            })
            .candidates
            .insert(id);
        elect(snap, *p, &mut moved);
    }
    moved.into_iter().collect()
}

/// Re-elects the prefixes a removed node was a candidate for. Returns the surviving nodes
/// whose primary routes changed.
pub(crate) fn reelect_removed(snap: &mut Snapshot, old: &NodeEntry) -> Vec<NodeId> {
    let mut moved = BTreeSet::new();
    for p in candidacy(old) {
        if let Some(st) = snap.routes.get_mut(&p) {
            st.candidates.remove(&old.node.id);
        }
        elect(snap, p, &mut moved);
    }
    moved.remove(&old.node.id);
    moved.into_iter().collect()
}

fn elect(snap: &mut Snapshot, prefix: IpNet, moved: &mut BTreeSet<NodeId>) {
    let nodes = &snap.nodes;
    let Some(st) = snap.routes.get_mut(&prefix) else {
        return;
    };
    let healthy = |id: &NodeId| nodes.get(id).is_some_and(|e| !e.unhealthy);
    let current = st.primary.filter(|cur| st.candidates.contains(cur));
    let winner = match current {
        Some(cur) if healthy(&cur) => Some(cur),
        _ => st
            .candidates
            .iter()
            .find(|c| healthy(c))
            .or(current.as_ref())
            .or(st.candidates.get_min())
            .copied(),
    };
    let previous = st.primary;
    st.primary = winner;
    if st.candidates.is_empty() {
        snap.routes.remove(&prefix);
    }
    if winner == previous {
        return;
    }
    if let Some(o) = previous {
        set_primary(snap, o, prefix, false);
        moved.insert(o);
    }
    if let Some(n) = winner {
        set_primary(snap, n, prefix, true);
        moved.insert(n);
    }
}

fn set_primary(snap: &mut Snapshot, node: NodeId, prefix: IpNet, on: bool) {
    let version = snap.version;
    if let Some(e) = snap.nodes.get_mut(&node) {
        let mut changed = (**e).clone();
        changed.primary_routes.retain(|p| *p != prefix);
        if on {
            changed.primary_routes.push(prefix);
            changed.primary_routes.sort();
        }
        changed.changed_in = version;
        *e = std::sync::Arc::new(changed);
    }
}
