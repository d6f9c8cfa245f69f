//! Errors that name the config key an operator has to fix.

use std::path::PathBuf;

/// Why TLS could not be set up or a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key file could not be read.
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate or key is not usable (bad PEM, no certificate, key does not match).
    #[error("{key}: {message}")]
    Invalid {
        /// The config key naming the file or setting.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The ACME cache directory cannot be created or written.
    #[error("tls_letsencrypt_cache_dir: {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP-01 challenge listener could not bind.
    #[error("tls_letsencrypt_listen: cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An ACME exchange failed (directory, account, order, challenge or download).
    #[error("ACME ({step}): {message}")]
    Acme {
        /// Which step failed.
        step: &'static str,
        /// The CA's or the client's message.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            message: message.into(),
        }
    }

    pub(crate) fn acme(step: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Acme {
            step,
            message: e.to_string(),
        }
    }
}
