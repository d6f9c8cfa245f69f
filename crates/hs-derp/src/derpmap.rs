//! DERP maps, pure: the embedded relay's region from config values, JSON (`derp.urls` bodies)
//! and YAML (`derp.paths` files) parsing, and Headscale's merge rules. Fetching and the
//! periodic refresh live in [`crate::refresh`].
//!
//! Merge rules (Headscale `hscontrol/derp`): sources are applied in order (URLs, then paths),
//! a later region replaces an earlier one with the same id, a `null` region removes it,
//! positive home-region scores merge by id, and the embedded region is added last. Each
//! region is sanitised: it and its nodes carry the map key as id, nameless and duplicate-named
//! nodes are dropped. Nodes are then shuffled with a seed so clients spread over relays.

use std::collections::BTreeMap;

use hs_config::DerpServerConfig;
use hs_types::tailcfg::{DERPHomeParams, DERPMap, DERPNode, DERPRegion};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// One parsed source: regions (`None` = "remove this id") and home-region scores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DerpMapSource {
    /// Regions by id; `None` removes the id from the merged map.
    pub regions: BTreeMap<i64, Option<DERPRegion>>,
    /// `HomeParams.RegionScore`.
    pub region_score: BTreeMap<i64, f64>,
}

/// Every field name of DERPMap/DERPHomeParams/DERPRegion/DERPNode as Go writes it in JSON.
const GO_NAMES: &[&str] = &[
    "HomeParams",
    "Regions",
    "omitDefaultRegions",
    "RegionScore",
    "RegionID",
    "RegionCode",
    "RegionName",
    "Latitude",
    "Longitude",
    "Avoid",
    "NoMeasureNoHome",
    "Nodes",
    "Name",
    "HostName",
    "CertName",
    "IPv4",
    "IPv6",
    "STUNPort",
    "STUNOnly",
    "DERPPort",
    "InsecureForTests",
    "STUNTestIP",
    "CanPort80",
];

/// Renames keys to Go's JSON spelling when they match case-insensitively: Go's JSON decoder
/// matches that way, and YAML files use the lower-cased names.
fn canonical_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let name = GO_NAMES
                        .iter()
                        .find(|n| n.eq_ignore_ascii_case(&k))
                        .map_or(k, |n| (*n).to_owned());
                    (name, canonical_keys(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(canonical_keys).collect()),
        other => other,
    }
}

fn bad(source_name: &str, detail: impl std::fmt::Display) -> Error {
    Error::DerpMap {
        source_name: source_name.to_owned(),
        detail: detail.to_string(),
    }
}

fn parse_id(source_name: &str, k: &str) -> Result<i64, Error> {
    k.trim().parse::<i64>().map_err(|_| {
        bad(
            source_name,
            format_args!("region key {k:?} is not an integer"),
        )
    })
}

fn from_value(source_name: &str, v: Value) -> Result<DerpMapSource, Error> {
    let Value::Object(mut top) = canonical_keys(v) else {
        return Err(bad(source_name, "top level is not a map"));
    };
    let mut out = DerpMapSource::default();
    match top.remove("Regions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(regions)) => {
            for (k, v) in regions {
                let id = parse_id(source_name, &k)?;
                let region = match v {
                    Value::Null => None,
                    v => Some(
                        DERPRegion::deserialize(v)
                            .map_err(|e| bad(source_name, format_args!("region {id}: {e}")))?,
                    ),
                };
                out.regions.insert(id, region);
            }
        }
        Some(_) => return Err(bad(source_name, "Regions is not a map")),
    }
    if let Some(Value::Object(mut hp)) = top.remove("HomeParams")
        && let Some(Value::Object(scores)) = hp.remove("RegionScore")
    {
        for (k, v) in scores {
            let id = parse_id(source_name, &k)?;
            let score = v.as_f64().ok_or_else(|| {
                bad(
                    source_name,
                    format_args!("score of region {id} is not a number"),
                )
            })?;
            out.region_score.insert(id, score);
        }
    }
    Ok(out)
}

/// Parses a JSON DERP map (a `derp.urls` response body). `source_name` names it in errors.
pub fn parse_json(source_name: &str, body: &[u8]) -> Result<DerpMapSource, Error> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(source_name, e))?;
    from_value(source_name, v)
}

/// Parses a YAML DERP map (a `derp.paths` file, lower-case keys as in `derp-example.yaml`).
pub fn parse_yaml(source_name: &str, text: &str) -> Result<DerpMapSource, Error> {
    let y: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| bad(source_name, e))?;
    if y.is_null() {
        // An empty file is an empty map.
        return Ok(DerpMapSource::default());
    }
    from_value(source_name, yaml_to_json(source_name, y)?)
}

/// YAML → JSON value, turning the integer region keys into strings.
fn yaml_to_json(source_name: &str, y: serde_yaml_ng::Value) -> Result<Value, Error> {
    use serde_yaml_ng::Value as Y;
    Ok(match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(
            seq.into_iter()
                .map(|v| yaml_to_json(source_name, v))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(bad(
                            source_name,
                            format_args!("unsupported map key {other:?}"),
                        ));
                    }
                };
                out.insert(key, yaml_to_json(source_name, v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(source_name, t.value)?,
    })
}

/// Where the embedded region's node listens, from `server_url`: host and port (the URL's
/// port, or 443 for https / 80 otherwise) and whether the scheme is plain HTTP.
fn split_server_url(server_url: &str) -> Result<(String, i64, bool), Error> {
    let err = |d: &str| bad("server_url", format_args!("{server_url:?}: {d}"));
    let (scheme, rest) = server_url
        .split_once("://")
        .ok_or_else(|| err("missing scheme"))?;
    let https = scheme.eq_ignore_ascii_case("https");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.is_empty() {
        return Err(err("missing host"));
    }
    let default_port = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| err("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_owned(), p.parse().map_err(|_| err("bad port"))?),
            None => (h.to_owned(), default_port),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| err("bad port"))?),
            None => (authority.to_owned(), default_port),
        }
    };
    Ok((host, port, !https))
}

/// The embedded relay's region: one node named after the region id, reached at
/// `server_url`'s host and port, STUN on `stun_listen_addr`'s port, `ipv4`/`ipv6` from the
/// config, `InsecureForTests` when `server_url` is plain HTTP.
pub fn embedded_region(server_url: &str, cfg: &DerpServerConfig) -> Result<DERPRegion, Error> {
    let (host, port, insecure) = split_server_url(server_url)?;
    let stun_port = cfg
        .stun_listen_addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| {
            bad(
                "derp.server.stun_listen_addr",
                format_args!("{:?} has no port", cfg.stun_listen_addr),
            )
        })?;
    Ok(DERPRegion {
        region_id: cfg.region_id,
        region_code: cfg.region_code.clone(),
        region_name: cfg.region_name.clone(),
        nodes: vec![DERPNode {
            name: cfg.region_id.to_string(),
            region_id: cfg.region_id,
            host_name: host,
            ipv4: cfg.ipv4.clone(),
            ipv6: cfg.ipv6.clone(),
            stun_port: i64::from(stun_port),
            derp_port: port,
            insecure_for_tests: insecure,
            ..DERPNode::default()
        }],
        ..DERPRegion::default()
    })
}

fn sanitize(id: i64, mut region: DERPRegion) -> DERPRegion {
    region.region_id = id;
    let mut seen = std::collections::HashSet::new();
    region
        .nodes
        .retain(|n| !n.name.is_empty() && seen.insert(n.name.clone()));
    for n in &mut region.nodes {
        n.region_id = id;
    }
    region
}

/// A stable shuffle seed from `dns.base_domain`: its CRC-64/ISO, as Headscale seeds from
/// it (the shuffle itself is not Go's, so node order differs from Headscale's).
pub fn seed_from_base_domain(base_domain: &str) -> u64 {
    // Reflected CRC-64 with the ISO polynomial, as Go's hash/crc64 with crc64.ISO.
    let mut crc = !0u64;
    for &b in base_domain.as_bytes() {
        crc ^= u64::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xd800_0000_0000_0000 & mask);
        }
    }
    !crc
}

/// Merges `sources` in order, adds `embedded` last, and shuffles each region's nodes with
/// `seed`. The result always has `Regions` set (possibly empty).
pub fn build(sources: &[DerpMapSource], embedded: Option<&DERPRegion>, seed: u64) -> DERPMap {
    let mut regions: BTreeMap<i64, DERPRegion> = BTreeMap::new();
    let mut scores: BTreeMap<i64, f64> = BTreeMap::new();
    for s in sources {
        for (id, r) in &s.regions {
            match r {
                Some(r) => {
                    regions.insert(*id, sanitize(*id, r.clone()));
                }
                None => {
                    regions.remove(id);
                }
            }
        }
        // The client ignores non-positive scores; do not send them.
        scores.extend(
            s.region_score
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(k, v)| (*k, *v)),
        );
    }
    if let Some(e) = embedded {
        regions.insert(e.region_id, sanitize(e.region_id, e.clone()));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // BTreeMap iteration is ordered, so the shuffle is reproducible for a seed.
    for r in regions.values_mut() {
        r.nodes.shuffle(&mut rng);
    }
    DERPMap {
        home_params: (!scores.is_empty()).then_some(DERPHomeParams {
            region_score: scores,
        }),
        regions: Some(regions),
        omit_default_regions: false,
    }
}

/// Every node host name in the map, sorted and without duplicates (what `/bootstrap-dns`
/// resolves).
pub fn host_names(map: &DERPMap) -> Vec<String> {
    let mut names: Vec<String> = map
        .regions
        .iter()
        .flat_map(|r| r.values())
        .flat_map(|r| &r.nodes)
        .map(|n| n.host_name.clone())
        .filter(|h| !h.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether the map has a node that relays (not only STUN): without one, nodes that cannot
/// connect directly have no path.
pub fn has_relay(map: &DERPMap) -> bool {
    map.regions
        .as_ref()
        .is_some_and(|r| r.values().flat_map(|r| &r.nodes).any(|n| !n.stun_only))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn server_cfg() -> DerpServerConfig {
        DerpServerConfig {
            enabled: true,
            region_id: 999,
            region_code: "headscale".into(),
            region_name: "Headscale Embedded DERP".into(),
            verify_clients: true,
            stun_listen_addr: "0.0.0.0:3478".into(),
            private_key_path: PathBuf::from("/tmp/derp.key"),
            automatically_add_embedded_derp_region: true,
            ipv4: "198.51.100.7".into(),
            ipv6: "2001:db8::7".into(),
        }
    }

    #[test]
    fn crc64_iso_matches_the_catalogue_check_value() {
        assert_eq!(seed_from_base_domain("123456789"), 0xb909_56c7_75a4_1001);
    }

    #[test]
    fn embedded_region_follows_server_url_and_stun_port() {
        let r = embedded_region("https://hs.example.com", &server_cfg()).unwrap();
        assert_eq!((r.region_id, r.region_code.as_str()), (999, "headscale"));
        assert_eq!(r.region_name, "Headscale Embedded DERP");
        let n = &r.nodes[0];
        assert_eq!(n.name, "999");
        assert_eq!(n.region_id, 999);
        assert_eq!(n.host_name, "hs.example.com");
        assert_eq!(n.derp_port, 443);
        assert_eq!(n.stun_port, 3478);
        assert_eq!(
            (n.ipv4.as_str(), n.ipv6.as_str()),
            ("198.51.100.7", "2001:db8::7")
        );
        assert!(!n.insecure_for_tests);

        let mut cfg = server_cfg();
        cfg.stun_listen_addr = "[::]:3479".into();
        let r = embedded_region("http://127.0.0.1:8080/", &cfg).unwrap();
        let n = &r.nodes[0];
        assert_eq!(
            (n.host_name.as_str(), n.derp_port, n.stun_port),
            ("127.0.0.1", 8080, 3479)
        );
        assert!(n.insecure_for_tests);
        let r = embedded_region("http://[::1]:9/x", &cfg).unwrap();
        assert_eq!(
            (r.nodes[0].host_name.as_str(), r.nodes[0].derp_port),
            ("::1", 9)
        );
        assert_eq!(
            embedded_region("http://h", &cfg).unwrap().nodes[0].derp_port,
            80
        );
    }

    #[test]
    fn embedded_region_reports_bad_inputs() {
        let e = embedded_region("hs.example.com", &server_cfg()).unwrap_err();
        assert!(e.to_string().contains("server_url"), "{e}");
        let e = embedded_region("http://h:notaport", &server_cfg()).unwrap_err();
        assert!(e.to_string().contains("bad port"), "{e}");
        let mut cfg = server_cfg();
        cfg.stun_listen_addr = "0.0.0.0".into();
        let e = embedded_region("http://h", &cfg).unwrap_err();
        assert!(e.to_string().contains("stun_listen_addr"), "{e}");
    }

    #[test]
    fn the_shipped_yaml_example_parses() {
        // Read at run time: the compile-time value may name another checkout that built this
        // binary into the shared target directory.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let text = std::fs::read_to_string(
            dir.join("../../../shared/headscale-compat/config/derp-example.yaml"),
        )
        .unwrap();
        let s = parse_yaml("derp-example.yaml", &text).unwrap();
        assert_eq!(s.regions.get(&1), Some(&None));
        let r = s.regions[&900].as_ref().unwrap();
        assert_eq!(r.region_code, "custom");
        assert_eq!(r.region_name, "My Region");
        let n = &r.nodes[0];
        assert_eq!(n.name, "900a");
        assert_eq!(n.host_name, "myderp.example.com");
        assert_eq!(n.ipv4, "198.51.100.1");
        assert_eq!(n.ipv6, "2001:db8::1");
        assert_eq!((n.stun_port, n.derp_port, n.stun_only), (0, 0, false));
    }

    const TS_JSON: &str = r#"{"Regions":{
        "1":{"RegionID":1,"RegionCode":"nyc","RegionName":"New York City",
             "Nodes":[{"Name":"1a","RegionID":1,"HostName":"derp1.example"},
                      {"Name":"1b","RegionID":1,"HostName":"derp1b.example"}]},
        "2":{"RegionID":2,"RegionCode":"sfo","RegionName":"San Francisco","Nodes":[
             {"Name":"2a","RegionID":2,"HostName":"derp2.example","STUNOnly":true}]}},
        "HomeParams":{"RegionScore":{"1":0.5,"2":-1}}}"#;

    #[test]
    fn json_parses_and_matches_field_names_case_insensitively() {
        let s = parse_json("u", TS_JSON.as_bytes()).unwrap();
        assert_eq!(s.regions.len(), 2);
        assert!(s.regions[&2].as_ref().unwrap().nodes[0].stun_only);
        assert_eq!(s.region_score.get(&1), Some(&0.5));
        let lower = parse_json(
            "u",
            br#"{"regions":{"7":{"regioncode":"x","nodes":[{"name":"7a"}]}}}"#,
        )
        .unwrap();
        let r = lower.regions[&7].as_ref().unwrap();
        assert_eq!(
            (r.region_code.as_str(), r.nodes[0].name.as_str()),
            ("x", "7a")
        );
    }

    #[test]
    fn bad_sources_name_the_source_and_problem() {
        let e = parse_json("https://maps.example/x", b"{").unwrap_err();
        assert!(e.to_string().contains("https://maps.example/x"), "{e}");
        let e = parse_json("u", br#"{"Regions":{"abc":{}}}"#).unwrap_err();
        assert!(e.to_string().contains("\"abc\""), "{e}");
        let e = parse_json("u", br#"{"Regions":{"1":{"Nodes":"zz"}}}"#).unwrap_err();
        assert!(e.to_string().contains("region 1"), "{e}");
        let e = parse_yaml("f.yaml", "regions: [1, 2]").unwrap_err();
        assert!(e.to_string().contains("f.yaml"), "{e}");
        assert_eq!(
            parse_yaml("empty.yaml", "").unwrap(),
            DerpMapSource::default()
        );
    }

    #[test]
    fn merge_later_wins_null_removes_embedded_last() {
        let base = parse_json("u", TS_JSON.as_bytes()).unwrap();
        let overlay = parse_yaml(
            "p",
            "regions:\n  1: null\n  2:\n    regioncode: mine\n    nodes:\n      - name: x\n      - name: x\n      - name: ''\n  999:\n    regioncode: shadowed\n",
        )
        .unwrap();
        let embedded = embedded_region("http://127.0.0.1:8080", &server_cfg()).unwrap();
        let m = build(&[base, overlay], Some(&embedded), 1);
        let regions = m.regions.as_ref().unwrap();
        assert_eq!(regions.keys().copied().collect::<Vec<_>>(), vec![2, 999]);
        let r2 = &regions[&2];
        assert_eq!(r2.region_code, "mine");
        assert_eq!(r2.region_id, 2, "region id comes from the map key");
        assert_eq!(r2.nodes.len(), 1, "duplicate and nameless nodes dropped");
        assert_eq!(r2.nodes[0].region_id, 2);
        assert_eq!(regions[&999].region_code, "headscale");
        let scores = &m.home_params.as_ref().unwrap().region_score;
        assert_eq!(scores.iter().collect::<Vec<_>>(), vec![(&1, &0.5)]);
        assert!(!m.omit_default_regions);
        assert!(has_relay(&m));
        assert_eq!(
            host_names(&m),
            // Region 2's only node now comes from the overlay and has no host name.
            vec!["127.0.0.1".to_owned()]
        );
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let nodes: Vec<DERPNode> = (0..8)
            .map(|i| DERPNode {
                name: format!("n{i}"),
                ..DERPNode::default()
            })
            .collect();
        let mut src = DerpMapSource::default();
        src.regions.insert(
            5,
            Some(DERPRegion {
                nodes,
                ..DERPRegion::default()
            }),
        );
        let names = |seed| {
            build(std::slice::from_ref(&src), None, seed)
                .regions
                .unwrap()[&5]
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(42), names(42));
        let mut sorted = names(42);
        sorted.sort();
        assert_eq!(sorted, (0..8).map(|i| format!("n{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn host_names_are_every_node_sorted() {
        let m = build(&[parse_json("u", TS_JSON.as_bytes()).unwrap()], None, 3);
        assert_eq!(
            host_names(&m),
            vec!["derp1.example", "derp1b.example", "derp2.example"]
        );
    }

    #[test]
    fn empty_inputs_give_an_empty_map_without_relays() {
        let m = build(&[], None, 0);
        assert_eq!(m.regions, Some(BTreeMap::new()));
        assert!(m.home_params.is_none());
        assert!(!has_relay(&m));
        let stun_only = parse_json(
            "u",
            br#"{"Regions":{"3":{"Nodes":[{"Name":"3a","STUNOnly":true}]}}}"#,
        )
        .unwrap();
        assert!(!has_relay(&build(&[stun_only], None, 0)));
    }
}
