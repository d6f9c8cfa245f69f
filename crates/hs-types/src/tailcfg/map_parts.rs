//! The smaller pieces of a `MapResponse`: `PeerChange`, `PingRequest` (and the client's
//! `PingResponse`), `Debug`, `ClientVersion`, `ControlDialPlan`, `DisplayMessage` and
//! `TKAInfo`.

use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::capmap::CapMap;
use super::capver::CapabilityVersion;
use super::gofloat;
use super::omit::{is_zero, null_default};
use super::{b64, gotime};
use crate::ids::NodeId;
use crate::key::{DiscoPublic, NodePublic};

/// Go's `tailcfg.PeerChange`: a partial update of one peer (`MapResponse.PeersChangedPatch`).
/// Only set fields are applied; unknown node ids are ignored by the client.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerChange {
    /// `NodeID` of the peer. Always written.
    #[serde(rename = "NodeID")]
    pub node_id: NodeId,
    /// `DERPRegion`: new home DERP region; omitted when zero (unchanged).
    #[serde(rename = "DERPRegion", skip_serializing_if = "is_zero")]
    pub derp_region: i64,
    /// `Cap`: new capability version; omitted when zero.
    #[serde(rename = "Cap", skip_serializing_if = "is_zero")]
    pub cap: CapabilityVersion,
    /// `CapMap`: new node attributes; omitted (unchanged) when empty.
    #[serde(rename = "CapMap", skip_serializing_if = "CapMap::is_empty")]
    pub cap_map: CapMap,
    /// `Endpoints`: new endpoints; omitted (unchanged) when empty.
    #[serde(
        rename = "Endpoints",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub endpoints: Vec<SocketAddr>,
    /// `Key`: new node key; `None` = unchanged.
    #[serde(rename = "Key", skip_serializing_if = "Option::is_none")]
    pub key: Option<NodePublic>,
    /// `KeySignature`: new tailnet-lock signature; omitted when empty.
    #[serde(
        rename = "KeySignature",
        with = "b64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub key_signature: Vec<u8>,
    /// `DiscoKey`: new disco key; `None` = unchanged.
    #[serde(rename = "DiscoKey", skip_serializing_if = "Option::is_none")]
    pub disco_key: Option<DiscoPublic>,
    /// `Online`: `None` = unchanged; `Some(false)` is written.
    #[serde(rename = "Online", skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// `LastSeen`: `None` = unchanged.
    #[serde(
        rename = "LastSeen",
        with = "gotime::ptr",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_seen: Option<DateTime<Utc>>,
    /// `KeyExpiry`: `None` = unchanged; `Some(zero time)` means "no longer expires".
    #[serde(
        rename = "KeyExpiry",
        with = "gotime::ptr",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_expiry: Option<DateTime<Utc>>,
}

/// Go's `tailcfg.PingRequest`: asks the client to prove liveness (`Types` empty: `HEAD URL`),
/// run a c2n request (`Types: "c2n"`), or ping `IP` (`disco`, `TSMP`, `ICMP`, `peerapi`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PingRequest {
    /// `URL` to answer to; duplicates are ignored by the client. Always written.
    #[serde(rename = "URL")]
    pub url: String,
    /// `URLIsNoise`: answer over the Noise connection.
    #[serde(rename = "URLIsNoise", skip_serializing_if = "is_zero")]
    pub url_is_noise: bool,
    /// `Log`: the client should log the request.
    #[serde(rename = "Log", skip_serializing_if = "is_zero")]
    pub log: bool,
    /// `Types`: comma-separated ping types, `c2n`, or empty.
    #[serde(rename = "Types", skip_serializing_if = "String::is_empty")]
    pub types: String,
    /// `IP` to ping; omitted when `None`.
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// `Payload`: for c2n, the raw HTTP request bytes; omitted when empty.
    #[serde(
        rename = "Payload",
        with = "b64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub payload: Vec<u8>,
}

/// Go's `tailcfg.PingResponse`: what a client POSTs to `PingRequest.URL` after a `disco`,
/// `TSMP`, `ICMP` or `peerapi` ping. All fields but `Type` are `omitempty`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PingResponse {
    /// `Type`: the ping type that was run. Always written.
    #[serde(rename = "Type")]
    pub r#type: String,
    /// `IP`: the ping destination.
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// `NodeIP`: Tailscale IP of the node that answered (differs for subnet routers).
    #[serde(rename = "NodeIP", skip_serializing_if = "String::is_empty")]
    pub node_ip: String,
    /// `NodeName`: the answering node's name.
    #[serde(rename = "NodeName", skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// `Err`: why the ping could not be done.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
    /// `LatencySeconds`: round-trip time, if measured.
    #[serde(
        rename = "LatencySeconds",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub latency_seconds: f64,
    /// `Endpoint`: `ip:port` when direct UDP was used.
    #[serde(rename = "Endpoint", skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// `PeerRelay`: `ip:port:vni:N` when a peer relay was used.
    #[serde(rename = "PeerRelay", skip_serializing_if = "String::is_empty")]
    pub peer_relay: String,
    /// `DERPRegionID` when DERP was used.
    #[serde(rename = "DERPRegionID", skip_serializing_if = "is_zero")]
    pub derp_region_id: i64,
    /// `DERPRegionCode` matching `DERPRegionID`.
    #[serde(rename = "DERPRegionCode", skip_serializing_if = "String::is_empty")]
    pub derp_region_code: String,
    /// `PeerAPIPort` reported by TSMP pings.
    #[serde(rename = "PeerAPIPort", skip_serializing_if = "is_zero")]
    pub peer_api_port: u16,
    /// `IsLocalIP`: the target was the pinging node itself.
    #[serde(rename = "IsLocalIP", skip_serializing_if = "is_zero")]
    pub is_local_ip: bool,
}

/// Go's `tailcfg.Debug`: debug settings pushed to a node. All fields `omitempty`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Debug {
    /// `SleepSeconds`: sleep before the next request (capped at 5 minutes by clients).
    #[serde(
        rename = "SleepSeconds",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub sleep_seconds: f64,
    /// `DisableLogTail`: stop uploading logs (Headscale: `!logtail.enabled`).
    #[serde(rename = "DisableLogTail", skip_serializing_if = "is_zero")]
    pub disable_log_tail: bool,
    /// `Exit`: make the client exit with this code.
    #[serde(rename = "Exit", skip_serializing_if = "Option::is_none")]
    pub exit: Option<i64>,
}

/// Go's `tailcfg.ClientVersion`: update availability. All fields `omitempty`; send
/// `{"RunningLatest":true}` when the server does not track versions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientVersion {
    /// `RunningLatest`: the client is up to date.
    #[serde(rename = "RunningLatest", skip_serializing_if = "is_zero")]
    pub running_latest: bool,
    /// `LatestVersion` available.
    #[serde(rename = "LatestVersion", skip_serializing_if = "String::is_empty")]
    pub latest_version: String,
    /// `UrgentSecurityUpdate`.
    #[serde(rename = "UrgentSecurityUpdate", skip_serializing_if = "is_zero")]
    pub urgent_security_update: bool,
    /// `Notify`: show a notification.
    #[serde(rename = "Notify", skip_serializing_if = "is_zero")]
    pub notify: bool,
    /// `NotifyURL`: where to learn more.
    #[serde(rename = "NotifyURL", skip_serializing_if = "String::is_empty")]
    pub notify_url: String,
    /// `NotifyText`: notification text.
    #[serde(rename = "NotifyText", skip_serializing_if = "String::is_empty")]
    pub notify_text: String,
}

/// Go's `tailcfg.ControlDialPlan`: how the client should reach the control server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlDialPlan {
    /// `Candidates`, always written.
    #[serde(rename = "Candidates", deserialize_with = "null_default")]
    pub candidates: Vec<ControlIPCandidate>,
}

/// Go's `tailcfg.ControlIPCandidate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlIPCandidate {
    /// `IP` to dial; omitted when `None`.
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// `ACEHost`: a connector host name; omitted when empty.
    #[serde(rename = "ACEHost", skip_serializing_if = "String::is_empty")]
    pub ace_host: String,
    /// `DialStartDelaySec`.
    #[serde(
        rename = "DialStartDelaySec",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub dial_start_delay_sec: f64,
    /// `DialTimeoutSec`.
    #[serde(
        rename = "DialTimeoutSec",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub dial_timeout_sec: f64,
    /// `Priority`: higher wins.
    #[serde(rename = "Priority", skip_serializing_if = "is_zero")]
    pub priority: i64,
}

/// Go's `tailcfg.DisplayMessage`: a control-side health message (capver >= 117).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DisplayMessage {
    /// `Title`. Always written.
    #[serde(rename = "Title")]
    pub title: String,
    /// `Text`. Always written.
    #[serde(rename = "Text")]
    pub text: String,
    /// `Severity`: `high`, `medium` or `low`. Always written.
    #[serde(rename = "Severity")]
    pub severity: String,
    /// `ImpactsConnectivity`.
    #[serde(rename = "ImpactsConnectivity", skip_serializing_if = "is_zero")]
    pub impacts_connectivity: bool,
    /// `PrimaryAction`: a button; omitted when `None`.
    #[serde(rename = "PrimaryAction", skip_serializing_if = "Option::is_none")]
    pub primary_action: Option<DisplayMessageAction>,
}

/// Go's `tailcfg.DisplayMessageAction`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DisplayMessageAction {
    /// `URL` to open. Always written.
    #[serde(rename = "URL")]
    pub url: String,
    /// `Label` of the button. Always written.
    #[serde(rename = "Label")]
    pub label: String,
}

/// Go's `tailcfg.TKAInfo`: tailnet-lock state. A server without tailnet lock never sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TKAInfo {
    /// `Head`: the latest AUM hash; omitted when empty.
    #[serde(rename = "Head", skip_serializing_if = "String::is_empty")]
    pub head: String,
    /// `Disabled`: tailnet lock is being disabled.
    #[serde(rename = "Disabled", skip_serializing_if = "is_zero")]
    pub disabled: bool,
}
