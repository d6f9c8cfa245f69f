//! DERPMap, DERPHomeParams, DERPRegion, DERPNode, OverTLSPublicKeyResponse, EarlyNoise.

use hs_types::tailcfg::{
    DERPHomeParams, DERPMap, DERPNode, DERPRegion, EarlyNoise, OverTLSPublicKeyResponse, gojson,
};
use hs_types::{ChallengePublic, MachinePublic};

use super::{assert_lossless, parse, to_json};

/// A test DERP map as testcontrol/Headscale users write it (Go omits the zero fields).
const TEST_MAP: &str = r#"{"HomeParams":{"RegionScore":{"900":0.5}},"Regions":{"900":{"RegionID":900,"RegionCode":"test","RegionName":"Test \u0026 Dev","Nodes":[{"Name":"900a","RegionID":900,"HostName":"127.0.0.1","IPv4":"127.0.0.1","IPv6":"none","STUNPort":3478,"DERPPort":8443,"InsecureForTests":true,"STUNTestIP":"127.0.0.1"}]},"999":{"RegionID":999,"RegionCode":"headscale","RegionName":"Headscale Embedded DERP","Latitude":52.5,"Longitude":13.4,"NoMeasureNoHome":true,"Nodes":[{"Name":"999a","RegionID":999,"HostName":"derp.example.com","CertName":"sha256-raw:00ff","STUNPort":-1,"STUNOnly":true,"CanPort80":true}]}},"omitDefaultRegions":true}"#;

#[test]
fn test_map_parses_and_round_trips() {
    let m: DERPMap = assert_lossless(TEST_MAP);
    assert!(m.omit_default_regions);
    assert_eq!(m.home_params.as_ref().unwrap().region_score[&900], 0.5);
    let regions = m.regions.as_ref().expect("regions");
    assert_eq!(regions.keys().copied().collect::<Vec<_>>(), [900, 999]);
    let r = &regions[&900];
    assert_eq!(r.region_name, "Test & Dev");
    assert_eq!(
        r.nodes[0],
        DERPNode {
            name: "900a".into(),
            region_id: 900,
            host_name: "127.0.0.1".into(),
            ipv4: "127.0.0.1".into(),
            ipv6: "none".into(),
            stun_port: 3478,
            derp_port: 8443,
            insecure_for_tests: true,
            stun_test_ip: "127.0.0.1".into(),
            ..Default::default()
        }
    );
    let r = &regions[&999];
    assert_eq!((r.latitude, r.longitude), (52.5, 13.4));
    assert!(r.no_measure_no_home && !r.avoid);
    assert_eq!(r.nodes[0].stun_port, -1);
    assert!(r.nodes[0].stun_only && r.nodes[0].can_port80);
    assert_eq!(r.nodes[0].cert_name, "sha256-raw:00ff");
    // Our output is what Go writes for the same value; with Go's escaping, byte for byte.
    assert_eq!(to_json(&m), TEST_MAP.replace(r"\u0026", "&"));
    assert_eq!(gojson::to_vec(&m).unwrap(), TEST_MAP.as_bytes());
}

#[test]
fn regions_nil_versus_empty() {
    // nil Regions = keep the previous regions; Go writes it as null.
    let keep = DERPMap {
        home_params: Some(DERPHomeParams::default()),
        ..Default::default()
    };
    assert_eq!(to_json(&keep), r#"{"HomeParams":{},"Regions":null}"#);
    let none = DERPMap {
        regions: Some(Default::default()),
        ..Default::default()
    };
    assert_eq!(to_json(&none), r#"{"Regions":{}}"#);
    assert_eq!(parse::<DERPMap>(r#"{"Regions":null}"#).regions, None);
    assert_eq!(parse::<DERPMap>(r#"{}"#).regions, None);
    assert_eq!(
        parse::<DERPMap>(r#"{"Regions":{}}"#).regions,
        Some(Default::default())
    );
}

#[test]
fn null_regions_and_nodes_are_dropped() {
    // Headscale has been seen sending null region entries; clients delete them.
    let m: DERPMap =
        parse(r#"{"Regions":{"1":null,"2":{"RegionID":2,"Nodes":[null,{"Name":"2a"}]}}}"#);
    let regions = m.regions.unwrap();
    assert_eq!(regions.len(), 1);
    assert_eq!(regions[&2].nodes.len(), 1);
    assert_eq!(regions[&2].nodes[0].name, "2a");
}

#[test]
fn zero_region_writes_required_fields() {
    assert_eq!(
        to_json(&DERPRegion::default()),
        r#"{"RegionID":0,"RegionCode":"","RegionName":"","Nodes":[]}"#
    );
    assert_eq!(
        to_json(&DERPNode::default()),
        r#"{"Name":"","RegionID":0,"HostName":""}"#
    );
}

#[test]
fn bad_region_key_errors() {
    let err = serde_json::from_str::<DERPMap>(r#"{"Regions":{"nine":{}}}"#).unwrap_err();
    assert!(
        err.to_string().contains("expected key to be a number"),
        "{err}"
    );
}

#[test]
fn key_response_shape() {
    let k = MachinePublic::from_bytes([0xab; 32]);
    let r = OverTLSPublicKeyResponse {
        legacy_public_key: MachinePublic::default(),
        public_key: k,
    };
    let json = to_json(&r);
    assert_eq!(
        json,
        format!(
            r#"{{"legacyPublicKey":"mkey:{}","publicKey":"mkey:{}"}}"#,
            "0".repeat(64),
            "ab".repeat(32)
        )
    );
    assert_eq!(assert_lossless::<OverTLSPublicKeyResponse>(&json), r);
    let err = serde_json::from_str::<OverTLSPublicKeyResponse>(r#"{"publicKey":"nodekey:00"}"#)
        .unwrap_err();
    assert!(
        err.to_string().contains(r#"must start with "mkey:""#),
        "{err}"
    );
}

#[test]
fn early_noise_shape() {
    let c = ChallengePublic::from_bytes([7; 32]);
    let e = EarlyNoise {
        node_key_challenge: c,
    };
    let json = to_json(&e);
    assert_eq!(
        json,
        format!(r#"{{"nodeKeyChallenge":"chalpub:{}"}}"#, "07".repeat(32))
    );
    assert_eq!(assert_lossless::<EarlyNoise>(&json), e);
}

#[test]
fn integral_scores_are_written_like_go() {
    let json = r#"{"HomeParams":{"RegionScore":{"1":2,"900":0.25}},"Regions":{"1":{"RegionID":1,"RegionCode":"a","RegionName":"A","Latitude":40,"Nodes":[]}}}"#;
    let m: DERPMap = assert_lossless(json);
    assert_eq!(m.home_params.as_ref().unwrap().region_score[&1], 2.0);
    assert_eq!(to_json(&m), json);
}
