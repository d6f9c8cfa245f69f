//! What the mapper needs from the server configuration, with the parts that are the same for
//! every node (DERP map, DNS config) serialised once.
//!
//! `dns.extra_records_path` is read by the control plane (file I/O and change detection live
//! there); it hands the file's text to [`parse_extra_records`] and builds a new
//! [`MapperConfig`], and [`crate::Mapper::reconfigure`] tells every session what changed.

use std::sync::Arc;
#[cfg(feature = "test-fault")]
use std::sync::OnceLock;

use hs_config::{DnsConfig, ExtraRecord};
use hs_types::tailcfg::{DERPMap, DNSConfig, DNSRecord, DNSResolver};

use crate::error::Error;

/// Mapper settings derived from the configuration file.
#[derive(Debug, Clone)]
pub struct MapperConfig {
    /// `dns.base_domain`: MagicDNS names are `given_name.base_domain.`.
    pub base_domain: String,
    /// `MapResponse.Domain`: the tailnet name (Headscale sends the base domain).
    pub domain: String,
    /// `taildrop.enabled`: grants the file-sharing capability.
    pub taildrop: bool,
    /// `auto_update.enabled`: the value of the `default-auto-update` node attribute.
    pub auto_update: bool,
    /// `logtail.enabled`: `Debug.DisableLogTail` is its negation.
    pub logtail: bool,
    /// The DERP map, serialised once.
    pub derp_map: Arc<str>,
    /// The DNS config every node gets, serialised once; `None` sends none.
    pub dns: Option<Arc<str>>,
}

impl MapperConfig {
    /// Builds the config, serialising the DERP map and the DNS config.
    pub fn new(
        base_domain: &str,
        derp_map: &DERPMap,
        dns: Option<&DNSConfig>,
        taildrop: bool,
        auto_update: bool,
        logtail: bool,
    ) -> Result<Self, Error> {
        Ok(Self {
            base_domain: base_domain.to_owned(),
            domain: base_domain.to_owned(),
            taildrop,
            auto_update,
            logtail,
            derp_map: Arc::from(serde_json::to_string(derp_map)?),
            dns: dns.map(serde_json::to_string).transpose()?.map(Arc::from),
        })
    }

    /// Whether nodes render differently under `other` (names, capabilities), so every peer
    /// entry must be resent.
    pub fn renders_nodes_differently(&self, other: &Self) -> bool {
        self.base_domain != other.base_domain
            || self.taildrop != other.taildrop
            || self.auto_update != other.auto_update
    }
}

/// A deliberate server bug, for the integration harness's self-check only (proving that the
/// scenarios notice a broken server). Set once at start-up by `headscale serve` from the
/// `HEADSCALE_RS_TEST_FAULT` environment variable; never set in normal operation.
#[cfg(feature = "test-fault")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFault {
    /// Render every node without its DiscoKey, so peers cannot disco-ping each other.
    OmitPeerDiscoKey,
}

#[cfg(feature = "test-fault")]
impl TestFault {
    /// The fault named by `HEADSCALE_RS_TEST_FAULT` (`omit-peer-disco-key`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "omit-peer-disco-key" => Some(Self::OmitPeerDiscoKey),
            _ => None,
        }
    }
}

// Process-wide because it is a start-up switch for a test binary, not configuration: threading
// it through every constructor would put a test knob in the public config types.
#[cfg(feature = "test-fault")]
static TEST_FAULT: OnceLock<TestFault> = OnceLock::new();

/// Turns on `fault` for the rest of the process (the first call wins).
#[cfg(feature = "test-fault")]
pub fn set_test_fault(fault: TestFault) {
    let _ = TEST_FAULT.set(fault);
}

/// Whether peers are rendered without their DiscoKey (the only fault there is).
#[cfg(feature = "test-fault")]
pub(crate) fn omit_peer_disco_key() -> bool {
    TEST_FAULT.get() == Some(&TestFault::OmitPeerDiscoKey)
}

/// Without the `test-fault` feature no fault can be switched on.
#[cfg(not(feature = "test-fault"))]
pub(crate) fn omit_peer_disco_key() -> bool {
    false
}

/// A nameserver entry from the config: an IP address, or a DoH/DoT URL passed through.
/// Headscale ignores entries that are neither; so do we (the config loader already
/// reported them).
fn resolver(s: &str) -> Option<DNSResolver> {
    let s = s.trim();
    if s.parse::<std::net::IpAddr>().is_ok() || s.starts_with("https://") || s.starts_with("tls://")
    {
        Some(DNSResolver::new(s))
    } else {
        None
    }
}

/// The `tailcfg.DNSConfig` Headscale derives from `dns.*` (`dnsToTailcfgDNS`): MagicDNS as
/// `Proxied`, global nameservers as `Resolvers` when overriding local DNS (else
/// `FallbackResolvers`), split nameservers as `Routes`, the base domain then the search
/// domains as `Domains`, and the extra records (from `dns.extra_records`, or from
/// `dns.extra_records_path` when given as `file_records`).
pub fn dns_config(dns: &DnsConfig, file_records: Option<&[DNSRecord]>) -> DNSConfig {
    let global: Vec<DNSResolver> = dns
        .nameservers_global
        .iter()
        .filter_map(|s| resolver(s))
        .collect();
    let mut out = DNSConfig {
        proxied: dns.magic_dns,
        ..DNSConfig::default()
    };
    if dns.override_local_dns {
        out.resolvers = global;
    } else {
        out.fallback_resolvers = global;
    }
    out.routes = dns
        .nameservers_split
        .iter()
        .map(|(domain, ns)| {
            (
                domain.clone(),
                ns.iter().filter_map(|s| resolver(s)).collect(),
            )
        })
        .collect();
    if !dns.base_domain.is_empty() {
        out.domains.push(dns.base_domain.clone());
    }
    out.domains.extend(dns.search_domains.iter().cloned());
    out.extra_records = match file_records {
        Some(r) => r.to_vec(),
        None => dns.extra_records.iter().map(record).collect(),
    };
    out
}

fn record(r: &ExtraRecord) -> DNSRecord {
    DNSRecord {
        name: r.name.clone(),
        r#type: r.record_type.clone(),
        value: r.value.clone(),
    }
}

/// Parses the content of `dns.extra_records_path`: a JSON list of
/// `{"name": …, "type": …, "value": …}` records (Headscale's format; field names are matched
/// case-insensitively like Go's decoder, so `Name`/`Type`/`Value` work too).
pub fn parse_extra_records(text: &str) -> Result<Vec<DNSRecord>, Error> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::ExtraRecords(e.to_string()))?;
    let arr = v
        .as_array()
        .ok_or_else(|| Error::ExtraRecords("expected a JSON list of records".into()))?;
    arr.iter()
        .enumerate()
        .map(|(i, r)| {
            let obj = r
                .as_object()
                .ok_or_else(|| Error::ExtraRecords(format!("record {i} is not an object")))?;
            let field = |name: &str| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_owned)
            };
            let name = field("name")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::ExtraRecords(format!("record {i} has no \"name\"")))?;
            let value = field("value")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::ExtraRecords(format!("record {i} has no \"value\"")))?;
            Ok(DNSRecord {
                name,
                r#type: field("type").unwrap_or_default(),
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn dns() -> DnsConfig {
        DnsConfig {
            magic_dns: true,
            base_domain: "ts.example.com".into(),
            override_local_dns: true,
            nameservers_global: vec![
                "1.1.1.1".into(),
                "https://dns.nextdns.io/abc".into(),
                "bogus".into(),
            ],
            nameservers_split: BTreeMap::from([(
                "corp.example".to_owned(),
                vec!["10.0.0.53".to_owned()],
            )]),
            search_domains: vec!["lan.example".into()],
            extra_records: vec![ExtraRecord {
                name: "grafana.ts.example.com".into(),
                record_type: "A".into(),
                value: "100.64.0.9".into(),
            }],
            extra_records_path: None,
        }
    }

    #[test]
    fn dns_config_follows_headscale() {
        let c = dns_config(&dns(), None);
        assert!(c.proxied);
        let addrs: Vec<_> = c.resolvers.iter().map(|r| r.addr.as_str()).collect();
        assert_eq!(addrs, ["1.1.1.1", "https://dns.nextdns.io/abc"]);
        assert!(c.fallback_resolvers.is_empty());
        assert_eq!(c.routes["corp.example"][0].addr, "10.0.0.53");
        assert_eq!(c.domains, ["ts.example.com", "lan.example"]);
        assert_eq!(c.extra_records[0].value, "100.64.0.9");

        let mut d = dns();
        d.override_local_dns = false;
        let c = dns_config(&d, Some(&[]));
        assert!(c.resolvers.is_empty());
        assert_eq!(c.fallback_resolvers.len(), 2);
        assert!(
            c.extra_records.is_empty(),
            "file records replace inline ones"
        );
    }

    #[test]
    fn extra_records_file_parses_and_rejects_garbage() {
        let r = parse_extra_records(
            r#"[{"name":"a.example","type":"A","value":"100.64.0.1"},{"Name":"b.example","Value":"fd7a::1"}]"#,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].name, "b.example");
        assert_eq!(r[1].r#type, "");
        let e = parse_extra_records(r#"[{"name":"a"}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 0 has no \"value\""), "{e}");
        assert!(parse_extra_records("{}").is_err());
        assert!(parse_extra_records("not json").is_err());
    }
}
