//! `headscale apikeys`: create, list, expire and delete API keys for the remote admin API.

use crate::goformat::GoValue;
use clap::Subcommand;
use hs_api::proto;

use super::client::{self, apikey_json, block_on, status};
use crate::cli::GlobalArgs;
use crate::output::success;

/// `apikeys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeysCommand {
    /// List API keys (their prefixes; secrets are never stored).
    #[command(visible_aliases = ["ls", "show"])]
    List,
    /// Create an API key and print it (the only time it is shown).
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// How long the key stays valid (e.g. `90d`).
        #[arg(short = 'e', long, default_value = "90d")]
        expiration: String,
    },
    /// Expire an API key (by prefix or ID).
    #[command(visible_aliases = ["revoke", "exp", "e"])]
    Expire {
        /// The key's prefix.
        #[arg(short = 'p', long)]
        prefix: Option<String>,
        /// The key's ID.
        #[arg(short = 'i', long = "id")]
        id: Option<u64>,
    },
    /// Delete an API key (by prefix or ID).
    #[command(visible_aliases = ["remove", "del"])]
    Delete {
        /// The key's prefix.
        #[arg(short = 'p', long)]
        prefix: Option<String>,
        /// The key's ID.
        #[arg(short = 'i', long = "id")]
        id: Option<u64>,
    },
}

fn selector(prefix: Option<String>, id: Option<u64>) -> anyhow::Result<(String, u64)> {
    match (prefix, id) {
        (Some(_), Some(_)) => anyhow::bail!("give either --prefix or --id, not both"),
        (None, None) => anyhow::bail!("--prefix or --id is required"),
        (p, i) => Ok((p.unwrap_or_default(), i.unwrap_or(0))),
    }
}

pub(crate) fn run(global: &GlobalArgs, cmd: ApiKeysCommand) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        match cmd {
            ApiKeysCommand::List => {
                let keys = c
                    .list_api_keys(proto::ListApiKeysRequest {})
                    .await
                    .map_err(|s| status("listing api keys", s))?
                    .into_inner()
                    .api_keys;
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.to_string(),
                            k.prefix.clone(),
                            client::short_time(k.expiration.as_ref()),
                            client::short_time(k.created_at.as_ref()),
                        ]
                    })
                    .collect();
                let human = client::table(&["ID", "Prefix", "Expiration", "Created"], &rows);
                let json = GoValue::repeated(keys.iter().map(apikey_json).collect());
                success(&json, human.trim_end(), global.output)
            }
            ApiKeysCommand::Create { expiration } => {
                let d = client::parse_duration("--expiration", &expiration)?;
                let req = proto::CreateApiKeyRequest {
                    expiration: Some(client::timestamp_in(client::now(), d)?),
                };
                let key = c
                    .create_api_key(req)
                    .await
                    .map_err(|s| status("creating api key", s))?
                    .into_inner()
                    .api_key;
                success(&GoValue::Str(key.clone()), &key, global.output)
            }
            ApiKeysCommand::Expire { prefix, id } => {
                let (prefix, id) = selector(prefix, id)?;
                c.expire_api_key(proto::ExpireApiKeyRequest { prefix, id })
                    .await
                    .map_err(|s| status("expiring api key", s))?;
                success(&client::empty(), "Key expired", global.output)
            }
            ApiKeysCommand::Delete { prefix, id } => {
                let (prefix, id) = selector(prefix, id)?;
                c.delete_api_key(proto::DeleteApiKeyRequest { prefix, id })
                    .await
                    .map_err(|s| status("deleting api key", s))?;
                success(&client::empty(), "Key deleted", global.output)
            }
        }
    })
}
