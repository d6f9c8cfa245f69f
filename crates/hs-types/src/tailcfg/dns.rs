//! `DNSConfig`, `DNSResolver` (Go `dnstype.Resolver`) and `DNSRecord`: the DNS settings a
//! client applies (MagicDNS, split DNS, search domains, extra records).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::omit::{is_zero, null_default};

/// Go's `tailcfg.DNSConfig`. In a MapResponse `None` means unchanged. All fields are
/// `omitempty`/`omitzero`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DNSConfig {
    /// `Resolvers`: upstream resolvers, in order of preference.
    #[serde(
        rename = "Resolvers",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub resolvers: Vec<DNSResolver>,
    /// `Routes`: FQDN suffix → resolvers (split DNS). An empty list means the suffix is
    /// answered by the client's own 100.100.100.100 (e.g. from `ExtraRecords`). `null` lists
    /// read as empty.
    #[serde(
        rename = "Routes",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "routes"
    )]
    pub routes: BTreeMap<String, Vec<DNSResolver>>,
    /// `FallbackResolvers`: used when no other resolver applies.
    #[serde(
        rename = "FallbackResolvers",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub fallback_resolvers: Vec<DNSResolver>,
    /// `Domains`: search domains, without trailing dot.
    #[serde(
        rename = "Domains",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub domains: Vec<String>,
    /// `Proxied`: MagicDNS is on.
    #[serde(rename = "Proxied", skip_serializing_if = "is_zero")]
    pub proxied: bool,
    /// `Nameservers`: deprecated plain resolver addresses.
    #[serde(
        rename = "Nameservers",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub nameservers: Vec<IpAddr>,
    /// `CertDomains`: names `tailscale cert` may request (no trailing dot).
    #[serde(
        rename = "CertDomains",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub cert_domains: Vec<String>,
    /// `ExtraRecords`: records served by 100.100.100.100.
    #[serde(
        rename = "ExtraRecords",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub extra_records: Vec<DNSRecord>,
    /// `ExitNodeFilteredSet`: suffixes not forwarded when this node is an exit node.
    #[serde(
        rename = "ExitNodeFilteredSet",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub exit_node_filtered_set: Vec<String>,
    /// `TempCorpIssue13969`: Tailscale-internal; passed through.
    #[serde(
        rename = "TempCorpIssue13969",
        skip_serializing_if = "String::is_empty"
    )]
    pub temp_corp_issue_13969: String,
}

/// Go's `dnstype.Resolver`: one upstream DNS resolver.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DNSResolver {
    /// `Addr`: `1.1.1.1`, `1.1.1.1:53`, `[::1]:53`, or a DoH/DoT URL.
    #[serde(rename = "Addr", skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// `BootstrapResolution`: IPs for a DoH/DoT host name.
    #[serde(
        rename = "BootstrapResolution",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub bootstrap_resolution: Vec<IpAddr>,
    /// `UseWithExitNode`: keep using this resolver while an exit node is active.
    #[serde(rename = "UseWithExitNode", skip_serializing_if = "is_zero")]
    pub use_with_exit_node: bool,
}

impl DNSResolver {
    /// A resolver with just an address.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            ..Self::default()
        }
    }
}

/// Go's `tailcfg.DNSRecord`: an extra record served by MagicDNS.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DNSRecord {
    /// `Name`: FQDN. Always written.
    #[serde(rename = "Name")]
    pub name: String,
    /// `Type`: `A`, `AAAA`, ...; empty = A or AAAA by the value's family. Omitted when empty.
    #[serde(rename = "Type", skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    /// `Value`: the record data (an IP for A/AAAA). Always written.
    #[serde(rename = "Value")]
    pub value: String,
}

fn routes<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<DNSResolver>>, D::Error> {
    let m = Option::<BTreeMap<String, Option<Vec<DNSResolver>>>>::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}
