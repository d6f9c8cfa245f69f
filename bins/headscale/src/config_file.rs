//! Finding and loading the config file, the way Go Headscale does: `-c/--config`, else
//! `$HEADSCALE_CONFIG`, else `config.yaml` in `/etc/headscale/`, `~/.headscale/` and `.`.
//! With none of those, `serve` runs on the embedded default with its state in the data
//! directory (`$XDG_DATA_HOME/headscale-rs`, else `~/.local/share/headscale-rs`).
//! `HEADSCALE_*` environment variables override keys in either case.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use hs_config::{Config, Warning};

/// Where the configuration came from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// A config file.
    File(PathBuf),
    /// No file: the embedded default, with state under this directory.
    Embedded { data_dir: PathBuf },
}

/// A loaded configuration.
pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) origin: Origin,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The file to read, if any: the flag, `$HEADSCALE_CONFIG`, then the search path.
fn find(flag: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = flag {
        return Ok(Some(p.to_owned()));
    }
    if let Some(p) = env("HEADSCALE_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(Some(PathBuf::from(p)));
    }
    let mut dirs = vec![PathBuf::from("/etc/headscale")];
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        dirs.push(Path::new(&home).join(".headscale"));
    }
    dirs.push(std::env::current_dir().context("reading the current directory")?);
    for dir in dirs {
        for name in ["config.yaml", "config.yml"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(Some(candidate));
            }
        }
    }
    Ok(None)
}

/// The embedded default's state directory.
pub(crate) fn data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = env("XDG_DATA_HOME").filter(|p| Path::new(p).is_absolute()) {
        return Ok(Path::new(&xdg).join("headscale-rs"));
    }
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        return Ok(Path::new(&home).join(".local/share/headscale-rs"));
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(".headscale-data"))
}

/// Loads the configuration for a command.
pub(crate) fn load(flag: Option<&Path>) -> anyhow::Result<Loaded> {
    load_with(flag, Config::from_yaml_str)
}

/// Loads the configuration for a command that only talks to a server over the admin API.
/// Like Go Headscale's CLI, which reads just `cli.*`, `unix_socket` and logging from the
/// file, it skips the rules only `serve` needs (required keys such as `server_url`): a file
/// holding nothing but a `cli:` section reaches a remote server. Values of the wrong type
/// are still refused.
pub(crate) fn load_for_client(flag: Option<&Path>) -> anyhow::Result<Loaded> {
    load_with(flag, Config::parse)
}

/// How a config file's text becomes a configuration.
type Parse =
    fn(&str, hs_config::EnvLookup<'_>) -> Result<hs_config::Loaded, hs_config::ConfigError>;

fn load_with(flag: Option<&Path>, parse: Parse) -> anyhow::Result<Loaded> {
    match find(flag)? {
        Some(path) => load_file(&path, parse),
        None => {
            let data_dir = data_dir()?;
            let (config, warnings) = Config::embedded_default(&data_dir, &env)
                .context("loading the embedded default configuration")?;
            Ok(Loaded {
                config,
                warnings,
                origin: Origin::Embedded { data_dir },
            })
        }
    }
}

fn load_file(path: &Path, parse: Parse) -> anyhow::Result<Loaded> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("config file {} does not exist", path.display())
        }
        Err(e) => {
            return Err(e).with_context(|| format!("reading config file {}", path.display()));
        }
    };
    let (mut config, warnings) =
        parse(&text, &env).with_context(|| format!("config file {}", path.display()))?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if let Some(dir) = abs.parent() {
        config.resolve_relative_paths(dir);
    }
    Ok(Loaded {
        config,
        warnings,
        origin: Origin::File(abs),
    })
}
