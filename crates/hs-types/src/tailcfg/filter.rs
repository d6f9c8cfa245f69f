//! The packet filter a client enforces on inbound traffic: `FilterRule`, `NetPortRange`,
//! `PortRange` and `CapGrant` (Go `tailcfg.go`, "FilterRule" section).
//!
//! Rules are accept-only and inbound-only: a client with no rules accepts nothing.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::capmap::CapMap;
use super::omit::null_default;

/// IP protocol numbers used in [`FilterRule::ip_proto`] (Go `types/ipproto`).
pub mod ipproto {
    /// ICMPv4.
    pub const ICMPV4: i64 = 1;
    /// IGMP.
    pub const IGMP: i64 = 2;
    /// TCP.
    pub const TCP: i64 = 6;
    /// UDP.
    pub const UDP: i64 = 17;
    /// Tailscale's own TSMP messages.
    pub const TSMP: i64 = 99;
    /// ICMPv6.
    pub const ICMPV6: i64 = 58;
    /// SCTP.
    pub const SCTP: i64 = 132;
}

/// Go's `tailcfg.PortRange`: an inclusive port range. Both fields are always written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(default)]
pub struct PortRange {
    /// `First` port, inclusive.
    #[serde(rename = "First")]
    pub first: u16,
    /// `Last` port, inclusive.
    #[serde(rename = "Last")]
    pub last: u16,
}

impl PortRange {
    /// Every port, `0-65535` (Go `PortRangeAny`).
    pub const ANY: Self = Self {
        first: 0,
        last: 65535,
    };

    /// A single port.
    pub const fn single(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }
}

/// Go's `tailcfg.NetPortRange`: a destination (IP, CIDR, `a-b` range or `*`) and ports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetPortRange {
    /// `IP`: same syntax as [`FilterRule::src_ips`]. Always written.
    #[serde(rename = "IP")]
    pub ip: String,
    /// `Bits`: deprecated CIDR length applied to `IP`; `None` is omitted.
    #[serde(rename = "Bits", skip_serializing_if = "Option::is_none")]
    pub bits: Option<i64>,
    /// `Ports`: the port range. Always written.
    #[serde(rename = "Ports")]
    pub ports: PortRange,
}

/// Go's `tailcfg.CapGrant`: peer capabilities granted to the rule's sources towards `Dsts`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CapGrant {
    /// `Dsts`: destination prefixes. Always written.
    #[serde(rename = "Dsts", deserialize_with = "null_default")]
    pub dsts: Vec<IpNet>,
    /// `Caps`: deprecated capability names; omitted when empty.
    #[serde(
        rename = "Caps",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub caps: Vec<String>,
    /// `CapMap`: capability → values; omitted when empty.
    #[serde(rename = "CapMap", skip_serializing_if = "CapMap::is_empty")]
    pub cap_map: CapMap,
}

/// Go's `tailcfg.FilterRule`: traffic from `SrcIPs` to `DstPorts` (with `IPProto`) is accepted;
/// alternatively `CapGrant` grants application capabilities (the two are mutually exclusive).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterRule {
    /// `SrcIPs`: IPs, CIDRs, `a-b` ranges, `*`, or `cap:<node capability>`. Always written
    /// (`[]` when empty; Go would write `null` for a nil list, which clients treat the same).
    #[serde(rename = "SrcIPs", deserialize_with = "null_default")]
    pub src_ips: Vec<String>,
    /// `SrcBits`: deprecated per-`SrcIPs` CIDR lengths; omitted when empty.
    #[serde(
        rename = "SrcBits",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub src_bits: Vec<i64>,
    /// `DstPorts`: destinations; omitted when empty.
    #[serde(
        rename = "DstPorts",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub dst_ports: Vec<NetPortRange>,
    /// `IPProto`: protocol numbers ([`ipproto`]); empty means TCP, UDP, ICMPv4 and ICMPv6.
    #[serde(
        rename = "IPProto",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub ip_proto: Vec<i64>,
    /// `CapGrant`: capability grants; omitted when empty.
    #[serde(
        rename = "CapGrant",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub cap_grant: Vec<CapGrant>,
}

impl FilterRule {
    /// Go's `FilterAllowAll`: everything from everywhere to every port.
    pub fn allow_all() -> Self {
        Self {
            src_ips: vec!["*".to_owned()],
            dst_ports: vec![NetPortRange {
                ip: "*".to_owned(),
                bits: None,
                ports: PortRange::ANY,
            }],
            ..Self::default()
        }
    }
}
