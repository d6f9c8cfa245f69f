//! The crate's error type. `Invalid` carries the hosted control plane's exact message text.

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The HuJSON text did not parse (or had an unknown field / wrong type).
    #[error("line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The policy parsed but is not valid; the message is the hosted service's wording.
    #[error("{0}")]
    Invalid(String),
    /// The policy's `tests` or `sshTests` block failed.
    #[error("test(s) failed")]
    TestsFailed(Vec<String>),
}

impl PolicyError {
    /// The message with everything known about it: for failed tests, which entries failed
    /// and why (the plain message is the hosted service's terse "test(s) failed").
    pub fn detailed(&self) -> String {
        match self {
            Self::TestsFailed(which) if !which.is_empty() => {
                format!("{self}: {}", which.join("; "))
            }
            other => other.to_string(),
        }
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(msg.into())
}
