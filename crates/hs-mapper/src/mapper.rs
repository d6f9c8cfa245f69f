//! The [`Mapper`]: the configuration plus the shared peer-entry cache and the shared
//! compressed parts of full maps. It is `Sync`; map
//! builds for different nodes can run on several threads at once.

use std::sync::Arc;

use crate::cache::PeerCache;
use crate::config::MapperConfig;
use crate::shared::SharedFrames;

/// Builds full maps and incremental messages. One per server; replace the config with
/// [`Mapper::reconfigure`].
#[derive(Debug)]
pub struct Mapper {
    cfg: Arc<MapperConfig>,
    cfg_gen: u64,
    cache: PeerCache,
    shared: SharedFrames,
}

impl Mapper {
    /// A mapper with an empty cache.
    pub fn new(cfg: MapperConfig) -> Self {
        Self {
            cfg: Arc::new(cfg),
            cfg_gen: 1,
            cache: PeerCache::new(),
            shared: SharedFrames::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MapperConfig {
        &self.cfg
    }

    pub(crate) fn cfg_gen(&self) -> u64 {
        self.cfg_gen
    }

    pub(crate) fn cache(&self) -> &PeerCache {
        &self.cache
    }

    pub(crate) fn shared(&self) -> &SharedFrames {
        &self.shared
    }

    /// How many compressed parts of full maps are kept for reuse (a memory figure).
    pub fn shared_frames(&self) -> usize {
        self.shared.len()
    }

    /// The serialised-node cache (its size is a memory figure worth watching).
    pub fn peer_cache(&self) -> &PeerCache {
        &self.cache
    }

    pub(crate) fn set_config(&mut self, cfg: MapperConfig) -> Arc<MapperConfig> {
        let old = std::mem::replace(&mut self.cfg, Arc::new(cfg));
        if old.renders_nodes_differently(&self.cfg) {
            self.cache = PeerCache::new();
            self.shared = SharedFrames::new();
        }
        self.cfg_gen += 1;
        old
    }
}
