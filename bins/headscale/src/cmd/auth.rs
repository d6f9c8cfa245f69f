//! `headscale auth`: decide pending interactive logins (register a node for a user, approve
//! or reject an `auth-id`).

use anyhow::Context as _;
use clap::Subcommand;
use hs_api::proto;

use super::client::{self, block_on, node_json, status};
use crate::cli::GlobalArgs;
use crate::output::success;

/// `auth` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuthCommand {
    /// Register the node waiting on `--auth-id` to a user.
    Register {
        /// The pending login's ID (from the URL the client printed).
        #[arg(long = "auth-id")]
        auth_id: String,
        /// The user who will own the node.
        #[arg(short = 'u', long)]
        user: String,
    },
    /// Approve the pending request `--auth-id`.
    Approve {
        /// The pending request's ID.
        #[arg(long = "auth-id")]
        auth_id: String,
    },
    /// Reject the pending request `--auth-id`.
    Reject {
        /// The pending request's ID.
        #[arg(long = "auth-id")]
        auth_id: String,
    },
}

pub(crate) fn run(global: &GlobalArgs, cmd: AuthCommand) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        match cmd {
            AuthCommand::Register { auth_id, user } => {
                let node = c
                    .auth_register(proto::AuthRegisterRequest { user, auth_id })
                    .await
                    .map_err(|s| status("registering node", s))?
                    .into_inner()
                    .node
                    .context("the server returned no node")?;
                let human = format!("Node {} registered", node.given_name);
                success(&node_json(&node), &human, global.output)
            }
            AuthCommand::Approve { auth_id } => {
                c.auth_approve(proto::AuthApproveRequest { auth_id })
                    .await
                    .map_err(|s| status("approving auth request", s))?;
                success(&client::empty(), "Auth request approved", global.output)
            }
            AuthCommand::Reject { auth_id } => {
                c.auth_reject(proto::AuthRejectRequest { auth_id })
                    .await
                    .map_err(|s| status("rejecting auth request", s))?;
                success(&client::empty(), "Auth request rejected", global.output)
            }
        }
    })
}
