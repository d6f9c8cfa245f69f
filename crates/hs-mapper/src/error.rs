//! Errors of the mapper.

use hs_types::NodeId;

/// Why a map message could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The viewer is not in the snapshot (deleted, or never registered).
    #[error("node {0} is not in the snapshot")]
    UnknownNode(NodeId),
    /// JSON encoding failed (a bug in a wire type, never bad input).
    #[error("encoding map response JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// zstd compression failed.
    #[error("zstd-compressing a map response: {0}")]
    Compress(std::io::Error),
    /// A frame is larger than the u32 length prefix can describe.
    #[error("map response of {0} bytes does not fit a u32 length prefix")]
    TooLarge(usize),
    /// A received frame is malformed (used when decoding, e.g. in tests and tools).
    #[error("malformed map frame: {0}")]
    BadFrame(String),
    /// `dns.extra_records_path` content is not a JSON list of records.
    #[error("extra DNS records: {0}")]
    ExtraRecords(String),
}
