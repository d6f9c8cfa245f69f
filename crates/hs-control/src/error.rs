//! hs-control's error type.

use std::path::PathBuf;

/// What can go wrong starting or running the control server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key file exists but cannot be read.
    #[error("cannot read {what} key file {path}: {source}")]
    KeyRead {
        /// Which key (`noise`, `DERP`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file holds something that is not a `privkey:` key.
    #[error(
        "{what} key file {path} is malformed: {reason} (expected \"privkey:\" and 64 hex digits; move the file away to generate a new key)"
    )]
    KeyMalformed {
        /// Which key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A missing key file could not be created.
    #[error("cannot create {what} key file {path}: {source}")]
    KeyWrite {
        /// Which key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Noise and DERP keys are the same key.
    #[error(
        "noise.private_key_path and derp.server.private_key_path hold the same key ({0}); they must differ"
    )]
    SameKey(String),
    /// The key path is empty.
    #[error("no path configured for the {0} private key")]
    KeyPathMissing(&'static str),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}
