//! The in-memory tailnet: one `ArcSwap` snapshot holding everything that is read together
//! (nodes, indexes by id, node key, machine key, user and given name, primary routes, the
//! policy that decides peer visibility), read without locks and written by a single
//! [`Writer`] that applies batches in time proportional to what they touch.
//!
//! Key types: [`NodeStore`] (readers, `Clone`), [`Writer`] (the one writer), [`Snapshot`],
//! [`NodeEntry`], [`Op`] and [`Change`] (what a batch did, for the mapper), [`PolicyView`]
//! (what the policy engine must answer).
//!
//! No tokio, no database, no clock.

mod change;
mod entry;
mod error;
pub mod names;
mod policy;
mod routes;
mod snapshot;
mod writer;

pub use change::{Change, PatchFields};
pub use entry::{NodeEntry, is_exit_route, preferred_derp, routable_ips};
pub use error::Error;
pub use policy::{
    ALLOW_ALL_FILTER_JSON, AllowAll, DENY_ALL_FILTER_JSON, DenyAll, NodeAttr, PolicyView,
};
pub use snapshot::{RouteState, Snapshot};
pub use writer::{Applied, NodePatch, NodeStore, Op, Writer};
