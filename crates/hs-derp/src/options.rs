//! The relay's tunables, its admission hook and its counters.

use std::sync::Arc;
use std::time::Duration;

use hs_types::NodePublic;

/// Decides whether a node key may use the relay (`derp.server.verify_clients`). The control
/// plane provides it; it must not block.
pub type ClientVerifier = Arc<dyn Fn(&NodePublic) -> bool + Send + Sync>;

/// A receive rate limit applied to each client and advertised in `ServerInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained bytes per second.
    pub bytes_per_second: u64,
    /// Burst size in bytes.
    pub burst: u64,
}

/// Tunables of a [`crate::DerpServer`].
#[derive(Clone)]
pub struct ServerOptions {
    /// Admission check; `None` admits every client.
    pub verify_clients: Option<ClientVerifier>,
    /// Mesh key (64 hex digits) that lets a client watch connections and forward packets.
    pub mesh_key: Option<String>,
    /// Base keep-alive interval (a random 0–5 s, at most the interval, is added each time).
    pub keep_alive: Duration,
    /// Time allowed for the client's `ClientInfo`.
    pub handshake_timeout: Duration,
    /// Time allowed for one batch of writes to a client before it is dropped as too slow.
    pub write_timeout: Duration,
    /// Packets queued per client before new ones are dropped.
    pub queue_depth: usize,
    /// Optional per-client receive rate limit.
    pub rate_limit: Option<RateLimit>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            verify_clients: None,
            mesh_key: None,
            keep_alive: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(2),
            queue_depth: 32,
            rate_limit: None,
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("verify_clients", &self.verify_clients.is_some())
            .field("mesh_key", &self.mesh_key.as_ref().map(|_| "<redacted>"))
            .field("keep_alive", &self.keep_alive)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("queue_depth", &self.queue_depth)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections currently registered.
    pub clients: usize,
    /// Packets handed to a destination queue.
    pub packets_relayed: u64,
    /// Packet bytes handed to a destination queue.
    pub bytes_relayed: u64,
    /// Packets dropped because the destination queue was full.
    pub packets_dropped_queue_full: u64,
    /// Packets dropped because the destination was not connected.
    pub packets_dropped_unknown_dest: u64,
    /// Connections refused by the verifier.
    pub clients_refused: u64,
}

/// Refuses a DERP key equal to the Noise key: Headscale requires them to differ, since the
/// DERP key's public half is served to anyone who connects.
pub fn check_keys_distinct(
    derp: &hs_types::NodePrivate,
    noise: &hs_types::MachinePrivate,
) -> Result<(), crate::Error> {
    if derp.secret_bytes() == noise.secret_bytes() {
        return Err(crate::Error::SameKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hs_types::{MachinePrivate, NodePrivate};
    use rand::rngs::OsRng;

    use super::*;

    #[test]
    fn same_derp_and_noise_key_is_refused() {
        let derp = NodePrivate::generate(&mut OsRng);
        let noise = MachinePrivate::from_bytes(*derp.secret_bytes());
        let err = check_keys_distinct(&derp, &noise).unwrap_err();
        assert!(err.to_string().contains("private_key_path"), "{err}");
        assert!(check_keys_distinct(&derp, &MachinePrivate::generate(&mut OsRng)).is_ok());
    }
}
