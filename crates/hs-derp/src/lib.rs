//! The embedded DERP relay: the frame protocol, the relay server, the STUN responder and
//! DERP map loading and refresh.
//!
//! - [`frame`] / [`codec`]: sans-IO frames and incremental decoding with size limits.
//! - [`handshake`]: NaCl boxes and the client/server info JSON.
//! - [`server`]: the tokio relay ([`DerpServer`]).
//! - [`http`]: `/derp`, probes, `/generate_204`, `/bootstrap-dns`, `POST /verify`.
//! - [`stun`]: Binding request/response and the UDP responder.
//! - [`client`]: a minimal client for tests and harnesses.

pub mod client;
pub mod codec;
pub mod derpmap;
mod error;
pub mod frame;
pub mod handshake;
pub mod http;
mod io;
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
pub use server::{ClientVerifier, DerpServer, RateLimit, ServerOptions, Stats};
pub use stun::StunError;
