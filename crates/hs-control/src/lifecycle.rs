//! Node lifecycle after a map stream ends: the offline grace period (a quick reconnect does
//! not flap the node offline), last-seen persisted, and ephemeral nodes deleted once they
//! stayed away for `node.ephemeral.inactivity_timeout` (their addresses go back to the pool).

use hs_types::NodeId;

use crate::state::ControlState;

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
