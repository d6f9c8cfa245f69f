//! Node operations: look-ups with the user and pre-auth key shown alongside (and, from the
//! NodeStore, whether the node is online and what it announces), and the changes (delete,
//! expire, rename, tags, routes, registration), each one hs-control command.

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
        groups: Vec::new(),
    }
}

impl Admin {
    fn view(&self, node: Node, users: &[User], keys: &[PreAuthKey]) -> NodeView {
        let preauth_key = node
            .auth_key_id
            .and_then(|id| keys.iter().find(|k| k.id == id))
            .map(|k| (k.clone(), find_user(users, k.user_id)));
        let snap = self.control.store().load();
        let live = snap.node(node.id);
        NodeView {
            user: find_user(users, node.user_id),
            online: live.is_some_and(|e| e.online),
            available_routes: live.map_or_else(Vec::new, |e| e.announced_routes.clone()),
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
            .ok_or_else(|| ApiError::not_found("node not found".to_owned()))
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

    /// Deletes a node; its peers forget it at once.
    pub async fn delete_node(&self, id: NodeId) -> Result<(), ApiError> {
        self.control
            .delete_node(id)
            .await
            .map_err(|e| ApiError::from_control("deleting node", e))
    }

    /// Expires a node at `expiry` (now when `None`), or clears its expiry with `disable`.
    pub async fn expire_node(
        &self,
        id: NodeId,
        expiry: Option<DateTime<Utc>>,
        disable: bool,
    ) -> Result<NodeView, ApiError> {
        let at = if disable {
            None
        } else {
            Some(expiry.unwrap_or_else(|| self.now()))
        };
        let node = self
            .control
            .expire_node(id, at)
            .await
            .map_err(|e| ApiError::from_control("expiring node", e))?;
        self.view_one(node).await
    }

    /// Renames a node (its DNS label); the name must be a valid DNS label.
    pub async fn rename_node(&self, id: NodeId, name: String) -> Result<NodeView, ApiError> {
        validate_dns_label(&name)?;
        let node = self
            .control
            .rename_node(id, &name)
            .await
            .map_err(|e| ApiError::from_control("renaming node", e))?;
        self.view_one(node).await
    }

    /// Replaces a node's tags; each must be well formed and defined in the policy in force.
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
        self.check_tags(&tags).await?;
        let node = self
            .control
            .set_node_tags(id, tags)
            .await
            .map_err(|e| ApiError::from_control("setting tags", e))?;
        self.view_one(node).await
    }

    /// Headscale's rule for operator tag changes: any tag the policy in force defines in
    /// `tagOwners` (who owns it does not matter here); with no policy, or a tag it does not
    /// define, the change is refused in Headscale's words.
    async fn check_tags(&self, tags: &[String]) -> Result<(), ApiError> {
        let policy = self
            .control
            .policy()
            .await
            .map_err(|e| ApiError::from_control("setting tags", e))?;
        let undefined: Vec<&str> = tags
            .iter()
            .filter(|t| {
                !policy
                    .as_ref()
                    .is_some_and(|p| p.tag_owners.contains_key(t.as_str()))
            })
            .map(String::as_str)
            .collect();
        if undefined.is_empty() {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "requested tags [{}] are invalid or not permitted",
            undefined.join(" ")
        )))
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
        let node = self
            .control
            .set_approved_routes(id, parsed)
            .await
            .map_err(|e| ApiError::from_control("approving routes", e))?;
        self.view_one(node).await
    }

    /// Completes a pending registration for the user named `user`.
    pub async fn auth_register(&self, user: &str, auth_id: &str) -> Result<NodeView, ApiError> {
        validate_auth_id(auth_id)?;
        let u = self.user_by_name(user).await?;
        let mut first = None;
        for id in auth_id_forms(auth_id) {
            match self.control.approve_registration(&id, u.id).await {
                Ok(node) => return self.view_one(node).await,
                // Report the form the operator typed.
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.map_or_else(
            || ApiError::not_found(format!("no pending registration with auth ID {auth_id:?}")),
            |e| ApiError::not_found(e.to_string()),
        ))
    }

    /// Debug: files a pending registration as if a client (random keys, `TestOS`) had
    /// asked, as Go Headscale does, and returns the node it would make; nothing is stored
    /// until `auth register`.
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
        let node = super::debug_node::pending(&self.control, auth_id, &u, name, parsed.clone())?;
        let mut view = self.view_one(node).await?;
        // Not connected, so not in the NodeStore: the routes are the ones it will announce.
        view.available_routes = parsed;
        Ok(view)
    }

    /// Approves a pending authentication: an SSH check lets the held connection through
    /// (and starts the pair's check period). Approving a registration is accepted and
    /// changes nothing, as in Go Headscale 0.29.3 (whose empty verdict does not make a
    /// node): it still waits for `auth register` to say whose node it becomes, or for
    /// `auth reject`.
    pub fn auth_approve(&self, auth_id: &str) -> Result<(), ApiError> {
        validate_auth_id(auth_id)?;
        if self.control.is_ssh_check_pending(auth_id) {
            return self
                .control
                .decide_ssh_check(auth_id, true)
                .map_err(|e| ApiError::not_found(e.to_string()));
        }
        if self.control.is_registration_pending(auth_id) {
            return Ok(());
        }
        let shown = match auth_id.strip_prefix(super::AUTH_ID_PREFIX) {
            Some(_) => auth_id.to_owned(),
            None => format!("{}{auth_id}", super::AUTH_ID_PREFIX),
        };
        Err(ApiError::not_found(format!(
            "no pending auth session for auth_id {shown}"
        )))
    }

    /// Rejects a pending registration (the waiting client is told so) or SSH check (the
    /// held connection is refused).
    pub fn auth_reject(&self, auth_id: &str) -> Result<(), ApiError> {
        validate_auth_id(auth_id)?;
        if self.control.is_ssh_check_pending(auth_id) {
            return self
                .control
                .decide_ssh_check(auth_id, false)
                .map_err(|e| ApiError::not_found(e.to_string()));
        }
        let mut first = None;
        for id in auth_id_forms(auth_id) {
            match self.control.reject_registration(&id) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.map_or_else(
            || ApiError::not_found(format!("no pending registration with auth ID {auth_id:?}")),
            |e| ApiError::not_found(e.to_string()),
        ))
    }

    /// Backfills missing node addresses.
    pub async fn backfill_ips(&self, confirmed: bool) -> Result<Vec<String>, ApiError> {
        self.control
            .backfill_ips(confirmed)
            .await
            .map_err(|e| ApiError::from_control("backfilling IPs", e))
    }
}

/// The forms an operator's auth id may take: as given, and with the `hskey-authreq-` prefix
/// removed or added. Our `AuthURL`s carry the prefixed form, as Go Headscale 0.29 prints it;
/// an operator may still type only the 24 characters.
fn auth_id_forms(id: &str) -> [String; 2] {
    let other = match id.strip_prefix(super::AUTH_ID_PREFIX) {
        Some(bare) => bare.to_owned(),
        None => format!("{}{id}", super::AUTH_ID_PREFIX),
    };
    [id.to_owned(), other]
}
