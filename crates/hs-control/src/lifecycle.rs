//! Node lifecycle: the offline grace period after a map stream ends (a quick reconnect does
//! not flap the node offline), last-seen persisted, ephemeral nodes deleted once they stayed
//! away for `node.ephemeral.inactivity_timeout` (their addresses go back to the pool), and
//! client logout, which hides the node from every peer until it logs in again.
//!
//! A logout is stored without a schema change: expiry and last-seen are both set to the
//! logout instant, and a node whose expiry equals its last-seen is taken as logged out when
//! the state is loaded (an admin expiry never writes last-seen, and a logged-out node's
//! last-seen is left alone until it logs in again). See `docs/lifecycle.md`.

use chrono::{DateTime, Utc};
use hs_nodestore::{NodePatch, Op};
use hs_types::NodeId;
use hs_types::model::Node;

use crate::error::Error;
use crate::state::{ControlState, first_result};

/// Whether a stored node is logged out (see the module doc).
pub(crate) fn stored_as_logged_out(n: &Node, now: DateTime<Utc>) -> bool {
    n.expiry.is_some_and(|e| e <= now) && n.expiry == n.last_seen
}

impl ControlState {
    /// A client logout: expiry and last-seen set to `at` (durable), then the node is hidden
    /// from every peer. The row stays, so logging in again from the same machine keeps the
    /// node and its addresses.
    pub async fn logout_node(&self, id: NodeId, at: DateTime<Utc>) -> Result<(), Error> {
        self.blocking(move |db| {
            db.tx(|c| {
                c.set_node_expiry(id, Some(at), at)?;
                c.set_node_last_seen(id, at)
            })
        })
        .await?;
        let a = self
            .apply(vec![Op::Patch(
                id,
                NodePatch {
                    expiry: Some(Some(at)),
                    last_seen: Some(at),
                    logged_out: Some(true),
                    ..NodePatch::default()
                },
            )])
            .await?;
        first_result(&a)
    }

    /// Whether the node is logged out right now.
    pub fn is_logged_out(&self, id: NodeId) -> bool {
        self.store().load().node(id).is_some_and(|e| e.logged_out)
    }
}

/// Called when a stream's body is dropped (client gone, stream replaced or closed).
pub(crate) async fn stream_ended(st: ControlState, node: NodeId, conn: u64) {
    st.metrics().stream_ended();
    if !st.unsubscribe(node, conn).await {
        // A newer stream of the same node took over; it owns the online state now.
        return;
    }
    tracing::info!(node = node.get(), "map stream closed");
    tokio::time::sleep(st.config().offline_grace).await;
    if st.is_connected(node).await {
        return;
    }
    if st.store().load().node(node).is_none() {
        return;
    }
    if let Err(e) = st.mark_offline(node).await {
        tracing::warn!(node = node.get(), error = %e, "marking the node offline failed");
    }
    ephemeral_gc(st, node).await;
}

/// Deletes an ephemeral node that is still disconnected after the inactivity timeout.
pub(crate) async fn ephemeral_gc(st: ControlState, node: NodeId) {
    let ephemeral = st
        .store()
        .load()
        .node(node)
        .is_some_and(|e| st.is_ephemeral(&e.node));
    if !ephemeral {
        return;
    }
    tokio::time::sleep(st.config().ephemeral_inactivity_timeout).await;
    if st.is_connected(node).await || st.store().load().node(node).is_none() {
        return;
    }
    match st.delete_node(node).await {
        Ok(()) => tracing::info!(node = node.get(), "ephemeral node removed after inactivity"),
        Err(e) => {
            tracing::warn!(node = node.get(), error = %e, "removing an ephemeral node failed")
        }
    }
}

impl ControlState {
    /// Schedules removal of the ephemeral nodes that are offline at start-up (their
    /// inactivity timer restarts with the server).
    pub fn schedule_startup_gc(&self) {
        let ids: Vec<NodeId> = self
            .store()
            .load()
            .nodes()
            .filter(|e| !e.online && self.is_ephemeral(&e.node))
            .map(|e| e.node.id)
            .collect();
        for id in ids {
            tokio::spawn(ephemeral_gc(self.clone(), id));
        }
    }
}
