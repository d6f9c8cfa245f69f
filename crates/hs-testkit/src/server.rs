//! The whole server in-process: `hs_server::App` built from the embedded default config
//! (everything in a temporary directory, the main listener on a free loopback port, no
//! metrics or remote gRPC listener), served on a task of the test's runtime.

use std::net::SocketAddr;

use hs_config::Config;
use hs_control::ControlState;
use hs_server::App;
use tokio::sync::oneshot;

/// A running server; dropping it stops the server.
pub struct TestServer {
    /// Where the main listener is (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The main listener's address.
    pub addr: SocketAddr,
    /// The control plane, as `headscale serve` runs it.
    pub state: ControlState,
    /// The admin service behind `/api/v1` and gRPC.
    pub admin: hs_api::Admin,
    /// The server's state directory (database, keys, unix socket).
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Overrides of the embedded default that keep a test server on loopback and out of the
/// way of other tests: free ports for the main listener and STUN, no metrics or remote gRPC
/// listener.
fn test_env(key: &str) -> Option<String> {
    match key {
        // STUN on a free port: an empty value would fall back to the file's 127.0.0.1:3478,
        // which two test servers cannot share.
        "HEADSCALE_LISTEN_ADDR" | "HEADSCALE_DERP_SERVER_STUN_LISTEN_ADDR" => {
            Some("127.0.0.1:0".into())
        }
        "HEADSCALE_METRICS_LISTEN_ADDR" | "HEADSCALE_GRPC_LISTEN_ADDR" => Some(String::new()),
        _ => None,
    }
}

impl TestServer {
    /// Builds and starts the server.
    ///
    /// # Panics
    /// When the server cannot start (a test set-up error).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Builds and starts the server with `edit` applied to its configuration first (e.g. the
    /// `oidc` section).
    ///
    /// # Panics
    /// When the server cannot start (a test set-up error).
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        #[allow(
            clippy::expect_used,
            reason = "test set-up: a failure is the test's error"
        )]
        let dir = tempfile::tempdir().expect("temp dir");
        #[allow(
            clippy::expect_used,
            reason = "test set-up: a failure is the test's error"
        )]
        let (mut config, _) = Config::embedded_default(dir.path(), &test_env).expect("test config");
        edit(&mut config);
        #[allow(
            clippy::expect_used,
            reason = "test set-up: a failure is the test's error"
        )]
        let app = App::build(&config).await.expect("server start");
        let addr = app.local_addr();
        let state = app.state().clone();
        let admin = app.admin().clone();
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = app.serve(shutdown).await {
                tracing::error!(error = %e, "test server stopped");
            }
        });
        Self {
            url: format!("http://{addr}"),
            addr,
            state,
            admin,
            dir,
            stop: Some(stop),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
