//! `headscale preauthkeys`: create, list, expire and delete pre-authentication keys.

use crate::goformat::GoValue;
use anyhow::Context as _;
use clap::Subcommand;
use hs_api::proto;

use super::client::{self, block_on, preauthkey_json, status};
use crate::cli::GlobalArgs;
use crate::output::success;

/// `preauthkeys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PreAuthKeysCommand {
    /// List pre-auth keys.
    #[command(visible_aliases = ["ls", "show"])]
    List,
    /// Create a pre-auth key.
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// The ID of the user who will own nodes registered with the key.
        #[arg(short = 'u', long)]
        user: Option<u64>,
        /// The key can register more than one node (`--reusable` or `--reusable=true`).
        #[arg(
            long,
            num_args = 0..=1,
            require_equals = true,
            default_value_t = false,
            default_missing_value = "true",
            action = clap::ArgAction::Set,
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        reusable: bool,
        /// Nodes registered with the key are removed when they go offline (`--ephemeral` or
        /// `--ephemeral=true`).
        #[arg(
            long,
            num_args = 0..=1,
            require_equals = true,
            default_value_t = false,
            default_missing_value = "true",
            action = clap::ArgAction::Set,
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        ephemeral: bool,
        /// How long the key stays valid (e.g. `1h`, `90d`).
        #[arg(short = 'e', long, default_value = "1h")]
        expiration: String,
        /// Tags for nodes registered with the key (`tag:a,tag:b`).
        #[arg(long)]
        tags: Vec<String>,
    },
    /// Expire a pre-auth key.
    #[command(visible_aliases = ["revoke", "exp", "e"])]
    Expire {
        /// The key's ID.
        #[arg(short = 'i', long = "id")]
        id: u64,
    },
    /// Delete a pre-auth key.
    #[command(visible_aliases = ["del", "rm", "d"])]
    Delete {
        /// The key's ID.
        #[arg(short = 'i', long = "id")]
        id: u64,
    },
}

/// Runs a `preauthkeys` subcommand. `parent_user` is `--user` given before the subcommand
/// (`preauthkeys --user 1 create`), which Go Headscale's CLI accepts too; `create --user`
/// wins over it.
pub(crate) fn run(
    global: &GlobalArgs,
    parent_user: Option<u64>,
    cmd: PreAuthKeysCommand,
) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        match cmd {
            PreAuthKeysCommand::List => {
                let keys = c
                    .list_pre_auth_keys(proto::ListPreAuthKeysRequest {})
                    .await
                    .map_err(|s| status("listing preauthkeys", s))?
                    .into_inner()
                    .pre_auth_keys;
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.to_string(),
                            k.key.clone(),
                            k.reusable.to_string(),
                            k.ephemeral.to_string(),
                            k.used.to_string(),
                            client::short_time(k.expiration.as_ref()),
                            k.acl_tags.join(","),
                        ]
                    })
                    .collect();
                let human = client::table(
                    &[
                        "ID",
                        "Key",
                        "Reusable",
                        "Ephemeral",
                        "Used",
                        "Expiration",
                        "Tags",
                    ],
                    &rows,
                );
                let json = GoValue::repeated(keys.iter().map(preauthkey_json).collect());
                success(&json, human.trim_end(), global.output)
            }
            PreAuthKeysCommand::Create {
                user,
                reusable,
                ephemeral,
                expiration,
                tags,
            } => {
                let d = client::parse_duration("--expiration", &expiration)?;
                let req = proto::CreatePreAuthKeyRequest {
                    user: user.or(parent_user).unwrap_or(0),
                    reusable,
                    ephemeral,
                    expiration: Some(client::timestamp_in(client::now(), d)?),
                    acl_tags: client::split_list(&tags),
                };
                let key = c
                    .create_pre_auth_key(req)
                    .await
                    .map_err(|s| status("creating preauthkey", s))?
                    .into_inner()
                    .pre_auth_key
                    .context("the server returned no key")?;
                success(&preauthkey_json(&key), &key.key, global.output)
            }
            PreAuthKeysCommand::Expire { id } => {
                c.expire_pre_auth_key(proto::ExpirePreAuthKeyRequest { id })
                    .await
                    .map_err(|s| status("expiring preauthkey", s))?;
                success(&client::empty(), "Key expired", global.output)
            }
            PreAuthKeysCommand::Delete { id } => {
                c.delete_pre_auth_key(proto::DeletePreAuthKeyRequest { id })
                    .await
                    .map_err(|s| status("deleting preauthkey", s))?;
                success(&client::empty(), "Key deleted", global.output)
            }
        }
    })
}
