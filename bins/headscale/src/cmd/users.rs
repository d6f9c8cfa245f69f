//! `headscale users`: create, list, rename and destroy users through the admin API.

use crate::goformat::GoValue;
use anyhow::Context as _;
use clap::Subcommand;
use hs_api::proto;

use super::client::{self, block_on, require_one, status, user_json};
use crate::cli::GlobalArgs;
use crate::output::success;

/// `users` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create a user.
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// The user's name.
        name: String,
        /// Display name.
        #[arg(short = 'd', long = "display-name", default_value = "")]
        display_name: String,
        /// Email address.
        #[arg(short = 'e', long, default_value = "")]
        email: String,
        /// Profile picture URL.
        #[arg(short = 'p', long = "picture-url", default_value = "")]
        picture_url: String,
    },
    /// List users.
    #[command(visible_aliases = ["ls", "show"])]
    List {
        /// Only the user with this ID.
        #[arg(short = 'i', long = "identifier")]
        id: Option<u64>,
        /// Only the user with this name.
        #[arg(short = 'n', long)]
        name: Option<String>,
        /// Only the user with this email.
        #[arg(short = 'e', long)]
        email: Option<String>,
    },
    /// Delete a user (by ID or name).
    #[command(visible_alias = "delete")]
    Destroy {
        /// The user's ID.
        #[arg(short = 'i', long = "identifier")]
        id: Option<u64>,
        /// The user's name.
        #[arg(short = 'n', long)]
        name: Option<String>,
    },
    /// Rename a user (by ID or name).
    #[command(visible_alias = "mv")]
    Rename {
        /// The user's ID.
        #[arg(short = 'i', long = "identifier")]
        id: Option<u64>,
        /// The user's current name.
        #[arg(short = 'n', long)]
        name: Option<String>,
        /// The new name.
        #[arg(short = 'r', long = "new-name")]
        new_name: String,
    },
}

pub(crate) fn run(global: &GlobalArgs, cmd: UsersCommand) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = client::connect(global).await?;
        match cmd {
            UsersCommand::Create {
                name,
                display_name,
                email,
                picture_url,
            } => {
                let req = proto::CreateUserRequest {
                    name: name.clone(),
                    display_name,
                    email,
                    picture_url,
                };
                let user = c
                    .create_user(req)
                    .await
                    .map_err(|s| status("creating user", s))?
                    .into_inner()
                    .user
                    .context("the server returned no user")?;
                success(&user_json(&user), "User created", global.output)
            }
            UsersCommand::List { id, name, email } => {
                let req = proto::ListUsersRequest {
                    id: id.unwrap_or(0),
                    name: name.unwrap_or_default(),
                    email: email.unwrap_or_default(),
                };
                let users = c
                    .list_users(req)
                    .await
                    .map_err(|s| status("listing users", s))?
                    .into_inner()
                    .users;
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.to_string(),
                            u.name.clone(),
                            u.display_name.clone(),
                            u.email.clone(),
                            client::short_time(u.created_at.as_ref()),
                        ]
                    })
                    .collect();
                let human = client::table(&["ID", "Name", "Username", "Email", "Created"], &rows);
                let json = GoValue::repeated(users.iter().map(user_json).collect());
                success(&json, human.trim_end(), global.output)
            }
            UsersCommand::Destroy { id, name } => {
                let user = find(&mut c, id, name.as_deref()).await?;
                if !global.force
                    && !super::confirm(&format!(
                        "Do you want to remove the user {:?} ({}) and any associated preauthkeys?",
                        user.name, user.id
                    ))?
                {
                    anyhow::bail!("user not deleted: not confirmed (use --force)");
                }
                c.delete_user(proto::DeleteUserRequest { id: user.id })
                    .await
                    .map_err(|s| status("destroying user", s))?;
                success(&client::empty(), "User destroyed", global.output)
            }
            UsersCommand::Rename { id, name, new_name } => {
                let user = find(&mut c, id, name.as_deref()).await?;
                let renamed = c
                    .rename_user(proto::RenameUserRequest {
                        old_id: user.id,
                        new_name: new_name.clone(),
                    })
                    .await
                    .map_err(|s| status("renaming user", s))?
                    .into_inner()
                    .user
                    .context("the server returned no user")?;
                success(&user_json(&renamed), "User renamed", global.output)
            }
        }
    })
}

/// The one user selected by `--identifier` or `--name`.
async fn find(
    c: &mut hs_api::client::Client,
    id: Option<u64>,
    name: Option<&str>,
) -> anyhow::Result<proto::User> {
    require_one(id, name)?;
    let req = proto::ListUsersRequest {
        id: id.unwrap_or(0),
        name: name.unwrap_or_default().to_owned(),
        email: String::new(),
    };
    let users = c
        .list_users(req)
        .await
        .map_err(|s| status("listing users", s))?
        .into_inner()
        .users;
    let shown = match (id, name) {
        (Some(i), _) => format!("with ID {i}"),
        (None, n) => format!("named {:?}", n.unwrap_or_default()),
    };
    match users.as_slice() {
        [u] => Ok(u.clone()),
        [] => anyhow::bail!("no user {shown}"),
        _ => anyhow::bail!("more than one user {shown}; use --identifier"),
    }
}
