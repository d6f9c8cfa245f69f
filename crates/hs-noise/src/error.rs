//! The crate's error type: every way a ts2021 connection can be refused or torn down, each
//! naming what was wrong so the log line says why a client was dropped.

use std::time::Duration;

use crate::handshake::{INITIATION_LEN, INITIATION_PAYLOAD_LEN};
use crate::record::{MAX_FRAME_LEN, MAX_PLAINTEXT_LEN};

/// Why a ts2021 handshake, record or session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `X-Tailscale-Handshake` value (or query parameter) is not standard base64.
    #[error("handshake header is not valid base64: {0}")]
    BadBase64(#[from] base64::DecodeError),
    /// The decoded initiation is not exactly 101 bytes.
    #[error("wrong handshake initiation size: {got} bytes, want {INITIATION_LEN}")]
    InitiationSize {
        /// Bytes received.
        got: usize,
    },
    /// The initiation's message type byte is not 0x01.
    #[error("handshake initiation has message type {got:#04x}, want 0x01")]
    InitiationType {
        /// The type byte received.
        got: u8,
    },
    /// The initiation's length field is not 96.
    #[error("handshake initiation declares payload length {got}, want {INITIATION_PAYLOAD_LEN}")]
    InitiationLength {
        /// The length field received.
        got: u16,
    },
    /// The client's capability version is older than this server supports.
    #[error("unsupported client version: capability version {version} is below the minimum {min}")]
    UnsupportedVersion {
        /// The client's version.
        version: u16,
        /// The oldest version this server accepts.
        min: u16,
    },
    /// The initiation did not authenticate: it was made for another server key or corrupted.
    #[error("handshake initiation failed to decrypt (wrong server key or corrupted message)")]
    HandshakeDecrypt,
    /// A frame carried a type other than 0x04 (record).
    #[error("unknown message type {got:#04x} where a record (0x04) was expected")]
    UnknownMessageType {
        /// The type byte received.
        got: u8,
    },
    /// A frame announced more than 4096 bytes.
    #[error("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    FrameTooLarge {
        /// Total frame length announced (header included).
        len: usize,
    },
    /// A record's ciphertext is shorter than its authentication tag.
    #[error("record ciphertext of {len} bytes is shorter than the 16-byte tag")]
    FrameTooShort {
        /// Ciphertext length announced.
        len: usize,
    },
    /// A record failed authentication: tampered, reordered or under another key.
    #[error("record {counter} failed decryption")]
    RecordDecrypt {
        /// The receive counter the record was expected at.
        counter: u64,
    },
    /// A caller tried to seal more than fits one record.
    #[error("plaintext of {len} bytes exceeds the {MAX_PLAINTEXT_LEN}-byte record limit")]
    PlaintextTooLarge {
        /// Plaintext length offered.
        len: usize,
    },
    /// 2^64-1 records went one way; the session must end.
    #[error("nonce counter exhausted")]
    NonceExhausted,
    /// The server answered the initiation with an error message (client side).
    #[error("server refused the handshake: {0}")]
    Refused(String),

    /// The server's handshake response is malformed (client side).
    #[error("malformed handshake response: {0}")]
    BadResponse(&'static str),
    /// The peer did not finish the handshake in time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The HTTP upgrade request is malformed (method, headers).
    #[error("bad upgrade request: {0}")]
    BadUpgrade(&'static str),
    /// A socket or upgrade error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for protocol violations by the peer (as opposed to I/O or local failures).
    #[must_use]
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, Self::Io(_) | Self::PlaintextTooLarge { .. })
    }
}
