//! The control plane Tailscale clients talk to: the state coordinator (database, NodeStore
//! and policy kept in step), `/key`, `/ts2021`, the `/machine/*` handlers inside the Noise
//! session, registration and auth flows, node lifecycle and the web pages around them.
//!
//! - [`Server`] binds `listen_addr` and serves `/health`, `/version` and `/robots.txt` with
//!   security headers, shutting down gracefully on [`shutdown_signal`]; [`keyfile`] loads or
//!   creates the Noise and DERP private keys. Other endpoints are mounted with
//!   [`Server::with_routes`].
//! - [`ControlState`] is the state coordinator (database → NodeStore → map streams);
//!   [`control_routes`] mounts `/key`, `/ts2021` (with [`noise_router`] inside the tunnel)
//!   and the `/register/<auth_id>` page.
//! - [`policy`] adapts the operator's compiled policy to the NodeStore; the state recompiles
//!   it on every identity change and on [`ControlState::set_policy`].
//! - [`Metrics`] holds the Prometheus metrics.

mod auth;
mod clock;
mod error;
mod ha;
mod keycache;
pub mod keyfile;
mod lifecycle;
mod metrics;
mod noise_routes;
mod pages;
pub mod policy;
mod poll;
mod register;
mod registration;
mod server;
mod state;
mod version;
mod web;

pub use error::Error;
pub use keycache::SecretCache;
pub use lifecycle::EXPIRY_SWEEP_INTERVAL;
pub use metrics::{Metrics, serve_metrics, serve_metrics_on};
pub use noise_routes::{control_routes, noise_router};
pub use server::{Server, shutdown_signal};
pub use state::{ControlState, StateConfig, USER_HAS_NODES};
pub use version::{ToolchainInfo, VersionInfo};
pub use web::{HealthProbe, always_healthy};
