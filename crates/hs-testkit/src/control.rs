//! The control plane a test runs against: hs-control's [`ControlState`] over a database the
//! test opened, with the settings Go Headscale's tests use (CGNAT and ULA prefixes,
//! sequential allocation, `example.com`).

use std::time::Duration;

use hs_control::{ControlState, StateConfig};
use hs_db::{AllocationStrategy, Db};
use hs_mapper::MapperConfig;
use hs_types::tailcfg::DERPMap;
use ipnet::{Ipv4Net, Ipv6Net};

/// The `server_url` the test control plane puts in `AuthURL`s (nothing listens there).
pub const TEST_SERVER_URL: &str = "http://127.0.0.1:8080";

/// The tailnet prefixes a test control plane allocates from.
pub type Prefixes = (Option<Ipv4Net>, Option<Ipv6Net>);

/// Go Headscale's default prefixes (CGNAT and ULA).
pub fn default_prefixes() -> Prefixes {
    (
        "100.64.0.0/10".parse().ok(),
        "fd7a:115c:a1e0::/48".parse().ok(),
    )
}

/// The default test settings.
pub fn test_config() -> StateConfig {
    StateConfig {
        server_url: TEST_SERVER_URL.to_owned(),
        node_expiry: None,
        ephemeral_inactivity_timeout: Duration::from_secs(1800),
        offline_grace: Duration::from_secs(10),
        register_cache_expiration: Duration::from_secs(15 * 60),
    }
}

/// A control state over `db` with the default test settings.
///
/// # Panics
/// When the state cannot load `db` (a test set-up error).
pub async fn control_state(db: &Db) -> ControlState {
    control_state_with(db, test_config(), default_prefixes()).await
}

/// A control state over `db` with explicit settings and prefixes (`(None, None)`: nodes get
/// no addresses).
///
/// # Panics
/// When the state cannot load `db` (a test set-up error).
pub async fn control_state_with(db: &Db, cfg: StateConfig, prefixes: Prefixes) -> ControlState {
    #[allow(
        clippy::expect_used,
        reason = "test set-up: a failure is the test's error"
    )]
    let mapper = MapperConfig::new(
        "example.com",
        &DERPMap::default(),
        None,
        false,
        false,
        false,
    )
    .expect("mapper config");
    #[allow(
        clippy::expect_used,
        reason = "test set-up: a failure is the test's error"
    )]
    ControlState::start(
        db.clone(),
        cfg,
        mapper,
        (prefixes.0, prefixes.1, AllocationStrategy::Sequential),
    )
    .await
    .expect("control state")
}
