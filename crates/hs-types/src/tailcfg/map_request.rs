//! `MapRequest`: the body of `POST /machine/map`, both the long poll (`Stream: true`) and the
//! "lite" endpoint/Hostinfo updates (`Stream: false, OmitPeers: true`).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::capver::CapabilityVersion;
use super::hostinfo::Hostinfo;
use super::omit::{is_zero, null_default};
use super::{b64, gotime};
use crate::key::{DiscoPublic, NodePublic};

/// Values of [`MapRequest::endpoint_types`] (Go `tailcfg.EndpointType`).
pub mod endpoint_type {
    /// Unknown origin.
    pub const UNKNOWN: i64 = 0;
    /// A local interface address.
    pub const LOCAL: i64 = 1;
    /// Discovered through STUN.
    pub const STUN: i64 = 2;
    /// A port mapping (UPnP, NAT-PMP, PCP).
    pub const PORTMAPPED: i64 = 3;
    /// STUN'ed IPv4 address with the local port (hard NAT).
    pub const STUN4_LOCAL_PORT: i64 = 4;
    /// Explicitly configured.
    pub const EXPLICIT_CONF: i64 = 5;
}

/// Go's `tailcfg.MapRequest`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MapRequest {
    /// `Version`: the client's capability version. Always written.
    #[serde(rename = "Version")]
    pub version: CapabilityVersion,
    /// `Compress`: `zstd` (always, from current clients) or empty.
    #[serde(rename = "Compress", skip_serializing_if = "String::is_empty")]
    pub compress: String,
    /// `KeepAlive`: the client wants keep-alive messages.
    #[serde(rename = "KeepAlive", skip_serializing_if = "is_zero")]
    pub keep_alive: bool,
    /// `NodeKey`: identifies the node (must belong to the Noise session's machine key).
    #[serde(rename = "NodeKey", deserialize_with = "null_default")]
    pub node_key: NodePublic,
    /// `DiscoKey`: the node's current disco key. Always written.
    #[serde(rename = "DiscoKey", deserialize_with = "null_default")]
    pub disco_key: DiscoPublic,
    /// `HardwareAttestationKey`: `hwattestpub:<hex>` text, kept opaque; omitted when empty.
    #[serde(
        rename = "HardwareAttestationKey",
        skip_serializing_if = "String::is_empty"
    )]
    pub hardware_attestation_key: String,
    /// `HardwareAttestationKeySignature`; omitted when empty.
    #[serde(
        rename = "HardwareAttestationKeySignature",
        with = "b64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hardware_attestation_key_signature: Vec<u8>,
    /// `HardwareAttestationKeySignatureTimestamp`; `None` (zero time) is omitted.
    #[serde(
        rename = "HardwareAttestationKeySignatureTimestamp",
        with = "gotime::zero_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub hardware_attestation_key_signature_timestamp: Option<DateTime<Utc>>,
    /// `Stream`: long poll. From capver 68 a streaming request should be treated as read-only.
    #[serde(rename = "Stream", skip_serializing_if = "is_zero")]
    pub stream: bool,
    /// `Hostinfo`. Always written (`null` when `None`). Tailscale's Rust client sends
    /// `HostInfo`; `godecode::from_slice` reads that as Go does.
    #[serde(rename = "Hostinfo")]
    pub hostinfo: Option<Hostinfo>,
    /// `MapSessionHandle`: request to resume a session; omitted when empty.
    #[serde(rename = "MapSessionHandle", skip_serializing_if = "String::is_empty")]
    pub map_session_handle: String,
    /// `MapSessionSeq`: last sequence number processed in that session; omitted when zero.
    #[serde(rename = "MapSessionSeq", skip_serializing_if = "is_zero")]
    pub map_session_seq: i64,
    /// `Endpoints`: the client's UDP endpoints; absent (omitted) when it has none yet.
    #[serde(
        rename = "Endpoints",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub endpoints: Vec<SocketAddr>,
    /// `EndpointTypes`: parallel to `Endpoints`, values from [`endpoint_type`].
    #[serde(
        rename = "EndpointTypes",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub endpoint_types: Vec<i64>,
    /// `TKAHead`: tailnet-lock head hash; omitted when empty.
    #[serde(rename = "TKAHead", skip_serializing_if = "String::is_empty")]
    pub tka_head: String,
    /// `ReadOnly`: deprecated, always false since capver 68.
    #[serde(rename = "ReadOnly", skip_serializing_if = "is_zero")]
    pub read_only: bool,
    /// `OmitPeers`: with `Stream: false`, a lite update whose response body is ignored.
    #[serde(rename = "OmitPeers", skip_serializing_if = "is_zero")]
    pub omit_peers: bool,
    /// `DebugFlags`: e.g. `warn-ip-forwarding-off`.
    #[serde(
        rename = "DebugFlags",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub debug_flags: Vec<String>,
    /// `ConnectionHandleForTest`: opaque, for tests; omitted when empty.
    #[serde(
        rename = "ConnectionHandleForTest",
        skip_serializing_if = "String::is_empty"
    )]
    pub connection_handle_for_test: String,
}

impl MapRequest {
    /// A lite update: not streaming, peers omitted; the server stores what it carries and
    /// answers 200 with an empty body.
    pub fn is_lite_update(&self) -> bool {
        !self.stream && self.omit_peers && !self.read_only
    }
}
