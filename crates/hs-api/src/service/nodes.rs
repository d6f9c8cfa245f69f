//! Node operations: look-ups with the user and pre-auth key shown alongside, and the
//! changes (delete, expire, rename, tags, routes, registration) that the control plane is
//! told about after the database write.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use hs_types::model::{Node, PreAuthKey, User};
use hs_types::{NodeId, UserId};

use super::validate::{validate_auth_id, validate_dns_label, validate_tag, zero_instant};
use super::{Admin, NodeView, find_user};
use crate::error::ApiError;

/// The id Headscale gives its tagged-devices pseudo user (also the `User` of a tagged node
/// on the Tailscale wire).
const TAGGED_DEVICES_USER_ID: UserId = UserId(2_147_455_555);

/// The pseudo user Headscale shows as the owner of tagged nodes in node lists: only id,
/// name and display name are set; its creation time is Go's zero time.
pub(crate) fn tagged_devices_user() -> User {
    User {
        id: TAGGED_DEVICES_USER_ID,
        name: "tagged-devices".to_owned(),
        display_name: "Tagged Devices".to_owned(),
        email: String::new(),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
        created_at: zero_instant(),
        updated_at: zero_instant(),
    }
}

impl Admin {
    fn view(&self, node: Node, users: &[User], keys: &[PreAuthKey]) -> NodeView {
        let preauth_key = node
            .auth_key_id
            .and_then(|id| keys.iter().find(|k| k.id == id))
            .map(|k| (k.clone(), find_user(users, k.user_id)));
        NodeView {
            user: find_user(users, node.user_id),
            online: self.hooks.is_online(node.id),
            available_routes: self.hooks.available_routes(&node),
            preauth_key,
            node,
        }
    }

    async fn view_one(&self, node: Node) -> Result<NodeView, ApiError> {
        let (users, keys) = self
            .db("loading node details", |s| {
                Ok((s.list_users()?, s.list_preauth_keys()?))
            })
            .await?;
        Ok(self.view(node, &users, &keys))
    }

    async fn node_required(&self, id: NodeId) -> Result<Node, ApiError> {
        self.db("looking up node", move |s| s.node(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("node with id {} not found", id.get())))
    }

    /// One node.
    pub async fn get_node(&self, id: NodeId) -> Result<NodeView, ApiError> {
        let node = self.node_required(id).await?;
        self.view_one(node).await
    }

    /// All nodes, or those of the user named `user`; 404 for an unknown user.
    pub async fn list_nodes(&self, user: Option<&str>) -> Result<Vec<NodeView>, ApiError> {
        let owner = match user {
            Some(u) if !u.is_empty() => Some(self.user_by_name(u).await?),
            _ => None,
        };
        let (mut nodes, users, keys) = self
            .db("listing nodes", |s| {
                Ok((s.list_nodes()?, s.list_users()?, s.list_preauth_keys()?))
            })
            .await?;
        if let Some(o) = &owner {
            nodes.retain(|n| n.user_id == Some(o.id));
        }
        nodes.sort_by_key(|n| n.id.get());
        Ok(nodes
            .into_iter()
            .map(|n| {
                let mut v = self.view(n, &users, &keys);
                // Headscale lists (only lists; get and the write answers keep the stored
                // owner) a tagged node as owned by its tagged-devices pseudo user.
                if !v.node.tags.is_empty() {
                    v.user = Some(tagged_devices_user());
                }
                v
            })
            .collect())
    }

    /// Deletes a node and tells the control plane.
    pub async fn delete_node(&self, id: NodeId) -> Result<(), ApiError> {
        self.node_required(id).await?;
        self.db("deleting node", move |s| s.delete_node(id)).await?;
        self.hooks.node_deleted(id);
        Ok(())
    }

    /// Expires a node at `expiry` (now when `None`), or clears its expiry with `disable`.
    pub async fn expire_node(
        &self,
        id: NodeId,
        expiry: Option<DateTime<Utc>>,
        disable: bool,
    ) -> Result<NodeView, ApiError> {
        self.node_required(id).await?;
        let at = if disable {
            None
        } else {
            Some(expiry.unwrap_or_else(|| self.now()))
        };
        let now = self.now();
        let node = self
            .db("expiring node", move |s| s.set_node_expiry(id, at, now))
            .await?;
        self.hooks.node_changed(&node);
        self.view_one(node).await
    }

    /// Renames a node (its DNS label); the name must be a valid DNS label.
    pub async fn rename_node(&self, id: NodeId, name: String) -> Result<NodeView, ApiError> {
        validate_dns_label(&name)?;
        self.node_required(id).await?;
        let now = self.now();
        let node = self
            .db("renaming node", move |s| s.rename_node(id, &name, now))
            .await?;
        self.hooks.node_changed(&node);
        self.view_one(node).await
    }

    /// Replaces a node's tags; each must be well formed and owned in the policy.
    pub async fn set_tags(&self, id: NodeId, tags: Vec<String>) -> Result<NodeView, ApiError> {
        if tags.is_empty() {
            // Headscale's wording, which scripts and its integration tests match on.
            return Err(ApiError::bad_request(
                "cannot remove all tags from a node - tagged nodes must have at least one tag",
            ));
        }
        for t in &tags {
            validate_tag(t)?;
        }
        self.node_required(id).await?;
        self.hooks
            .check_tags(&tags)
            .map_err(|m| ApiError::bad_request(format!("setting tags: {m}")))?;
        let now = self.now();
        let node = self
            .db("setting tags", move |s| s.set_node_tags(id, &tags, now))
            .await?;
        self.hooks.node_changed(&node);
        self.view_one(node).await
    }

    /// Replaces a node's approved routes; each must be a CIDR prefix. Approving one exit
    /// route approves both, as Headscale does.
    pub async fn set_approved_routes(
        &self,
        id: NodeId,
        routes: Vec<String>,
    ) -> Result<NodeView, ApiError> {
        let mut parsed: Vec<IpNet> = Vec::with_capacity(routes.len());
        for (i, r) in routes.iter().enumerate() {
            let net: IpNet = r.trim().parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "routes[{i}]: {r:?} is not a CIDR prefix (e.g. 10.0.0.0/24)"
                ))
            })?;
            parsed.push(net.trunc());
        }
        let v4_exit: IpNet = IpNet::V4(ipnet::Ipv4Net::default());
        let v6_exit: IpNet = IpNet::V6(ipnet::Ipv6Net::default());
        if parsed.contains(&v4_exit) || parsed.contains(&v6_exit) {
            parsed.push(v4_exit);
            parsed.push(v6_exit);
        }
        parsed.sort();
        parsed.dedup();
        self.node_required(id).await?;
        let now = self.now();
        let node = self
            .db("approving routes", move |s| {
                s.set_approved_routes(id, &parsed, now)
            })
            .await?;
        self.hooks.node_changed(&node);
        self.view_one(node).await
    }

    /// Completes a pending registration for the user named `user`.
    pub async fn auth_register(&self, user: &str, auth_id: &str) -> Result<NodeView, ApiError> {
        validate_auth_id(auth_id)?;
        let u = self.user_by_name(user).await?;
        let node = self.hooks.auth_register(auth_id, &u)?;
        self.view_one(node).await
    }

    /// Debug: creates a pending registration and returns the node it would make.
    pub async fn debug_create_node(
        &self,
        user: &str,
        auth_id: &str,
        name: &str,
        routes: &[String],
    ) -> Result<NodeView, ApiError> {
        validate_auth_id(auth_id)?;
        let mut parsed = Vec::with_capacity(routes.len());
        for (i, r) in routes.iter().enumerate() {
            parsed.push(r.trim().parse::<IpNet>().map_err(|_| {
                ApiError::bad_request(format!("routes[{i}]: {r:?} is not a CIDR prefix"))
            })?);
        }
        let u = self.user_by_name(user).await?;
        let node = self.hooks.debug_create_node(auth_id, &u, name, &parsed)?;
        self.view_one(node).await
    }

    /// Approves a pending authentication.
    pub fn auth_approve(&self, auth_id: &str) -> Result<(), ApiError> {
        validate_auth_id(auth_id)?;
        self.hooks.auth_approve(auth_id)
    }

    /// Rejects a pending authentication.
    pub fn auth_reject(&self, auth_id: &str) -> Result<(), ApiError> {
        validate_auth_id(auth_id)?;
        self.hooks.auth_reject(auth_id)
    }

    /// Backfills missing node addresses.
    pub fn backfill_ips(&self, confirmed: bool) -> Result<Vec<String>, ApiError> {
        self.hooks.backfill_ips(confirmed)
    }
}
