//! `MapResponse`: one message of the map long poll (zstd-framed by the caller).
//!
//! Most fields are deltas: `None`/omitted means "unchanged since the previous message of this
//! stream". Where Go's meaning differs between nil and empty, the field is an `Option` so that
//! `Some(empty)` is written as `[]`/`{}` (e.g. an empty `PacketFilter` = deny all), which Go's
//! own struct cannot express.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::derp::DERPMap;
use super::dns::DNSConfig;
use super::filter::FilterRule;
use super::gotime;
use super::map_parts::{
    ClientVersion, ControlDialPlan, Debug, DisplayMessage, PeerChange, PingRequest, TKAInfo,
};
use super::node::Node;
use super::omit::{is_zero, null_default};
use super::opt_bool::OptBool;
use super::ssh::SSHPolicy;
use super::user::UserProfile;
use crate::ids::NodeId;

/// Go's `tailcfg.MapResponse`. `MapResponse::default()` serializes as `{}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MapResponse {
    /// `MapSessionHandle`: resume handle, first message only; omitted when empty.
    #[serde(rename = "MapSessionHandle", skip_serializing_if = "String::is_empty")]
    pub map_session_handle: String,
    /// `Seq`: sequence number within the session; omitted when zero.
    #[serde(rename = "Seq", skip_serializing_if = "is_zero")]
    pub seq: i64,
    /// `KeepAlive`: a keep-alive-only message (`{"KeepAlive":true}`).
    #[serde(rename = "KeepAlive", skip_serializing_if = "is_zero")]
    pub keep_alive: bool,
    /// `PingRequest`; omitted when `None`.
    #[serde(rename = "PingRequest", skip_serializing_if = "Option::is_none")]
    pub ping_request: Option<PingRequest>,
    /// `PopBrowserURL`: a URL for the client to open; omitted when empty.
    #[serde(rename = "PopBrowserURL", skip_serializing_if = "String::is_empty")]
    pub pop_browser_url: String,
    /// `Node`: the self node; `None` = unchanged (required in the first message).
    #[serde(rename = "Node", skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    /// `DERPMap`: `None` = unchanged.
    #[serde(rename = "DERPMap", skip_serializing_if = "Option::is_none")]
    pub derp_map: Option<DERPMap>,
    /// `Peers`: the complete peer list, sorted by id. `None` (omitted) = no full list. A
    /// client treats `Some(vec![])` (written `[]`) like `None`: to drop every peer, list them
    /// in `PeersRemoved`.
    #[serde(rename = "Peers", skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<Node>>,
    /// `PeersChanged`: added or replaced peers, sorted by id; `None` = none.
    #[serde(rename = "PeersChanged", skip_serializing_if = "Option::is_none")]
    pub peers_changed: Option<Vec<Node>>,
    /// `PeersRemoved`: ids of peers that are gone; omitted when empty.
    #[serde(
        rename = "PeersRemoved",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub peers_removed: Vec<NodeId>,
    /// `PeersChangedPatch`: partial peer updates; omitted when empty.
    #[serde(
        rename = "PeersChangedPatch",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub peers_changed_patch: Vec<PeerChange>,
    /// `PeerSeenChange`: id → true (LastSeen = now) / false (LastSeen = nil); omitted when
    /// empty. Keys are written as decimal strings.
    #[serde(
        rename = "PeerSeenChange",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub peer_seen_change: BTreeMap<NodeId, bool>,
    /// `OnlineChange`: id → new `Node.Online`; omitted when empty.
    #[serde(
        rename = "OnlineChange",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub online_change: BTreeMap<NodeId, bool>,
    /// `DNSConfig`: `None` = unchanged.
    #[serde(rename = "DNSConfig", skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DNSConfig>,
    /// `Domain`: the tailnet name; empty (omitted) = unchanged.
    #[serde(rename = "Domain", skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// `CollectServices`: whether to report Hostinfo.Services; `Empty` (omitted) = unchanged.
    #[serde(rename = "CollectServices", skip_serializing_if = "OptBool::is_empty")]
    pub collect_services: OptBool,
    /// `PacketFilter`: `None` (omitted) = unchanged; `Some(vec![])` is written as `[]` and
    /// means deny all inbound traffic.
    #[serde(rename = "PacketFilter", skip_serializing_if = "Option::is_none")]
    pub packet_filter: Option<Vec<FilterRule>>,
    /// `PacketFilters` (capver >= 81): named filters; a `None` value (`null`) deletes that
    /// name, and `"*": null` first clears all. `PacketFilter` is the name `base`. The outer
    /// `None` is omitted (unchanged).
    #[serde(rename = "PacketFilters", skip_serializing_if = "Option::is_none")]
    pub packet_filters: Option<BTreeMap<String, Option<Vec<FilterRule>>>>,
    /// `UserProfiles`: new or updated profiles (additive); omitted when empty.
    #[serde(
        rename = "UserProfiles",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub user_profiles: Vec<UserProfile>,
    /// `Health`: `None` = unchanged; `Some(vec![])` (written `[]`) = healthy; else problems.
    #[serde(rename = "Health", skip_serializing_if = "Option::is_none")]
    pub health: Option<Vec<String>>,
    /// `DisplayMessages` (capver >= 117): a patch; a `None` value (`null`) deletes that id,
    /// `"*": null` clears all. Empty = unchanged (omitted).
    #[serde(
        rename = "DisplayMessages",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub display_messages: BTreeMap<String, Option<DisplayMessage>>,
    /// `SSHPolicy`: `None` = unchanged.
    #[serde(rename = "SSHPolicy", skip_serializing_if = "Option::is_none")]
    pub ssh_policy: Option<SSHPolicy>,
    /// `ControlTime`: the server's clock, for the client's expiry computations.
    #[serde(
        rename = "ControlTime",
        with = "gotime::ptr",
        skip_serializing_if = "Option::is_none"
    )]
    pub control_time: Option<DateTime<Utc>>,
    /// `TKAInfo`: tailnet lock; `None` initially = disabled, later = unchanged.
    #[serde(rename = "TKAInfo", skip_serializing_if = "Option::is_none")]
    pub tka_info: Option<TKAInfo>,
    /// `DomainDataPlaneAuditLogID`; empty (omitted) = unchanged.
    #[serde(
        rename = "DomainDataPlaneAuditLogID",
        skip_serializing_if = "String::is_empty"
    )]
    pub domain_data_plane_audit_log_id: String,
    /// `Debug`: debug settings; omitted when `None`.
    #[serde(rename = "Debug", skip_serializing_if = "Option::is_none")]
    pub debug: Option<Debug>,
    /// `ControlDialPlan`: `None` = unchanged.
    #[serde(rename = "ControlDialPlan", skip_serializing_if = "Option::is_none")]
    pub control_dial_plan: Option<ControlDialPlan>,
    /// `ClientVersion`: `None` = unchanged / nothing to report.
    #[serde(rename = "ClientVersion", skip_serializing_if = "Option::is_none")]
    pub client_version: Option<ClientVersion>,
    /// `DefaultAutoUpdate` (Go `DeprecatedDefaultAutoUpdate`); `Empty` is omitted.
    #[serde(
        rename = "DefaultAutoUpdate",
        skip_serializing_if = "OptBool::is_empty"
    )]
    pub deprecated_default_auto_update: OptBool,
}

impl MapResponse {
    /// The keep-alive message, `{"KeepAlive":true}`.
    pub fn keep_alive() -> Self {
        Self {
            keep_alive: true,
            ..Self::default()
        }
    }
}
