//! The shared vocabulary of the workspace: identifier newtypes, the Curve25519 key types with
//! their Tailscale text forms, the tailcfg wire types a control server produces and consumes,
//! the domain model.
//!
//! Architecture invariant: this crate does no I/O and reads no clock.

pub mod ids;
pub mod key;
pub mod model;
pub mod tailcfg;

pub use ids::{NodeId, UserId};
pub use key::{
    ChallengePublic, DiscoPublic, KeyError, MachinePrivate, MachinePublic, NodePrivate, NodePublic,
};
