//! The command line, declared for clap: global flags as in Go Headscale (`-c/--config`,
//! `-o/--output`, `--force`) and the commands implemented so far.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What `--version` prints after the name: the version `headscale version` reports (Go's
/// binary has no `--version`; this one keeps clap's, agreeing with the subcommand).
static VERSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hs_control::VersionInfo::current().version);

/// headscale-rs: a self-hosted Tailscale control server, compatible with Go Headscale's config
/// file, CLI, database and HTTP surface.
#[derive(Debug, Parser)]
#[command(name = "headscale", version = VERSION.as_str())]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Config file (default: $HEADSCALE_CONFIG, then /etc/headscale/, ~/.headscale/, ./).
    #[arg(short = 'c', long = "config", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Output format: empty for human-readable, json, json-line or yaml.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = ""
    )]
    pub(crate) output: OutputFormat,
    /// Do not ask for confirmation.
    #[arg(long, global = true)]
    pub(crate) force: bool,
}

/// How results are printed (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Human-readable text or tables (also spelled `table`).
    #[value(name = "", alias = "table")]
    Table,
    /// Indented JSON.
    Json,
    /// JSON on one line.
    #[value(name = "json-line")]
    JsonLine,
    /// YAML.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the control server.
    Serve,
    /// Check the configuration and exit (0 when it is usable).
    Configtest,
    /// Print the version.
    Version,
    /// Manage users.
    #[command(visible_alias = "user")]
    Users {
        #[command(subcommand)]
        cmd: crate::cmd::users::UsersCommand,
    },
    /// Manage nodes.
    #[command(visible_alias = "node")]
    Nodes {
        #[command(subcommand)]
        cmd: crate::cmd::nodes::NodesCommand,
    },
    /// Manage pre-authentication keys.
    #[command(visible_aliases = ["preauthkey", "authkey", "pre"])]
    Preauthkeys {
        /// The user for `create`, accepted before the subcommand as Go Headscale's CLI does
        /// (`preauthkeys --user 1 create`).
        #[arg(short = 'u', long = "user", hide = true)]
        user: Option<u64>,
        #[command(subcommand)]
        cmd: crate::cmd::preauthkeys::PreAuthKeysCommand,
    },
    /// Manage API keys.
    #[command(visible_aliases = ["apikey", "api"])]
    Apikeys {
        #[command(subcommand)]
        cmd: crate::cmd::apikeys::ApiKeysCommand,
    },
    /// Manage the OAuth clients of the Tailscale-compatible /api/v2.
    #[command(name = "oauth-clients", visible_aliases = ["oauth-client", "oauth"])]
    OauthClients {
        #[command(subcommand)]
        cmd: crate::cmd::oauth_clients::OAuthClientsCommand,
    },
    /// Manage the ACL policy.
    Policy {
        #[command(subcommand)]
        cmd: crate::cmd::policy::PolicyCommand,
    },
    /// Decide pending interactive logins.
    Auth {
        #[command(subcommand)]
        cmd: crate::cmd::auth::AuthCommand,
    },
    /// Check that the running server and its database are healthy.
    Health,
    /// Debugging helpers (hidden, as in Go Headscale).
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        cmd: crate::cmd::debug::DebugCommand,
    },
    /// Generate keys.
    #[command(alias = "gen")]
    Generate {
        #[command(subcommand)]
        what: GenerateCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish), as Go's
    /// `headscale completion SHELL` does.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `generate` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GenerateCommand {
    /// Print a new machine private key.
    PrivateKey,
}
