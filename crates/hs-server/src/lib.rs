//! The whole server as a library: [`App::build`] wires what `headscale serve` runs (server
//! keys, the database, the control plane, the admin API on the main listener, the unix
//! socket and remote gRPC, the embedded DERP relay and STUN, metrics, DERP map refresh,
//! SIGHUP reloads, OIDC login) from a validated [`hs_config::Config`]; [`App::serve`] runs it.
//!
//! `bins/headscale` is argument parsing plus a call to this; tests start the same server
//! in-process.

mod admin;
mod app;
pub mod database;
mod derp;
mod error;
mod oidc;
mod reload;

pub use admin::oauth_state_path;
pub use app::App;
pub use error::Error;
