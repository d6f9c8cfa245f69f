//! The tailcfg wire types: owned serde mirrors of Go's `tailcfg` JSON, with Go's exact field
//! names, `omitempty` rules and the nil-vs-empty distinctions that change meaning.

pub mod gotime;
mod hostinfo;
mod omit;
mod opt_bool;

pub use hostinfo::{ExtraFields, Hostinfo, Location, NetInfo, Service, TpmInfo};
pub use opt_bool::OptBool;
