//! The crate's error type.

use crate::frame::FrameError;
use crate::handshake::HandshakeError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or oversize frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A bad handshake payload.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// Socket trouble.
    #[error("DERP I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something out of order or forbidden.
    #[error("DERP protocol: {0}")]
    Protocol(String),
    /// The peer took too long.
    #[error("DERP: timed out {0}")]
    Timeout(&'static str),
    /// The HTTP upgrade failed.
    #[error("DERP HTTP upgrade: {0}")]
    Upgrade(String),
    /// A STUN message could not be used.
    #[error(transparent)]
    Stun(#[from] crate::stun::StunError),
    /// A DERP map could not be loaded.
    #[error("DERP map from {source_name}: {detail}")]
    DerpMap {
        /// The URL or path.
        source_name: String,
        /// What was wrong.
        detail: String,
    },
    /// The DERP key is the Noise key.
    #[error(
        "derp.server.private_key_path holds the same key as noise.private_key_path; they must differ"
    )]
    SameKey,
}
