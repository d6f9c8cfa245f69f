//! `headscale oauth-clients`: create, list and delete the OAuth clients that `/api/v2`
//! accepts (Tailscale's API client, the Terraform provider, the Kubernetes operator). Go
//! Headscale 0.29.3 has no such command; the calls go to `/api/v1/oauth-client` over the
//! same connection as every other command.

use anyhow::bail;
use clap::Subcommand;
use hs_api::client::Rest;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{block_on, connect_rest, split_list, table};
use crate::cli::GlobalArgs;
use crate::output::success_serde;

/// `oauth-clients` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum OAuthClientsCommand {
    /// List OAuth clients (their secrets are never stored).
    #[command(visible_aliases = ["ls", "show"])]
    List,
    /// Create an OAuth client and print its secret (the only time it is shown).
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// Scopes it may request, by Tailscale's names (`devices:core,auth_keys`, `all:read`).
        #[arg(long, required = true)]
        scopes: Vec<String>,
        /// Tags it may assign to the keys it mints and the devices it tags (`tag:ci`);
        /// required with `auth_keys`, `devices:core` or `all`.
        #[arg(long)]
        tags: Vec<String>,
        /// What it is for.
        #[arg(short = 'd', long, default_value = "")]
        description: String,
    },
    /// Delete an OAuth client; its access tokens stop working at once.
    #[command(visible_aliases = ["remove", "del"])]
    Delete {
        /// The client's ID.
        #[arg(short = 'i', long = "id")]
        id: String,
    },
}

/// Sends a call; a refusal becomes an error with the server's message.
async fn call(
    rest: &Rest,
    what: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (status, v) = rest.call(method, path, body.as_ref()).await?;
    if status != StatusCode::OK {
        let msg = v
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| v.to_string(), str::to_owned);
        bail!("{what}: {msg} (HTTP {})", status.as_u16());
    }
    Ok(v)
}

/// The CLI's view of a client: snake_case like the other commands' JSON.
fn cli_json(c: &Value) -> Value {
    let mut out = json!({
        "id": c["id"],
        "scopes": c["scopes"],
        "tags": c["tags"],
        "description": c["description"],
        "created_at": c["createdAt"],
    });
    if let Some(s) = c.get("secret") {
        out["secret"] = s.clone();
    }
    out
}

fn joined(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub(crate) fn run(global: &GlobalArgs, cmd: OAuthClientsCommand) -> anyhow::Result<()> {
    block_on(async move {
        let rest = connect_rest(global).await?;
        match cmd {
            OAuthClientsCommand::List => {
                let v = call(
                    &rest,
                    "listing OAuth clients",
                    Method::GET,
                    "/api/v1/oauth-client",
                    None,
                )
                .await?;
                let list: Vec<Value> = v["oauthClients"]
                    .as_array()
                    .map(|a| a.iter().map(cli_json).collect())
                    .unwrap_or_default();
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|c| {
                        vec![
                            c["id"].as_str().unwrap_or_default().to_owned(),
                            joined(&c["scopes"]),
                            joined(&c["tags"]),
                            c["description"].as_str().unwrap_or_default().to_owned(),
                            c["created_at"].as_str().unwrap_or_default().to_owned(),
                        ]
                    })
                    .collect();
                let human = table(&["ID", "Scopes", "Tags", "Description", "Created"], &rows);
                success_serde(&list, human.trim_end(), global.output)
            }
            OAuthClientsCommand::Create {
                scopes,
                tags,
                description,
            } => {
                let body = json!({
                    "scopes": split_list(&scopes),
                    "tags": split_list(&tags),
                    "description": description,
                });
                let v = call(
                    &rest,
                    "creating OAuth client",
                    Method::POST,
                    "/api/v1/oauth-client",
                    Some(body),
                )
                .await?;
                let c = cli_json(&v["oauthClient"]);
                let human = format!(
                    "Client ID:     {}\nClient secret: {}\n(the secret is shown only now)",
                    c["id"].as_str().unwrap_or_default(),
                    c["secret"].as_str().unwrap_or_default()
                );
                success_serde(&c, &human, global.output)
            }
            OAuthClientsCommand::Delete { id } => {
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    bail!("--id {id:?} is not an OAuth client id");
                }
                call(
                    &rest,
                    "deleting OAuth client",
                    Method::DELETE,
                    &format!("/api/v1/oauth-client/{id}"),
                    None,
                )
                .await?;
                success_serde(&json!({}), "OAuth client deleted", global.output)
            }
        }
    })
}
