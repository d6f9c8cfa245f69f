//! `headscale serve`: loads the configuration, loads or creates the server keys, opens (and
//! migrates) the database, and serves the main listener until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use hs_control::{Server, keyfile};
use hs_derp::derpmap;
use hs_types::tailcfg::DERPMap;

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

    let derp_map = initial_derp_map(c).await?;
    let state = hs_control::ControlState::load(db.clone(), c, &derp_map)
        .await
        .context("loading nodes and users")?;
    state.schedule_startup_gc();
    let ts2021 = Arc::new(hs_noise::Ts2021::new(Arc::new(noise)));

    let server = Server::bind(c)
        .await?
        .with_health(database::health_probe(db))
        .with_routes(hs_control::control_routes(state.clone(), ts2021));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if !c.metrics_listen_addr.is_empty() {
        let mut rx = stop_rx.clone();
        let metrics = Arc::clone(state.metrics());
        let addr = c.metrics_listen_addr.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            // A busy metrics port must not take the control server down with it.
            if let Err(e) = hs_control::serve_metrics(&addr, metrics, stop).await {
                tracing::warn!(error = %e, "metrics listener not started");
            }
        });
    }
    drop(stop_rx);
    let shutdown_state = state.clone();
    let shutdown = async move {
        hs_control::shutdown_signal().await;
        // End map streams so clients see a clean end of stream and reconnect elsewhere.
        shutdown_state.close_all_streams();
        let _ = stop_tx.send(true);
    };
    // Tests and scripts wait for this line; it carries the address actually bound.
    println!(
        "headscale: listening on http://{} (server_url {})",
        server.local_addr(),
        c.server_url
    );
    server.serve(shutdown).await?;
    Ok(())
}

/// The DERP map clients get at start: `derp.paths` files and the embedded relay's region.
/// `derp.urls` are not fetched yet (no HTTP client is wired in); they are logged.
async fn initial_derp_map(c: &hs_types::config::Config) -> anyhow::Result<DERPMap> {
    let mut sources = Vec::new();
    for p in &c.derp.paths {
        let text = tokio::fs::read_to_string(p)
            .await
            .with_context(|| format!("derp.paths: reading {}", p.display()))?;
        sources.push(
            derpmap::parse_yaml(&p.display().to_string(), &text)
                .with_context(|| format!("derp.paths: {}", p.display()))?,
        );
    }
    for u in &c.derp.urls {
        tracing::warn!(url = %u, "derp.urls are not fetched by this build; use derp.paths or the embedded DERP server");
    }
    let embedded = if c.derp.server.enabled && c.derp.server.automatically_add_embedded_derp_region
    {
        Some(derpmap::embedded_region(&c.server_url, &c.derp.server).context("derp.server")?)
    } else {
        None
    };
    Ok(derpmap::build(
        &sources,
        embedded.as_ref(),
        derpmap::seed_from_base_domain(&c.dns.base_domain),
    ))
}
