//! `headscale serve`: loads the configuration, loads or creates the server keys, opens (and
//! migrates) the database, and serves the main listener until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use hs_control::{Server, keyfile};
use hs_derp::derpmap;
use hs_derp::refresh::{self, DerpMapLoader};
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
    let derp_path = c
        .derp
        .server
        .enabled
        .then_some(c.derp.server.private_key_path.as_path());
    let (noise, derp_key) = keyfile::load_server_keys(&c.noise_private_key_path, derp_path)?;
    tracing::info!(noise_public_key = %noise.public(), "server keys ready");

    let db_config = c.database.clone();
    let db = tokio::task::spawn_blocking(move || database::open(&db_config))
        .await
        .context("opening the database")??;
    tracing::info!(backend = db.backend(), "database ready");

    let derp_loader = derp_loader(c)?;
    let derp_map = initial_derp_map(&derp_loader).await?;
    let state = hs_control::ControlState::load(db.clone(), c, &derp_map)
        .await
        .context("loading nodes, users and the policy")?;
    spawn_derp_refresh(c, derp_loader, derp_map, state.clone());
    state.schedule_startup_gc();
    state.spawn_expiry_sweep(hs_control::EXPIRY_SWEEP_INTERVAL);
    let ts2021 = Arc::new(hs_noise::Ts2021::new(Arc::new(noise)));

    let hooks = Arc::new(super::hooks::LiveHooks::new(state.clone()));
    let admin = admin_service(c, &db, hooks);
    let server = Server::bind(c)
        .await?
        .with_health(database::health_probe(db))
        .with_routes(hs_control::control_routes(state.clone(), ts2021))
        .with_routes(hs_api::serve::http_router(admin.clone()));
    let server = match derp_key {
        Some(key) if c.derp.server.enabled => {
            let known = super::derp::known_nodes(state.clone());
            let relay = super::derp::relay(key, &c.derp.server, &known);
            if !c.derp.server.stun_listen_addr.is_empty() {
                super::derp::spawn_stun(&c.derp.server.stun_listen_addr).await?;
            }
            tracing::info!(public_key = %relay.public_key(), "embedded DERP relay on /derp");
            server.with_routes(super::derp::routes(relay, known))
        }
        _ => server,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    spawn_admin_listeners(c, &admin, &stop_rx).await?;
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
    spawn_sighup_reload(state.clone(), c.dns.clone(), c.policy.clone());
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

/// `HEADSCALE_RS_TEST_FAULT`: a deliberate bug for the integration harness's self-check (it
/// proves the scenarios fail on a broken server). Read once, here; an unknown name stops the
/// server rather than running a different fault than the harness expects.
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

/// The admin API service; `hooks` carry its changes to the running control plane.
fn admin_service(
    c: &hs_types::config::Config,
    db: &hs_db::Db,
    hooks: Arc<dyn hs_api::ControlHooks>,
) -> hs_api::Admin {
    let mode = match c.policy.mode {
        hs_types::config::PolicyMode::File => hs_api::PolicyMode::File,
        hs_types::config::PolicyMode::Database => hs_api::PolicyMode::Database,
    };
    let admin = hs_api::Admin::new(Arc::new(db.clone()), hooks, hs_api::system_clock(), mode);
    if c.policy.path.is_empty() {
        admin
    } else {
        admin.with_policy_file(&c.policy.path)
    }
}

/// Starts the unix-socket admin listener (no auth, for the local CLI) and, when
/// `grpc_listen_addr` is set and TLS or `grpc_allow_insecure` allows it, the remote gRPC one.
/// Both stop when `stop` turns true.
async fn spawn_admin_listeners(
    c: &hs_types::config::Config,
    admin: &hs_api::Admin,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if !c.unix_socket.as_os_str().is_empty() {
        let listener = hs_api::serve::bind_unix(&c.unix_socket, c.unix_socket_permission)
            .with_context(|| format!("unix_socket {}", c.unix_socket.display()))?;
        tracing::info!(path = %c.unix_socket.display(), "admin API on the unix socket");
        let admin = admin.clone();
        let stop = stopped(stop.clone());
        tokio::spawn(async move {
            if let Err(e) = hs_api::serve::serve_unix(listener, admin, stop).await {
                tracing::error!(error = %e, "unix socket admin listener failed");
            }
        });
    }
    if !c.grpc_listen_addr.is_empty() {
        let security = hs_api::serve::grpc_security(
            c.tls.cert_path.as_deref(),
            c.tls.key_path.as_deref(),
            c.grpc_allow_insecure,
        )
        .context("grpc_listen_addr")?;
        if let Some(security) = security {
            let addr = c.grpc_listen_addr.clone();
            let target = if addr.starts_with(':') {
                format!("0.0.0.0{addr}")
            } else {
                addr.clone()
            };
            let listener = tokio::net::TcpListener::bind(&target)
                .await
                .with_context(|| format!("grpc_listen_addr: binding {addr}"))?;
            let admin = admin.clone();
            let stop = stopped(stop.clone());
            tokio::spawn(async move {
                if let Err(e) = hs_api::serve::serve_grpc(listener, admin, security, stop).await {
                    tracing::error!(error = %e, "gRPC admin listener failed");
                }
            });
        }
    }
    Ok(())
}

/// SIGHUP re-reads `dns.extra_records_path` and, in file mode, the policy file, and pushes
/// what changed to every node. A policy file that no longer loads leaves the old policy in
/// force.
fn spawn_sighup_reload(
    state: hs_control::ControlState,
    dns: hs_types::config::DnsConfig,
    policy: hs_types::config::PolicyConfig,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("received SIGHUP, reloading DNS extra records");
            if let Err(e) = state.reload_dns(&dns).await {
                tracing::error!(error = %e, "reload failed; keeping the previous DNS config");
            }
            if policy.mode == hs_types::config::PolicyMode::File {
                tracing::info!("received SIGHUP, reloading the policy file");
                if let Err(e) = state.load_policy(&policy).await {
                    tracing::error!(error = %e, "policy reload failed; keeping the policy in force");
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (state, dns, policy);
}

/// Where the DERP map comes from: `derp.urls` (fetched over HTTP(S)), `derp.paths` files and
/// the embedded relay's region, merged in that order.
fn derp_loader(c: &hs_types::config::Config) -> anyhow::Result<DerpMapLoader> {
    let embedded = if c.derp.server.enabled && c.derp.server.automatically_add_embedded_derp_region
    {
        Some(derpmap::embedded_region(&c.server_url, &c.derp.server).context("derp.server")?)
    } else {
        None
    };
    Ok(DerpMapLoader {
        urls: c.derp.urls.clone(),
        paths: c.derp.paths.clone(),
        embedded,
        seed: derpmap::seed_from_base_domain(&c.dns.base_domain),
        fetch: hs_derp::fetch::http_fetcher(DERP_FETCH_TIMEOUT),
    })
}

/// How long one `derp.urls` fetch may take.
const DERP_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The DERP map clients get at start. A `derp.paths` file that cannot be read stops the
/// server; a `derp.urls` source that cannot be fetched does not (the server may start before
/// the network does): the map is built without the URLs and the refresh retries them.
async fn initial_derp_map(loader: &DerpMapLoader) -> anyhow::Result<DERPMap> {
    match loader.load().await {
        Ok(map) => Ok(map),
        Err(e) if !loader.urls.is_empty() => {
            tracing::warn!(error = %e, "derp.urls: not fetched; starting with derp.paths and the embedded region only");
            let local = DerpMapLoader {
                urls: Vec::new(),
                ..loader.clone()
            };
            local.load().await.context("derp.paths")
        }
        Err(e) => Err(e).context("derp.paths"),
    }
}

/// With `derp.auto_update_enabled`, reloads the DERP map every `derp.update_frequency` and
/// pushes each change to the connected nodes.
fn spawn_derp_refresh(
    c: &hs_types::config::Config,
    loader: DerpMapLoader,
    first: DERPMap,
    state: hs_control::ControlState,
) {
    if !c.derp.auto_update_enabled || (loader.urls.is_empty() && loader.paths.is_empty()) {
        return;
    }
    let every = c.derp.update_frequency;
    let (tx, mut rx) = tokio::sync::watch::channel(Arc::new(first));
    tokio::spawn(refresh::refresh_loop(
        loader,
        every,
        refresh::Backoff::default(),
        tx,
    ));
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let map = Arc::clone(&rx.borrow_and_update());
            match state.set_derp_map(&map).await {
                Ok(true) => tracing::info!("new DERP map sent to nodes"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "new DERP map not applied"),
            }
        }
    });
    tracing::info!(every = ?every, "DERP map refresh enabled");
}
