//! `headscale configtest`: loads and validates the configuration and checks the key files
//! without creating anything, then exits 0, or non-zero with every problem listed.

use std::path::Path;

use anyhow::Context as _;
use hs_types::{MachinePrivate, NodePrivate};

use crate::cli::GlobalArgs;
use crate::config_file::{self, Origin};
use crate::logging;

pub(crate) fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    logging::init_minimal();
    let loaded = config_file::load(global.config.as_deref())?;
    for w in &loaded.warnings {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    let c = &loaded.config;
    check_key::<MachinePrivate>(&c.noise_private_key_path, "noise.private_key_path")?;
    if c.derp.server.enabled {
        check_key::<NodePrivate>(
            &c.derp.server.private_key_path,
            "derp.server.private_key_path",
        )?;
    }
    if let Origin::Embedded { data_dir } = &loaded.origin {
        tracing::info!(data_dir = %data_dir.display(), "no config file found; the embedded default is valid");
    }
    Ok(())
}

/// An existing key file must parse; a missing one is fine (serve creates it).
fn check_key<K: std::str::FromStr<Err = hs_types::KeyError>>(
    path: &Path,
    key: &str,
) -> anyhow::Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) => K::from_str(text.trim())
            .map(|_| ())
            .with_context(|| format!("{key}: {} is not a valid private key file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{key}: cannot read {}", path.display())),
    }
}
