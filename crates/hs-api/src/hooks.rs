//! The admin API's window onto the running control plane.
//!
//! Some operations must reach connected clients (a renamed, expired, retagged or deleted
//! node; a new policy) or need state only the control plane holds (pending interactive
//! registrations, who is online, the live policy). The API writes the database itself and
//! then tells the control plane through [`ControlHooks`]; hs-control implements it on its
//! state coordinator. [`DbOnly`] is the implementation for a server without a control plane
//! (tests, tools): it notifies nobody and says so in its answers.

use hs_types::NodeId;
use hs_types::model::{Node, User};
use ipnet::IpNet;

use crate::error::ApiError;

/// Side effects and live state the admin API needs from the control plane.
pub trait ControlHooks: Send + Sync + 'static {
    /// A node's row changed (expiry, name, tags, approved routes); push it to peers.
    fn node_changed(&self, node: &Node);
    /// A node was deleted; drop its sessions and remove it from peers.
    fn node_deleted(&self, id: NodeId);
    /// A new policy was stored; recompile and push.
    fn policy_changed(&self, policy: &str);
    /// Validates a policy against the current users and nodes, including its `tests`.
    /// The error names what is wrong.
    fn check_policy(&self, policy: &str, users: &[User], nodes: &[Node]) -> Result<(), String>;
    /// Whether the live policy lets these tags be set on a node (each tag must be owned).
    fn check_tags(&self, tags: &[String]) -> Result<(), String>;
    /// Whether the node holds a long-poll session now.
    fn is_online(&self, id: NodeId) -> bool;
    /// Routes the node advertises (from its Hostinfo).
    fn available_routes(&self, node: &Node) -> Vec<IpNet>;
    /// Completes the pending interactive registration `auth_id` for `user`.
    fn auth_register(&self, auth_id: &str, user: &User) -> Result<Node, ApiError>;
    /// Approves a pending SSH-check or re-authentication `auth_id`.
    fn auth_approve(&self, auth_id: &str) -> Result<(), ApiError>;
    /// Rejects a pending `auth_id`.
    fn auth_reject(&self, auth_id: &str) -> Result<(), ApiError>;
    /// Debug: makes a pending registration `auth_id` for `user` as if a client had asked,
    /// and returns the node it would create.
    fn debug_create_node(
        &self,
        auth_id: &str,
        user: &User,
        name: &str,
        routes: &[IpNet],
    ) -> Result<Node, ApiError>;
    /// Assigns missing addresses; with `confirmed == false` nothing is changed.
    fn backfill_ips(&self, confirmed: bool) -> Result<Vec<String>, ApiError>;
}

/// Hooks for a server without a control plane: database writes only.
///
/// It notifies nobody, reports every node offline, has no pending registrations and owns no
/// tags (there is no live policy). Policies are still fully checked with hs-policy.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbOnly;

impl ControlHooks for DbOnly {
    fn node_changed(&self, node: &Node) {
        tracing::debug!(
            node.id = node.id.get(),
            "node changed (no control plane to notify)"
        );
    }

    fn node_deleted(&self, id: NodeId) {
        tracing::debug!(
            node.id = id.get(),
            "node deleted (no control plane to notify)"
        );
    }

    fn policy_changed(&self, _policy: &str) {
        tracing::debug!("policy changed (no control plane to notify)");
    }

    fn check_policy(&self, policy: &str, users: &[User], nodes: &[Node]) -> Result<(), String> {
        crate::policy_check::check_policy_text(policy, users, nodes)
    }

    fn check_tags(&self, tags: &[String]) -> Result<(), String> {
        match tags.first() {
            None => Ok(()),
            Some(t) => Err(format!("tag {t:?} is not owned by anyone in the policy")),
        }
    }

    fn is_online(&self, _id: NodeId) -> bool {
        false
    }

    fn available_routes(&self, node: &Node) -> Vec<IpNet> {
        routable_ips(node)
    }

    fn auth_register(&self, auth_id: &str, _user: &User) -> Result<Node, ApiError> {
        Err(ApiError::not_found(format!(
            "no pending registration with auth id {auth_id:?}"
        )))
    }

    fn auth_approve(&self, auth_id: &str) -> Result<(), ApiError> {
        Err(ApiError::not_found(format!(
            "no pending authentication with auth id {auth_id:?}"
        )))
    }

    fn auth_reject(&self, auth_id: &str) -> Result<(), ApiError> {
        self.auth_approve(auth_id)
    }

    fn debug_create_node(
        &self,
        _auth_id: &str,
        _user: &User,
        _name: &str,
        _routes: &[IpNet],
    ) -> Result<Node, ApiError> {
        Err(ApiError::bad_request(
            "debug create-node needs the control plane's registration cache, which this server does not run",
        ))
    }

    fn backfill_ips(&self, confirmed: bool) -> Result<Vec<String>, ApiError> {
        if confirmed {
            Ok(Vec::new())
        } else {
            Err(ApiError::bad_request(
                "backfilling IPs changes node addresses: set confirmed=true to proceed",
            ))
        }
    }
}

/// The routes a node advertises, read from its Hostinfo's `RoutableIPs`. Read through the
/// Hostinfo's JSON form so this keeps working whichever Rust type carries the Hostinfo.
pub fn routable_ips(node: &Node) -> Vec<IpNet> {
    let Some(value) = node
        .hostinfo
        .as_ref()
        .and_then(|h| serde_json::to_value(h).ok())
    else {
        return Vec::new();
    };
    value
        .get("RoutableIPs")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}
