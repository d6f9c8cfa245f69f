//! Operator changes to nodes (what the API and CLI call): each is written to the database
//! first and then applied to the NodeStore, so every connected peer hears about it.
//! Deleting and expiring live on [`ControlState`] itself (`delete_node`, `expire_node`).

use hs_nodestore::Op;
use hs_types::NodeId;
use hs_types::model::Node;
use ipnet::IpNet;

use crate::clock::now;
use crate::error::Error;
use crate::state::{ControlState, first_result};

impl ControlState {
    fn current(&self, id: NodeId) -> Result<Node, Error> {
        self.store()
            .load()
            .node(id)
            .map(|e| e.node.clone())
            .ok_or_else(|| hs_nodestore::Error::UnknownNode(id).into())
    }

    /// Renames a node (its MagicDNS label). The NodeStore checks the name (a DNS label no
    /// other node holds) before anything is written.
    pub async fn rename_node(&self, id: NodeId, name: &str) -> Result<Node, Error> {
        let node = self.current(id)?;
        let snap = self.store().load_full();
        if let Some(other) = snap.node_by_given_name(name).filter(|e| e.node.id != id) {
            return Err(Error::Config(format!(
                "the name {name:?} is held by node {}",
                other.node.id.get()
            )));
        }
        if !hs_nodestore::names::is_valid_label(name) {
            return Err(hs_nodestore::Error::InvalidGivenName(name.to_owned()).into());
        }
        let t = now();
        let n = name.to_owned();
        self.blocking(move |db| db.tx(|c| c.set_node_given_name(id, &n, t)))
            .await?;
        let a = self.apply(vec![Op::Rename(id, name.to_owned())]).await?;
        first_result(&a)?;
        Ok(Node {
            given_name: name.to_owned(),
            ..node
        })
    }

    /// Replaces a node's tags; a tagged node belongs to no user.
    pub async fn set_node_tags(&self, id: NodeId, tags: Vec<String>) -> Result<Node, Error> {
        if let Some(bad) = tags.iter().find(|t| !t.starts_with("tag:") || t.len() <= 4) {
            return Err(Error::Config(format!(
                "invalid tag {bad:?}: tags look like \"tag:name\""
            )));
        }
        let node = self.current(id)?;
        let updated = Node {
            user_id: if tags.is_empty() { node.user_id } else { None },
            tags,
            updated_at: now(),
            ..node
        };
        self.put_node(updated, false).await
    }

    /// Replaces a node's approved routes.
    pub async fn set_approved_routes(&self, id: NodeId, routes: Vec<IpNet>) -> Result<Node, Error> {
        let node = self.current(id)?;
        let mut routes: Vec<IpNet> = routes.into_iter().map(|r| r.trunc()).collect();
        routes.sort();
        routes.dedup();
        let updated = Node {
            approved_routes: routes,
            updated_at: now(),
            ..node
        };
        self.put_node(updated, false).await
    }
}
