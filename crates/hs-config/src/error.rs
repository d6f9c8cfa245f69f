//! What goes wrong when loading a config: every problem names the key path it is about
//! (`server_url`, `dns.base_domain`) and says why, and warnings do the same for keys that are
//! accepted but deserve the operator's attention (unknown or deprecated keys).

use std::fmt;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, as written in the YAML file (`dns.nameservers.global`).
    pub key: String,
    /// Why the value is refused, in words an operator can act on.
    pub reason: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// A key that is accepted but should be looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Dotted key path the warning is about.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Loading the configuration failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not YAML (or its top level is not a mapping).
    #[error("config file is not valid YAML: {0}")]
    Syntax(String),
    /// The YAML is fine but one or more values are not; all of them are listed.
    #[error("invalid configuration:\n{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The individual problems (empty for a syntax error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Syntax(_) => &[],
            Self::Invalid(p) => p,
        }
    }

    /// Whether some problem is about `key` (exact key path).
    pub fn mentions(&self, key: &str) -> bool {
        self.problems().iter().any(|p| p.key == key)
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
