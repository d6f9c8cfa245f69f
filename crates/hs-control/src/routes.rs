//! Route auto-approval: the announced routes the policy's `autoApprovers` cover (a
//! `routes` prefix covers its sub-prefixes; `exitNode` covers `0.0.0.0/0` and `::/0`; owners
//! are users, groups and tags) are added to the node's approved routes, in the database
//! first and then in the NodeStore, where they become served and enter the primary
//! election.
//!
//! Approval only ever grows here: a router going offline, or a policy that no longer
//! auto-approves a route, leaves the stored approval alone (Headscale's rule; removing it
//! is the operator's `nodes approve-routes`).

use hs_nodestore::Op;
use hs_types::NodeId;
use ipnet::IpNet;

use crate::clock::now;
use crate::error::Error;
use crate::state::{ControlState, first_result};

impl ControlState {
    /// Approves what the policy auto-approves among `id`'s announced routes. Called when a
    /// node registers or connects, when its Hostinfo changes and after a policy change.
    /// Returns the routes it approved (empty when there was nothing to do).
    pub async fn auto_approve_routes(&self, id: NodeId) -> Result<Vec<IpNet>, Error> {
        let snap = self.store().load_full();
        let Some(e) = snap.node(id) else {
            return Ok(Vec::new());
        };
        // The common case (nothing announced, or all of it approved) costs no policy query.
        if e.announced_routes
            .iter()
            .all(|r| e.node.approved_routes.contains(r))
        {
            return Ok(Vec::new());
        }
        let extra = snap.policy().auto_approved_routes(&e.node);
        if extra.is_empty() {
            return Ok(Vec::new());
        }
        let mut routes = e.node.approved_routes.clone();
        routes.extend(extra.iter().copied());
        routes.sort();
        routes.dedup();
        let t = now();
        let stored = routes.clone();
        self.blocking(move |db| db.tx(|c| c.set_node_approved_routes(id, &stored, t)))
            .await?;
        // Another write may have landed meanwhile: apply onto the node as it is now.
        let Some(mut node) = self.store().load().node(id).map(|e| e.node.clone()) else {
            return Ok(Vec::new());
        };
        node.approved_routes = routes;
        node.updated_at = t;
        let a = self.apply(vec![Op::Upsert(Box::new(node))]).await?;
        first_result(&a)?;
        tracing::info!(
            node = id.get(),
            routes = ?extra.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "routes auto-approved by the policy"
        );
        Ok(extra)
    }

    /// [`ControlState::auto_approve_routes`] for every node that announces a route it is
    /// not approved for: what a policy change triggers. Failures are logged per node.
    pub async fn auto_approve_all_routes(&self) {
        let ids: Vec<NodeId> = self
            .store()
            .load()
            .nodes()
            .filter(|e| {
                e.announced_routes
                    .iter()
                    .any(|r| !e.node.approved_routes.contains(r))
            })
            .map(|e| e.node.id)
            .collect();
        for id in ids {
            if let Err(e) = self.auto_approve_routes(id).await {
                tracing::warn!(node = id.get(), error = %e, "auto-approving routes failed");
            }
        }
    }
}
