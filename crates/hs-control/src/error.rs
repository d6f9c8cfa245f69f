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
    /// A database operation failed.
    #[error("database: {0}")]
    Db(#[from] hs_db::Error),
    /// Building a map response failed.
    #[error("building a map response: {0}")]
    Mapper(#[from] hs_mapper::Error),
    /// The NodeStore refused a write.
    #[error("node store: {0}")]
    NodeStore(#[from] hs_nodestore::Error),
    /// The state coordinator task is gone (the server is shutting down).
    #[error("the state coordinator has stopped")]
    Stopped,
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// Configuration the control plane cannot work with.
    #[error("{0}")]
    Config(String),
    /// What a command names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A command's input breaks a rule (a bad name, tag or route).
    #[error("{0}")]
    Invalid(String),
    /// A command would clash with what exists (a taken name, a user who owns nodes).
    #[error("{0}")]
    Conflict(String),
}
