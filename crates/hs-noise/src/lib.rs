//! The ts2021 control transport, server side: a sans-IO Noise IK responder (and the client
//! half, for tools that speak the protocol themselves), the record framing Tailscale uses
//! (big-endian nonces), and a tokio adapter that the HTTP/2 server runs on.
//!
//! - [`handshake`]: parse the 101-byte initiation, [`respond`] with the 51-byte response.
//! - [`Initiator`]: the client half, for tools that speak ts2021 themselves (load tests).
//! - [`record`]: [`Transport`] (seal/open with the big-endian counter) and [`parse_frame`].
//! - [`NoiseStream`]: `AsyncRead`/`AsyncWrite` over records with bounded buffers.
//! - [`Ts2021`]: the `/key` answer, the `/ts2021` upgrade and HTTP/2 inside the tunnel,
//!   with [`NoiseSession`] in every request's extensions; also over WebSocket ([`WsIo`]).

mod crypto;
mod error;
pub mod handshake;
mod initiator;
pub mod record;
mod server;
mod stream;
mod ws;

pub use error::Error;
pub use handshake::{Accepted, Initiation, respond};
pub use initiator::Initiator;
pub use record::{Opener, Sealer, Transport, parse_frame};
pub use server::{
    DEFAULT_HANDSHAKE_TIMEOUT, EARLY_NOISE_CAPABILITY_VERSION, EARLY_PAYLOAD_MAGIC,
    EarlyPayloadHook, HANDSHAKE_HEADER, MAX_SESSION_HEADER_LIST, MAX_SESSION_STREAMS,
    MIN_CAPABILITY_VERSION, NoiseSession, Ts2021, UPGRADE_PATH, UPGRADE_PROTOCOL, early_noise_json,
    early_payload, serve_http2,
};
pub use stream::NoiseStream;
#[doc(hidden)]
pub use ws::query_unescape;
pub use ws::{MAX_WS_MESSAGE, WsIo, ws_config};
