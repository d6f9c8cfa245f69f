//! The tailcfg wire types: owned serde mirrors of Go's `tailcfg` JSON, with Go's exact field
//! names, `omitempty` rules and the nil-vs-empty distinctions that change meaning.
//!
//! Type names follow Go (`DERPMap`, `SSHPolicy`) so the Go sources and the protocol reference
//! read straight across; Rust field names are snake_case with an explicit `rename` each.
//! Deserializing is lenient like Go's `encoding/json` (unknown fields ignored, absent or
//! `null` = zero value); serializing follows each field's Go tag exactly.

mod derp;
mod filter;
pub mod gotime;
mod hostinfo;
mod noise;
mod omit;
mod opt_bool;
mod ssh;

pub use derp::{DERPHomeParams, DERPMap, DERPNode, DERPRegion};
pub use filter::{CapGrant, CapMap, FilterRule, NetPortRange, PortRange, RawMessage, ipproto};
pub use hostinfo::{ExtraFields, Hostinfo, Location, NetInfo, Service, TPMInfo};
pub use noise::{EarlyNoise, OverTLSPublicKeyResponse};
pub use opt_bool::OptBool;
pub use ssh::{SSHAction, SSHPolicy, SSHPrincipal, SSHRecorderFailureAction, SSHRule};
