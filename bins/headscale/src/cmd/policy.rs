//! `headscale policy`: get, set and check the ACL policy through the admin API.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use hs_api::proto;
use serde_json::{Value, json};

use super::client::{self, block_on, status};
use crate::cli::GlobalArgs;
use crate::output::success;

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Print the current policy.
    #[command(visible_aliases = ["show", "view", "fetch"])]
    Get,
    /// Store a new policy (database mode only).
    Set {
        /// The policy file (HuJSON).
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// Check a policy file against the server's users and nodes without storing it.
    Check {
        /// The policy file (HuJSON).
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
}

fn read(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("--file: reading {}", file.display()))
}

pub(crate) fn run(global: &GlobalArgs, cmd: PolicyCommand) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        match cmd {
            PolicyCommand::Get => {
                let r = c
                    .get_policy(proto::GetPolicyRequest {})
                    .await
                    .map_err(|s| status("reading the policy", s))?
                    .into_inner();
                let v = json!({
                    "policy": r.policy,
                    "updated_at": client::time(r.updated_at.as_ref()),
                });
                success(&v, &r.policy, global.output)
            }
            PolicyCommand::Set { file } => {
                let policy = read(&file)?;
                c.set_policy(proto::SetPolicyRequest { policy })
                    .await
                    .map_err(|s| status("setting the policy", s))?;
                success(&Value::Null, "Policy updated.", global.output)
            }
            PolicyCommand::Check { file } => {
                let policy = read(&file)?;
                c.check_policy(proto::CheckPolicyRequest { policy })
                    .await
                    .map_err(|s| status(&format!("policy {}", file.display()), s))?;
                success(&Value::Null, "Policy is valid", global.output)
            }
        }
    })
}
