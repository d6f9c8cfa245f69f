//! `Node`: a tailnet member as the client sees it, both itself (`MapResponse.Node`) and its
//! peers (`MapResponse.Peers`/`PeersChanged`).

use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::capmap::CapMap;
use super::capver::CapabilityVersion;
use super::dns::DNSResolver;
use super::hostinfo::Hostinfo;
use super::omit::{is_zero, null_default};
use super::{b64, gotime};
use crate::ids::{NodeId, UserId};
use crate::key::{DiscoPublic, MachinePublic, NodePublic};

/// Go's `tailcfg.Node`, field for field in Go's order (so our JSON has Go's key order).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Node {
    /// `ID`: unique, never reused. Always written.
    #[serde(rename = "ID")]
    pub id: NodeId,
    /// `StableID`: stable string id (Headscale: the decimal id). Always written.
    #[serde(rename = "StableID")]
    pub stable_id: String,
    /// `Name`: MagicDNS FQDN with trailing dot (`host.tailnet.example.`). Always written.
    #[serde(rename = "Name")]
    pub name: String,
    /// `User`: the owning user; a matching UserProfile must be sent. Always written.
    #[serde(rename = "User")]
    pub user: UserId,
    /// `Sharer`: the sharing user, if shared; omitted when zero.
    #[serde(rename = "Sharer", skip_serializing_if = "is_zero")]
    pub sharer: UserId,
    /// `Key`: the WireGuard public key. Always written.
    #[serde(rename = "Key", deserialize_with = "null_default")]
    pub key: NodePublic,
    /// `KeyExpiry`: `None` (Go zero time, omitted) = never expires. A past expiry makes the
    /// self node `NeedsLogin` and marks peers expired.
    #[serde(
        rename = "KeyExpiry",
        with = "gotime::zero_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_expiry: Option<DateTime<Utc>>,
    /// `KeySignature`: tailnet-lock signature bytes; omitted when empty.
    #[serde(
        rename = "KeySignature",
        with = "b64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub key_signature: Vec<u8>,
    /// `Machine`: the machine key; omitted when zero.
    #[serde(
        rename = "Machine",
        skip_serializing_if = "MachinePublic::is_zero",
        deserialize_with = "null_default"
    )]
    pub machine: MachinePublic,
    /// `DiscoKey`: needed for NAT traversal and `tailscale ping`; omitted when zero.
    #[serde(
        rename = "DiscoKey",
        skip_serializing_if = "DiscoPublic::is_zero",
        deserialize_with = "null_default"
    )]
    pub disco_key: DiscoPublic,
    /// `Addresses`: the node's own IPs (`/32`, `/128`). Always written.
    #[serde(rename = "Addresses", deserialize_with = "null_default")]
    pub addresses: Vec<IpNet>,
    /// `AllowedIPs` (Go `omitzero`, not `omitempty`): `None` (omitted) means "same as
    /// Addresses" for capver >= 112; `Some(vec![])` is written as `[]` and means no routes.
    #[serde(rename = "AllowedIPs", skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<IpNet>>,
    /// `Endpoints`: UDP endpoints from the node's MapRequest; omitted when empty.
    #[serde(
        rename = "Endpoints",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub endpoints: Vec<SocketAddr>,
    /// `DERP`: legacy home DERP as `127.3.3.40:<region>`; omitted when empty.
    #[serde(rename = "DERP", skip_serializing_if = "String::is_empty")]
    pub legacy_derp_string: String,
    /// `HomeDERP`: home DERP region id (from `NetInfo.PreferredDERP`); omitted when zero.
    #[serde(rename = "HomeDERP", skip_serializing_if = "is_zero")]
    pub home_derp: i64,
    /// `Hostinfo`: the node's Hostinfo passed through; omitted when `None`.
    #[serde(rename = "Hostinfo", skip_serializing_if = "Option::is_none")]
    pub hostinfo: Option<Hostinfo>,
    /// `Created`: `None` (zero time) is omitted.
    #[serde(
        rename = "Created",
        with = "gotime::zero_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<DateTime<Utc>>,
    /// `Cap`: the node's capability version; omitted when zero.
    #[serde(rename = "Cap", skip_serializing_if = "is_zero")]
    pub cap: CapabilityVersion,
    /// `Tags`: ACL tags (`tag:xyz`); omitted when empty.
    #[serde(
        rename = "Tags",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub tags: Vec<String>,
    /// `PrimaryRoutes`: subnet routes this node is primary for; omitted when empty.
    #[serde(
        rename = "PrimaryRoutes",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub primary_routes: Vec<IpNet>,
    /// `LastSeen` (`*time.Time`): `None` (omitted) = unknown or online.
    #[serde(
        rename = "LastSeen",
        with = "gotime::ptr",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_seen: Option<DateTime<Utc>>,
    /// `Online` (`*bool`): `None` (omitted) = unknown; `Some(false)` is written.
    #[serde(rename = "Online", skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// `MachineAuthorized`: must be true on the self node or the client waits in
    /// `NeedsMachineAuth`. Omitted when false.
    #[serde(rename = "MachineAuthorized", skip_serializing_if = "is_zero")]
    pub machine_authorized: bool,
    /// `Capabilities`: deprecated list form of CapMap; omitted when empty (nil and empty mean
    /// the same to the client).
    #[serde(
        rename = "Capabilities",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub capabilities: Vec<String>,
    /// `CapMap`: node attributes → values; omitted when empty (nil and empty mean the same).
    #[serde(rename = "CapMap", skip_serializing_if = "CapMap::is_empty")]
    pub cap_map: CapMap,
    /// `UnsignedPeerAPIOnly`; omitted when false.
    #[serde(rename = "UnsignedPeerAPIOnly", skip_serializing_if = "is_zero")]
    pub unsigned_peer_api_only: bool,
    /// `ComputedName`: computed client-side; servers normally leave it empty (omitted).
    #[serde(rename = "ComputedName", skip_serializing_if = "String::is_empty")]
    pub computed_name: String,
    /// `ComputedNameWithHost`: computed client-side; omitted when empty.
    #[serde(
        rename = "ComputedNameWithHost",
        skip_serializing_if = "String::is_empty"
    )]
    pub computed_name_with_host: String,
    /// `DataPlaneAuditLogID`; omitted when empty.
    #[serde(
        rename = "DataPlaneAuditLogID",
        skip_serializing_if = "String::is_empty"
    )]
    pub data_plane_audit_log_id: String,
    /// `Expired`: the key has expired; omitted when false.
    #[serde(rename = "Expired", skip_serializing_if = "is_zero")]
    pub expired: bool,
    /// `SelfNodeV4MasqAddrForThisPeer`: the IPv4 this peer knows the self node by.
    #[serde(
        rename = "SelfNodeV4MasqAddrForThisPeer",
        skip_serializing_if = "Option::is_none"
    )]
    pub self_node_v4_masq_addr_for_this_peer: Option<IpAddr>,
    /// `SelfNodeV6MasqAddrForThisPeer`: the IPv6 this peer knows the self node by.
    #[serde(
        rename = "SelfNodeV6MasqAddrForThisPeer",
        skip_serializing_if = "Option::is_none"
    )]
    pub self_node_v6_masq_addr_for_this_peer: Option<IpAddr>,
    /// `IsWireGuardOnly`: a plain WireGuard peer (no disco/DERP).
    #[serde(rename = "IsWireGuardOnly", skip_serializing_if = "is_zero")]
    pub is_wireguard_only: bool,
    /// `IsJailed`: may not initiate connections.
    #[serde(rename = "IsJailed", skip_serializing_if = "is_zero")]
    pub is_jailed: bool,
    /// `ExitNodeDNSResolvers`: resolvers to use via this WireGuard-only exit node.
    #[serde(
        rename = "ExitNodeDNSResolvers",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub exit_node_dns_resolvers: Vec<DNSResolver>,
}
