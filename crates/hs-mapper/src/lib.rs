//! Map responses: pure functions from a NodeStore snapshot and a change to the smallest
//! correct `MapResponse` for each affected node, with peer entries serialised once and shared
//! across recipients, and the map-stream framing (u32 LE length + zstd frames; a full map's
//! shared parts are compressed once for every viewer).
//!
//! Key types: [`Mapper`] (config + shared peer-entry cache), [`Session`] (what one stream
//! was told), [`Outgoing`] (a frame to write, or a stream to close), [`MapperConfig`].
//! Entry points: [`Mapper::full_map`] for a new stream, [`Mapper::fanout`] for every NodeStore
//! batch, [`Mapper::reconfigure`] for config reloads.
//!
//! Delivery (the per-stream queues, keep-alive timers and sockets) belongs to the control
//! plane; this crate does no I/O, reads no clock and needs no async runtime.

mod cache;
mod config;
mod error;
mod fanout;
mod frame;
mod full;
mod mapper;
mod message;
mod reconfig;
mod render;
mod session;
mod shared;

pub use cache::PeerCache;
pub use config::{MapperConfig, dns_config, parse_extra_records};
#[cfg(feature = "test-fault")]
pub use config::{TestFault, set_test_fault};
pub use error::Error;
pub use fanout::{CloseReason, Outgoing};
pub use frame::{
    KEEPALIVE_BASE, KEEPALIVE_JITTER_MAX, KEEPALIVE_JSON, decode_frame, encode_frame,
    keepalive_frame, keepalive_interval,
};
pub use mapper::Mapper;
pub use message::EMPTY_SSH_POLICY;
pub use render::{
    CAP_ADMIN, CAP_DEFAULT_AUTO_UPDATE, CAP_FILE_SHARING, CAP_SSH, CAP_SUGGEST_EXIT_NODE,
    TAGGED_DEVICES_USER_ID, cap_map, node as render_node, peer_cap_map, tagged_devices_profile,
    user_profile, wire_user,
};
pub use session::Session;
