//! `headscale nodes`: list, expire, rename, delete, tag nodes and approve their routes.

use crate::goformat::GoValue;
use anyhow::Context as _;
use clap::Subcommand;
use hs_api::proto;

use super::client::{self, block_on, node_json, status};
use crate::cli::GlobalArgs;
use crate::output::success;

/// `nodes` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NodesCommand {
    /// List nodes.
    #[command(visible_aliases = ["ls", "show"])]
    List {
        /// Only this user's nodes.
        #[arg(short = 'u', long)]
        user: Option<String>,
    },
    /// List nodes' routes (available, approved, serving).
    #[command(visible_aliases = ["lsr", "routes"])]
    ListRoutes {
        /// Only this node.
        #[arg(short = 'i', long = "identifier")]
        id: Option<u64>,
    },
    /// Register a pending node to a user (deprecated: use `auth register`).
    Register {
        /// The user who will own the node.
        #[arg(short = 'u', long)]
        user: String,
        /// The pending registration's auth id.
        #[arg(short = 'k', long)]
        key: String,
    },
    /// Expire a node (log it out), or change or disable its expiry.
    #[command(visible_aliases = ["logout", "exp", "e"])]
    Expire {
        /// The node's ID.
        #[arg(short = 'i', long = "identifier")]
        id: u64,
        /// Expiry time (RFC 3339); default now.
        #[arg(short = 'e', long)]
        expiry: Option<String>,
        /// Disable the node's key expiry.
        #[arg(short = 'd', long = "disable")]
        disable: bool,
    },
    /// Rename a node.
    Rename {
        /// The node's ID.
        #[arg(short = 'i', long = "identifier")]
        id: u64,
        /// The new name.
        new_name: String,
    },
    /// Delete a node.
    #[command(visible_alias = "del")]
    Delete {
        /// The node's ID.
        #[arg(short = 'i', long = "identifier")]
        id: u64,
    },
    /// Set a node's tags (replacing the current ones).
    #[command(visible_aliases = ["tags", "t"])]
    Tag {
        /// The node's ID.
        #[arg(short = 'i', long = "identifier")]
        id: u64,
        /// The tags (`tag:a,tag:b`).
        #[arg(short = 't', long)]
        tags: Vec<String>,
    },
    /// Set a node's approved routes (empty clears them).
    ApproveRoutes {
        /// The node's ID.
        #[arg(short = 'i', long = "identifier")]
        id: u64,
        /// The routes (`10.0.0.0/8,0.0.0.0/0`).
        #[arg(short = 'r', long)]
        routes: Vec<String>,
    },
    /// Give addresses to nodes missing one from the configured prefixes.
    Backfillips,
}

pub(crate) fn run(global: &GlobalArgs, cmd: NodesCommand) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        let out = global.output;
        match cmd {
            NodesCommand::List { user } => {
                let nodes = list(&mut c, user.unwrap_or_default()).await?;
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.id.to_string(),
                            n.given_name.clone(),
                            n.user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
                            n.ip_addresses.join(", "),
                            n.tags.join(","),
                            client::short_time(n.last_seen.as_ref()),
                            if n.online { "online" } else { "offline" }.to_owned(),
                        ]
                    })
                    .collect();
                let human = client::table(
                    &[
                        "ID",
                        "Name",
                        "User",
                        "IP addresses",
                        "Tags",
                        "Last seen",
                        "Connected",
                    ],
                    &rows,
                );
                let json = GoValue::repeated(nodes.iter().map(node_json).collect());
                success(&json, human.trim_end(), out)
            }
            NodesCommand::ListRoutes { id } => {
                let nodes: Vec<proto::Node> = list(&mut c, String::new())
                    .await?
                    .into_iter()
                    .filter(|n| id.is_none_or(|i| n.id == i))
                    .filter(|n| {
                        id.is_some()
                            || !(n.available_routes.is_empty() && n.approved_routes.is_empty())
                    })
                    .collect();
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.id.to_string(),
                            n.given_name.clone(),
                            n.approved_routes.join(", "),
                            n.available_routes.join(", "),
                            n.subnet_routes.join(", "),
                        ]
                    })
                    .collect();
                let human = client::table(
                    &["ID", "Hostname", "Approved", "Available", "Serving"],
                    &rows,
                );
                let json = GoValue::repeated(nodes.iter().map(node_json).collect());
                success(&json, human.trim_end(), out)
            }
            NodesCommand::Expire {
                id,
                expiry,
                disable,
            } => {
                let expiry = match expiry {
                    Some(s) => Some(client::timestamp(
                        chrono::DateTime::parse_from_rfc3339(&s)
                            .with_context(|| format!("--expiry: {s:?} is not an RFC 3339 time"))?
                            .to_utc(),
                    )),
                    None => None,
                };
                let node = c
                    .expire_node(proto::ExpireNodeRequest {
                        node_id: id,
                        expiry,
                        disable_expiry: disable,
                    })
                    .await
                    .map_err(|s| status("expiring node", s))?
                    .into_inner()
                    .node
                    .context("the server returned no node")?;
                success(&node_json(&node), "Node expired", out)
            }
            NodesCommand::Register { user, key } => {
                let node = c
                    .register_node(proto::RegisterNodeRequest { user, key })
                    .await
                    .map_err(|s| status("registering node", s))?
                    .into_inner()
                    .node
                    .context("the server returned no node")?;
                let human = format!("Node {} registered", node.given_name);
                success(&node_json(&node), &human, out)
            }
            NodesCommand::Rename { id, new_name } => {
                let node = c
                    .rename_node(proto::RenameNodeRequest {
                        node_id: id,
                        new_name,
                    })
                    .await
                    .map_err(|s| status("renaming node", s))?
                    .into_inner()
                    .node
                    .context("the server returned no node")?;
                success(&node_json(&node), "Node renamed", out)
            }
            NodesCommand::Delete { id } => {
                // As Go's CLI: look the node up first (its name goes in the question).
                let node = c
                    .get_node(proto::GetNodeRequest { node_id: id })
                    .await
                    .map_err(|s| status("getting node", s))?
                    .into_inner()
                    .node
                    .unwrap_or_default();
                if !global.force
                    && !super::confirm(&format!("Do you want to remove the node {}?", node.name))?
                {
                    anyhow::bail!("node not deleted: not confirmed (use --force)");
                }
                c.delete_node(proto::DeleteNodeRequest { node_id: id })
                    .await
                    .map_err(|s| status("deleting node", s))?;
                success(
                    &GoValue::Map(vec![("Result".into(), "Node deleted".into())]),
                    "Node deleted",
                    out,
                )
            }
            NodesCommand::Tag { id, tags } => {
                let node = c
                    .set_tags(proto::SetTagsRequest {
                        node_id: id,
                        tags: client::split_list(&tags),
                    })
                    .await
                    .map_err(|s| status("setting tags", s))?
                    .into_inner()
                    .node
                    .context("the server returned no node")?;
                success(&node_json(&node), "Node updated", out)
            }
            NodesCommand::ApproveRoutes { id, routes } => {
                let node = c
                    .set_approved_routes(proto::SetApprovedRoutesRequest {
                        node_id: id,
                        routes: client::split_list(&routes),
                    })
                    .await
                    .map_err(|s| status("setting approved routes", s))?
                    .into_inner()
                    .node
                    .context("the server returned no node")?;
                success(&node_json(&node), "Node updated", out)
            }
            NodesCommand::Backfillips => {
                if !global.force
                    && !super::confirm(
                        "Are you sure that you want to assign/remove IPs to/from nodes?",
                    )?
                {
                    anyhow::bail!("nothing changed: not confirmed (use --force)");
                }
                let changes = c
                    .backfill_node_i_ps(proto::BackfillNodeIPsRequest { confirmed: true })
                    .await
                    .map_err(|s| status("backfilling IPs", s))?
                    .into_inner()
                    .changes;
                success(
                    &GoValue::repeated(changes.iter().cloned().map(GoValue::Str).collect()),
                    &changes.join("\n"),
                    out,
                )
            }
        }
    })
}

async fn list(c: &mut hs_api::client::Client, user: String) -> anyhow::Result<Vec<proto::Node>> {
    Ok(c.list_nodes(proto::ListNodesRequest { user })
        .await
        .map_err(|s| status("listing nodes", s))?
        .into_inner()
        .nodes)
}
