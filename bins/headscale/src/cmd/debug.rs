//! `headscale debug` (hidden, as in Go Headscale): `create-node` files a made-up client's
//! pending registration in the running server, which `headscale auth register` then
//! completes like a real one. For trying the CLI and API without a Tailscale client.

use anyhow::Context as _;
use clap::Subcommand;
use hs_api::proto;

use super::client::{self, block_on, node_json, status};
use crate::cli::GlobalArgs;
use crate::output::success;

/// `debug` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Create a pending registration for a fake node (approve it with `auth register`).
    CreateNode {
        /// The node's name.
        #[arg(long)]
        name: String,
        /// The user who will own the node.
        #[arg(short = 'u', long)]
        user: String,
        /// The registration's auth id (`hskey-authreq-` and 24 characters).
        #[arg(short = 'k', long)]
        key: String,
        /// A route the node advertises; repeat or separate with commas.
        #[arg(short = 'r', long = "route")]
        routes: Vec<String>,
    },
}

pub(crate) fn run(global: &GlobalArgs, cmd: DebugCommand) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        match cmd {
            DebugCommand::CreateNode {
                name,
                user,
                key,
                routes,
            } => {
                let node = c
                    .debug_create_node(proto::DebugCreateNodeRequest {
                        user,
                        key,
                        name,
                        routes: client::split_list(&routes),
                    })
                    .await
                    .map_err(|s| status("creating node", s))?
                    .into_inner()
                    .node
                    .context("the server returned no node")?;
                let human = format!("Node {} created", node.name);
                success(&node_json(&node), &human, global.output)
            }
        }
    })
}
