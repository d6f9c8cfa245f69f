//! `headscale serve`: loads the configuration, loads or creates the server keys, opens (and
//! migrates) the database, and serves the main listener until SIGINT or SIGTERM.

use anyhow::Context as _;
use hs_control::{Server, keyfile};

use crate::cli::GlobalArgs;
use crate::config_file::{self, Origin};
use crate::database;
use crate::logging;

pub(crate) fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let loaded = config_file::load(global.config.as_deref())?;
    logging::init(&loaded.config.log);
    for w in &loaded.warnings {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(loaded))
}

async fn serve(loaded: config_file::Loaded) -> anyhow::Result<()> {
    let c = &loaded.config;
    match &loaded.origin {
        Origin::File(path) => {
            tracing::info!(config = %path.display(), "configuration loaded");
        }
        Origin::Embedded { data_dir } => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
            println!(
                "headscale: no config file found; using the embedded default with its state in {}",
                data_dir.display()
            );
        }
    }
    let derp_path = c
        .derp
        .server
        .enabled
        .then_some(c.derp.server.private_key_path.as_path());
    let (noise, _derp) = keyfile::load_server_keys(&c.noise_private_key_path, derp_path)?;
    tracing::info!(noise_public_key = %noise.public(), "server keys ready");

    let db_config = c.database.clone();
    let db = tokio::task::spawn_blocking(move || database::open(&db_config))
        .await
        .context("opening the database")??;
    tracing::info!(backend = db.backend(), "database ready");

    let server = Server::bind(c)
        .await?
        .with_health(database::health_probe(db));
    // Tests and scripts wait for this line; it carries the address actually bound.
    println!(
        "headscale: listening on http://{} (server_url {})",
        server.local_addr(),
        c.server_url
    );
    server.serve(hs_control::shutdown_signal()).await?;
    Ok(())
}
