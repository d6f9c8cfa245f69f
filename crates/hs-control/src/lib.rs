//! The control plane Tailscale clients talk to: the state coordinator (database, NodeStore
//! and policy kept in step), `/key`, `/ts2021`, the `/machine/*` handlers inside the Noise
//! session, registration and auth flows, node lifecycle and the web pages around them.
//!
//! - [`Server`] binds `listen_addr` and serves `/health`, `/version` and `/robots.txt` with
//!   security headers, shutting down gracefully on [`shutdown_signal`]; [`keyfile`] loads or
//!   creates the Noise and DERP private keys. Other endpoints are mounted with
//!   [`Server::with_routes`]. Per-client limits (connections, a token bucket for
//!   unauthenticated requests, body and header sizes) guard it against hostile clients.
//! - [`ControlState`] (`state/`) is the one writer of the tailnet: every change to users,
//!   nodes and the policy is one of its commands (database, then NodeStore, then one
//!   fan-out to the map streams).
//! - `http/` holds the handlers: [`control_routes`] mounts `/key`, `/ts2021` (with
//!   [`noise_router`] inside the tunnel) and the `/register/<auth_id>` page.
//! - [`oidc`]: OIDC login (discovery, the provider round trip, the confirmation page); with
//!   it configured, [`control_routes_with_oidc`] sends `/register/<auth_id>` to the provider.
//! - [`policy`] adapts the operator's compiled policy to the NodeStore; the state recompiles
//!   it on every identity change and on [`ControlState::set_policy`].
//! - [`Metrics`] holds the Prometheus metrics; [`process_metrics`] adds Go's `process_*` ones.

mod clock;
pub mod debug;
mod error;
mod ha;
mod http;
mod keycache;
pub mod keyfile;
mod lifecycle;
mod metrics;
pub mod oidc;
pub mod policy;
pub mod process_metrics;
mod state;
mod version;

pub use error::Error;
pub use http::guard::MAX_REQUEST_BODY;
pub use http::routes::{control_routes, control_routes_with_oidc, noise_router};
pub use http::server::{HEADER_READ_TIMEOUT, MAX_HEADER_BYTES, Server, shutdown_signal};
pub use http::web::{HealthProbe, always_healthy};
pub use keycache::SecretCache;
pub use lifecycle::EXPIRY_SWEEP_INTERVAL;
pub use metrics::{Metrics, serve_metrics, serve_metrics_on};
pub use state::{
    ControlState, DnsOverrides, PolicyLoad, StateConfig, StreamInfo, USER_HAS_NODES,
    check_user_name, idp_groups_path,
};
pub use version::{ToolchainInfo, VersionInfo};
