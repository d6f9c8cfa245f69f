//! [`App`]: the server `headscale serve` runs, built from a validated config.

use std::net::SocketAddr;
use std::sync::Arc;

use hs_config::Config;
use hs_control::{ControlState, Server, keyfile};
use tokio::sync::watch;

use crate::error::Error;
use crate::{admin, database, derp, reload};

/// How often `dns.extra_records_path` is checked for changes.
const EXTRA_RECORDS_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A built server: listeners bound, state loaded, background tasks (expiry sweep, DERP
/// refresh, admin listeners, metrics, SIGHUP) running. [`App::serve`] runs the main listener.
pub struct App {
    server: Server,
    state: ControlState,
    admin: hs_api::Admin,
    tls: Option<hs_tls::Tls>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("addr", &self.server.local_addr())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Loads or creates the server keys, opens and migrates the database, loads the tailnet
    /// and the policy, and binds every configured listener.
    pub async fn build(c: &Config) -> Result<Self, Error> {
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
            .map_err(|e| Error::Task(e.to_string()))??;
        tracing::info!(backend = db.backend(), "database ready");

        let loader = derp::loader(c)?;
        let derp_map = derp::initial_map(&loader).await?;
        let state = ControlState::load(db.clone(), c, &derp_map).await?;
        derp::spawn_refresh(c, loader, derp_map, state.clone());
        state.schedule_startup_gc();
        state.spawn_expiry_sweep(hs_control::EXPIRY_SWEEP_INTERVAL);
        let ts2021 = Arc::new(hs_noise::Ts2021::new(Arc::new(noise)));

        let oidc = crate::oidc::provider(c).await?;
        let admin = admin::service(c, &db, state.clone()).await?;
        let (stop, stop_rx) = watch::channel(false);
        let tls = hs_tls::Tls::start(&c.tls, &c.server_url, &c.listen_addr, stop_rx.clone())
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        let mut server = Server::bind(c)
            .await?
            .with_health(database::health_probe(db))
            .with_routes(hs_control::control_routes_with_oidc(
                state.clone(),
                ts2021,
                oidc,
            ))
            .with_routes(hs_api::serve::http_router(admin.clone()));
        if let Some(key) = derp_key.filter(|_| c.derp.server.enabled) {
            let known = derp::known_nodes(state.clone());
            let relay = derp::relay(key, &c.derp.server, &known);
            if !c.derp.server.stun_listen_addr.is_empty() {
                derp::spawn_stun(&c.derp.server.stun_listen_addr).await?;
            }
            tracing::info!(public_key = %relay.public_key(), "embedded DERP relay on /derp");
            server = server.with_routes(derp::routes(relay, known));
        } else {
            // External derpers (`derper --verify-client-url`) ask `/verify` whether a node
            // belongs to the tailnet; Headscale serves it whether or not its own relay runs.
            server = server.with_routes(derp::verify_route(derp::known_nodes(state.clone())));
        }
        if let Some(tls) = &tls {
            server = server.with_tls(tls.acceptor());
        }
        admin::spawn_listeners(c, &admin, tls.as_ref(), &stop_rx).await?;
        if !c.metrics_listen_addr.is_empty() {
            let mut rx = stop_rx.clone();
            let metrics = Arc::clone(state.metrics());
            let debug = hs_control::debug::routes(state.clone(), c);
            let addr = c.metrics_listen_addr.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                // A busy metrics port must not take the control server down with it.
                if let Err(e) = hs_control::serve_metrics(&addr, metrics, debug, stop).await {
                    tracing::warn!(error = %e, "metrics listener not started");
                }
            });
        }
        reload::spawn_sighup(state.clone(), c.dns.clone(), c.policy.clone(), tls.clone());
        state.spawn_extra_records_watch(c.dns.clone(), EXTRA_RECORDS_POLL);
        Ok(Self {
            server,
            state,
            admin,
            tls,
            stop,
        })
    }

    /// The main listener's address (the port actually bound when the config says 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// TLS on the main listener, when configured.
    pub fn tls(&self) -> Option<&hs_tls::Tls> {
        self.tls.as_ref()
    }

    /// The control plane, for embedders and tests.
    pub fn state(&self) -> &ControlState {
        &self.state
    }

    /// The admin service, for embedders and tests.
    pub fn admin(&self) -> &hs_api::Admin {
        &self.admin
    }

    /// Serves until `shutdown` completes; then map streams end cleanly (clients reconnect
    /// elsewhere), the admin listeners stop, and open requests finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Self {
            server,
            state,
            stop,
            ..
        } = self;
        let shutdown = async move {
            shutdown.await;
            state.close_all_streams();
            let _ = stop.send(true);
        };
        server.serve(shutdown).await?;
        Ok(())
    }
}
