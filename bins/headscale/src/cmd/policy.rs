//! `headscale policy`: get, set and check the ACL policy through the admin API, or, with
//! `--bypass-server-and-access-database-directly`, straight in the database named by the
//! config (no server needed; meant for when it is stopped, e.g. to repair a policy that keeps
//! it from starting or to seed one before switching `policy.mode` to database).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hs_api::proto;
use hs_config::PolicyMode;
use hs_db::Db;

use super::client::{self, block_on, status};
use crate::cli::GlobalArgs;
use crate::output::success;

/// The flag's name, as Go Headscale 0.30 spells it.
const BYPASS_FLAG: &str = "--bypass-server-and-access-database-directly";

/// Going around the server.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Bypass {
    /// Use the config to open the database directly instead of asking the server; the
    /// server need not (and should not) be running.
    #[arg(
        long = "bypass-server-and-access-database-directly",
        visible_alias = "bypass-grpc-and-access-database-directly"
    )]
    bypass: bool,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Print the current policy.
    #[command(visible_aliases = ["show", "view", "fetch"])]
    Get {
        #[command(flatten)]
        bypass: Bypass,
    },
    /// Store a new policy (database mode only).
    #[command(visible_aliases = ["put", "update"])]
    Set {
        /// The policy file (HuJSON).
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[command(flatten)]
        bypass: Bypass,
    },
    /// Check a policy file against the server's users and nodes without storing it.
    Check {
        /// The policy file (HuJSON).
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[command(flatten)]
        bypass: Bypass,
    },
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file)
        .with_context(|| format!("--file: reading policy file {}", file.display()))
}

pub(crate) fn run(global: &GlobalArgs, cmd: PolicyCommand) -> anyhow::Result<()> {
    let bypassed = match &cmd {
        PolicyCommand::Get { bypass }
        | PolicyCommand::Set { bypass, .. }
        | PolicyCommand::Check { bypass, .. } => bypass.bypass,
    };
    if bypassed {
        return run_direct(global, cmd);
    }
    block_on(async move {
        let mut c = client::connect(global).await?;
        match cmd {
            PolicyCommand::Get { .. } => {
                let r = c
                    .get_policy(proto::GetPolicyRequest {})
                    .await
                    .map_err(|s| status("loading ACL policy", s))?
                    .into_inner();
                // Go prints the document itself whatever `-o` says.
                crate::output::line(&r.policy)
            }
            PolicyCommand::Set { file, .. } => {
                let policy = read(&file)?;
                c.set_policy(proto::SetPolicyRequest { policy })
                    .await
                    .map_err(|s| status("setting ACL policy", s))?;
                policy_updated()
            }
            PolicyCommand::Check { file, .. } => {
                let policy = read(&file)?;
                c.check_policy(proto::CheckPolicyRequest { policy })
                    .await
                    .map_err(|s| status(&format!("policy {}", file.display()), s))?;
                success(&client::empty(), "Policy is valid", global.output)
            }
        }
    })
}

/// The bypass: the same three operations on the database itself.
fn run_direct(global: &GlobalArgs, cmd: PolicyCommand) -> anyhow::Result<()> {
    // Read the file first so a typo costs no prompt and no database open.
    let file_text = match &cmd {
        PolicyCommand::Get { .. } => None,
        PolicyCommand::Set { file, .. } | PolicyCommand::Check { file, .. } => Some(read(file)?),
    };
    if !global.force
        && !super::confirm(
            "DO NOT run this command if an instance of headscale is running, are you sure headscale is not running?",
        )?
    {
        anyhow::bail!("command aborted by user (use --force to skip the question)");
    }
    let loaded = crate::config_file::load(global.config.as_deref())
        .with_context(|| format!("{BYPASS_FLAG}: loading config"))?;
    let db = hs_server::database::open(&loaded.config.database)?;
    match (cmd, file_text) {
        (PolicyCommand::Get { .. }, _) => {
            let row = db
                .tx(|c| c.get_policy())
                .context("loading policy from database")?
                .context("loading policy from database: acl policy not found")?;
            crate::output::line(&row.data)
        }
        (PolicyCommand::Set { file, .. }, Some(text)) => {
            check_against(&db, &text, &file)?;
            if loaded.config.policy.mode != PolicyMode::Database {
                // Go Headscale stores it anyway (that is how a policy is seeded before the
                // switch); say that it is not in force yet.
                eprintln!(
                    "note: policy.mode is file: the stored policy is used once policy.mode is database"
                );
            }
            let now = client::now();
            db.tx(|c| c.set_policy(&text, now))
                .context("setting ACL policy")?;
            policy_updated()
        }
        (PolicyCommand::Check { file, .. }, Some(text)) => {
            check_against(&db, &text, &file)?;
            success(&client::empty(), "Policy is valid", global.output)
        }
        (PolicyCommand::Set { .. } | PolicyCommand::Check { .. }, None) => {
            anyhow::bail!("internal error: policy file not read")
        }
    }
}

/// Parses, validates and compiles `text` against the stored users and nodes, running its
/// `tests`, as the server does before storing a policy.
fn check_against(db: &Db, text: &str, file: &Path) -> anyhow::Result<()> {
    let (users, nodes) = db
        .tx(|c| Ok((c.list_users()?, c.list_nodes()?)))
        .context("loading users and nodes for policy validation")?;
    hs_api::policy_check::check_policy_text(text, &users, &nodes)
        .map_err(|e| anyhow::anyhow!("parsing policy file {}: {e}", file.display()))
}

/// What Go prints after `policy set`, whatever `-o` says.
fn policy_updated() -> anyhow::Result<()> {
    crate::output::line("Policy updated.")
}
