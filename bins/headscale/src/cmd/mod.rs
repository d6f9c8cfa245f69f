//! One module per command.

pub(crate) mod apikeys;
pub(crate) mod auth;
mod client;
pub(crate) mod configtest;
pub(crate) mod debug;
pub(crate) mod generate;
pub(crate) mod health;
pub(crate) mod nodes;
pub(crate) mod oauth_clients;
pub(crate) mod policy;
pub(crate) mod preauthkeys;
pub(crate) mod serve;
pub(crate) mod users;
pub(crate) mod version;

/// Asks `question` on stderr and reads a yes/no answer from stdin (`--force` skips this).
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write as _;
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
