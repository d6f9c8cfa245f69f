//! The DERP map a client uses to find relays and STUN servers: `DERPMap`, `DERPHomeParams`,
//! `DERPRegion`, `DERPNode` (Go `tailcfg/derpmap.go`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::gofloat;
use super::omit::{is_zero, null_default};

/// Go's `tailcfg.DERPMap`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DERPMap {
    /// `HomeParams`: `None` (omitted) = home parameters unchanged.
    #[serde(rename = "HomeParams", skip_serializing_if = "Option::is_none")]
    pub home_params: Option<DERPHomeParams>,
    /// `Regions`, keyed by region id (decimal strings on the wire). Always written:
    /// `None` is `null` and tells the client to keep its previous regions; `Some` replaces
    /// them (an empty map leaves the client with no DERP regions). `null` entries, which the
    /// client deletes anyway, are dropped when reading.
    #[serde(rename = "Regions", deserialize_with = "regions_skip_null")]
    pub regions: Option<BTreeMap<i64, DERPRegion>>,
    /// `omitDefaultRegions`: do not merge in Tailscale's own regions (only meaningful with
    /// `Regions` set).
    #[serde(rename = "omitDefaultRegions", skip_serializing_if = "is_zero")]
    pub omit_default_regions: bool,
}

/// Go's `tailcfg.DERPHomeParams`: tuning of home-region selection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DERPHomeParams {
    /// `RegionScore`: region id → latency multiplier (< 1 preferred, > 1 penalised; absent =
    /// 1.0). Omitted when empty (so Go cannot send an empty map either).
    #[serde(
        rename = "RegionScore",
        serialize_with = "gofloat::serialize_map",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub region_score: BTreeMap<i64, f64>,
}

/// Go's `tailcfg.DERPRegion`: a geographic region with one or more DERP nodes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DERPRegion {
    /// `RegionID`: positive, at most 2^53-1; 900-999 are for self-hosted relays.
    #[serde(rename = "RegionID")]
    pub region_id: i64,
    /// `RegionCode`: short code (`nyc`, `headscale`).
    #[serde(rename = "RegionCode")]
    pub region_code: String,
    /// `RegionName`: long English name.
    #[serde(rename = "RegionName")]
    pub region_name: String,
    /// `Latitude` in degrees; omitted when zero.
    #[serde(
        rename = "Latitude",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub latitude: f64,
    /// `Longitude` in degrees; omitted when zero.
    #[serde(
        rename = "Longitude",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub longitude: f64,
    /// `Avoid`: deprecated, use `NoMeasureNoHome`.
    #[serde(rename = "Avoid", skip_serializing_if = "is_zero")]
    pub avoid: bool,
    /// `NoMeasureNoHome`: never measure or pick as home; only used to reach peers homed here.
    #[serde(rename = "NoMeasureNoHome", skip_serializing_if = "is_zero")]
    pub no_measure_no_home: bool,
    /// `Nodes`, in priority order. Always written.
    #[serde(rename = "Nodes", deserialize_with = "nodes_skip_null")]
    pub nodes: Vec<DERPNode>,
}

/// Go's `tailcfg.DERPNode`: one DERP/STUN server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DERPNode {
    /// `Name`: unique label (e.g. `999a`), not a host name.
    #[serde(rename = "Name")]
    pub name: String,
    /// `RegionID` of the region this node is in.
    #[serde(rename = "RegionID")]
    pub region_id: i64,
    /// `HostName`: dialled and used as TLS SNI. Required.
    #[serde(rename = "HostName")]
    pub host_name: String,
    /// `CertName`: expected certificate name, or `sha256-raw:<hex>` to pin a self-signed leaf.
    #[serde(rename = "CertName", skip_serializing_if = "String::is_empty")]
    pub cert_name: String,
    /// `IPv4`: forced address; `none` disables IPv4.
    #[serde(rename = "IPv4", skip_serializing_if = "String::is_empty")]
    pub ipv4: String,
    /// `IPv6`: forced address; `none` disables IPv6.
    #[serde(rename = "IPv6", skip_serializing_if = "String::is_empty")]
    pub ipv6: String,
    /// `STUNPort`: 0 = 3478, -1 = no STUN.
    #[serde(rename = "STUNPort", skip_serializing_if = "is_zero")]
    pub stun_port: i64,
    /// `STUNOnly`: STUN server only, no DERP.
    #[serde(rename = "STUNOnly", skip_serializing_if = "is_zero")]
    pub stun_only: bool,
    /// `DERPPort`: TLS port; 0 = 443.
    #[serde(rename = "DERPPort", skip_serializing_if = "is_zero")]
    pub derp_port: i64,
    /// `InsecureForTests`: the client skips TLS verification.
    #[serde(rename = "InsecureForTests", skip_serializing_if = "is_zero")]
    pub insecure_for_tests: bool,
    /// `STUNTestIP`: overrides the STUN target IP.
    #[serde(rename = "STUNTestIP", skip_serializing_if = "String::is_empty")]
    pub stun_test_ip: String,
    /// `CanPort80`: reachable over plain HTTP on port 80 (captive-portal checks).
    #[serde(rename = "CanPort80", skip_serializing_if = "is_zero")]
    pub can_port80: bool,
}

fn regions_skip_null<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<i64, DERPRegion>>, D::Error> {
    let m = Option::<BTreeMap<i64, Option<DERPRegion>>>::deserialize(d)?;
    Ok(m.map(|m| m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()))
}

fn nodes_skip_null<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DERPNode>, D::Error> {
    let v = Option::<Vec<Option<DERPNode>>>::deserialize(d)?;
    Ok(v.unwrap_or_default().into_iter().flatten().collect())
}
