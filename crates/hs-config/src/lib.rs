//! Configuration structs: Headscale's YAML config file as typed values, with its defaults
//! and validation.
//!
//! [`Config::from_yaml_str`] is the whole pipeline: parse the YAML, apply `HEADSCALE_*`
//! environment overrides (`dns.base_domain` ← `HEADSCALE_DNS_BASE_DOMAIN`), fill in Go
//! Headscale's defaults, check every value and the rules between them. It returns the config
//! with warnings (unknown or deprecated keys) or a [`ConfigError`] listing every problem, each
//! naming its key path. [`Config::parse`] stops before the cross-field rules, for callers that
//! only need a section. Finding the file, reading it and reading the environment are the
//! caller's job: this crate does no I/O.

mod depth;
mod duration;
mod error;
mod keys;
mod load;
mod sections;
mod source;
mod types;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

pub use duration::{DurationError, format_duration, parse_duration, parse_duration_long};
pub use error::{ConfigError, Problem, Warning};
pub use source::{EnvLookup, env_var_name};
pub use types::*;

use source::Source;

/// A loaded configuration and the warnings produced while loading it.
pub type Loaded = (Config, Vec<Warning>);

impl Config {
    /// Parses, defaults and fully validates a config file's text. `env` looks up environment
    /// variables (pass `&|k| std::env::var(k).ok()` in a binary, a map in tests).
    pub fn from_yaml_str(text: &str, env: EnvLookup<'_>) -> Result<Loaded, ConfigError> {
        let (root, config, mut warnings, mut problems) = Self::read(text, env)?;
        let src = Source::new(&root, env);
        let facts = load::InputFacts {
            extra_records_both: src.is_set("dns.extra_records")
                && src.is_set("dns.extra_records_path"),
            database_type_set: src.is_set("database.type"),
        };
        load::validate(&config, facts, &mut problems);
        warnings.dedup();
        if problems.is_empty() {
            Ok((config, warnings))
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Parses and defaults a config file's text, refusing values of the wrong type or outside
    /// their allowed set, but without the rules that tie keys together (required keys,
    /// `server_url` vs `dns.base_domain`, ...).
    pub fn parse(text: &str, env: EnvLookup<'_>) -> Result<Loaded, ConfigError> {
        let (_, config, warnings, problems) = Self::read(text, env)?;
        if problems.is_empty() {
            Ok((config, warnings))
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    #[allow(clippy::type_complexity)]
    fn read(
        text: &str,
        env: EnvLookup<'_>,
    ) -> Result<(Value, Config, Vec<Warning>, Vec<Problem>), ConfigError> {
        if let Some(line) = depth::too_deep(text, depth::MAX_FLOW_DEPTH) {
            return Err(ConfigError::Syntax(format!(
                "line {line}: brackets nest deeper than {} levels",
                depth::MAX_FLOW_DEPTH
            )));
        }
        let root: Value = if text.trim().is_empty() {
            Value::Mapping(Default::default())
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?
        };
        let root = match root {
            Value::Null => Value::Mapping(Default::default()),
            Value::Mapping(_) => root,
            _ => {
                return Err(ConfigError::Syntax(
                    "the top level must be a mapping of keys to values".into(),
                ));
            }
        };
        let mut warnings = Vec::new();
        let mut problems = Vec::new();
        let config = {
            let mut src = Source::new(&root, env);
            keys::check_legacy(&src, &mut problems, &mut warnings);
            keys::unknown_keys(&root, &mut warnings);
            let config = load::build(&mut src, &mut warnings);
            problems.append(&mut src.problems);
            config
        };
        Ok((root, config, warnings, problems))
    }

    /// The config file `headscale serve` uses when none exists: everything under `data_dir`,
    /// served on `http://127.0.0.1:8080`, SQLite with WAL, the embedded DERP server on with
    /// STUN on 127.0.0.1:3478, MagicDNS under `headscale.internal`, and the admin socket in
    /// `data_dir` so no root-owned directory is needed.
    pub fn embedded_default_yaml(data_dir: &Path) -> String {
        // JSON string literals are valid YAML double-quoted scalars, whatever the path holds.
        let q = |name: &str| {
            serde_json::to_string(&data_dir.join(name).to_string_lossy())
                .unwrap_or_else(|_| "\"\"".to_owned())
        };
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:8080
metrics_listen_addr: 127.0.0.1:9090
grpc_listen_addr: 127.0.0.1:50443
noise:
  private_key_path: {noise}
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: headscale
    region_name: Headscale Embedded DERP
    stun_listen_addr: 127.0.0.1:3478
    private_key_path: {derp}
    automatically_add_embedded_derp_region: true
  urls: []
  paths: []
  auto_update_enabled: false
node:
  expiry: 0
  ephemeral:
    inactivity_timeout: 30m
database:
  type: sqlite
  sqlite:
    path: {db}
    write_ahead_log: true
tls_letsencrypt_cache_dir: {cache}
log:
  level: info
  format: text
policy:
  mode: file
  path: \"\"
dns:
  magic_dns: true
  base_domain: headscale.internal
  override_local_dns: false
unix_socket: {socket}
unix_socket_permission: \"0770\"
",
            noise = q("noise_private.key"),
            derp = q("derp_server_private.key"),
            db = q("db.sqlite"),
            cache = q("cache"),
            socket = q("headscale.sock"),
        )
    }

    /// [`Config::embedded_default_yaml`] loaded with `env` overrides applied, as a config
    /// file would be.
    pub fn embedded_default(data_dir: &Path, env: EnvLookup<'_>) -> Result<Loaded, ConfigError> {
        Self::from_yaml_str(&Self::embedded_default_yaml(data_dir), env)
    }

    /// Makes relative file paths relative to the config file's directory, as Go Headscale
    /// does (`AbsolutePathFromConfigPath`): the Noise and DERP keys, the SQLite database, TLS
    /// files and the Let's Encrypt cache.
    pub fn resolve_relative_paths(&mut self, config_dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = config_dir.join(&*p);
            }
        };
        fix(&mut self.noise_private_key_path);
        fix(&mut self.derp.server.private_key_path);
        fix(&mut self.database.sqlite.path);
        fix(&mut self.tls.letsencrypt_cache_dir);
        if let Some(p) = self.tls.cert_path.as_mut() {
            fix(p);
        }
        if let Some(p) = self.tls.key_path.as_mut() {
            fix(p);
        }
    }
}
