//! The tailcfg wire types: owned serde mirrors of Go's `tailcfg` JSON, with Go's exact field
//! names, `omitempty` rules and the nil-vs-empty distinctions that change meaning.
//!
//! Type names follow Go (`DERPMap`, `SSHPolicy`) so the Go sources and the protocol reference
//! read straight across; Rust field names are snake_case with an explicit `rename` each, and
//! fields are declared in Go's order so our JSON has Go's key order.
//!
//! Deserializing is lenient like Go's `encoding/json` (unknown fields ignored, absent or
//! `null` = zero value); serializing follows each field's Go tag, and floats use Go's form
//! (`3`, not `3.0`). Two deliberate differences from Go's bytes, neither of which a JSON
//! reader can tell apart: `&`, `<` and `>` are written as themselves rather than
//! `\u0026`-style escapes, and a few lists are written as `[]` where Go would write `null` for
//! a nil slice (documented on each such field).
//!
//! Bodies from clients are read with [`godecode::from_slice`], which also matches keys to
//! fields case-insensitively as Go does (Tailscale's Rust client writes `HostInfo`, `Os`, ...).

mod b64;
mod capmap;
mod capver;
mod derp;
mod dns;
mod filter;
pub mod godecode;
mod gofloat;
pub mod gojson;
pub mod gotime;
mod hostinfo;
mod map_parts;
mod map_request;
mod map_response;
mod node;
mod noise;
mod omit;
mod opt_bool;
mod register;
mod ssh;
mod user;

pub use capmap::{CapMap, RawMessage};
pub use capver::CapabilityVersion;
pub use derp::{DERPHomeParams, DERPMap, DERPNode, DERPRegion};
pub use dns::{DNSConfig, DNSRecord, DNSResolver};
pub use filter::{CapGrant, FilterRule, NetPortRange, PortRange, ipproto};
pub use hostinfo::{ExtraFields, Hostinfo, Location, NetInfo, Service, TPMInfo};
pub use map_parts::{
    ClientVersion, ControlDialPlan, ControlIPCandidate, Debug, DisplayMessage,
    DisplayMessageAction, PeerChange, PingRequest, PingResponse, TKAInfo,
};
pub use map_request::{MapRequest, endpoint_type};
pub use map_response::MapResponse;
pub use node::Node;
pub use noise::{EarlyNoise, OverTLSPublicKeyResponse};
pub use opt_bool::OptBool;
pub use register::{
    Oauth2Token, RegisterRequest, RegisterResponse, RegisterResponseAuth, SignatureType,
};
pub use ssh::{SSHAction, SSHPolicy, SSHPrincipal, SSHRecorderFailureAction, SSHRule};
pub use user::{Login, User, UserProfile};
