//! Node commands: every change to a node, whoever asks (the admin API, a client's map
//! request or registration, the lifecycle timers). Each writes only the columns it owns and
//! then brings the NodeStore to the row as stored, through [`ControlState::write`].

use chrono::{DateTime, Utc};
use hs_db::{ClientState, Conn};
use hs_nodestore::{NodePatch, Op, Snapshot};
use hs_types::NodeId;
use hs_types::model::Node;
use ipnet::IpNet;

use super::write::Read;
use super::{ControlState, first_result};
use crate::clock::now;
use crate::error::Error;

/// A narrow change to one node's row, run inside the command's transaction.
type Change = Box<dyn FnOnce(&mut Conn<'_>, &Snapshot, &Node) -> Result<(), Error> + Send>;

/// A client's new hostname renames the node too when its name is still the one derived
/// from the old hostname (Go Headscale's rule): `joes-mac-mini` for "Joe's Mac mini", bumped
/// to `-1`, `-2`… when another node holds it. A name an operator chose stays.
fn follow_hostname(
    c: &mut Conn<'_>,
    id: NodeId,
    hostname: &str,
    t: DateTime<Utc>,
) -> Result<(), Error> {
    use hs_nodestore::names::{is_auto_derived_given_name, resolve_given_name, sanitize_hostname};
    let old = node_row(c, id)?;
    if !is_auto_derived_given_name(&old.given_name, &old.hostname) {
        return Ok(());
    }
    // The database decides, as for renames: under the write lock it holds every name.
    let taken: std::collections::HashSet<String> = c
        .list_nodes()?
        .into_iter()
        .filter(|n| n.id != id)
        .map(|n| n.given_name)
        .collect();
    let name = resolve_given_name(&sanitize_hostname(hostname), |n| taken.contains(n));
    if name != old.given_name {
        c.set_node_given_name(id, &name, t)?;
    }
    Ok(())
}

impl ControlState {
    /// The shape of most node commands: `change` writes some columns of node `id`, then the
    /// whole row is read back in the same transaction and put in the NodeStore. Since rows
    /// are read under the write lock, the NodeStore never holds an older row than the
    /// database. Returns the node as the NodeStore holds it.
    async fn update_node(&self, read: Read, id: NodeId, change: Change) -> Result<Node, Error> {
        let (_, applied) = self
            .write(
                read,
                Box::new(move |c, snap| {
                    let before = node_row(c, id)?;
                    change(c, snap, &before)?;
                    let row = node_row(c, id)?;
                    Ok(((), vec![Op::Upsert(Box::new(row))]))
                }),
            )
            .await?;
        let a = applied.ok_or(Error::Stopped)?;
        first_result(&a)?;
        a.next
            .node(id)
            .map(|e| e.node.clone())
            .ok_or_else(|| Error::NotFound(format!("node with id {} not found", id.get())))
    }

    /// Brings the NodeStore to node `id`'s database row (for a row written outside the
    /// control plane, such as an import or a test fixture); the node's peers hear of it.
    pub async fn reload_node(&self, id: NodeId) -> Result<Node, Error> {
        self.update_node(Read::Published, id, Box::new(|_, _, _| Ok(())))
            .await
    }

    /// Deletes a node: database first, then every peer forgets it and its addresses go back
    /// to the allocator.
    pub async fn delete_node(&self, id: NodeId) -> Result<(), Error> {
        self.write(
            Read::Synced,
            Box::new(move |c, _| {
                node_row(c, id)?;
                c.delete_node(id)?;
                Ok(((), vec![Op::Remove(id)]))
            }),
        )
        .await?;
        tracing::info!(node = id.get(), "node deleted");
        Ok(())
    }

    /// Sets a node's key expiry (`None`: never expires): admin `nodes expire`.
    pub async fn expire_node(&self, id: NodeId, at: Option<DateTime<Utc>>) -> Result<Node, Error> {
        let t = now();
        self.update_node(
            Read::Synced,
            id,
            Box::new(move |c, _, _| Ok(c.set_node_expiry(id, at, t)?)),
        )
        .await
    }

    /// Renames a node (its MagicDNS label): a valid DNS label no other node holds.
    pub async fn rename_node(&self, id: NodeId, name: &str) -> Result<Node, Error> {
        if !hs_nodestore::names::is_valid_label(name) {
            return Err(Error::Invalid(format!(
                "{name:?} is not a valid node name: use a DNS label (lowercase letters, digits and '-', at most 63 characters)"
            )));
        }
        let name = name.to_owned();
        let t = now();
        self.update_node(
            Read::Synced,
            id,
            Box::new(move |c, _, _| {
                // The database decides: under the write lock it holds every committed name.
                if let Some(other) = c
                    .list_nodes()?
                    .into_iter()
                    .find(|n| n.id != id && n.given_name == name)
                {
                    return Err(Error::Invalid(format!(
                        "node name {name:?} is already used by node {}",
                        other.id.get()
                    )));
                }
                Ok(c.set_node_given_name(id, &name, t)?)
            }),
        )
        .await
    }

    /// Replaces a node's tags. A tagged node belongs to its tags, not to a user.
    pub async fn set_node_tags(&self, id: NodeId, tags: Vec<String>) -> Result<Node, Error> {
        if let Some(bad) = tags.iter().find(|t| !t.starts_with("tag:") || t.len() <= 4) {
            return Err(Error::Invalid(format!(
                "invalid tag {bad:?}: tags look like \"tag:name\""
            )));
        }
        let t = now();
        self.update_node(
            Read::Synced,
            id,
            Box::new(move |c, _, _| {
                c.set_node_tags(id, &tags, t)?;
                if !tags.is_empty() {
                    c.set_node_user(id, None, t)?;
                }
                Ok(())
            }),
        )
        .await
    }

    /// Replaces a node's approved routes (normalised, sorted, without duplicates).
    pub async fn set_approved_routes(&self, id: NodeId, routes: Vec<IpNet>) -> Result<Node, Error> {
        let mut routes: Vec<IpNet> = routes.into_iter().map(|r| r.trunc()).collect();
        routes.sort();
        routes.dedup();
        let t = now();
        self.update_node(
            Read::Synced,
            id,
            Box::new(move |c, _, _| Ok(c.set_node_approved_routes(id, &routes, t)?)),
        )
        .await
    }

    /// Approves what the policy auto-approves among `id`'s announced routes. Called when a
    /// node registers or connects and when its Hostinfo changes (a policy change approves
    /// in its own batch). Returns the routes it approved (empty when there was nothing to do).
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
        let t = now();
        let add = extra.clone();
        self.update_node(
            Read::Published,
            id,
            Box::new(move |c, _, before| {
                // Approval only grows: add to what the row holds now.
                let mut routes = before.approved_routes.clone();
                routes.extend(add);
                routes.sort();
                routes.dedup();
                Ok(c.set_node_approved_routes(id, &routes, t)?)
            }),
        )
        .await?;
        tracing::info!(
            node = id.get(),
            routes = ?extra.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "routes auto-approved by the policy"
        );
        Ok(extra)
    }

    /// What a map request reports about the client itself (Hostinfo, endpoints, disco key):
    /// those columns only, never the operator's. A Hostinfo change re-announces the node;
    /// endpoints and disco key alone go out as a patch.
    pub(crate) async fn update_client_state(
        &self,
        id: NodeId,
        update: ClientState,
    ) -> Result<(), Error> {
        if update == ClientState::default() {
            return Ok(());
        }
        let t = now();
        let (_, applied) = self
            .write(
                Read::Published,
                Box::new(move |c, _| {
                    if let Some(hostname) = &update.hostname {
                        follow_hostname(c, id, hostname, t)?;
                    }
                    c.set_node_client_state(id, &update, t)?;
                    let op = if update.hostinfo.is_some() {
                        Op::Upsert(Box::new(node_row(c, id)?))
                    } else {
                        Op::Patch(
                            id,
                            NodePatch {
                                endpoints: update.endpoints,
                                disco_key: update.disco_key,
                                ..NodePatch::default()
                            },
                        )
                    };
                    Ok(((), vec![op]))
                }),
            )
            .await?;
        applied.map_or(Ok(()), |a| first_result(&a))
    }

    /// Stores a node a client registered: a new row (`node.id` zero), or, for a known
    /// node, the registration's columns applied by `renew` to the row as it is now (so an
    /// operator's edit made meanwhile stays). `also` runs in the same transaction (spending
    /// the pre-auth key). Returns the node as the NodeStore holds it, with the unique
    /// name it was given.
    pub(crate) async fn store_registration(
        &self,
        node: Node,
        renew: Box<dyn FnOnce(Node) -> Node + Send>,
        also: crate::state::registration::Also,
    ) -> Result<Node, Error> {
        let (stored, applied) = self
            .write(
                Read::Published,
                Box::new(move |c, _| {
                    let stored = if node.id.get() == 0 {
                        c.create_node(&node)?
                    } else {
                        let row = renew(node_row(c, node.id)?);
                        c.upsert_node(&row)?;
                        row
                    };
                    also(c)?;
                    Ok((stored.clone(), vec![Op::Upsert(Box::new(stored))]))
                }),
            )
            .await?;
        let a = applied.ok_or(Error::Stopped)?;
        first_result(&a)?;
        let held = a
            .next
            .node(stored.id)
            .map(|e| e.node.clone())
            .ok_or(hs_nodestore::Error::UnknownNode(stored.id))?;
        if held.given_name != stored.given_name {
            // The NodeStore made the name unique; record it unless an operator renamed the
            // node since (then the rename is what both hold).
            let (id, written, name, t) =
                (held.id, stored.given_name, held.given_name.clone(), now());
            self.blocking(move |db| db.tx(|c| c.set_node_given_name_if(id, &written, &name, t)))
                .await?;
        }
        Ok(held)
    }

    /// A client logout: expiry and last-seen set to `at`, then the node is hidden from every
    /// peer. The row stays, so logging in again from the same machine keeps the node and its
    /// addresses.
    pub async fn logout_node(&self, id: NodeId, at: DateTime<Utc>) -> Result<(), Error> {
        let (_, applied) = self
            .write(
                Read::Published,
                Box::new(move |c, _| {
                    c.set_node_expiry(id, Some(at), at)?;
                    c.set_node_last_seen(id, at)?;
                    let patch = NodePatch {
                        expiry: Some(Some(at)),
                        last_seen: Some(at),
                        logged_out: Some(true),
                        ..NodePatch::default()
                    };
                    Ok(((), vec![Op::Patch(id, patch)]))
                }),
            )
            .await?;
        applied.map_or(Ok(()), |a| first_result(&a))
    }

    /// Node went offline for good (grace over): announce it and persist last-seen.
    pub(crate) async fn mark_offline(&self, id: NodeId) -> Result<(), Error> {
        let t = now();
        if self.is_logged_out(id) {
            // Its last-seen marks the logout (see `lifecycle`); only the online flag moves.
            let patch = NodePatch {
                online: Some(false),
                ..NodePatch::default()
            };
            self.apply(vec![Op::Patch(id, patch)]).await?;
            return Ok(());
        }
        self.write(
            Read::Published,
            Box::new(move |c, _| {
                c.set_node_last_seen(id, t)?;
                let patch = NodePatch {
                    online: Some(false),
                    last_seen: Some(t),
                    ..NodePatch::default()
                };
                Ok(((), vec![Op::Patch(id, patch)]))
            }),
        )
        .await?;
        Ok(())
    }

    /// Re-announces the nodes whose expiry lies in `(since, now]`, read back from the
    /// database, so their peers render them `Expired`; returns how many.
    pub(crate) async fn sweep_expired(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        let ids: Vec<NodeId> = self
            .store()
            .load()
            .nodes()
            .filter(|e| e.node.expiry.is_some_and(|x| since < x && x <= now))
            .map(|e| e.node.id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let (n, _) = self
            .write(
                Read::Published,
                Box::new(move |c, _| {
                    // Unchanged rows: re-applying them marks the nodes changed, and the
                    // mapper renders them at the current time, now expired.
                    let mut ops = Vec::with_capacity(ids.len());
                    for id in ids {
                        if let Some(n) = c.get_node(id)? {
                            ops.push(Op::Upsert(Box::new(n)));
                        }
                    }
                    Ok((ops.len(), ops))
                }),
            )
            .await?;
        Ok(n)
    }
}

/// Node `id`'s row, or the API's "not found" error.
pub(crate) fn node_row(c: &mut Conn<'_>, id: NodeId) -> Result<Node, Error> {
    c.get_node(id)?
        .ok_or_else(|| Error::NotFound(format!("node with id {} not found", id.get())))
}
