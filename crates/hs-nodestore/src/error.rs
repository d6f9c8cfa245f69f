//! Errors of NodeStore writes.

use hs_types::{NodeId, UserId};

/// Why a write op was rejected. A rejected op changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The op names a node that does not exist.
    #[error("node {0} does not exist")]
    UnknownNode(NodeId),
    /// The op names a user that does not exist.
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
    /// A rename to a string that is not a DNS label.
    #[error(
        "{0:?} is not a valid DNS label (1-63 letters, digits or '-', alphanumeric at both ends)"
    )]
    InvalidGivenName(String),
    /// A rename to a name another node holds.
    #[error("given name {name:?} is already used by node {holder}")]
    GivenNameTaken {
        /// The requested name.
        name: String,
        /// The node holding it.
        holder: NodeId,
    },
    /// A key rotation to a node key another node holds.
    #[error("node {node}: the new node key is already used by node {holder}")]
    NodeKeyInUse {
        /// The node being patched.
        node: NodeId,
        /// The node holding the key.
        holder: NodeId,
    },
}
