//! `headscale serve`: reads the configuration, sets up logging and the runtime, and runs the
//! server `hs_server::App` builds until SIGINT or SIGTERM.

use anyhow::Context as _;

use crate::cli::GlobalArgs;
use crate::config_file::{self, Origin};
use crate::logging;

/// Threads for database work and other blocking calls: 32, or more when a PostgreSQL pool
/// is larger, so every pooled connection can be in use at once.
fn blocking_threads(db: &hs_config::DatabaseConfig) -> usize {
    let pool = match db.kind {
        hs_config::DatabaseKind::Postgres => {
            usize::try_from(db.postgres.max_open_conns).unwrap_or(0)
        }
        hs_config::DatabaseKind::Sqlite => 0,
    };
    (pool + 8).max(32)
}

pub(crate) fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let loaded = config_file::load(global.config.as_deref())?;
    logging::init(&loaded.config.log);
    for w in &loaded.warnings {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking threads run database work, and writes take one lock in turn, so a
        // registration burst gains nothing from tokio's default of 512 threads; each idle one
        // kept about a megabyte resident (docs/benchmarks.md).
        .max_blocking_threads(blocking_threads(&loaded.config.database))
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(loaded))
}

async fn serve(loaded: config_file::Loaded) -> anyhow::Result<()> {
    let c = &loaded.config;
    test_fault_from_env()?;
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
    let app = hs_server::App::build(c).await?;
    if matches!(loaded.origin, Origin::Embedded { .. }) {
        // A first run with no config: say how to get a first node on.
        println!(
            "headscale: next steps, in another terminal:\n  \
             headscale users create <name>\n  \
             headscale preauthkeys create --user <id from `headscale users list`>\n  \
             tailscale up --login-server {} --authkey <the key>",
            c.server_url
        );
    }
    // Tests and scripts wait for this line; it carries the address actually bound.
    println!(
        "headscale: listening on {}://{} (server_url {})",
        if app.tls().is_some() { "https" } else { "http" },
        app.local_addr(),
        c.server_url
    );
    app.serve(hs_control::shutdown_signal()).await?;
    Ok(())
}

/// `HEADSCALE_RS_TEST_FAULT`: a deliberate bug for the integration harness's self-check (it
/// proves the scenarios fail on a broken server). Only in builds with the `test-fault`
/// feature; read once, here; an unknown name stops the server rather than running a
/// different fault than the harness expects.
#[cfg(feature = "test-fault")]
fn test_fault_from_env() -> anyhow::Result<()> {
    let Some(v) = std::env::var_os("HEADSCALE_RS_TEST_FAULT") else {
        return Ok(());
    };
    let v = v.to_string_lossy();
    let fault = hs_mapper::TestFault::parse(&v)
        .with_context(|| format!("HEADSCALE_RS_TEST_FAULT={v:?}: unknown fault"))?;
    tracing::warn!(fault = %v, "TEST FAULT ENABLED: this server is deliberately broken");
    hs_mapper::set_test_fault(fault);
    Ok(())
}

/// Without the `test-fault` feature the variable is refused, so a harness that expects a
/// broken server never silently tests a sound one.
#[cfg(not(feature = "test-fault"))]
fn test_fault_from_env() -> anyhow::Result<()> {
    if std::env::var_os("HEADSCALE_RS_TEST_FAULT").is_some() {
        anyhow::bail!(
            "HEADSCALE_RS_TEST_FAULT is set but this binary was built without the test-fault feature"
        );
    }
    Ok(())
}
