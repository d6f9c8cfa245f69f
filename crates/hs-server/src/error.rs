//! Why the server could not start or stopped; each names the config key or part at fault.

/// A start-up or serving failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value the server cannot use; the message names the key.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened or migrated.
    #[error("opening the database")]
    Db(#[from] hs_db::Error),
    /// The control plane failed to load or serve.
    #[error(transparent)]
    Control(#[from] hs_control::Error),
    /// An admin listener could not be set up.
    #[error(transparent)]
    Api(#[from] hs_api::Error),
    /// A listener could not be bound.
    #[error("{what}: binding {addr}: {source}")]
    Bind {
        /// The config key.
        what: &'static str,
        /// The configured address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A background task died.
    #[error("background task failed: {0}")]
    Task(String),
}
