//! The embedded DERP relay: the frame protocol, the relay server, the STUN responder and
//! DERP map loading and refresh.
//!
//! - [`frame`] / [`codec`]: sans-IO frames and incremental decoding with size limits.
//! - [`handshake`]: NaCl boxes and the client/server info JSON.
//! - [`server`]: the tokio relay ([`DerpServer`]).
//! - [`http`]: `/derp` (DERP and WebSocket upgrades), probes, `/generate_204`,
//!   `/bootstrap-dns`, `POST /verify`; [`ws`]: the WebSocket byte-stream adapter.
//! - [`stun`]: Binding request/response and the UDP responder.
//! - [`derpmap`]: embedded region, JSON/YAML sources, merge; [`refresh`]: loading and the
//!   periodic refresh; [`fetch`]: the HTTP(S) client for `derp.urls`.
//! - [`client`]: a minimal client for tests and harnesses.
//!
//! Wiring in the control plane (when `derp.server.enabled`):
//! 1. `DerpServer::new(derp_private_key, ServerOptions { verify_clients: Some(known_node), .. })`
//!    with the key from `derp.server.private_key_path` (not the Noise key).
//! 2. Route `/derp`, `/derp/probe`, `/derp/latency-check`, `/generate_204`, `/bootstrap-dns`
//!    and `POST /verify` to [`http::handle`] (or the individual handlers). Serve HTTP/1.1 with
//!    upgrades enabled and `TCP_NODELAY` on accepted sockets (Nagle costs ~10x on small
//!    packets); TLS, if any, is terminated before these handlers.
//! 3. Spawn [`stun::serve`] on a `UdpSocket` bound to `derp.server.stun_listen_addr`.
//! 4. Build the map with [`derpmap::embedded_region`] and a [`refresh::DerpMapLoader`], and run
//!    [`refresh::refresh_loop`] when `derp.auto_update_enabled`; each change on its `watch`
//!    channel is a DERP-map update for every node, and feeds
//!    `DerpServer::set_bootstrap_hosts(derpmap::host_names(&map))`.

pub mod client;
pub mod codec;
pub mod derpmap;
mod error;
pub mod fetch;
pub mod frame;
pub mod handshake;
pub mod http;
mod io;
mod options;
mod ratelimit;
pub mod refresh;
pub mod server;
pub mod stun;
pub mod ws;

pub use client::DerpClient;
pub use codec::FrameDecoder;
pub use error::Error;
pub use frame::{Frame, FrameError, FrameType, PeerGoneReason};
pub use handshake::{ClientInfo, HandshakeError, ServerInfo};
pub use io::FrameReader;
pub use options::check_keys_distinct;
pub use server::{ClientVerifier, DerpServer, RateLimit, ServerOptions, Stats};
pub use stun::StunError;
