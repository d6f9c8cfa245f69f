//! The control plane Tailscale clients talk to: the state coordinator (database, NodeStore
//! and policy kept in step), `/key`, `/ts2021`, the `/machine/*` handlers inside the Noise
//! session, registration and auth flows, node lifecycle and the web pages around them.
//!
//! What exists so far is the server shell: [`Server`] binds `listen_addr` and serves
//! `/health`, `/version` and `/robots.txt` with security headers, shutting down gracefully on
//! [`shutdown_signal`]; [`keyfile`] loads or creates the Noise and DERP private keys. Other
//! endpoints are mounted with [`Server::with_routes`].

mod error;
pub mod keyfile;
mod server;
mod version;
mod web;

pub use error::Error;
pub use server::{Server, shutdown_signal};
pub use version::{ToolchainInfo, VersionInfo};
pub use web::{HealthProbe, always_healthy};
