//! Dev-only test support shared by the workspace's tests: the whole server in-process
//! ([`TestServer`], what `headscale serve` runs), a real control plane over a database a test
//! opened ([`control`]), fixture builders for users, nodes and pending registrations
//! ([`fixtures`]), a throwaway PostgreSQL server ([`pg`]), a test CA and an HTTPS probe
//! ([`tls`]), Let's Encrypt's test CA Pebble ([`pebble`]), a real OpenID Connect provider
//! ([`oidc`]), and tracing set-up for tests.
//!
//! Nothing here is a stand-in: the control state is hs-control's own, over SQLite or
//! PostgreSQL, so what a test sees is what `headscale serve` does.

pub mod control;
pub mod fixtures;
pub mod oidc;
pub mod pebble;
pub mod pg;
pub mod server;
pub mod tls;

pub use control::{
    Prefixes, TEST_SERVER_URL, control_state, control_state_with, default_prefixes, test_config,
};
pub use fixtures::{new_user, node, pending_registration};
pub use server::TestServer;

/// A free loopback port: bound, then released for a server under test to take.
///
/// # Panics
/// When no port can be bound (a test set-up error).
#[allow(
    clippy::expect_used,
    reason = "test set-up: a failure is the test's error"
)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// Installs a test tracing subscriber once (`RUST_LOG` picks the level; quiet by default).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
}
