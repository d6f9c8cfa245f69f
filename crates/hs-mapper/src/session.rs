//! What the mapper remembers about one map stream: the snapshot version the client is in
//! sync with and the per-viewer parts it was last sent (packet filter, SSH policy, config
//! generation). The client's peer list is not stored: it is, by construction, the viewer's
//! visible peers in the snapshot of that version, which keeps a session a few dozen bytes
//! whatever the tailnet size.

use std::sync::Arc;

use hs_types::NodeId;

/// One connected map stream's state, owned by the control plane's session task and lent
/// to [`crate::Mapper::fanout`].
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) node: NodeId,
    pub(crate) version: u64,
    pub(crate) cfg_gen: u64,
    pub(crate) filter: Arc<str>,
    pub(crate) ssh: Arc<str>,
}

impl Session {
    /// The node this stream serves.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The snapshot version the client has been brought to.
    pub fn version(&self) -> u64 {
        self.version
    }
}
